"""The provider seam: one small protocol every wire API implements, and what they share.

A provider receives an OpenAI-format request (the model already mapped to the upstream's name) and
answers in the OpenAI format: a whole JSON body, or a stream of OpenAI SSE events. Translating
providers (Ollama, Anthropic) convert both ways; OpenAI-compatible ones pass bytes through.
Failures are raised as :class:`~zhiku.gateway.failures.UpstreamFailure`, classified, so the relay
can decide on failover without knowing the provider.
"""

from __future__ import annotations

import asyncio
import errno
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from zhiku.apps.models import Usage
from zhiku.gateway.domain import ChannelInfo
from zhiku.gateway.failures import UpstreamFailure, bad_response, http_failure, transport_failure


@dataclass(frozen=True)
class UpstreamRequest:
    endpoint: str  # one of zhiku.gateway.domain.ENDPOINTS
    body: dict[str, Any]  # OpenAI format, upstream model name in "model"
    stream: bool
    channel: ChannelInfo
    timeout: float
    raw: bytes | None = None  # ``body`` serialised, when the client's bytes can be sent as they are

    def json_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class UpstreamReply:
    body: bytes  # OpenAI-format JSON
    usage: Usage | None


class UpstreamStream:
    """OpenAI SSE bytes from an upstream; ``aclose`` releases the connection even if never iterated."""

    def __init__(self, chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]) -> None:
        self._chunks = chunks
        self._close = close
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self._close()


class Provider(Protocol):
    type: str
    endpoints: frozenset[str]

    async def send(self, request: UpstreamRequest) -> UpstreamReply: ...

    async def open_stream(self, request: UpstreamRequest) -> UpstreamStream: ...


@dataclass
class ProviderContext:
    """What providers may use: the pooled HTTP client and, for ``local``, the embedder registry."""

    http: aiohttp.ClientSession
    embedders: Callable[[], Any]  # returns a zhiku.embedding.registry.EmbedderRegistry (built lazily)


def new_http_session() -> aiohttp.ClientSession:
    """One pooled client per gateway process: keep-alive connections reused across requests.

    aiohttp rather than httpx here: on the relay's hot path httpx's connection pool costs several times
    more CPU per request (measured ~300 vs ~3,000 requests/s through one core).
    """
    connector = aiohttp.TCPConnector(limit=2000, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                 skip_auto_headers=("User-Agent",))


def timeout_of(seconds: float) -> aiohttp.ClientTimeout:
    # No total limit (streams may be long); each wait for data — headers included — is bounded.
    return aiohttp.ClientTimeout(total=None, connect=min(seconds, 10.0), sock_read=seconds)


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"connect timed out after {min(timeout, 10.0):g}s"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return f"no data within {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host ({exc.os_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if getattr(exc.os_error, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        return f"cannot connect ({exc.os_error})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"the response was cut short ({exc})"
    return str(exc) or type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def transport_error(exc: BaseException, where: str, timeout: float) -> UpstreamFailure:
    return UpstreamFailure(transport_failure(f"{where} is unreachable: {describe(exc, timeout)}",
                                             timeout=_timed_out(exc)))


async def post(http: aiohttp.ClientSession, url: str, content: bytes, headers: dict[str, str], timeout: float,
               where: str, *, stream: bool) -> aiohttp.ClientResponse:
    """POST and return a 2xx response, its body not yet read; failures raised classified."""
    try:
        response = await http.post(url, data=content, headers=headers, timeout=timeout_of(timeout))
    except TRANSPORT_ERRORS as exc:
        raise transport_error(exc, where, timeout) from exc
    if 200 <= response.status < 300:
        return response
    try:
        raw = await response.read()
    except TRANSPORT_ERRORS:
        raw = b""
    finally:
        response.release()
    raise UpstreamFailure(http_failure(response.status, raw, response.headers.get("retry-after"),
                                       time.time(), where))


async def read_body(response: aiohttp.ClientResponse, where: str, timeout: float) -> bytes:
    try:
        return await response.read()
    except TRANSPORT_ERRORS as exc:
        response.close()
        raise transport_error(exc, where, timeout) from exc
    finally:
        response.release()


def closer(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    """Close a streamed response's connection (so the upstream sees the client leave)."""
    async def close() -> None:
        response.close()
    return close


def parse_json_object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        snippet = raw[:200].decode("utf-8", "replace")
        raise UpstreamFailure(bad_response(f"{where} returned a body that is not JSON: {snippet!r}")) from None
    if not isinstance(data, dict):
        raise UpstreamFailure(bad_response(f"{where} returned JSON that is not an object"))
    return data


def usage_of(raw: Any) -> Usage | None:
    """OpenAI-style usage; rerank APIs that only give ``total_tokens`` count it all as prompt."""
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    if prompt is None and completion is None:
        total = raw.get("total_tokens")
        return Usage(prompt_tokens=int(total)) if isinstance(total, int) else None
    return Usage(prompt_tokens=int(prompt or 0), completion_tokens=int(completion or 0))


def url_join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


async def stream_chunks(response: aiohttp.ClientResponse, where: str, timeout: float) -> AsyncIterator[bytes]:
    """The response's bytes as they arrive; a dropped connection or read timeout raised classified."""
    try:
        async for chunk in response.content.iter_any():
            if chunk:
                yield chunk
    except TRANSPORT_ERRORS as exc:
        raise UpstreamFailure(transport_failure(f"{where} dropped the stream: {describe(exc, timeout)}",
                                                timeout=_timed_out(exc))) from exc
