"""The provider seam: one small protocol every wire API implements, and what they share.

A provider receives an OpenAI-format request (the model already mapped to the upstream's name) and
answers in the OpenAI format: a whole JSON body, or a stream of OpenAI SSE events. Translating
providers (Ollama, Anthropic) convert both ways; OpenAI-compatible ones pass bytes through.
Failures are raised as :class:`~zhiku.gateway.providers.failures.UpstreamFailure`, classified, so the relay
can decide on failover without knowing the provider.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from zhiku.chat_model import Usage
from zhiku.gateway.domain import ChannelInfo
from zhiku.gateway.providers.failures import UpstreamFailure, bad_response, http_failure, transport_failure
from zhiku.gateway.providers.upstream_http import (
    BodyCut,
    ConnectTimeout,
    ReadTimeout,
    UpstreamClient,
    UpstreamHTTPError,
    UpstreamResponse,
)

if TYPE_CHECKING:
    from zhiku.embedding.registry import EmbedderRegistry


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


async def aclose_events(events: AsyncIterator[bytes]) -> None:
    """Close an event iterator that can be closed (an async generator: its ``finally`` runs now)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


class UpstreamStream:
    """OpenAI SSE bytes from an upstream; ``aclose`` releases the connection even if never iterated.

    ``close(finished)`` is told whether the stream ended as it should (``[DONE]`` or a finish reason): then
    the connection may go back to the pool; otherwise it is closed, so the upstream stops generating.
    """

    def __init__(self, chunks: AsyncIterator[bytes], close: Callable[[bool], Awaitable[None]]) -> None:
        self._chunks = chunks
        self._close = close
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def aclose(self, *, finished: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await aclose_events(self._chunks)
        finally:
            await self._close(finished)


class Provider(Protocol):
    type: str  # the channel type it serves
    endpoints: frozenset[str]
    oneapi_types: frozenset[int]  # OneAPI channel types it takes over on import

    async def send(self, request: UpstreamRequest) -> UpstreamReply: ...

    async def open_stream(self, request: UpstreamRequest) -> UpstreamStream: ...


@dataclass(frozen=True)
class ConfigField:
    """One key of a channel's ``config`` that a provider reads."""

    name: str
    default: str = ""  # what the provider uses when the key is missing
    integer: bool = False


@dataclass(frozen=True)
class ChannelFields:
    """What a provider reads from a channel row beyond models and mapping: the channel editor's fields."""

    base_url_default: str = ""  # used when the channel's base URL is empty
    base_url_required: bool = False
    uses_key: bool = True
    config: tuple[ConfigField, ...] = ()


@dataclass
class ProviderContext:
    """What providers may use: the pooled HTTP client and, for ``local``, the embedder registry."""

    http: UpstreamClient
    embedders: Callable[[], EmbedderRegistry]  # built on first use (a standalone gateway may never need one)


def new_http_session() -> UpstreamClient:
    """One pooled client per gateway process: keep-alive connections reused across requests.

    The project's own client rather than httpx or aiohttp: on the relay's hot path their per-request
    work was most of a request's cost (see ``upstream_http``).
    """
    return UpstreamClient()


CONNECT_TIMEOUT_CAP = 10.0  # seconds; a channel's timeout bounds the connect too, but never beyond this


def describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectTimeout):
        return f"connect timed out after {min(timeout, CONNECT_TIMEOUT_CAP):g}s"
    if isinstance(exc, (ReadTimeout, asyncio.TimeoutError)):
        return f"no data within {timeout:g}s"
    if isinstance(exc, BodyCut):
        return f"the response was cut short ({exc})"
    return str(exc) or type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectTimeout, ReadTimeout, asyncio.TimeoutError))


TRANSPORT_ERRORS = (UpstreamHTTPError, asyncio.TimeoutError, OSError)


def transport_error(exc: BaseException, where: str, timeout: float) -> UpstreamFailure:
    return UpstreamFailure(transport_failure(f"{where} is unreachable: {describe(exc, timeout)}",
                                             timeout=_timed_out(exc)))


async def post(http: UpstreamClient, url: str, content: bytes, headers: dict[str, str], timeout: float,
               where: str, *, stream: bool) -> UpstreamResponse:
    """POST and return a 2xx response, its body not yet read; failures raised classified.

    No total limit (streams may be long); each wait for data — the answer's head included — is bounded
    by ``timeout``, and the connect by ``timeout`` or 10 s, whichever is shorter.
    """
    try:
        response = await http.post(url, content, headers, connect_timeout=min(timeout, CONNECT_TIMEOUT_CAP),
                                   read_timeout=timeout)
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


async def read_body(response: UpstreamResponse, where: str, timeout: float) -> bytes:
    try:
        return await response.read()
    except TRANSPORT_ERRORS as exc:
        response.close()
        raise transport_error(exc, where, timeout) from exc
    finally:
        response.release()


_DRAIN_LIMIT = 64 * 1024  # bytes read after the end of a finished stream before giving the connection up
_DRAIN_SECONDS = 5.0
_draining: set[asyncio.Task[None]] = set()


def closer(response: UpstreamResponse) -> Callable[[bool], Awaitable[None]]:
    """End a streamed response: keep its connection when the stream finished, else close it.

    A finished stream whose last bytes (the chunked terminator after ``[DONE]``) are still in flight
    is drained in the background, so the client's answer is not held up; an unfinished one (the client
    left, the stream broke) is closed at once, so the upstream sees it and stops generating.
    """
    async def close(finished: bool) -> None:
        if response.at_eof:
            response.release()  # back to the pool: the next request skips a TCP connect
        elif finished:
            task = asyncio.ensure_future(_drain_then_release(response))
            _draining.add(task)
            task.add_done_callback(_draining.discard)
        else:
            response.close()
    return close


async def _drain_then_release(response: UpstreamResponse) -> None:
    try:
        read = 0
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for data in response.iter_chunks():
                read += len(data)
                if read > _DRAIN_LIMIT:
                    break
    except (Exception, asyncio.CancelledError):
        response.close()
        return
    response.release()  # closes the connection instead when the body is still not at its end


_DECODER = json.JSONDecoder()


def json_loads(raw: bytes | str) -> Any:
    """``json.loads``, quicker on the relay's small documents: the usual compact UTF-8 text goes
    straight to the decoder's scanner (no encoding detection, no whitespace regexes around it);
    anything else takes ``json.loads`` itself, so what it accepts and refuses is unchanged."""
    if raw[:1] in (b"{", "{"):
        try:
            text = raw if isinstance(raw, str) else raw.decode()
            value, end = _DECODER.raw_decode(text)
        except ValueError:
            pass
        else:
            if end == len(text):
                return value
    return json.loads(raw)


def parse_json_object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json_loads(raw)
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


async def stream_chunks(response: UpstreamResponse, where: str, timeout: float) -> AsyncIterator[bytes]:
    """The response's bytes as they arrive; a dropped connection or read timeout raised classified."""
    try:
        async for chunk in response.iter_chunks():
            yield chunk
    except TRANSPORT_ERRORS as exc:
        raise UpstreamFailure(transport_failure(f"{where} dropped the stream: {describe(exc, timeout)}",
                                                timeout=_timed_out(exc))) from exc
