"""A lean HTTP/1.1 client for upstream calls: a keep-alive pool, streamed bodies, bounded waits.

The relay sends one POST per request and reads back JSON or server-sent events; it needs no cookies,
redirects, proxies or multipart. A general client (httpx, aiohttp) spends several times the CPU of this
one per request on that path, and on a relay that is most of the cost of a request (the gateway
benchmark in ``bench/`` shows it). This one writes the request in one system call, parses the answer
as it arrives with llhttp (httptools, the parser uvicorn uses: ``Content-Length``, chunked, or until
close; gzip/deflate are decoded here) and hands the connection back to its pool once the body has
been read to its end; the framing is done in C.

Every wait — for the connection, for the status line, for each piece of the body — is bounded by the
caller's timeout. Failures are raised as :class:`UpstreamHTTPError` subclasses carrying a short
reason; ``zhiku.gateway.providers.base`` turns them into failover decisions.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

_MAX_HEAD = 64 * 1024  # status line and headers
_PAUSE_AT = 1024 * 1024  # body bytes queued for a slow reader before the socket stops being read
_IDLE_SECONDS = 30.0  # an idle pooled connection older than this is closed instead of reused
_MAX_IDLE_PER_ORIGIN = 256


class UpstreamHTTPError(Exception):
    """Base of the failures below; ``str()`` is a short reason for logs and error messages."""


class ConnectFailed(UpstreamHTTPError):
    def __init__(self, reason: str, *, refused: bool = False, dns: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused
        self.dns = dns


class ConnectTimeout(UpstreamHTTPError):
    pass


class ReadTimeout(UpstreamHTTPError):
    pass


class Disconnected(UpstreamHTTPError):
    """The server closed the connection before the answer's head arrived."""


class BodyCut(UpstreamHTTPError):
    """The connection ended (or broke) before the answer's body was complete."""


