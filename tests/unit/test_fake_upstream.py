"""The fake upstream speaks OpenAI's wire format well enough for the official client, and fails on cue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from zhiku.testing.fake_upstream import (
    FakeUpstream,
    count_tokens,
    default_answer,
    fake_embedding,
    fake_upstream,
)

USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is zhiku?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with fake_upstream() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=5) as oa:
        yield oa


def post_chat(fake: FakeUpstream, timeout: float = 5, **body: object) -> httpx.Response:
    return httpx.post(f"{fake.base_url}/chat/completions", json={"model": "gpt-x", "messages": USER, **body},
                      timeout=timeout)


def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]


def test_base_url_is_loopback_with_v1() -> None:
    with fake_upstream() as fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
        assert fake.port > 0
        assert httpx.get(f"{fake.base_url}/models").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.base_url}/models")


def test_non_stream_answer_has_openai_shape_and_echoes_the_question(fake: FakeUpstream) -> None:
    response = post_chat(fake)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int)
    assert data["model"] == "gpt-x"
    choice = data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Echo: What is zhiku?", "refusal": None}
    assert choice["finish_reason"] == "stop"
    prompt_tokens = count_tokens("Be brief.What is zhiku?")
    completion_tokens = count_tokens("Echo: What is zhiku?")
    assert data["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                             "total_tokens": prompt_tokens + completion_tokens}


def test_default_answer_echoes_the_last_user_message() -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]}]
    assert default_answer(messages) == "Echo: second"
    assert default_answer([]) == "Echo: "


def test_official_client_non_stream(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.reply("Zhiku answers questions.")
    completion = client.chat.completions.create(model="gpt-x", messages=USER)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Zhiku answers questions."
    assert completion.model == "gpt-x"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == count_tokens("Zhiku answers questions.")


def test_official_client_stream_with_usage_chunk(fake: FakeUpstream, client: openai.OpenAI) -> None:
    text = "Zhiku is a knowledge base."
    fake.reply(text, chunk_size=5)
    chunks = list(client.chat.completions.create(
        model="gpt-x", messages=USER, stream=True, stream_options={"include_usage": True}))  # type: ignore
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == [text[i:i + 5] for i in range(0, len(text), 5)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == count_tokens(text)
    assert fake.last_request.json["stream_options"] == {"include_usage": True}


def test_stream_without_include_usage_has_no_usage_chunk_and_ends_with_done(fake: FakeUpstream) -> None:
    response = post_chat(fake, stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-x" for c in chunks)
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Echo: What is zhiku?"
    assert len(chunks) > 3  # role, several content pieces, finish


def test_scripted_replies_are_used_in_order_then_the_default(fake: FakeUpstream) -> None:
    fake.reply("one").reply("two")
    answers = [post_chat(fake).json()["choices"][0]["message"]["content"] for _ in range(3)]
    assert answers == ["one", "two", "Echo: What is zhiku?"]


def test_fail_429_keeps_retry_after_and_openai_error_body(fake: FakeUpstream, client: openai.OpenAI) -> None:
    fake.fail(429, headers={"Retry-After": "7"})
    response = post_chat(fake)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    fake.fail(429)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-x", messages=USER)  # type: ignore[arg-type]
    assert caught.value.status_code == 429
    assert post_chat(fake).status_code == 200  # each failure applies to one request


def test_fail_with_custom_bodies(fake: FakeUpstream) -> None:
    fake.fail(500, body="upstream exploded").fail(503, body={"error": {"message": "busy", "code": "busy"}})
    first, second = post_chat(fake), post_chat(fake, stream=True)
    assert (first.status_code, first.text) == (500, "upstream exploded")
    assert (second.status_code, second.json()["error"]["code"]) == (503, "busy")


def test_api_key_is_enforced_with_openai_error_shape() -> None:
    with fake_upstream(api_key="sk-right") as fake:
        fake.reply("secret")
        response = post_chat(fake)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                wrong.models.list()
        with openai.OpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0) as right:
            completion = right.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == "secret"  # refused requests consume no script
        assert [r.headers.get("authorization") for r in fake.requests] == [
            None, "Bearer sk-wrong", "Bearer sk-right"]


def test_hang_never_answers_within_the_client_timeout(fake: FakeUpstream) -> None:
    fake.hang()
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post_chat(fake, timeout=0.3)
    assert time.monotonic() - started < 3
    assert post_chat(fake).status_code == 200


def test_stop_does_not_wait_for_a_hanging_request() -> None:
    fake = FakeUpstream().start()
    fake.hang(60)
    with pytest.raises(httpx.ReadTimeout):
        post_chat(fake, timeout=0.2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 3


def test_malformed_answers_200_with_invalid_json(fake: FakeUpstream) -> None:
    fake.malformed()
    response = post_chat(fake)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_cut_stream_drops_the_connection_after_n_content_chunks(fake: FakeUpstream) -> None:
    fake.cut_stream(after_chunks=2, content="abcdefghijkl")
    lines: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", f"{fake.base_url}/chat/completions",
                          json={"model": "m", "messages": USER, "stream": True}) as response:
            lines.extend(line for line in response.iter_lines() if line)
    chunks = [json.loads(line[len("data: "):]) for line in lines]
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["", "abcd", "efgh"]


def test_cut_stream_can_end_cleanly_without_done(fake: FakeUpstream) -> None:
    fake.cut_stream(after_chunks=1, drop_connection=False, content="abcdefgh")
    events = sse_events(post_chat(fake, stream=True))
    assert "[DONE]" not in events
    assert [json.loads(e)["choices"][0]["finish_reason"] for e in events] == [None, None]


def test_slow_and_persistent_latency(fake: FakeUpstream) -> None:
    fake.slow(0.3)
    started = time.monotonic()
    post_chat(fake)
    assert time.monotonic() - started >= 0.3
    fake.set_default(latency_s=0.2)
    fake.reply("queued")  # a queued reply keeps the default pacing
    started = time.monotonic()
    assert post_chat(fake).json()["choices"][0]["message"]["content"] == "queued"
    post_chat(fake)
    assert time.monotonic() - started >= 0.4


def test_default_failure_does_not_leak_into_queued_replies(fake: FakeUpstream) -> None:
    fake.set_default(status=500)
    fake.reply("fine")
    assert post_chat(fake).status_code == 200
    assert post_chat(fake).status_code == 500
    fake.reset()
    assert post_chat(fake).status_code == 200


def test_omit_usage(fake: FakeUpstream) -> None:
    fake.omit_usage().omit_usage()
    assert "usage" not in post_chat(fake).json()
    chunks = [json.loads(e) for e in sse_events(post_chat(fake, stream=True,
                                                          stream_options={"include_usage": True}))[:-1]]
    assert all(c["choices"] and c["usage"] is None for c in chunks)


def test_requests_are_recorded(fake: FakeUpstream) -> None:
    httpx.post(f"{fake.base_url}/chat/completions", headers={"Authorization": "Bearer sk-1"},
               json={"model": "gpt-x", "messages": USER, "stream": True,
                     "stream_options": {"include_usage": True}})
    httpx.get(f"{fake.base_url}/models")
    first, second = fake.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == "Bearer sk-1"
    assert first.json["messages"] == USER
    assert first.json["stream_options"] == {"include_usage": True}
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    snapshot = fake.requests
    post_chat(fake)
    assert len(snapshot) == 2 and len(fake.requests) == 3


def test_concurrent_requests_are_all_recorded(fake: FakeUpstream) -> None:
    fake.set_default(latency_s=0.05)
    threads = [threading.Thread(target=post_chat, args=(fake,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake.requests) == 8


def test_embeddings_float_and_base64(fake: FakeUpstream, client: openai.OpenAI) -> None:
    response = httpx.post(f"{fake.base_url}/embeddings", json={"model": "emb", "input": ["a", "b"]})
    data = response.json()
    assert [d["embedding"] for d in data["data"]] == [fake_embedding("a", 16), fake_embedding("b", 16)]
    assert data["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    result = client.embeddings.create(model="emb", input="hello", dimensions=8)  # base64 on the wire
    assert result.data[0].embedding == pytest.approx(fake_embedding("hello", 8), abs=1e-6)
    assert fake.last_request.json["encoding_format"] == "base64"


def test_fake_embedding_is_deterministic_unit_and_text_dependent() -> None:
    vector = fake_embedding("zhiku", 32)
    assert vector == fake_embedding("zhiku", 32)
    assert len(vector) == 32
    assert sum(v * v for v in vector) == pytest.approx(1.0)
    assert vector != fake_embedding("zhiku!", 32)


def test_legacy_completions_and_models(fake: FakeUpstream, client: openai.OpenAI) -> None:
    completion = client.completions.create(model="davinci", prompt="Say hi")
    assert completion.choices[0].text == "Echo: Say hi"
    assert completion.object == "text_completion"
    pieces = [c.choices[0].text for c in client.completions.create(model="davinci", prompt="Say hi",
                                                                   stream=True) if c.choices]
    assert "".join(pieces) == "Echo: Say hi" and len(pieces) > 2
    assert [m.id for m in client.models.list()] == ["fake-chat", "fake-embedding"]


def test_bad_requests_are_rejected(fake: FakeUpstream) -> None:
    assert httpx.post(f"{fake.base_url}/chat/completions", json={"messages": USER}).status_code == 400
    assert httpx.post(f"{fake.base_url}/nowhere", json={"model": "m"}).status_code == 404
