"""A minimal MCP client for workflow tools: one ``tools/call`` over MCP's streamable HTTP transport, or over
the older HTTP+SSE transport (protocol 2024-11-05) for servers that speak only that.

Each call opens its own session, as FastGPT's client does: ``initialize``, the ``notifications/initialized``
notice, then ``tools/call``.

- **Streamable HTTP**, tried first: every message is POSTed to the server URL. ``initialize`` may hand back
  an ``Mcp-Session-Id``, sent on every later message. An answer is JSON or a server-sent event stream
  holding the JSON-RPC response.
- **HTTP+SSE**, when the ``initialize`` POST is answered 400, 404 or 405 (the spec's backwards-compatibility
  rule; FastGPT's client, the TypeScript SDK, falls back the same way; a 401 or a 5xx is an error, not a
  sign of the old transport): the client GETs the server URL as an event stream, whose ``endpoint`` event
  names where to POST messages (resolved against the stream's URL; one on another origin is refused).
  POSTs are answered 202, and each response arrives on the stream as a ``message`` event, found by its id.

Every request, the stream included, goes through the one safe fetcher (:mod:`zhiku.knowledge.fetch`): a
server on a private address is refused unless ``ZHIKU_ALLOW_PRIVATE_URLS``, and sizes and times are bounded
by its policy; over SSE the endpoint event and each response must come within ``timeout_seconds``, as an
answer must over streamable HTTP. Errors are domain errors: ``mcp_error`` for a JSON-RPC error or an answer
that is not one, ``mcp_endpoint_refused``, ``mcp_timeout``, and the fetcher's codes for transport failures.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from zhiku import __version__, sse
from zhiku.errors import UpstreamError, UpstreamUnavailable
from zhiku.knowledge.fetch import EventStream, FetchedPage, FetchPolicy, FetchRequest, fetch, open_event_stream

PROTOCOL_VERSION = "2025-03-26"
OLD_TRANSPORT_STATUSES = frozenset({400, 404, 405})  # an initialize POST answered so: try HTTP+SSE
_ids = itertools.count(1)


def _found(bodies: list[bytes], request_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response with ``request_id`` among ``bodies`` (each a message or a batch)."""
    for body in bodies:
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(item, dict) and item.get("id") == request_id:
                return item
    return None


