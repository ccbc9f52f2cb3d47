"""Tool calling on the chat-model seam: request bodies, whole and streamed answers (pieces assembled by
index), the typed stream of the gateway's meter, and the fake upstream's OpenAI shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai

from zhiku import sse
from zhiku.chat_model import (
    ChatDelta,
    ChatMessage,
    ChatParams,
    ToolCall,
    ToolCallAssembler,
    ToolCallDelta,
    ToolDefinition,
    openai_chat_body,
    tool_call_deltas_of,
    tool_calls_of,
)
from zhiku.gateway.chat_model import ChannelChatModel, completion_result
from zhiku.gateway.domain import ENDPOINT_CHAT
from zhiku.gateway.relay.meter import StreamMeter
from zhiku.gateway.relay.usage_count import completion_text
from zhiku.testing.fake_upstream import FakeUpstream

LOOKUP = ToolDefinition("lookup", "Finds a word", {"type": "object", "properties": {"q": {"type": "string"}}})


def test_assembler_puts_interleaved_pieces_together_by_index() -> None:
    assembler = ToolCallAssembler()
    started = assembler.feed([ToolCallDelta(0, "call_a", "look", ""), ToolCallDelta(1, "call_b", "greet", '{"n')])
    assert [p.index for p in started] == [0, 1]
    assert assembler.feed([ToolCallDelta(0, name="up", arguments='{"q":'), ToolCallDelta(1, arguments='ame": "Ana"}')]) == []
    assert assembler.feed([ToolCallDelta(0, arguments=' "x"}')]) == []
    started = assembler.feed([ToolCallDelta(2, None, "stop", "{}")])  # a server that gives no id
    assert started == [ToolCallDelta(2, None, "stop", "{}")] and assembler.call_id(2) == "call_2"
    assert assembler.calls() == (ToolCall("call_a", "lookup", '{"q": "x"}'), ToolCall("call_b", "greet", '{"name": "Ana"}'),
                                 ToolCall("call_2", "stop", "{}"))


def test_wire_pieces_and_whole_calls_are_read_leniently() -> None:
    assert tool_call_deltas_of([{"index": 1, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}},
                                {"function": {"arguments": "{}"}}, "junk"]) == (
        ToolCallDelta(1, "c", "f", ""), ToolCallDelta(1, None, "", "{}"))
    assert tool_calls_of([{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                          {"id": "c2", "function": {"name": "g", "arguments": {"b": 2}}}, {"id": "c3"}, None]) == (
        ToolCall("c1", "f", '{"a": 1}'), ToolCall("c2", "g", '{"b": 2}'))
    assert tool_calls_of(None) == ()


def test_request_body_carries_tools_calls_and_tool_messages() -> None:
    call = ToolCall("call_1", "lookup", '{"q": "x"}')
    messages = [ChatMessage("user", "hi"), ChatMessage("assistant", "", tool_calls=(call,)),
                ChatMessage("tool", "found", tool_call_id="call_1")]
    body = openai_chat_body(messages, ChatParams(model="m", tools=(LOOKUP,), tool_choice="auto"), stream=True)
    assert body["tools"] == [{"type": "function", "function": {"name": "lookup", "description": "Finds a word",
                                                               "parameters": LOOKUP.parameters}}]
    assert body["tool_choice"] == "auto"
    assert body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]},
        {"role": "tool", "content": "found", "tool_call_id": "call_1"}]
    plain = openai_chat_body([ChatMessage("user", "hi")], ChatParams(model="m"), stream=False)
    assert "tools" not in plain and "tool_choice" not in plain


def test_typed_meter_hands_on_tool_call_pieces() -> None:
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return sse.encode({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    start = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    stream = (chunk({"role": "assistant", "content": None, "tool_calls": [start]})
              + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]})
              + chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]})
              + chunk({}, "tool_calls") + sse.DONE_EVENT)
    meter = StreamMeter(strip_usage_chunk=True, typed=True)
    deltas = meter.feed(stream[:40]) + meter.feed(stream[40:])
    assert deltas == [ChatDelta(tool_calls=(ToolCallDelta(0, "call_1", "lookup", ""),)),
                      ChatDelta(tool_calls=(ToolCallDelta(0, None, "", '{"q":'),)),
                      ChatDelta(tool_calls=(ToolCallDelta(0, None, "", ' "x"}'),))]
    assert meter.finish_reason == "tool_calls" and meter.done
    assert meter.completion_text() == 'lookup{"q": "x"}'  # counted when the upstream sends no usage
    bytes_meter = StreamMeter(strip_usage_chunk=True)  # a client's stream: the events go on as they came
    assert b"".join(bytes_meter.feed(stream)) == stream.removesuffix(sse.DONE_EVENT)
    assert bytes_meter.completion_text() == 'lookup{"q": "x"}'
    assembler = ToolCallAssembler()
    for delta in deltas:
        assembler.feed(delta.tool_calls)
    assert assembler.calls() == (ToolCall("call_1", "lookup", '{"q": "x"}'),)


def test_a_whole_answer_keeps_its_tool_calls() -> None:
    data = {"model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]}}]}
    result = completion_result(data, ChatParams(model="m"), "test")
    assert result.content == "" and result.finish_reason == "tool_calls"
    assert result.tool_calls == (ToolCall("c", "lookup", "{}"),)
    assert completion_text(ENDPOINT_CHAT, json.dumps(data).encode()) == "lookup{}"


def test_fake_upstream_tool_calls_read_by_the_official_client(fake: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=5)
    fake.tool_call("lookup", {"q": "x"}, call_id="call_1")
    whole = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                           tools=[{"type": "function", "function": {"name": "lookup"}}])
    message = whole.choices[0].message
    assert whole.choices[0].finish_reason == "tool_calls" and message.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_1", "lookup", '{"q": "x"}')]
    assert fake.last_request.json["tools"] == [{"type": "function", "function": {"name": "lookup"}}]
    fake.tool_calls([{"name": "a", "arguments": {"n": 1}}, {"name": "b", "arguments": "{}"}], content="Let me check")
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    pieces = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert text == "Let me check" and chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [(p.index, p.function.name) for p in pieces if p.id] == [(0, "a"), (1, "b")]
    assert "".join(p.function.arguments or "" for p in pieces if p.index == 0) == '{"n": 1}'


async def test_channel_model_streams_and_completes_tool_calls(fake: FakeUpstream) -> None:
    async with ChannelChatModel.for_base_url(fake.base_url, fake.api_key or "", timeout=5) as model:
        params = ChatParams(model="m", tools=(LOOKUP,))
        fake.tool_call("lookup", '{"q": "streamed"}', call_id="call_s", chunk_size=3)
        assembler = ToolCallAssembler()
        finish = None
        deltas: AsyncIterator[ChatDelta] = model.stream([ChatMessage("user", "hi")], params)
        async for delta in deltas:
            assembler.feed(delta.tool_calls)
            finish = delta.finish_reason or finish
        assert assembler.calls() == (ToolCall("call_s", "lookup", '{"q": "streamed"}'),) and finish == "tool_calls"
        assert fake.last_request.json["tools"][0]["function"]["name"] == "lookup"
        fake.tool_call("lookup", {"q": "whole"}, call_id="call_c")
        result = await model.complete([ChatMessage("user", "hi"), ChatMessage("assistant", "", tool_calls=(
            ToolCall("call_s", "lookup", '{"q": "streamed"}'),)), ChatMessage("tool", "ok", tool_call_id="call_s")], params)
        assert result.tool_calls == (ToolCall("call_c", "lookup", '{"q": "whole"}'),)
        assert fake.last_request.json["messages"][-1] == {"role": "tool", "content": "ok", "tool_call_id": "call_s"}

