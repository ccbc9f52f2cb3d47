"""The relay end to end: the official openai client → the gateway → fake OpenAI-compatible upstreams."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.gateway.conftest import Admin, GatewayThread, unique
from zhiku.testing.fake_upstream import count_tokens

pytestmark = pytest.mark.integration


def client(gateway_server: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_server.base_url + "/v1", api_key=key, max_retries=0, timeout=30)


def ask(oa: openai.OpenAI, model: str, text: str = "hello", **kw: object):
    return oa.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def flushed_logs(gateway_server: GatewayThread, admin: Admin, **filters: object) -> list[dict]:
    gateway_server.call(gateway_server.gateway.flush())
    return admin.logs(**filters)


def sse_lines(gateway_server: GatewayThread, key: str, body: dict) -> list[str]:
    with httpx.stream("POST", gateway_server.base_url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status_code == 200, r.read()
        return [line for line in r.iter_lines() if line]


def test_non_stream_reaches_upstream_and_is_logged(gateway_server, admin, fakes) -> None:
    model = unique("m")
    channel = admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].reply("Paris is the capital.")
    done = ask(client(gateway_server, key), model, "Capital of France?")
    assert done.choices[0].message.content == "Paris is the capital."
    assert done.usage.completion_tokens == count_tokens("Paris is the capital.")
    sent = fakes[0].last_request
    assert sent.headers["authorization"] == "Bearer sk-upstream-0" and sent.json["model"] == model
    assert "stream_options" not in sent.json
    [row] = flushed_logs(gateway_server, admin, model=model)
    assert row["channel_id"] == channel["id"] and row["status"] == 200 and row["type"] == "consume"
    assert row["prompt_tokens"] == done.usage.prompt_tokens and row["usage_source"] == "upstream"
    assert row["quota"] > 0 and row["is_stream"] is False and row["attempts"] == 1 and row["latency_ms"] >= 0


def test_stream_passes_chunks_and_ends_with_done(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].reply("Streaming works fine.", chunk_size=3)
    stream = ask(client(gateway_server, key), model, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming works fine."
    assert all(c.choices for c in chunks)  # the usage chunk we asked for is not passed to a client that did not
    sent = fakes[0].last_request.json  # the client's bytes with the usage option put in front
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == model and sent["stream"] is True and sent["messages"][0]["role"] == "user"

    fakes[0].reply("Asked not to.")  # an explicit "no": usage is still asked upstream, and not passed on
    lines = sse_lines(gateway_server, key, {"model": model, "stream": True, "stream_options": {"include_usage": False},
                                            "messages": [{"role": "user", "content": "hi"}]})
    assert fakes[0].last_request.json["stream_options"] == {"include_usage": True}
    assert lines[-1] == "data: [DONE]" and not any('"usage":{' in line.replace(" ", "") for line in lines)

    fakes[0].reply("Again.")
    lines = sse_lines(gateway_server, key, {"model": model, "stream": True, "stream_options": {"include_usage": True},
                                            "messages": [{"role": "user", "content": "hi"}]})
    assert lines[-1] == "data: [DONE]" and lines.count("data: [DONE]") == 1
    usage = [json.loads(line[6:]) for line in lines[:-1] if '"usage":{' in line.replace(" ", "")]
    assert usage and usage[-1]["usage"]["completion_tokens"] == count_tokens("Again.")
    rows = flushed_logs(gateway_server, admin, model=model)
    assert [r["is_stream"] for r in rows] == [True, True, True] and all(r["first_token_ms"] is not None for r in rows)
    assert all(r["completion_tokens"] > 0 and r["usage_source"] == "upstream" for r in rows)


def test_failover_follows_priority_and_never_repicks(gateway_server, admin, fakes) -> None:
    model = unique("m")
    high = admin.add_channel(fakes[0], [model], priority=10)
    low = admin.add_channel(fakes[1], [model], priority=5)
    key = admin.add_token()
    fakes[0].fail(500)
    fakes[1].reply("from the second channel")
    done = ask(client(gateway_server, key), model)
    assert done.choices[0].message.content == "from the second channel"
    assert len(fakes[0].requests) == 1 and len(fakes[1].requests) == 1
    [row] = flushed_logs(gateway_server, admin, model=model)
    assert row["attempts"] == 2 and row["channel_id"] == low["id"] and f"channel {high['id']}" in row["error"]

    # Both channels fail: each is tried exactly once although the retry count would allow a third try.
    for fake in fakes[:2]:
        fake.reset()
        fake.set_default(status=503)
    with pytest.raises(openai.InternalServerError) as err:
        ask(client(gateway_server, key), model)
    assert len(fakes[0].requests) == 1 and len(fakes[1].requests) == 1
    assert "tried 2 channels" in err.value.body["message"]


def test_client_errors_are_not_retried(gateway_server, admin, fakes) -> None:
    model = unique("m")
    first = admin.add_channel(fakes[0], [model], priority=10)
    admin.add_channel(fakes[1], [model])
    key = admin.add_token()
    fakes[0].fail(400, {"error": {"message": "bad temperature", "type": "invalid_request_error", "code": None}})
    with pytest.raises(openai.BadRequestError) as err:
        ask(client(gateway_server, key), model)
    assert "bad temperature" in err.value.body["message"]
    assert err.value.body["detail"]["body"]["error"]["message"] == "bad temperature"  # upstream body kept
    assert fakes[1].requests == []
    [row] = flushed_logs(gateway_server, admin, model=model)  # the failed request's row names its channel
    assert row["status"] == 400 and row["channel_id"] == first["id"] and row["quota"] == 0, row


def test_401_auto_disables_and_channel_test_reenables(gateway_server, admin, fakes) -> None:
    model = unique("m")
    broken = admin.add_channel(fakes[0], [model], priority=10)
    admin.add_channel(fakes[1], [model])
    key = admin.add_token()
    fakes[0].fail(401)
    with pytest.raises(openai.AuthenticationError):
        ask(client(gateway_server, key), model)
    assert fakes[1].requests == []
    state = admin.channel(broken["id"])
    assert state["status"] == "auto_disabled" and "401" in state["status_reason"]
    ask(client(gateway_server, key), model)  # now served by the other channel
    assert len(fakes[0].requests) == 1 and len(fakes[1].requests) == 1

    r = admin.http.get(f"/api/channel/test/{broken['id']}")
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["status"] == "enabled", r.text
    assert fakes[0].last_request.json["max_tokens"] == 1
    state = admin.channel(broken["id"])
    assert state["status"] == "enabled" and state["status_reason"] is None and state["tested_at"]

    # The scheduled test does the same for every auto-disabled channel, and leaves failing ones off.
    fakes[0].fail(401)
    with pytest.raises(openai.AuthenticationError):
        ask(client(gateway_server, key), model)
    assert admin.channel(broken["id"])["status"] == "auto_disabled"
    fakes[0].fail(401)  # the first scheduled test still fails
    gateway_server.call(gateway_server.gateway.test_disabled_channels())
    assert admin.channel(broken["id"])["status"] == "auto_disabled"
    gateway_server.call(gateway_server.gateway.test_disabled_channels())
    assert admin.channel(broken["id"])["status"] == "enabled"


def test_retry_after_puts_the_channel_in_cooldown(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].fail(429, headers={"Retry-After": "30"})
    with pytest.raises(openai.RateLimitError):
        ask(client(gateway_server, key), model)
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 429 and r.json()["error"]["code"] == "channels_cooling_down"
    assert 25 <= int(r.headers["retry-after"]) <= 30
    assert len(fakes[0].requests) == 1


def test_weights_shape_the_distribution(gateway_server, admin, fakes) -> None:
    model = unique("m")
    light = admin.add_channel(fakes[0], [model], weight=1)
    heavy = admin.add_channel(fakes[1], [model], weight=3)
    key = admin.add_token()
    with httpx.Client(base_url=gateway_server.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(1000):
            r = http.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]})
            assert r.status_code == 200
    counts = {light["id"]: len(fakes[0].requests), heavy["id"]: len(fakes[1].requests)}
    assert sum(counts.values()) == 1000
    # Expected 250 / 750; the standard deviation is about 14, so ±70 fails only on a real bias.
    assert 180 <= counts[light["id"]] <= 320, counts


def test_model_mapping_reaches_upstream_and_logs_both(gateway_server, admin, fakes) -> None:
    model = unique("gpt")
    admin.add_channel(fakes[0], [model], model_mapping={model: "real-upstream-model"})
    key = admin.add_token()
    ask(client(gateway_server, key), model)
    assert fakes[0].last_request.json["model"] == "real-upstream-model"
    [row] = flushed_logs(gateway_server, admin, model=model)
    assert row["model"] == model and row["upstream_model"] == "real-upstream-model"


def test_quota_exhaustion_is_a_403_in_openai_shape(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    empty = admin.add_token(unlimited_quota=False, remain_quota=0)
    with pytest.raises(openai.PermissionDeniedError) as err:
        ask(client(gateway_server, empty), model)
    assert err.value.status_code == 403 and err.value.body["code"] == "insufficient_quota"
    assert fakes[0].requests == []

    key = admin.add_token(unlimited_quota=False, remain_quota=300)
    oa = client(gateway_server, key)
    served = 0
    with pytest.raises(openai.PermissionDeniedError):
        for _ in range(50):
            ask(oa, model, "a question of some length to cost quota " * 3)
            served += 1
    assert served >= 1
    spent = sum(r["quota"] for r in flushed_logs(gateway_server, admin, model=model))
    tokens = admin.http.get("/api/token/", params={"size": 1000}).json()["items"]
    remaining = next(t["remain_quota"] for t in tokens if key.startswith(t["key_prefix"]) and t["remain_quota"] < 300)
    assert remaining == 300 - spent and remaining >= 0


def test_expired_token_not_allowed_model_and_subnet(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model, "other-" + model])
    expired = admin.add_token(expires_at="2020-01-01T00:00:00Z")
    with pytest.raises(openai.AuthenticationError) as err:
        ask(client(gateway_server, expired), model)
    assert err.value.body["code"] == "token_expired"

    only = admin.add_token(models=[model])
    with pytest.raises(openai.PermissionDeniedError) as err:
        ask(client(gateway_server, only), "other-" + model)
    assert err.value.body["code"] == "model_not_allowed"
    ask(client(gateway_server, only), model)

    far = admin.add_token(subnets=["10.0.0.0/8"])
    with pytest.raises(openai.PermissionDeniedError) as err:
        ask(client(gateway_server, far), model)
    assert err.value.body["code"] == "ip_not_allowed"
    near = admin.add_token(subnets=["10.0.0.0/8", "127.0.0.0/8"])
    ask(client(gateway_server, near), model)
    assert len(fakes[0].requests) == 2

    with pytest.raises(openai.AuthenticationError) as err:
        ask(client(gateway_server, "sk-not-a-real-token"), model)
    assert err.value.body["code"] == "invalid_api_key"


def test_rpm_and_tpm_limits_answer_429_with_retry_after(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token(rpm_limit=2)
    oa = client(gateway_server, key)
    ask(oa, model)
    ask(oa, model)
    with pytest.raises(openai.RateLimitError) as err:
        ask(oa, model)
    assert err.value.body["code"] == "rpm_limit_exceeded"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60

    key = admin.add_token(tpm_limit=40)
    oa = client(gateway_server, key)
    ask(oa, model, "a prompt long enough to use most of the budget " * 3)
    with pytest.raises(openai.RateLimitError) as err:
        ask(oa, model)
    assert err.value.body["code"] == "tpm_limit_exceeded" and int(err.value.response.headers["retry-after"]) >= 1
    assert len(fakes[0].requests) == 3


def test_upstream_hang_times_out_and_fails_over(gateway_server, admin, fakes) -> None:
    model = unique("m")
    slow = admin.add_channel(fakes[0], [model], priority=10, timeout_seconds=1)
    admin.add_channel(fakes[1], [model])
    key = admin.add_token()
    fakes[0].hang(30)
    fakes[1].reply("the patient channel")
    assert ask(client(gateway_server, key), model).choices[0].message.content == "the patient channel"
    fakes[0].hang(30)
    fakes[1].reply("streamed instead")
    stream = ask(client(gateway_server, key), model, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "streamed instead"
    rows = flushed_logs(gateway_server, admin, model=model)
    assert [r["attempts"] for r in rows] == [2, 2] and all(f"channel {slow['id']}" in r["error"] for r in rows)
    assert all("1s" in r["error"] for r in rows)


def test_malformed_upstream_json_is_a_clear_502_or_fails_over(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model], priority=10)
    key = admin.add_token()
    fakes[0].malformed()
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_bad_response"
    assert "not JSON" in r.json()["error"]["message"]

    admin.add_channel(fakes[1], [model])
    fakes[0].malformed()
    fakes[1].reply("well-formed")
    assert ask(client(gateway_server, key), model).choices[0].message.content == "well-formed"


def test_stream_cut_midway_gives_a_clear_error_and_is_logged(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].cut_stream(after_chunks=2, content="one two three four five six")
    lines = sse_lines(gateway_server, key, {"model": model, "stream": True,
                                            "messages": [{"role": "user", "content": "count"}]})
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])["error"]
    assert error["code"] == "upstream_stream_cut" and "cut short" in error["message"]
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines[:-2])
    assert text == "one two "

    fakes[0].cut_stream(after_chunks=1, content="one two three four")
    with pytest.raises(openai.APIError):
        for _ in ask(client(gateway_server, key), model, stream=True):
            pass
    rows = flushed_logs(gateway_server, admin, model=model)
    assert [r["status"] for r in rows] == [502, 502] and all("cut" in r["error"] for r in rows)
    assert rows[1]["completion_tokens"] == count_tokens("one two ") or rows[1]["completion_tokens"] > 0
    assert all(r["usage_source"] == "counted" and r["prompt_tokens"] > 0 and r["quota"] > 0 for r in rows)


def test_client_disconnect_cancels_the_upstream_request(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].reply("word " * 200, chunk_size=5, chunk_delay_s=0.1)
    with httpx.stream("POST", gateway_server.base_url + "/v1/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "stream": True, "messages": [{"role": "user", "content": "talk"}]}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # one event, then hang up
    deadline = time.monotonic() + 15
    while fakes[0].disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fakes[0].disconnects == 1
    rows = []
    while not rows and time.monotonic() < deadline:
        rows = flushed_logs(gateway_server, admin, model=model)
    assert rows[0]["status"] == 499 and "disconnected" in rows[0]["error"]


def test_models_embeddings_completions_and_rerank(gateway_server, admin, fakes) -> None:
    chat, embed, rerank = unique("chat"), unique("embed"), unique("rerank")
    admin.add_channel(fakes[0], [chat, embed, rerank])
    key = admin.add_token(models=[chat, embed, rerank])
    oa = client(gateway_server, key)
    listed = {m.id for m in oa.models.list()}
    assert listed == {chat, embed, rerank}

    vectors = oa.embeddings.create(model=embed, input=["one", "two"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 16 and vectors.usage.prompt_tokens > 0
    text = oa.completions.create(model=chat, prompt="Say hi", max_tokens=5)
    assert text.choices[0].text == "Echo: Say hi"
    r = httpx.post(gateway_server.base_url + "/v1/rerank", headers={"Authorization": f"Bearer {key}"},
                   json={"model": rerank, "query": "red apple", "documents": ["green pear", "a red apple"]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["index"] == 1
    rows = flushed_logs(gateway_server, admin)
    endpoints = {row["endpoint"] for row in rows if row["model"] in (chat, embed, rerank)}
    assert endpoints == {"embeddings", "completions", "rerank"}


def test_usage_is_counted_locally_when_upstream_omits_it(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].omit_usage("four words of answer")
    ask(client(gateway_server, key), model, "count me")
    fakes[0].omit_usage("streamed without usage")
    list(ask(client(gateway_server, key), model, stream=True))
    rows = flushed_logs(gateway_server, admin, model=model)
    assert all(r["usage_source"] == "counted" and r["completion_tokens"] > 0 and r["prompt_tokens"] > 0 for r in rows)
    assert len(rows) == 2


def test_a_big_prompt_without_upstream_usage_is_counted_off_the_event_loop(gateway_server, admin, fakes) -> None:
    # A prompt this size takes a large fraction of a second to count: the count runs in a thread after the
    # answer, and the log row and quota follow once it is in.
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    fakes[0].omit_usage("ok")
    prompt = "茶水很好喝。" * 40_000
    ask(client(gateway_server, key), model, prompt)
    deadline = time.monotonic() + 30
    rows = []
    while not rows and time.monotonic() < deadline:
        rows = flushed_logs(gateway_server, admin, model=model)
    assert len(rows) == 1 and rows[0]["usage_source"] == "counted"
    assert rows[0]["prompt_tokens"] >= count_tokens(prompt) and rows[0]["quota"] > 0


def test_bad_requests_and_unknown_models(gateway_server, admin) -> None:
    key = admin.add_token()
    headers = {"Authorization": f"Bearer {key}"}
    url = gateway_server.base_url + "/v1/chat/completions"
    r = httpx.post(url, headers=headers, content=b"{oops")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(url, headers=headers, json={"messages": []})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_required"
    r = httpx.post(url, headers=headers, json={"model": unique("nobody-serves")})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = httpx.post(url, json={"model": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(gateway_server.base_url + "/v1/models", headers={"Authorization": "Bearer sk-not-a-real-token"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == {"message": "invalid gateway token", "type": "authentication_error",
                                 "code": "invalid_api_key"}
