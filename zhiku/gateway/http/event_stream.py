"""An SSE response that sends each event as it comes and stops the upstream when the client leaves.

Starlette's ``StreamingResponse`` on ASGI 2.4 servers only notices a gone client at the next write,
which may be long in coming when the upstream is slow; this response also listens for
``http.disconnect`` and cancels the pump at once, so the upstream request is closed with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from zhiku.gateway.providers.base import aclose_events

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


class EventStreamResponse:
    """``watch_disconnect=False`` when every event is already in hand: with nothing to wait for,
    the watcher task is not worth its cost, and a gone client shows at the next write."""

    def __init__(self, events: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]] | None = None, *,
                 watch_disconnect: bool = True) -> None:
        self.events = events
        self.headers = SSE_HEADERS + (headers or [])
        self.watch_disconnect = watch_disconnect

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
        async for event in self.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
