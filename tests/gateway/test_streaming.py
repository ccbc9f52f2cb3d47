"""EventStreamResponse on its own: events in order, the generator always closed, disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from zhiku.gateway.http.event_stream import EventStreamResponse


class _Events:
    """An async iterator of events that records whether it was closed and can wait between events."""

    def __init__(self, events: list[bytes], gap: float = 0.0) -> None:
        self.events = events
        self.gap = gap
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        for event in self.events:
            if self.gap:
                await asyncio.sleep(self.gap)
            yield event

    async def aclose(self) -> None:
        self.closed = True


def _recorder() -> tuple[list[dict[str, Any]], Any]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return sent, send


@pytest.mark.parametrize("watch", [True, False])
async def test_every_event_is_sent_in_order_and_the_source_closed(watch: bool) -> None:
    events = _Events([b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"])
    sent, send = _recorder()
    never = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, Any]:
        return await never  # the client stays

    await EventStreamResponse(events, watch_disconnect=watch)({"type": "http"}, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert [m["body"] for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n", b""]
    assert sent[-1]["more_body"] is False
    assert events.closed


async def test_a_client_that_leaves_stops_a_waiting_stream_when_watched() -> None:
    events = _Events([b"data: 1\n\n", b"data: 2\n\n"], gap=30.0)  # the upstream is slow
    sent, send = _recorder()

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    await asyncio.wait_for(EventStreamResponse(events)({"type": "http"}, receive, send), timeout=5)
    assert events.closed
    assert [m for m in sent if m["type"] == "http.response.body"] == []  # nothing arrived to send
