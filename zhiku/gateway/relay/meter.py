"""Watch an OpenAI-format event stream on its way to the client, without re-encoding it.

Splits upstream bytes into whole events and forwards each one, byte for byte, as soon as it is
complete. On the side it checks each event is JSON (a malformed one ends the stream with a clear
error rather than reaching the client) and notes what billing and error handling need: whether
``[DONE]`` or a finish reason arrived, the usage, an in-stream error, and the streamed text for
counting tokens locally when the upstream gives no usage.

For the platform's own calls (``typed=True``) it hands on :class:`~zhiku.chat_model.ChatDelta` objects
built from the events it parses anyway, instead of the events' bytes: in-process callers get typed
deltas (choice 0's text and tool-call pieces) without the events being encoded for them and parsed back.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from zhiku import sse
from zhiku.chat_model import ChatDelta, ToolCallDelta, Usage, tool_call_deltas_of
from zhiku.gateway.providers.base import json_loads, usage_of


class StreamMeter:
    def __init__(self, *, strip_usage_chunk: bool, typed: bool = False) -> None:
        self.strip_usage_chunk = strip_usage_chunk  # the client did not ask for the usage chunk; we did
        self.typed = typed  # hand on ChatDelta objects (choice 0's text) instead of event bytes
        self.done = False
        self.finished = False
        self.finish_reason: str | None = None  # choice 0's
        self.usage: Usage | None = None
        self.error: dict[str, Any] | None = None
        self.malformed: bytes | None = None
        self.forwarded = 0
        self.received_done = False  # the upstream's [DONE] has arrived (it may not be checked yet)
        self._splitter = sse.EventSplitter()
        self._blocks: deque[bytes] = deque()  # whole events received, not yet checked
        self._text: list[str] = []

    @property
    def complete(self) -> bool:
        return self.done or self.finished

    @property
    def broken(self) -> bool:
        """An error event or a malformed event arrived: nothing after it is forwarded."""
        return self.error is not None or self.malformed is not None

    def feed(self, chunk: bytes) -> list[Any]:
        """Every event ``chunk`` completes, checked, ready to forward."""
        self.push(chunk)
        return self.drain()

    def push(self, chunk: bytes) -> None:
        """Take in upstream bytes; their events are checked by :meth:`drain`."""
        blocks = self._splitter.feed(chunk)
        if blocks:
            self._blocks.extend(blocks)
            last = sse.event_data(blocks[-1])
            if last is not None and last.strip() == sse.DONE:
                self.received_done = True

    def drain(self, limit: int = 0) -> list[Any]:
        """Check the events taken in so far and return those to forward: all, or the first ``limit``."""
        out: list[Any] = []
        blocks = self._blocks
        while blocks:
            event = self._event(blocks.popleft())
            if event is not None:
                out.append(event)
                if len(out) == limit:
                    break
        return out

    def finish(self) -> list[Any]:
        """Events left in the buffer when the upstream closed without a final blank line."""
        out = self.drain()
        rest = self._splitter.rest()
        event = self._event(rest) if rest else None
        return out + [event] if event is not None else out

    def _event(self, block: bytes) -> bytes | ChatDelta | None:
        data = sse.event_data(block)
        if data is None or self.done or self.broken:
            return None
        if data.strip() == sse.DONE:
            self.done = True
            return None
        try:
            parsed = json_loads(data)
        except ValueError:
            parsed = None
        if type(parsed) is not dict:
            self.malformed = data[:200]
            return None
        choices = parsed.get("choices")
        if "error" in parsed or "usage" in parsed:
            if parsed.get("error") and not choices:
                error = parsed["error"]
                self.error = error if isinstance(error, dict) else {"message": str(error)}
                return None
            if isinstance(parsed.get("usage"), dict):
                self.usage = usage_of(parsed["usage"]) or self.usage
                if (self.strip_usage_chunk or self.typed) and not choices:
                    return None
        content = ""
        tool_calls: tuple[ToolCallDelta, ...] = ()
        if type(choices) is list:
            for choice in choices:
                if type(choice) is not dict:
                    continue
                first = choice.get("index", 0) == 0
                if choice.get("finish_reason"):
                    self.finished = True
                    if first:
                        self.finish_reason = str(choice["finish_reason"])
                if first:
                    delta = choice.get("delta")
                    text = delta.get("content") if type(delta) is dict else choice.get("text")
                    if type(text) is str:
                        self._text.append(text)
                        content = text
                    if type(delta) is dict and delta.get("tool_calls"):
                        tool_calls = tool_call_deltas_of(delta["tool_calls"])
                        self._text.extend(piece.name + piece.arguments for piece in tool_calls)
        self.forwarded += 1
        if self.typed:
            return ChatDelta(content=content, tool_calls=tool_calls) if content or tool_calls else None
        return block + b"\n\n"

    def completion_text(self) -> str:
        """The text streamed so far (choice 0, its tool calls' names and arguments included), for counting
        tokens when no usage came."""
        return "".join(self._text)
