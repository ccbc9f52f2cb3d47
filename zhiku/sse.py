"""Server-sent events as bytes: split a stream into whole events, read their fields, encode one. Pure."""

from __future__ import annotations

import json
from typing import Any

DONE = b"[DONE]"


class EventSplitter:
    """Feed arbitrary chunks; get back each complete event block (without its blank line) once whole."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
            # A lone "\r" at the end may be half of a "\r\n" still to come.
            if not buffer.endswith(b"\r"):
                buffer = buffer.replace(b"\r", b"\n")
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        return [e for e in events if e.strip()]

    def pending(self) -> int:
        """How many bytes wait for the end of their event (what a caller bounds an event's size by)."""
        return len(self._buffer)

    def rest(self) -> bytes:
        """What was fed after the last complete event (a stream that ended without a blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest.strip()


def event_data(block: bytes) -> bytes | None:
    """The joined ``data`` lines of an event block; ``None`` when it has none (a comment or ping)."""
    if block.startswith(b"data: ") and b"\n" not in block:  # the usual one-line event, without a split
        return block[6:]
    lines = [line for line in block.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    values = [line[6:] if line.startswith(b"data: ") else line[5:] for line in lines]
    return values[0] if len(values) == 1 else b"\n".join(values)


def event_name(block: bytes) -> str | None:
    for line in block.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return None


def encode(data: Any, event: str | None = None) -> bytes:
    """One event: ``data:`` with a JSON payload (a ``str`` is sent as it is, e.g. ``[DONE]``), after an
    ``event:`` line when named. The project's only SSE encoder."""
    payload = data.encode() if isinstance(data, str) else json.dumps(data, ensure_ascii=False,
                                                                     separators=(",", ":")).encode()
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + b"\n\n"


DONE_EVENT = b"data: [DONE]\n\n"
