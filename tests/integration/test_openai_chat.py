"""The platform's chat model on one upstream (ChannelChatModel: the gateway's provider and upstream client,
used when the gateway is off) against the fake upstream over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from zhiku.chat_model import ChatDelta, ChatMessage, ChatParams, Usage
from zhiku.errors import UpstreamError, UpstreamUnavailable
from zhiku.gateway.chat_model import ChannelChatModel
from zhiku.testing.fake_upstream import FakeUpstream, count_tokens, fake_upstream

MESSAGES = [ChatMessage("system", "Answer from the quotes."), ChatMessage("user", "Who wrote zhiku?")]
PROMPT = "Answer from the quotes.Who wrote zhiku?"  # the fake counts tokens over all message text
PARAMS = ChatParams(model="gpt-test")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with fake_upstream() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeUpstream) -> FakeUpstream:
    server.reset()
    return server


@pytest.fixture
async def model(fake: FakeUpstream) -> AsyncIterator[ChannelChatModel]:
    chat = ChannelChatModel.for_base_url(fake.base_url, "sk-test", timeout=5)
    yield chat
    await chat.aclose()


async def collect(stream: AsyncIterator[ChatDelta], into: list[ChatDelta]) -> list[ChatDelta]:
    async for delta in stream:
        into.append(delta)
    return into


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_complete_returns_the_answer_model_and_usage(fake: FakeUpstream,
                                                               model: ChannelChatModel) -> None:
    result = await model.complete(MESSAGES, PARAMS)
    assert result.content == "Echo: Who wrote zhiku?"
    assert result.model == "gpt-test"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(count_tokens(PROMPT), count_tokens(result.content))
    sent = fake.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.json == {"model": "gpt-test", "stream": False,
                         "messages": [{"role": "system", "content": "Answer from the quotes."},
                                      {"role": "user", "content": "Who wrote zhiku?"}]}


async def test_sampling_params_and_extra_reach_the_body(fake: FakeUpstream, model: ChannelChatModel) -> None:
    params = ChatParams(model="gpt-test", temperature=0.2, max_tokens=64,
                        extra={"top_p": 0.9, "temperature": 0.5, "model": "ignored", "stream_options": {}})
    await model.complete(MESSAGES, params)
    body = fake.last_request.json
    assert (body["top_p"], body["temperature"], body["max_tokens"]) == (0.9, 0.5, 64)
    assert body["model"] == "gpt-test"
    assert "stream_options" not in body  # only meaningful, and only accepted, with stream=true


async def test_no_authorization_header_without_api_key(fake: FakeUpstream) -> None:
    async with ChannelChatModel.for_base_url(fake.base_url + "/", timeout=5) as chat:  # trailing slash is stripped
        await chat.complete(MESSAGES, PARAMS)
    assert "authorization" not in fake.last_request.headers
    assert fake.last_request.path == "/v1/chat/completions"


async def test_stream_reassembles_the_text_and_reports_usage(fake: FakeUpstream,
                                                                 model: ChannelChatModel) -> None:
    text = "Zhiku was written by its contributors, one chunk at a time."
    fake.reply(text, chunk_size=7)
    deltas = await collect(model.stream(MESSAGES, PARAMS), [])
    content = [d.content for d in deltas if d.content]
    assert len(content) == len(range(0, len(text), 7))
    assert "".join(content) == text
    usage = Usage(count_tokens(PROMPT), count_tokens(text))
    assert deltas[-1] == ChatDelta(finish_reason="stop", usage=usage)
    assert all(d.finish_reason is None for d in deltas[:-1])
    body = fake.last_request.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_still_reports_the_finish_reason(fake: FakeUpstream,
                                                                    model: ChannelChatModel) -> None:
    fake.reply("short", finish_reason="length", omit_usage=True)
    deltas = await collect(model.stream(MESSAGES, PARAMS), [])
    assert "".join(d.content for d in deltas) == "short"
    assert deltas[-1] == ChatDelta(finish_reason="length", usage=None)


async def test_429_keeps_status_code_and_retry_after(fake: FakeUpstream, model: ChannelChatModel) -> None:
    fake.fail(429, headers={"Retry-After": "7"})
    with pytest.raises(UpstreamError) as caught:
        await model.complete(MESSAGES, PARAMS)
    error = caught.value
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    assert error.headers == {"Retry-After": "7"}  # sent on to the platform's client
    assert error.detail["body"]["error"]["type"] == "rate_limit_error"
    assert fake.base_url in error.message and "429" in error.message


async def test_500_with_a_text_body(fake: FakeUpstream, model: ChannelChatModel) -> None:
    fake.fail(500, body="Internal meltdown")
    with pytest.raises(UpstreamError) as caught:
        await model.complete(MESSAGES, PARAMS)
    assert (caught.value.status, caught.value.code) == (500, "upstream_error")
    assert caught.value.detail == {"body": "Internal meltdown"} and not caught.value.headers
    assert "Internal meltdown" in caught.value.message


async def test_stream_error_status_raises_before_any_delta(fake: FakeUpstream,
                                                               model: ChannelChatModel) -> None:
    fake.fail(503, body={"error": {"message": "overloaded", "type": "server_error", "code": "overloaded"}})
    deltas: list[ChatDelta] = []
    with pytest.raises(UpstreamError) as caught:
        await collect(model.stream(MESSAGES, PARAMS), deltas)
    assert (caught.value.status, caught.value.code, deltas) == (503, "overloaded", [])


async def test_wrong_api_key_keeps_the_upstream_401() -> None:
    with fake_upstream(api_key="sk-right") as fake:
        async with ChannelChatModel.for_base_url(fake.base_url, "sk-wrong", timeout=5) as chat:
            with pytest.raises(UpstreamError) as caught:
                await chat.complete(MESSAGES, PARAMS)
        assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
        async with ChannelChatModel.for_base_url(fake.base_url, "sk-right", timeout=5) as chat:
            assert (await chat.complete(MESSAGES, PARAMS)).content == "Echo: Who wrote zhiku?"


async def test_unreachable_port_is_upstream_unavailable() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    async with ChannelChatModel.for_base_url(base_url, timeout=5) as chat:
        with pytest.raises(UpstreamUnavailable) as caught:
            await chat.complete(MESSAGES, PARAMS)
        assert caught.value.message == f"model upstream {base_url} is unreachable: connection refused"
        assert caught.value.status == 502 and caught.value.code == "upstream_unreachable"
        with pytest.raises(UpstreamUnavailable):
            await collect(chat.stream(MESSAGES, PARAMS), [])


async def test_unknown_host_is_upstream_unavailable() -> None:
    async with ChannelChatModel.for_base_url("http://zhiku-no-such-host.invalid/v1", timeout=3) as chat:
        with pytest.raises(UpstreamUnavailable) as caught:
            await chat.complete(MESSAGES, PARAMS)
    assert "zhiku-no-such-host.invalid" in caught.value.message


@pytest.mark.parametrize("streaming", [False, True])
async def test_hanging_upstream_times_out_as_unavailable(fake: FakeUpstream, streaming: bool) -> None:
    fake.hang()
    async with ChannelChatModel.for_base_url(fake.base_url, timeout=0.3) as chat:
        with pytest.raises(UpstreamUnavailable) as caught:
            if streaming:
                await collect(chat.stream(MESSAGES, PARAMS), [])
            else:
                await chat.complete(MESSAGES, PARAMS)
    assert caught.value.message == f"model upstream {fake.base_url} is unreachable: no data within 0.3s"


async def test_malformed_json_is_a_bad_response(fake: FakeUpstream, model: ChannelChatModel) -> None:
    fake.malformed()
    with pytest.raises(UpstreamError) as caught:
        await model.complete(MESSAGES, PARAMS)
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")


async def test_json_without_choices_is_a_bad_response(fake: FakeUpstream, model: ChannelChatModel) -> None:
    fake.fail(200, body={"id": "x", "object": "chat.completion", "choices": []})
    with pytest.raises(UpstreamError) as caught:
        await model.complete(MESSAGES, PARAMS)
    assert (caught.value.status, caught.value.code) == (502, "upstream_bad_response")


async def test_malformed_stream_event_is_a_bad_response(fake: FakeUpstream, model: ChannelChatModel) -> None:
    fake.malformed()
    with pytest.raises(UpstreamError) as caught:
        await collect(model.stream(MESSAGES, PARAMS), [])
    assert caught.value.code == "upstream_bad_response"


@pytest.mark.parametrize("drop_connection", [True, False])
async def test_cut_stream_yields_the_deltas_then_fails(fake: FakeUpstream, model: ChannelChatModel,
                                                       drop_connection: bool) -> None:
    fake.cut_stream(after_chunks=2, drop_connection=drop_connection, content="abcdefghijkl")
    deltas: list[ChatDelta] = []
    with pytest.raises(UpstreamError) as caught:
        await collect(model.stream(MESSAGES, PARAMS), deltas)
    assert [d.content for d in deltas] == ["abcd", "efgh"]
    assert (caught.value.status, caught.value.code) == (502, "upstream_stream_cut")
    assert "after 3 chunks" in caught.value.message


async def test_json_answer_to_a_stream_request_is_accepted(fake: FakeUpstream, model: ChannelChatModel) -> None:
    fake.fail(200, body={"model": "m", "choices": [
        {"message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}]})
    deltas = await collect(model.stream(MESSAGES, PARAMS), [])
    assert deltas == [ChatDelta(content="whole"), ChatDelta(finish_reason="stop")]


async def test_sse_parsing_tolerates_comments_crlf_and_no_space() -> None:
    body = (b": keep-alive\r\n\r\n"
            b'data:{"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n'
            b"event: message\n"
            b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}\n\n'
            b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}')  # no [DONE]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    upstream = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    try:
        async with ChannelChatModel.for_base_url(f"http://127.0.0.1:{port}/v1", timeout=5) as chat:
            deltas = await collect(chat.stream(MESSAGES, PARAMS), [])
    finally:
        upstream.close()
    assert deltas == [ChatDelta(content="a"), ChatDelta(content="b"),
                      ChatDelta(finish_reason="stop", usage=Usage(3, 2))]
