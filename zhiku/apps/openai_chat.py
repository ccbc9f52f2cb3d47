"""A ChatModel over any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, OneAPI, vLLM, ...).

``base_url`` follows FastGPT's ``OPENAI_BASE_URL`` convention: it already names the API root,
``/v1`` included (``http://host:3001/v1``), and requests go to ``{base_url}/chat/completions``.
Nothing is appended; trailing slashes are stripped.

Failures become domain errors:

* the upstream cannot be reached, or sends no response in time → ``UpstreamUnavailable``;
* it answers non-2xx → ``UpstreamError`` with the upstream's status, its error code (or
  ``upstream_error``) and ``detail={"body": <parsed JSON or text>, "retry_after": <header or None>}``;
* it answers 2xx with something that is not a completion → ``UpstreamError`` 502 ``upstream_bad_response``;
* a stream that started but stops before ``[DONE]`` and before a finish reason, including a dropped
  connection or a read timeout mid-stream → ``UpstreamError`` 502 ``upstream_stream_cut``, raised
  after the deltas already received were yielded (the caller keeps the partial answer).
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from zhiku.chat_model import ChatDelta, ChatMessage, ChatParams, ChatResult, Usage, openai_chat_body
from zhiku.errors import UpstreamError, UpstreamUnavailable

_SNIPPET = 500  # characters of a bad upstream body kept in messages


class OpenAIChatModel:
    def __init__(self, base_url: str, api_key: str = "", *, timeout: float = 120.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._client = client if client is not None else httpx.AsyncClient()
        self._owns_client = client is None

    async def aclose(self) -> None:
        """Close the HTTP client if this model created it; a client passed in stays open."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> OpenAIChatModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def complete(self, messages: Sequence[ChatMessage], params: ChatParams) -> ChatResult:
        response = await self._send(openai_chat_body(messages, params, stream=False), stream=False)
        return self._parse_completion(response.content, params)

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[ChatDelta]:
        response = await self._send(openai_chat_body(messages, params, stream=True), stream=True)
        try:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # Some upstreams ignore ``stream`` and answer one JSON completion.
                result = self._parse_completion(await self._read(response), params)
                if result.content:
                    yield ChatDelta(content=result.content)
                yield ChatDelta(finish_reason=result.finish_reason, usage=result.usage)
                return
            finish_reason: str | None = None
            usage: Usage | None = None
            done = False
            chunks = 0
            try:
                async for data in _sse_data(response):
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = self._parse_chunk(data)
                    chunks += 1
                    usage = _usage(chunk.get("usage")) or usage
                    for choice in chunk.get("choices") or []:
                        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                            continue
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield ChatDelta(content=content)
                        finish_reason = choice.get("finish_reason") or finish_reason
            except httpx.TransportError as exc:
                if finish_reason is None:
                    raise self._stream_cut(f"{_describe(exc, self.timeout)} after {chunks} chunks") from exc
            if not done and finish_reason is None:
                raise self._stream_cut(f"the stream ended after {chunks} chunks without [DONE]")
            if finish_reason is not None or usage is not None:
                yield ChatDelta(finish_reason=finish_reason, usage=usage)
        finally:
            await response.aclose()

    # ---- request ---------------------------------------------------------------------------

    async def _send(self, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = self._client.build_request("POST", f"{self.base_url}/chat/completions", json=body,
                                             headers=headers, timeout=self.timeout)
        try:
            response = await self._client.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise self._unavailable(exc) from exc
        if not response.is_success:
            raw = await self._read(response)
            await response.aclose()
            raise self._error_from(response, raw)
        return response

    async def _read(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.TransportError as exc:
            await response.aclose()
            raise self._unavailable(exc) from exc

    # ---- responses -------------------------------------------------------------------------

    def _parse_completion(self, raw: bytes, params: ChatParams) -> ChatResult:
        try:
            data = json.loads(raw)
        except ValueError:
            raise self._bad_response("a body that is not JSON", raw) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
            raise self._bad_response("JSON without choices[0].message", raw)
        choice = choices[0]
        return ChatResult(content=choice["message"].get("content") or "",
                          model=data.get("model") or params.model,
                          finish_reason=choice.get("finish_reason") or "stop",
                          usage=_usage(data.get("usage")))

    def _parse_chunk(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self._bad_response("a stream event that is not JSON", data.encode()) from None
        if not isinstance(chunk, dict):
            raise self._bad_response("a stream event that is not a JSON object", data.encode())
        if isinstance(chunk.get("error"), dict):  # some upstreams report failures inside the stream
            error = chunk["error"]
            raise UpstreamError(f"model upstream {self.base_url} failed mid-stream: {error.get('message')}",
                                status=502, code=_error_code(chunk),
                                detail={"body": chunk, "retry_after": None})
        return chunk

    # ---- errors ----------------------------------------------------------------------------

    def _unavailable(self, exc: httpx.TransportError) -> UpstreamUnavailable:
        what = _describe(exc, self.timeout)
        return UpstreamUnavailable(f"model upstream {self.base_url} is unreachable: {what}")

    def _error_from(self, response: httpx.Response, raw: bytes) -> UpstreamError:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            reason = str(error["message"])
        elif isinstance(body, dict) and body.get("message"):
            reason = str(body["message"])
        else:
            text = body if isinstance(body, str) else json.dumps(body)
            reason = text[:_SNIPPET] or response.reason_phrase
        return UpstreamError(f"model upstream {self.base_url} answered {response.status_code}: {reason}",
                             status=response.status_code, code=_error_code(body),
                             detail={"body": body, "retry_after": response.headers.get("retry-after")})

    def _bad_response(self, what: str, raw: bytes) -> UpstreamError:
        snippet = raw[:_SNIPPET].decode("utf-8", "replace")
        return UpstreamError(f"model upstream {self.base_url} returned {what}", status=502,
                             code="upstream_bad_response", detail=snippet)

    def _stream_cut(self, what: str) -> UpstreamError:
        return UpstreamError(f"model upstream {self.base_url} cut the stream short: {what}",
                             status=502, code="upstream_stream_cut")


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event; multi-line data is joined, comments skipped."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            value = line[5:]
            lines.append(value.removeprefix(" "))
        # Other fields (event:, id:, retry:) and ":" comments carry nothing a completion needs.
    if lines:  # a last event without its blank line
        yield "\n".join(lines)


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(prompt_tokens=int(raw.get("prompt_tokens") or 0),
                 completion_tokens=int(raw.get("completion_tokens") or 0))


def _error_code(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code not in (None, "") else "upstream_error"


def _describe(exc: httpx.TransportError, timeout: float) -> str:
    """A few words on what went wrong, for a message a person reads."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timed out after {timeout:g}s"
    if isinstance(exc, httpx.ReadTimeout):
        return f"no data within {timeout:g}s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g}s"
    cause: BaseException | None = exc
    while cause is not None:  # httpx wraps the OSError that names the real reason
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host ({cause})"
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection closed ({exc})"
    return str(exc) or type(exc).__name__