class BadHTTP(UpstreamHTTPError):
    """The server's bytes are not an HTTP/1.x answer."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    host_header: str


@functools.lru_cache(maxsize=1024)
def parse_url(url: str) -> tuple[Origin, str]:
    """The origin and request target (path and query) of an ``http``/``https`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"not an http(s) URL: {url!r}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(parts.scheme, host, port, host_header), target


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parses one answer at a time and queues its body for the reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        # One parser for the connection's life: a connection is reused only after an answer was read
        # whole, where the parser is ready for the next one.
        self.parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_size = 0
        self.interim = False  # a 1xx answer is being read; the real one follows
        self.head_done = False
        self.until_close = False  # the body has neither a length nor chunks: it ends when the connection does
        self.keep_alive = True
        self.done = False
        self.received_any = False
        self.first_bytes = b""  # for the error message when the answer is not HTTP at all
        self.error: UpstreamHTTPError | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self._incoming: list[bytes] = []  # body pieces of the read being parsed
        self.queued = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done:  # bytes after a complete answer: the connection is not reused
            if data:
                self.keep_alive = False
            return
        if not self.received_any:
            self.received_any = True
            self.first_bytes = data[:80]
        incoming = self._incoming
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, UpstreamHTTPError) else BadHTTP(f"malformed answer ({cause})"))
        except httptools.HttpParserError as exc:
            self._fail(BadHTTP(f"not an HTTP answer: {self.first_bytes!r}") if not self.head_done
                       else BadHTTP(f"malformed answer body ({exc})"))
        finally:
            if incoming:  # everything one read brought is handed on at once (a burst of stream events: one piece)
                self._queue(incoming[0] if len(incoming) == 1 else b"".join(incoming))
                incoming.clear()

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        self._ended(exc)

    def pause_writing(self) -> None:  # the request is small; nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # ---- httptools parser callbacks (llhttp does the framing: lengths, chunks, trailers) ----------

    def on_message_begin(self) -> None:
        if self.done:  # the start of another answer after ours: not ours to read
            self.keep_alive = False
        self.headers = {}
        self.head_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.done:
            return
        self.head_size += len(name) + len(value) + 4
        if self.head_size > _MAX_HEAD:
            raise BadHTTP("the answer's headers are too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        headers = self.headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True
            return
        self.status, self.head_done = status, True
        self.keep_alive = self.parser.should_keep_alive()
        headers = self.headers
        self.until_close = (status not in (204, 304) and "content-length" not in headers
                            and "chunked" not in headers.get("transfer-encoding", "").lower())
        if self.until_close:
            self.keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if not self.done and body:
            self._incoming.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.done:
            return
        self.done = True
        self._wake()

    def _queue(self, data: bytes) -> None:
        if not data:
            return
        self.body.append(data)
        self.queued += len(data)
        if self.queued > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def _ended(self, exc: Exception | None) -> None:
        if self.done and self.head_done:
            return
        if self.head_done and self.until_close and exc is None:
            self.done = True
        elif self.error is None:
            reason = f" ({exc})" if exc else ""
            self.error = (BodyCut(f"the connection ended before the answer was complete{reason}")
                          if self.head_done else Disconnected(f"the server closed the connection{reason}"))
        self._wake()

    def _fail(self, exc: UpstreamHTTPError) -> None:
        self.error = exc
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- for the reader -------------------------------------------------------------------------

    async def wait(self, timeout: float) -> None:
        """Until something new arrived (head, body, end or error), at most ``timeout`` seconds."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def take(self) -> bytes:
        chunk = self.body.popleft()
        self.queued -= len(chunk)
        if self.paused and self.queued < _PAUSE_AT // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            self.transport = None


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("no data in time"))


class UpstreamResponse:
    """An answer whose head has arrived; read its body once, then ``release()`` (or ``close()``)."""

    def __init__(self, client: UpstreamClient, origin: Origin, connection: _Connection,
                 timeout: float) -> None:
        self._client = client
        self._origin = origin
        self._connection = connection
        self._timeout = timeout
        self._finished = False
        self.status = connection.status
        self.headers = connection.headers  # lower-case names
        encoding = self.headers.get("content-encoding", "").lower()
        self._decoder = (zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip")
                         else zlib.decompressobj() if encoding == "deflate" else None)

    @property
    def at_eof(self) -> bool:
        """The whole body has been read."""
        connection = self._connection
        return connection.done and not connection.body and connection.error is None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; ends at the end of the body, raises if it is cut short."""
        connection = self._connection
        while True:
            while connection.body:
                data = connection.take()
                if self._decoder is not None:
                    data = self._decoder.decompress(data)
                if data:
                    yield data
            if connection.error is not None:
                raise connection.error
            if connection.done:
                if self._decoder is not None:
                    tail = self._decoder.flush()
                    self._decoder = None
                    if tail:
                        yield tail
                return
            await connection.wait(self._timeout)

    async def read(self) -> bytes:
        connection = self._connection
        if connection.done and connection.error is None and self._decoder is None:  # the usual case: all here
            if len(connection.body) == 1:
                return connection.take()
            return b"".join(connection.take() for _ in range(len(connection.body)))
        return b"".join([chunk async for chunk in self.iter_chunks()])

    def release(self) -> None:
        """Give the connection back to the pool when its answer was read to the end, else close it."""
        if self._finished:
            return
        self._finished = True
        connection = self._connection
        if self.at_eof and connection.keep_alive and not connection.closed:
            self._client._put(self._origin, connection)
        else:
            connection.close()

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            self._connection.close()


class UpstreamClient:
    """Keep-alive connections per origin, shared by every channel of a gateway process."""

    def __init__(self, *, idle_seconds: float = _IDLE_SECONDS,
                 max_idle_per_origin: int = _MAX_IDLE_PER_ORIGIN) -> None:
        self._idle: dict[Origin, collections.deque[_Connection]] = {}
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle_per_origin
        self._closed = False

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, connect_timeout: float,
                   read_timeout: float) -> UpstreamResponse:
        """Send a POST; return once the answer's head arrived (any status)."""
        origin, target = parse_url(url)
        try:
            request = _request_bytes(origin, target, body, headers)
        except UnicodeEncodeError:
            raise ConnectFailed("the URL or a header (the key?) has characters HTTP cannot carry") from None
        reused = self._take(origin)
        if reused is not None:
            try:
                return await self._exchange(origin, reused, request, read_timeout)
            except Disconnected:
                # The server closed the idle connection as the request went out: it never saw it.
                pass
        connection = await self._connect(origin, connect_timeout)
        return await self._exchange(origin, connection, request, read_timeout)

    async def close(self) -> None:
        self._closed = True
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()

    # ---- internals ------------------------------------------------------------------------------

    async def _exchange(self, origin: Origin, connection: _Connection, request: bytes,
                        read_timeout: float) -> UpstreamResponse:
        connection._reset()
        assert connection.transport is not None
        connection.transport.write(request)
        try:
            while not connection.head_done:
                if connection.error is not None:
                    raise connection.error
                await connection.wait(read_timeout)
        except BaseException:
            connection.close()
            raise
        return UpstreamResponse(self, origin, connection, read_timeout)

    def _take(self, origin: Origin) -> _Connection | None:
        pool = self._idle.get(origin)
        now = time.monotonic()
        while pool:
            connection = pool.pop()
            if not connection.closed and connection.transport is not None and \
                    now - connection.idle_since < self._idle_seconds:
                return connection
            connection.close()
        return None

    def _put(self, origin: Origin, connection: _Connection) -> None:
        if self._closed:
            connection.close()
            return
        pool = self._idle.setdefault(origin, collections.deque())
        if len(pool) >= self._max_idle:
            pool.popleft().close()
        connection.idle_since = time.monotonic()
        pool.append(connection)

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls: Any = _tls_context() if origin.scheme == "https" else None
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), origin.host, origin.port, ssl=tls,
                                       server_hostname=origin.host if tls else None), timeout)
        except TimeoutError:
            raise ConnectTimeout(f"connect timed out after {timeout:g}s") from None
        except socket.gaierror as exc:
            raise ConnectFailed(f"cannot resolve host ({exc})", dns=True) from None
        except ConnectionRefusedError:
            raise ConnectFailed("connection refused", refused=True) from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS handshake failed ({exc})") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect ({exc})") from None
        return connection


def _request_bytes(origin: Origin, target: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {target} HTTP/1.1\r\nHost: {origin.host_header}\r\nContent-Length: {len(body)}\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ConnectFailed(f"header {name!r} contains a line break")  # a key pasted with a newline
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "strict") + body