def _message(page: FetchedPage, request_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response with ``request_id`` in an answer (a JSON body, or one of its events)."""
    if page.content_type != "text/event-stream":
        return _found([page.body], request_id)
    splitter = sse.EventSplitter()
    blocks = splitter.feed(page.body) + [splitter.rest()]
    return _found([data for block in blocks if block and (data := sse.event_data(block)) is not None], request_id)


def _result(url: str, method: str, answer: dict[str, Any] | None) -> Any:
    if answer is None:
        raise UpstreamError(f"the MCP server {url} answered {method} with no JSON-RPC response",
                            code="mcp_error", status=502)
    if isinstance(answer.get("error"), dict):
        raise UpstreamError(f"the MCP server {url} refused {method}: {answer['error'].get('message')}",
                            code="mcp_error", status=502, detail={"error": answer["error"]})
    return answer.get("result")


async def _post(url: str, payload: dict[str, Any], headers: dict[str, str], policy: FetchPolicy) -> FetchedPage:
    headers = {**headers, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    body = json.dumps(payload, ensure_ascii=False).encode()
    return await fetch(url, policy, request=FetchRequest(method="POST", headers=tuple(headers.items()), body=body))


class McpSession:
    """Streamable HTTP: each message POSTed to the server URL, each answer in its HTTP response."""

    def __init__(self, url: str, headers: dict[str, str], policy: FetchPolicy) -> None:
        self.url = url
        self.headers = headers
        self.policy = policy
        self.session_id: str | None = None

    async def _post(self, payload: dict[str, Any]) -> FetchedPage:
        headers = dict(self.headers)
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if payload.get("method") != "initialize":
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        return await _post(self.url, payload, headers, self.policy)

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(_ids)
        page = await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        self.session_id = page.headers.get("mcp-session-id") or self.session_id
        return _result(self.url, method, _message(page, request_id))

    async def notify(self, method: str) -> None:
        await self._post({"jsonrpc": "2.0", "method": method})


@asynccontextmanager
async def _awaiting(url: str, what: str, policy: FetchPolicy) -> AsyncIterator[None]:
    """At most ``timeout_seconds`` for ``what`` to arrive on the stream; the stream's own timeouts (a read
    timeout as long, its deadline) mean the same."""
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            yield
    except TimeoutError:
        raise UpstreamUnavailable(f"the MCP server {url} sent no {what} within {policy.timeout_seconds:g} seconds",
                                  code="mcp_timeout", status=504) from None
    except UpstreamUnavailable as exc:
        if exc.code != "url_timeout":
            raise
        raise UpstreamUnavailable(f"the MCP server {url} sent no {what}: {exc}", code="mcp_timeout",
                                  status=504) from None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


class SseSession:
    """HTTP+SSE: each message POSTed to the stream's endpoint, each answer read from the stream."""

    def __init__(self, url: str, stream: EventStream, endpoint: str, headers: dict[str, str],
                 policy: FetchPolicy) -> None:
        self.url = url
        self.stream = stream
        self.endpoint = endpoint
        self.headers = headers
        self.policy = policy

    @classmethod
    async def start(cls, url: str, stream: EventStream, headers: dict[str, str], policy: FetchPolicy) -> SseSession:
        """The session on ``stream``, once its ``endpoint`` event has named where to POST."""
        data = None
        async with _awaiting(url, "endpoint event", policy):
            async for event in stream:
                if event.name == "endpoint":
                    data = event.data
                    break
        if data is None:
            raise UpstreamError(f"the MCP server {url} closed its event stream without an endpoint event",
                                code="mcp_error", status=502)
        base = httpx.URL(stream.url)
        try:
            endpoint = base.join(data.decode("utf-8").strip())
        except (UnicodeDecodeError, httpx.InvalidURL) as exc:
            raise UpstreamError(f"the MCP server {url} sent an endpoint that is not a URL ({exc})",
                                code="mcp_error", status=502) from None
        if _origin(endpoint) != _origin(base):
            raise UpstreamError(f"the MCP server {url} named an endpoint on another origin ({endpoint}); "
                                "refused", code="mcp_endpoint_refused", status=502, detail={"endpoint": str(endpoint)})
        return cls(url, stream, str(endpoint), headers, policy)

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(_ids)
        page = await _post(self.endpoint, {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
                           self.headers, self.policy)
        answer = _message(page, request_id)  # the spec answers 202 and sends it on the stream; some answer here
        if answer is None:
            async with _awaiting(self.url, f"answer to {method}", self.policy):
                async for event in self.stream:
                    if event.name == "message" and (answer := _found([event.data], request_id)):
                        break
            if answer is None:
                raise UpstreamError(f"the MCP server {self.url} closed its event stream before answering {method}",
                                    code="mcp_error", status=502)
        return _result(self.url, method, answer)

    async def notify(self, method: str) -> None:
        await _post(self.endpoint, {"jsonrpc": "2.0", "method": method}, self.headers, self.policy)


async def _initialize(session: McpSession | SseSession) -> None:
    await session.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                         "clientInfo": {"name": "zhiku", "version": __version__}})
    await session.notify("notifications/initialized")


def _speaks_old_transport(error: UpstreamError) -> bool:
    return error.code == "url_http_error" and isinstance(error.detail, dict) and \
        error.detail.get("status") in OLD_TRANSPORT_STATUSES


async def call_tool(url: str, headers: dict[str, str], name: str, arguments: dict[str, Any],
                    policy: FetchPolicy) -> Any:
    """The ``tools/call`` result (``{content: [...], isError?}``) of tool ``name`` on the server at ``url``."""
    call = {"name": name, "arguments": arguments}
    session = McpSession(url, headers, policy)
    try:
        await _initialize(session)
    except UpstreamError as refused:
        if not _speaks_old_transport(refused):
            raise
        async with AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(open_event_stream(url, policy,
                                                                           headers=tuple(headers.items())))
            except UpstreamError as exc:
                if exc.code not in ("url_http_error", "url_not_event_stream"):
                    raise
                status = refused.detail["status"]
                raise UpstreamError(f"the MCP server {url} answered initialize with HTTP {status}, and is no "
                                    f"server of the older SSE transport either: {exc}", code="mcp_error",
                                    status=502, detail={"status": status, "sse": exc.code}) from None
            old = await SseSession.start(url, stream, headers, policy)
            await _initialize(old)
            return await old.request("tools/call", call)
    return await session.request("tools/call", call)
