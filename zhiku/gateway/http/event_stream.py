"""An SSE response that sends each event as it comes and stops the upstream when the client leaves.

Starlette's ``StreamingResponse`` on ASGI 2.4 servers only notices a gone client at the next write,
which may be long in coming when the upstream is slow; this response also listens for
``http.disconnect`` and cancels the pump at once, so the upstream request is closed with it.

With a :class:`StreamGate`, the rest of a stream waits after its first event, so that in a burst the
first events of other streams leave before any stream's bulk (``bench/README.md`` has the A/B).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from zhiku.gateway.providers.base import aclose_events

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
STREAM_GATE_SECONDS = 0.001  # how long the rest of a stream waits behind other streams' first events


class StreamGate:
    """Where streams wait after their first event, then go on a few per turn of the event loop.

    The rest of each stream starts a millisecond after the first waiter came, then one stream per
    loop turn (1 + waiting/8 when many wait), and the loop reads its sockets between turns: a first
    event that arrives meanwhile waits behind one stream's bulk work, not behind all of them. A real
    model's later events come tens of milliseconds apart anyway. One gate per app: its waiters
    belong to one event loop at a time.
    """

    def __init__(self, delay: float = STREAM_GATE_SECONDS) -> None:
        self._delay = delay
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # The loop whose turns let the waiters on. A loop that stopped with its turn pending lets
        # nobody on any more, so a waiter from another loop starts that loop's own turns.
        self._loop: asyncio.AbstractEventLoop | None = None

    def wait(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._loop is not loop:
            self._loop = loop
            loop.call_later(self._delay, self._turn, loop)
        return waiter

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        waiters = self._waiters
        share = 1 + len(waiters) // 8
        while waiters and share:
            waiter = waiters.popleft()
            if not waiter.done() and waiter.get_loop() is loop:  # done: cancelled, its client left
                waiter.set_result(None)
                share -= 1
        if waiters:
            loop.call_soon(self._turn, loop)
        elif self._loop is loop:
            self._loop = None


class EventStreamResponse:
    """``watch_disconnect=False`` when every event is already in hand: with nothing to wait for,
    the watcher task is not worth its cost, and a gone client shows at the next write. With a
    ``gate``, the events after the first wait for it."""

    def __init__(self, events: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]] | None = None, *,
                 watch_disconnect: bool = True, gate: StreamGate | None = None) -> None:
        self.events = events
        self.headers = SSE_HEADERS + (headers or [])
        self.watch_disconnect = watch_disconnect
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.watch_disconnect:
            try:
                await self._pump(send)
            except OSError:
                pass
            finally:
                await aclose_events(self.events)
            return
        # The events are pumped in this task; a watcher task cancels it when the client hangs up.
        task = asyncio.current_task()
        assert task is not None
        left = False

        def client_left(watch: asyncio.Future[None]) -> None:
            nonlocal left
            if not watch.cancelled() and watch.exception() is None:
                left = True
                task.cancel()

        watch = asyncio.ensure_future(_wait_disconnect(receive))
        watch.add_done_callback(client_left)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not left:
                raise
            task.uncancel()  # our own cancel: the client is gone, nothing more to send
        except OSError:
            pass
        finally:
            watch.remove_done_callback(client_left)
            watch.cancel()
            await aclose_events(self.events)

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        gate = self.gate  # waited for once, after the first event
        async for event in self.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if gate is not None:
                await gate.wait()
                gate = None
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
