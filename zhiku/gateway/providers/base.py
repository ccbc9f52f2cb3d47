"""The provider seam: one small protocol every wire API implements, and what they share.

A provider receives an OpenAI-format request (the model already mapped to the upstream's name) and
answers in the OpenAI format: a whole JSON body, or a stream of OpenAI SSE events. Translating
providers (Ollama, Anthropic) convert both ways; OpenAI-compatible ones pass bytes through.
Failures are raised as :class:`~zhiku.gateway.failures.UpstreamFailure`, classified, so the relay
can decide on failover without knowing the provider.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

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

    http: httpx.AsyncClient
    embedders: Callable[[], Any]  # returns a zhiku.embedding.registry.EmbedderRegistry (built lazily)


def timeout_of(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, 10.0))


def describe(exc: httpx.TransportError, timeout: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {timeout:g}s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g}s"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host ({cause})"
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def transport_error(exc: httpx.TransportError, where: str, timeout: float) -> UpstreamFailure:
    return UpstreamFailure(transport_failure(f"{where} is unreachable: {describe(exc, timeout)}",
                                             timeout=isinstance(exc, httpx.TimeoutException)))


async def post(http: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str], timeout: float,
               where: str, *, stream: bool) -> httpx.Response:
    """POST and return a 2xx response (streaming left open when ``stream``); failures raised classified."""
    request = http.build_request("POST", url, content=content, headers=headers, timeout=timeout_of(timeout))
    try:
        response = await http.send(request, stream=stream)
    except httpx.TransportError as exc:
        raise transport_error(exc, where, timeout) from exc
    if response.is_success:
        return response
    try:
        raw = await response.aread()
    except httpx.TransportError:
        raw = b""
    finally:
        await response.aclose()
    raise UpstreamFailure(http_failure(response.status_code, raw, response.headers.get("retry-after"),
                                       time.time(), where))


async def read_body(response: httpx.Response, where: str, timeout: float) -> bytes:
    try:
        return await response.aread()
    except httpx.TransportError as exc:
        raise transport_error(exc, where, timeout) from exc
    finally:
        await response.aclose()


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


async def stream_chunks(response: httpx.Response, where: str, timeout: float) -> AsyncIterator[bytes]:
    """The response's bytes as they arrive; a dropped connection or read timeout raised classified."""
    try:
        async for chunk in response.aiter_bytes():
            if chunk:
                yield chunk
    except httpx.TransportError as exc:
        timed_out = isinstance(exc, httpx.TimeoutException)
        raise UpstreamFailure(transport_failure(f"{where} dropped the stream: {describe(exc, timeout)}",
                                                timeout=timed_out)) from exc
