"""The standalone gateway's HTTP protocol: relay requests answered without ASGI, writes coalesced.

uvicorn's httptools protocol parses every request. Relay POSTs (``/v1/chat/completions`` and the
rest) are then answered here, by :class:`GatewayHttpProtocol`: on the relay's hot path uvicorn's
ASGI cycle (a scope, a task running the app, message dicts, header checks on every send) cost about
as much CPU as the relay itself. Everything else (the admin API, odd requests) goes through ASGI.

Writes go through a :class:`CoalescingTransport`: uvicorn writes a response's head and body with two
``send`` system calls, so the client would wake up twice. Writes made during one event-loop step are
held and leave in one call at the end of the step, or at once when the response is complete: head
and body together, and a burst of stream events that arrived in one upstream read together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from zhiku.gateway.providers.base import aclose_events
from zhiku.gateway.relay.turns import TurnQueue

if TYPE_CHECKING:
    from zhiku.gateway.http.relay_routes import Answer

logger = logging.getLogger(__name__)
STREAM_GATE_SECONDS = 0.001  # how long the rest of a stream waits behind other streams' first events


class CoalescingTransport:
    """A transport whose writes in one loop step are joined into one write of the real transport."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Write what is held now (the app knows its bytes are complete: no reason to wait)."""
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def is_closing(self) -> bool:  # asked after every response: not through __getattr__
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(chunk) for chunk in self._pending)

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol …
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescingTransport` (``uvicorn.Config(http=…)``).

    A finished response is written at once rather than at the end of the loop step: in a burst of
    answers each leaves as soon as it is ready instead of all waiting for the last.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()


# A relay route: (request headers, body, client address) → the answer to write.
RelayRoute = Callable[[list[tuple[bytes, bytes]], bytes, str | None], Awaitable["Answer"]]


class _Exchange:
    """One relay request served by :class:`GatewayHttpProtocol` without ASGI.

    While it runs it stands in for uvicorn's ``cycle``, so uvicorn's own logic sees a response in
    progress: a pipelined request waits its turn, and a graceful shutdown closes the connection
    after the answer (``keep_alive`` turned off) instead of cutting it.
    """

    __slots__ = ("body", "disconnected", "headers", "keep_alive", "message_event", "response_complete", "route",
                 "size", "streaming", "task", "too_large")

    def __init__(self, route: RelayRoute, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self.route = route
        self.headers = headers
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.response_complete = False
        self.disconnected = False
        self.streaming = False
        self.task: asyncio.Task[None] | None = None
        # uvicorn calls ``cycle.message_event.set()`` when the client leaves; a self-reference until the
        # answer is done (then dropped, so the exchange is freed at once, not by the garbage collector)
        self.message_event: Any = self

    def set(self) -> None:
        """The client left: a stream stops at once, and with it the upstream request.

        A whole answer is left to finish (and be billed), as on the ASGI path.
        """
        if self.disconnected and self.streaming and self.task is not None and not self.task.done():
            self.task.cancel()


class GatewayHttpProtocol(CoalescingHttpToolsProtocol):
    """The standalone gateway's protocol: relay POSTs are served here, everything else by uvicorn's ASGI.

    On the relay's hot path uvicorn's ASGI cycle (a scope, a task running the app, message dicts,
    header checks on every send) cost about as much CPU as the relay itself. A relay request is
    parsed by the same httptools parser, answered by its route (:func:`zhiku.gateway.http.relay_routes.relay_answer`)
    and the bytes are written straight to the transport. A request outside the plain case (pipelined
    behind another answer, an upgrade, a path that needs decoding) goes the ASGI way, unchanged.
    Use :func:`gateway_protocol` to make one.
    """

    # Set by gateway_protocol(): the relay routes (path → route), the largest body taken, the answer to
    # a larger one, and the trusted proxies as uvicorn's own middleware has them.
    routes: ClassVar[dict[bytes, RelayRoute]] = {}
    max_body: ClassVar[int] = 0
    refuse_too_large: ClassVar[Callable[[], Answer]]
    proxy: ClassVar[ProxyHeadersMiddleware | None] = None
    gate: ClassVar[_Gate]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._receiving: _Exchange | None = None
        self._active: _Exchange | None = None

    # ---- parser callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        route = None
        if self.parser.get_method() == b"POST" and (self.cycle is None or self.cycle.response_complete) \
                and not self.parser.should_upgrade():
            route = self.routes.get(self.url.partition(b"?")[0])
        if route is None:
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        exchange = self._receiving = _Exchange(route, self.headers, keep_alive)
        self.cycle = exchange  # type: ignore[assignment]
        if self.expect_100_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        exchange = self._receiving
        if exchange is None:
            super().on_body(body)
            return
        if exchange.too_large:
            return
        exchange.size += len(body)
        if exchange.size > self.max_body:
            exchange.too_large = True  # the rest is read and dropped; the answer is a 413
            exchange.body = []
            return
        exchange.body.append(body)

    def on_message_complete(self) -> None:
        exchange = self._receiving
        if exchange is None:
            super().on_message_complete()
            return
        self._receiving = None
        self._active = exchange
        task = exchange.task = self.loop.create_task(self._serve(exchange))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        exchange = self._active
        if exchange is not None:
            exchange.disconnected = True
            exchange.set()

    # ---- answering ----------------------------------------------------------------------------

    async def _serve(self, exchange: _Exchange) -> None:
        try:
            if exchange.too_large:
                exchange.keep_alive = False
                answer = self.refuse_too_large()
            else:
                body = exchange.body[0] if len(exchange.body) == 1 else b"".join(exchange.body)
                exchange.body = []
                answer = await exchange.route(exchange.headers, body, self._client_ip(exchange.headers))
            if answer.stream is None:
                self._write_head(answer, exchange, length=len(answer.body))
                self.transport.write(answer.body)
            else:
                await self._write_stream(answer, exchange)
        except asyncio.CancelledError:
            exchange.keep_alive = False  # the client left mid-stream, or the server is stopping
            raise
        except Exception:
            logger.exception("gateway: answering a relay request failed")
            exchange.keep_alive = False
        finally:
            exchange.response_complete = True
            exchange.message_event = _ANSWERED
            exchange.task = None
            if self._active is exchange:
                self._active = None
            if not exchange.keep_alive:
                self.transport.close()
            self.on_response_complete()

    def _write_head(self, answer: Answer, exchange: _Exchange, *, length: int | None) -> None:
        parts = [STATUS_LINE[answer.status]]
        for name, value in self.server_state.default_headers:
            parts += (name, b": ", value, b"\r\n")
        for name, value in answer.headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length)
        if not exchange.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.transport.write(b"".join(parts))

    async def _write_stream(self, answer: Answer, exchange: _Exchange) -> None:
        assert answer.stream is not None
        events = answer.stream
        transport: CoalescingTransport = self.transport  # type: ignore[assignment]
        self._write_head(answer, exchange, length=None)
        exchange.streaming = True
        first = True
        try:
            async for event in events:
                if self.flow.write_paused:
                    await self.flow.drain()
                transport.write(b"%x\r\n%b\r\n" % (len(event), event))
                if first:
                    # The first event leaves now; the rest of the stream waits for the gate, so first
                    # events of other streams go before it. Later events are joined per loop step.
                    first = False
                    transport.flush()
                    await self.gate.wait()
            transport.write(b"0\r\n\r\n")
        finally:
            exchange.streaming = False
            await aclose_events(events)

    def _client_ip(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The peer's address, or the client's from ``X-Forwarded-For`` when the peer is a trusted proxy."""
        host = self.client[0] if self.client else None
        proxy = self.proxy
        if proxy is None or host not in proxy.trusted_hosts:
            return host
        forwarded = [value for name, value in headers if name == b"x-forwarded-for"]
        if not forwarded:
            return host
        client, _ = proxy.trusted_hosts.get_trusted_client_address(b", ".join(forwarded).decode("latin-1"))
        return client or host


class _Gate:
    """Where streams wait after their first event, then go on one per turn of the event loop.

    A burst of answers that arrive together is served first bytes first: the rest of each stream
    (its other events, its billing) starts a millisecond after the first waiter came, and then one
    stream per loop turn (more when many wait), so an answer's first event that arrives meanwhile
    waits behind one stream's bulk work, not behind all of them. A real model's later events come
    tens of milliseconds apart anyway.
    """

    def __init__(self, delay: float) -> None:
        self._waiters: TurnQueue[asyncio.Future[None]] = TurnQueue(_let_on, delay=delay)

    def wait(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.put(waiter, loop)
        return waiter


def _let_on(waiter: asyncio.Future[None]) -> bool:
    if waiter.done():  # cancelled: the client left
        return False
    waiter.set_result(None)
    return True


class _Answered:
    """``message_event`` of an exchange whose answer is done: nothing left to stop."""

    def set(self) -> None:
        pass


_ANSWERED = _Answered()


async def _no_app(scope: Any, receive: Any, send: Any) -> None:  # ProxyHeadersMiddleware wants an app
    pass


def gateway_protocol(config: uvicorn.Config, routes: dict[str, RelayRoute], *, max_body: int,
                     refuse_too_large: Callable[[], Answer]) -> type[GatewayHttpProtocol]:
    """A :class:`GatewayHttpProtocol` for ``config`` serving ``routes`` (path → route): set it as
    ``config.http`` before the server starts."""
    proxy = ProxyHeadersMiddleware(_no_app, trusted_hosts=config.forwarded_allow_ips) if config.proxy_headers else None
    return type("GatewayHttpProtocol", (GatewayHttpProtocol,), {
        "routes": {path.encode(): route for path, route in routes.items()}, "max_body": max_body,
        "refuse_too_large": staticmethod(refuse_too_large), "proxy": proxy, "gate": _Gate(STREAM_GATE_SECONDS)})
