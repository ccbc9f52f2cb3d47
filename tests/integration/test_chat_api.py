"""The app chat API end to end, through the official openai client, against the fake upstream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.conftest import make_settings, unique
from tests.integration.helpers import add_text, create_dataset
from zhiku.testing.server import ServerThread, free_port

pytestmark = pytest.mark.integration

MANUAL = """# Espresso machine manual

## Descaling
Descale the machine every 200 cups with citric acid. Run the descaling program twice.

## Grinding
Use a fine grind for espresso. The dose is 18 grams for a double shot.
"""


@pytest.fixture
def app_key(client: httpx.Client) -> tuple[str, int]:
    dataset_id = create_dataset(client, unique("manual"))
    add_text(client, dataset_id, "espresso.md", MANUAL)
    r = client.post("/api/apps", json={"name": unique("barista"), "datasetIds": [dataset_id],
                                       "systemPrompt": "You are a barista helping {{user}}."})
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    r = client.post("/api/keys", json={"name": "chat", "appId": app_id})
    assert r.status_code == 201, r.text
    return r.json()["key"], app_id


def test_openai_client_non_stream_with_quotes_in_prompt(server, fake, app_key) -> None:
    key, _ = app_key
    fake.reply("Descale every 200 cups.")
    oa = openai.OpenAI(base_url=server.base_url + "/api/v1", api_key=key)
    done = oa.chat.completions.create(model="ignored", messages=[{"role": "user", "content": "How often to descale?"}],
                                      extra_body={"variables": {"user": "Ana"}})
    assert done.choices[0].message.content == "Descale every 200 cups."
    assert done.usage is not None and done.usage.total_tokens > 0
    sent = fake.last_request.json
    assert sent["model"] == "fake-chat"
    system = sent["messages"][0]
    assert system["role"] == "system" and "helping Ana" in system["content"]
    assert "citric acid" in sent["messages"][-1]["content"]  # the quote reached the model
    assert fake.last_request.headers["authorization"] == "Bearer sk-fake-upstream"


def test_openai_client_stream(server, fake, app_key) -> None:
    key, _ = app_key
    fake.reply("Use a fine grind, 18 grams.")
    oa = openai.OpenAI(base_url=server.base_url + "/api/v1", api_key=key)
    stream = oa.chat.completions.create(model="x", stream=True,
                                        messages=[{"role": "user", "content": "What dose for a double?"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Use a fine grind, 18 grams."
    assert fake.last_request.json["stream_options"] == {"include_usage": True}


def test_detail_returns_quote_list(server, fake, app_key) -> None:
    key, _ = app_key
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "descaling citric acid"}], "detail": True},
                   timeout=60)
    assert r.status_code == 200, r.text
    nodes = r.json()["responseData"]
    search = next(n for n in nodes if n["moduleType"] == "datasetSearchNode")
    quote = search["quoteList"][0]
    assert {"id", "q", "a", "datasetId", "collectionId", "sourceName", "score", "chunkIndex"} <= quote.keys()
    assert "citric" in quote["q"]
    # Zhiku's additions: the collection's type, and that pasted text has no document to open
    assert quote["collectionType"] == "text" and quote["sourceKind"] is None


def test_detail_stream_uses_named_events(server, fake, app_key) -> None:
    key, _ = app_key
    fake.reply("Twice.")
    events: list[tuple[str, str]] = []
    with httpx.stream("POST", server.base_url + "/api/v1/chat/completions",
                      headers={"Authorization": f"Bearer {key}"}, timeout=60,
                      json={"messages": [{"role": "user", "content": "descale program?"}], "stream": True,
                            "detail": True}) as r:
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event or "", line[6:]))
    names = [e for e, _ in events]
    assert names[0] == "flowNodeStatus" and "flowResponses" in names and events[-1] == ("answer", "[DONE]")
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for e, d in events
                   if e == "answer" and d != "[DONE]")
    assert text == "Twice."


def test_chat_id_keeps_history(server, fake, app_key) -> None:
    key, _ = app_key
    chat_id = unique("chat")
    oa = openai.OpenAI(base_url=server.base_url + "/api/v1", api_key=key)
    fake.reply("First answer about grinding.")
    oa.chat.completions.create(model="x", messages=[{"role": "user", "content": "Tell me about grinding"}],
                               extra_body={"chatId": chat_id})
    fake.reply("Second answer.")
    oa.chat.completions.create(model="x", messages=[{"role": "user", "content": "And the dose?"}],
                               extra_body={"chatId": chat_id})
    sent = fake.last_request.json["messages"]
    contents = [m["content"] for m in sent]
    assert "Tell me about grinding" in contents and "First answer about grinding." in contents
    assert sent[-1]["content"].endswith("And the dose?")


def test_wrong_key_and_bad_messages(server, app_key) -> None:
    oa = openai.OpenAI(base_url=server.base_url + "/api/v1", api_key="zk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        oa.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "invalid_api_key"
    key, _ = app_key
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "assistant", "content": "no question"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_messages"
    r = httpx.post(server.base_url + "/api/v1/chat/completions",
                   content=b"{oops", headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_app_key_cannot_manage_datasets(server, app_key) -> None:
    key, _ = app_key
    r = httpx.get(server.base_url + "/api/datasets", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and r.json()["code"] == "app_key_scope"


def test_upstream_errors_reach_the_client(server, fake, app_key) -> None:
    key, _ = app_key
    oa = openai.OpenAI(base_url=server.base_url + "/api/v1", api_key=key, max_retries=0)
    fake.fail(500)
    with pytest.raises(openai.InternalServerError):
        oa.chat.completions.create(model="x", messages=[{"role": "user", "content": "descale?"}])
    fake.fail(429, headers={"Retry-After": "3"})
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="x", messages=[{"role": "user", "content": "descale?"}], stream=True)


def test_unreachable_model_upstream_is_a_clear_502(pg_url, data_dir, embedders, client, app_key) -> None:
    key, _ = app_key
    settings = make_settings(pg_url, data_dir, openai_base_url=f"http://127.0.0.1:{free_port()}/v1",
                             chat_timeout_seconds=5, worker_enabled=False)
    with ServerThread(settings, embedders) as broken:
        r = httpx.post(broken.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"messages": [{"role": "user", "content": "descale?"}]}, timeout=30)
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "upstream_unreachable"
        r = httpx.post(broken.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"messages": [{"role": "user", "content": "descale?"}], "stream": True}, timeout=30)
        assert r.status_code == 502


def test_extractive_answer_without_a_model(extractive_server, app_key) -> None:
    key, _ = app_key
    oa = openai.OpenAI(base_url=extractive_server.base_url + "/api/v1", api_key=key)
    done = oa.chat.completions.create(model="x", messages=[{"role": "user",
                                                            "content": "How often should I descale the machine?"}])
    answer = done.choices[0].message.content
    assert done.model == "zhiku-extractive"
    assert "Extractive answer" in answer and "every 200 cups" in answer and "[espresso.md]" in answer
    stream = oa.chat.completions.create(model="x", stream=True, messages=[{"role": "user",
                                                                           "content": "What dose for a double?"}])
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "18 grams" in streamed


def test_retry_after_of_a_rate_limited_model_reaches_the_client(server, fake, app_key) -> None:
    key, _ = app_key
    fake.fail(429, headers={"Retry-After": "1"})
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "descale?"}]}, timeout=30)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "rate_limit_error"
    time.sleep(1.2)  # the channel's cooldown, so later tests find it serving again


def test_a_client_that_hangs_up_mid_stream_keeps_its_turn(server, fake, app_key) -> None:
    key, _ = app_key
    chat_id = unique("hangup")
    headers = {"Authorization": f"Bearer {key}"}
    fake.reply("Descale every two hundred cups with citric acid.", chunk_size=4, chunk_delay_s=0.3)
    with httpx.stream("POST", server.base_url + "/api/v1/chat/completions", headers=headers, timeout=30,
                      json={"chatId": chat_id, "stream": True,
                            "messages": [{"role": "user", "content": "How often to descale?"}]}) as r:
        for line in r.iter_lines():
            if '"content":"Desc"' in line:
                break  # hang up after the first piece of the answer
    received = ""
    for _ in range(50):  # the turn is stored once the server notices the client left
        time.sleep(0.2)
        fake.reply("Twice, in fact.")
        r = httpx.post(server.base_url + "/api/v1/chat/completions", headers=headers, timeout=30,
                       json={"chatId": chat_id, "messages": [{"role": "user", "content": "And the dose?"}]})
        assert r.status_code == 200, r.text
        history = fake.last_request.json["messages"]
        asked = [i for i, m in enumerate(history) if m["role"] == "user" and m["content"] == "How often to descale?"]
        if asked:
            assert history[asked[0] + 1]["role"] == "assistant"
            received = history[asked[0] + 1]["content"]
            break
    assert received.startswith("Desc") and len(received) < len("Descale every two hundred cups with citric acid.")
