"""In-process calls get typed deltas from the relay's stream meter: no SSE encoded for them and parsed back."""

from __future__ import annotations

from zhiku import sse
from zhiku.chat_model import ChatDelta, Usage
from zhiku.gateway.relay.meter import StreamMeter


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> bytes:
    delta = {} if content is None else {"content": content}
    return sse.encode({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


def test_typed_meter_hands_on_choice_zero_text_and_keeps_finish_and_usage() -> None:
    meter = StreamMeter(strip_usage_chunk=True, typed=True)
    stream = (sse.encode({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
              + chunk("你好") + sse.encode({"choices": [{"index": 1, "delta": {"content": "other"}}]})
              + chunk(", world") + chunk(finish="stop")
              + sse.encode({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}) + sse.DONE_EVENT)
    out = meter.feed(stream[:25]) + meter.feed(stream[25:])  # split mid-event: nothing is lost
    assert out == [ChatDelta(content="你好"), ChatDelta(content=", world")]
    assert meter.finish_reason == "stop" and meter.usage == Usage(5, 3) and meter.done
    assert meter.completion_text() == "你好, world"


def test_byte_meter_still_forwards_events_as_they_came() -> None:
    meter = StreamMeter(strip_usage_chunk=False)
    events = chunk("a") + chunk("b", finish="stop")
    assert b"".join(meter.feed(events)) == events
    assert meter.finish_reason == "stop"
