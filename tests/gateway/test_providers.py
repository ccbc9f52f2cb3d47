"""Provider adapters: translation units, and each adapter against a fake speaking its real wire format."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.gateway.conftest import Admin, GatewayThread, gateway_settings, unique
from zhiku import sse
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.gateway.providers import anthropic, ollama
from zhiku.gateway.providers.azure import deployment_url
from zhiku.gateway.providers.openai import api_root, completion_as_events
from zhiku.testing.fake_providers import FakeAnthropic, FakeAzure, FakeOllama
from zhiku.testing.fake_upstream import count_tokens, fake_embedding

pytestmark = pytest.mark.integration


def _events(raw: list[bytes]) -> list[dict]:
    return [json.loads(sse.event_data(e)) for e in raw if sse.event_data(e) not in (None, b"[DONE]")]


# ---- translation (pure) ------------------------------------------------------------------------


def test_urls() -> None:
    assert api_root("https://api.openai.com") == "https://api.openai.com/v1"
    assert api_root("http://h:8000/v1/") == "http://h:8000/v1"
    assert api_root("https://gw.example.com/openai/v1") == "https://gw.example.com/openai/v1"
    assert deployment_url("https://r.openai.azure.com/", "gpt 4o", "chat/completions", "2024-10-21") == \
        "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
    assert anthropic.messages_url("https://api.anthropic.com") == "https://api.anthropic.com/v1/messages"
    assert anthropic.messages_url("http://proxy/v1") == "http://proxy/v1/messages"


def test_ollama_request_and_response_translation() -> None:
    request = ollama.chat_request({
        "model": "llama3", "temperature": 0.2, "max_tokens": 50, "stop": ["\n"], "seed": 1,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": "What is "},
                                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                                  {"type": "text", "text": "this?"}]}]}, stream=False)
    assert request["messages"][0] == {"role": "system", "content": "Be brief."}
    assert request["messages"][1] == {"role": "user", "content": "What is this?", "images": ["AAAA"]}
    assert request["options"] == {"temperature": 0.2, "num_predict": 50, "stop": ["\n"], "seed": 1}
    assert request["format"] == "json" and request["stream"] is False
    answer = ollama.chat_response({"model": "llama3", "message": {"role": "assistant", "content": "A cat."},
                                   "done": True, "done_reason": "length", "prompt_eval_count": 12,
                                   "eval_count": 3}, "llama3")
    assert answer["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "A cat."},
                                    "finish_reason": "length"}
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def test_ollama_stream_translation_survives_any_chunking() -> None:
    lines = (b'{"message":{"role":"assistant","content":"Hel"},"done":false}\n'
             b'{"message":{"role":"assistant","content":"lo"},"done":false}\n'
             b'{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",'
             b'"prompt_eval_count":5,"eval_count":2}\n')
    for size in (1, 5, len(lines)):
        translator = ollama.ChunkTranslator("llama3")
        out = [e for i in range(0, len(lines), size) for e in translator.feed(lines[i:i + size])]
        out += translator.finish()
        events = _events(out)
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        assert text == "Hello" and events[-2]["choices"][0]["finish_reason"] == "stop"
        assert events[-1]["usage"]["completion_tokens"] == 2 and out[-1] == sse.DONE_EVENT
    error = ollama.ChunkTranslator("m").feed(b'{"error":"model crashed"}\n')
    assert _events(error)[0]["error"]["message"] == "model crashed"


def test_ollama_embeddings_base64_round_trip() -> None:
    result = ollama.embeddings_response({"embeddings": [[0.5, -0.25]], "prompt_eval_count": 4}, "m", True)
    raw = base64.b64decode(result["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -0.25) and result["usage"]["prompt_tokens"] == 4


def test_anthropic_request_translation() -> None:
    request = anthropic.messages_request({
        "model": "claude", "stop": "END", "temperature": 0.5,
        "messages": [{"role": "system", "content": "Rule one."}, {"role": "developer", "content": "Rule two."},
                     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": [{"type": "text", "text": "Look"},
                                                  {"type": "image_url",
                                                   "image_url": {"url": "data:image/jpeg;base64,QUJD"}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        stream=True)
    assert request["system"] == "Rule one.\n\nRule two." and request["max_tokens"] == anthropic.DEFAULT_MAX_TOKENS
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert request["messages"][2]["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/jpeg", "data": "QUJD"}}
    assert request["stop_sequences"] == ["END"] and request["stream"] is True
    assert request["tools"][0] == {"name": "f", "description": "", "input_schema": {"type": "object"}}


def test_anthropic_response_and_stream_translation() -> None:
    answer = anthropic.chat_response({"id": "msg_1", "model": "claude", "stop_reason": "max_tokens",
                                      "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                                      "usage": {"input_tokens": 9, "output_tokens": 2}}, "claude")
    assert answer["choices"][0]["message"]["content"] == "Hi there"
    assert answer["choices"][0]["finish_reason"] == "length" and answer["usage"]["total_tokens"] == 11
    stream = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_2","model":"claude",'
              b'"usage":{"input_tokens":7,"output_tokens":1}}}\n\nevent: ping\ndata: {"type":"ping"}\n\n'
              b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
              b'"delta":{"type":"text_delta","text":"Yes"}}\n\n'
              b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
              b'"usage":{"output_tokens":4}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
    translator = anthropic.EventTranslator("claude")
    out = [e for i in range(0, len(stream), 9) for e in translator.feed(stream[i:i + 9])]
    events = _events(out)
    assert events[0]["id"] == "msg_2" and events[1]["choices"][0]["delta"]["content"] == "Yes"
    assert events[2]["choices"][0]["finish_reason"] == "stop"
    assert events[3]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert out[-1] == sse.DONE_EVENT
    error = anthropic.EventTranslator("c").feed(b'event: error\ndata: {"type":"error","error":'
                                                 b'{"type":"overloaded_error","message":"Overloaded"}}\n\n')
    assert _events(error)[0]["error"]["type"] == "overloaded_error"


def test_json_answer_to_a_stream_request_becomes_events() -> None:
    events = _events(completion_as_events({"id": "x", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))
    assert events[0]["choices"][0]["delta"]["content"] == "whole" and events[1]["usage"]["prompt_tokens"] == 1


# ---- each adapter through the gateway, against its fake ----------------------------------------


@pytest.fixture(scope="module")
def provider_fakes() -> Iterator[dict[str, object]]:
    fakes = {"ollama": FakeOllama(), "ollama_b": FakeOllama(), "anthropic": FakeAnthropic(api_key="sk-ant-test"),
             "anthropic_b": FakeAnthropic(api_key="sk-ant-b"), "azure": FakeAzure(api_key="azure-key")}
    for fake in fakes.values():
        fake.start()  # type: ignore[attr-defined]
    yield fakes
    for fake in fakes.values():
        fake.stop()  # type: ignore[attr-defined]


def _oa(gateway_server: GatewayThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_server.base_url + "/v1", api_key=key, max_retries=0, timeout=30)


def _chat(oa: openai.OpenAI, model: str, text: str = "hi", **kw: object):
    return oa.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def test_ollama_adapter(gateway_server, admin: Admin, provider_fakes) -> None:
    fake = provider_fakes["ollama"]
    fake.reset()
    chat, embed = unique("llama"), unique("nomic")
    admin.add_channel(fake.base_url, [chat, embed], type="ollama", key="", model_mapping={chat: "llama3:8b"})
    oa = _oa(gateway_server, admin.add_token())
    fake.reply("Bonjour.")
    done = _chat(oa, chat, "Say hello in French", temperature=0.1, max_tokens=20)
    assert done.choices[0].message.content == "Bonjour." and done.usage.completion_tokens == count_tokens("Bonjour.")
    sent = fake.last_request
    assert sent.path == "/api/chat" and sent.json["model"] == "llama3:8b" and sent.json["stream"] is False
    assert sent.json["options"] == {"temperature": 0.1, "num_predict": 20}
    fake.reply("Un deux trois.", chunk_size=3)
    stream = _chat(oa, chat, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Un deux trois."
    assert chunks[-1].usage.completion_tokens == count_tokens("Un deux trois.")
    vectors = oa.embeddings.create(model=embed, input=["alpha", "beta"])  # the client asks for base64
    assert np.allclose(vectors.data[1].embedding, fake_embedding("beta", 16), atol=1e-6)
    assert fake.last_request.path == "/api/embed" and vectors.usage.prompt_tokens > 0

    fake.fail(404, {"error": f"model '{chat}' not found, try pulling it first"})
    with pytest.raises(openai.NotFoundError) as err:
        _chat(oa, chat)
    assert "try pulling it first" in err.value.body["message"]
    fake.cut_stream(after_chunks=1, content="abcdefgh")
    with pytest.raises(openai.APIError):
        list(_chat(oa, chat, stream=True))


def test_ollama_failover_on_5xx(gateway_server, admin: Admin, provider_fakes) -> None:
    first, second = provider_fakes["ollama"], provider_fakes["ollama_b"]
    first.reset()
    second.reset()
    model = unique("qwen")
    admin.add_channel(first.base_url, [model], type="ollama", key="", priority=2)
    admin.add_channel(second.base_url, [model], type="ollama", key="")
    first.fail(500, {"error": "CUDA out of memory"})
    second.reply("fine here")
    assert _chat(_oa(gateway_server, admin.add_token()), model).choices[0].message.content == "fine here"


def test_anthropic_adapter(gateway_server, admin: Admin, provider_fakes) -> None:
    fake = provider_fakes["anthropic"]
    fake.reset()
    model = unique("claude")
    admin.add_channel(fake.base_url, [model], type="anthropic", key="sk-ant-test", priority=5)
    oa = _oa(gateway_server, admin.add_token())
    fake.reply("Hello from Claude.")
    done = oa.chat.completions.create(model=model, messages=[{"role": "system", "content": "Be kind."},
                                                             {"role": "user", "content": "Hi"}])
    assert done.choices[0].message.content == "Hello from Claude." and done.choices[0].finish_reason == "stop"
    sent = fake.last_request
    assert sent.headers["x-api-key"] == "sk-ant-test" and sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json["system"] == "Be kind." and sent.json["messages"] == [{"role": "user", "content": "Hi"}]
    assert done.usage.prompt_tokens == count_tokens("Be kind.Hi")
    fake.reply("Streaming Claude.", chunk_size=4)
    chunks = list(_chat(oa, model, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming Claude."
    assert chunks[-1].usage.completion_tokens == count_tokens("Streaming Claude.")

    # Overloaded (529) fails over to another Anthropic channel; a bad key disables the channel.
    backup = provider_fakes["anthropic_b"]
    backup.reset()
    admin.add_channel(backup.base_url, [model], type="anthropic", key="sk-ant-b")
    fake.fail(529)
    backup.reply("the backup answers")
    assert _chat(oa, model).choices[0].message.content == "the backup answers"
    wrong = admin.add_channel(fake.base_url, [unique("claude")], type="anthropic", key="sk-ant-wrong")
    with pytest.raises(openai.AuthenticationError) as err:
        _chat(oa, wrong["models"][0])
    assert "invalid x-api-key" in err.value.body["message"]
    assert admin.channel(wrong["id"])["status"] == "auto_disabled"


def test_azure_adapter(gateway_server, admin: Admin, provider_fakes) -> None:
    fake = provider_fakes["azure"]
    fake.reset()
    model = unique("gpt-4o")
    admin.add_channel(fake.base_url, [model], type="azure", key="azure-key",
                      model_mapping={model: "prod-deployment"}, config={"api_version": "2024-06-01"})
    oa = _oa(gateway_server, admin.add_token())
    fake.reply("Azure says hi.")
    assert _chat(oa, model).choices[0].message.content == "Azure says hi."
    assert fake.last_request.path == "/openai/deployments/prod-deployment/chat/completions"
    assert fake.last_request.headers["api-key"] == "azure-key" and "authorization" not in fake.last_request.headers
    fake.reply("streamed from Azure")
    assert "".join(c.choices[0].delta.content or "" for c in _chat(oa, model, stream=True)
                   if c.choices) == "streamed from Azure"
    bad = admin.add_channel(fake.base_url, [unique("gpt")], type="azure", key="wrong")
    with pytest.raises(openai.AuthenticationError) as err:
        _chat(oa, bad["models"][0])
    assert "Access denied" in err.value.body["message"]


class TinyEmbedder:
    """A deterministic 8-dimension embedder standing in for the bundled model."""

    model_name = "tiny-embed"
    dim = 8
    max_tokens = 64

    def embed(self, texts, kind="passage"):
        return np.array([fake_embedding(f"{kind}:{t}", self.dim) for t in texts], dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    registry = EmbedderRegistry(default="tiny-embed")
    registry.register(TinyEmbedder())
    tmp: Path = tmp_path_factory.mktemp("gwlocal")
    running = GatewayThread(gateway_settings(tmp, f"sqlite:///{tmp / 'g.db'}"), embedders=registry).start()
    yield running
    running.stop()


def test_local_embedder_channel(local_gateway: GatewayThread) -> None:
    admin = Admin(local_gateway.base_url)
    try:
        admin.add_channel("", ["m3e", "tiny-embed"], type="local", key="", model_mapping={"m3e": "tiny-embed"})
        oa = _oa(local_gateway, admin.add_token())
        vectors = oa.embeddings.create(model="m3e", input=["one two", "three"])
        assert np.allclose(vectors.data[0].embedding, fake_embedding("passage:one two", 8), atol=1e-6)
        assert vectors.usage.prompt_tokens == 3 and vectors.model == "tiny-embed"
        r = admin.http.post("/v1/rerank", headers={"Authorization": f"Bearer {oa.api_key}"},
                            json={"model": "tiny-embed", "query": "q", "documents": ["a", "b", "c"], "top_n": 2})
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == 2 and r.json()["usage"]["prompt_tokens"] == 4
        with pytest.raises(openai.NotFoundError):  # the local engine does not chat
            _chat(oa, "tiny-embed")
    finally:
        admin.close()
