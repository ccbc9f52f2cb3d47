"""A minimal MCP client for workflow tools: one ``tools/call`` over MCP's streamable HTTP transport.

Each call opens its own session, as FastGPT's client does: ``initialize`` (the server may hand back an
``Mcp-Session-Id``, sent on every later message), the ``notifications/initialized`` notice, then
``tools/call``. An answer is JSON or a server-sent event stream holding the JSON-RPC response. Every
request goes through the one safe fetcher (:mod:`zhiku.knowledge.fetch`): a server on a private
address is refused unless ``ZHIKU_ALLOW_PRIVATE_URLS``. Errors are domain errors: ``mcp_error`` for a
JSON-RPC error or an answer that is not one, the fetcher's codes for transport failures.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from zhiku import __version__, sse
from zhiku.errors import UpstreamError
from zhiku.knowledge.fetch import FetchedPage, FetchPolicy, FetchRequest, fetch

PROTOCOL_VERSION = "2025-03-26"
_ids = itertools.count(1)


def _message(page: FetchedPage, request_id: int) -> dict[str, Any] | None:
    """The JSON-RPC response with ``request_id`` in an answer (a JSON body, or one of its events)."""
    if page.content_type == "text/event-stream":
        splitter = sse.EventSplitter()
        blocks = splitter.feed(page.body) + [splitter.rest()]
        bodies = [data for block in blocks if block and (data := sse.event_data(block)) is not None]
    else:
        bodies = [page.body]
    for body in bodies:
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(item, dict) and item.get("id") == request_id:
                return item
    return None


class McpSession:
    def __init__(self, url: str, headers: dict[str, str], policy: FetchPolicy) -> None:
        self.url = url
        self.headers = headers
        self.policy = policy
        self.session_id: str | None = None

    async def _post(self, payload: dict[str, Any]) -> FetchedPage:
        headers = {**self.headers, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if payload.get("method") != "initialize":
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        body = json.dumps(payload, ensure_ascii=False).encode()
        return await fetch(self.url, self.policy,
                           request=FetchRequest(method="POST", headers=tuple(headers.items()), body=body))

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        request_id = next(_ids)
        page = await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        self.session_id = page.headers.get("mcp-session-id") or self.session_id
        answer = _message(page, request_id)
        if answer is None:
            raise UpstreamError(f"the MCP server {self.url} answered {method} with no JSON-RPC response",
                                code="mcp_error", status=502)
        if isinstance(answer.get("error"), dict):
            raise UpstreamError(f"the MCP server {self.url} refused {method}: {answer['error'].get('message')}",
                                code="mcp_error", status=502, detail={"error": answer["error"]})
        return answer.get("result")

    async def notify(self, method: str) -> None:
        await self._post({"jsonrpc": "2.0", "method": method})


async def call_tool(url: str, headers: dict[str, str], name: str, arguments: dict[str, Any],
                    policy: FetchPolicy) -> Any:
    """The ``tools/call`` result (``{content: [...], isError?}``) of tool ``name`` on the server at ``url``."""
    session = McpSession(url, headers, policy)
    await session.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                         "clientInfo": {"name": "zhiku", "version": __version__}})
    await session.notify("notifications/initialized")
    return await session.request("tools/call", {"name": name, "arguments": arguments})
