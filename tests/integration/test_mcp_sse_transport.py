"""MCP tools on servers that speak only the older HTTP+SSE transport (tests/fake_mcp_sse.py, on 127.0.0.1):
the client falls back from streamable HTTP when the initialize POST is answered 400, 404 or 405 and only
then, POSTs to the endpoint the stream names (same origin only) and reads each answer from the stream; a
stream with no endpoint, an answer that never comes, a private address, an oversized event. The last test
calls both tools of the fixture workflow through the chat API (it needs the database, the rest do not)."""
# The server allowed to reach local addresses is test_workflow_nodes_more's module fixture, imported by
# name (pytest finds fixtures that way), so the tests' parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.fake_mcp_sse import TOKEN, SseMcpServer, sse_mcp_server
from tests.integration.test_workflow_chat import app_key, chat, fixture
from tests.integration.test_workflow_nodes_more import private_client, private_server  # noqa: F401
from tests.integration.test_workflow_tools import text_of, tools_item
from zhiku.apps.nodes._mcp import call_tool
from zhiku.errors import ZhikuError
from zhiku.knowledge.fetch import FetchPolicy

ALLOWED = FetchPolicy(allow_private=True, timeout_seconds=5, deadline_seconds=20)


@pytest.fixture(scope="module")
def module_server() -> Iterator[SseMcpServer]:
    with sse_mcp_server() as httpd:
        yield httpd


@pytest.fixture
def server(module_server: SseMcpServer) -> SseMcpServer:
    module_server.reset()
    return module_server


async def add(server: SseMcpServer, policy: FetchPolicy = ALLOWED) -> object:
    return await call_tool(server.url, {"Authorization": TOKEN}, "add", {"a": 2, "b": 3}, policy)


async def refusal(server: SseMcpServer, policy: FetchPolicy = ALLOWED) -> ZhikuError:
    with pytest.raises(ZhikuError) as caught:
        await add(server, policy)
    return caught.value


async def test_a_tool_is_called_over_the_sse_transport(server: SseMcpServer) -> None:
    assert await add(server) == {"content": [{"type": "text", "text": "5"}]}
    steps = [(s["method"], s["path"].split("?")[0], (s["message"] or {}).get("method")) for s in server.seen]
    assert steps == [("POST", "/sse", "initialize"),  # streamable HTTP first, answered 405
                     ("GET", "/sse", None),
                     ("POST", "/messages", "initialize"),
                     ("POST", "/messages", "notifications/initialized"),
                     ("POST", "/messages", "tools/call")]
    assert server.seen[-1]["message"]["params"] == {"name": "add", "arguments": {"a": 2, "b": 3}}
    assert all(s["authorization"] == TOKEN for s in server.seen)
    assert server.seen[1]["accept"] == "text/event-stream"


@pytest.mark.parametrize("status", [400, 404, 405])
async def test_the_fallback_follows_a_400_404_or_405(server: SseMcpServer, status: int) -> None:
    server.post_status = status
    assert await add(server) == {"content": [{"type": "text", "text": "5"}]}


@pytest.mark.parametrize("status", [500, 401, 403])
async def test_other_statuses_are_errors_not_a_fallback(server: SseMcpServer, status: int) -> None:
    server.post_status = status
    error = await refusal(server)
    assert error.code == "url_http_error" and error.detail == {"status": status}
    assert [s["method"] for s in server.seen] == ["POST"]  # no event stream was opened


@pytest.mark.parametrize("endpoint", ["/messages?session={session}", "messages?session={session}",
                                      "http://127.0.0.1:{port}/messages?session={session}"])
async def test_an_endpoint_relative_or_absolute_on_the_same_origin_is_used(server: SseMcpServer,
                                                                          endpoint: str) -> None:
    server.endpoint = endpoint.replace("{port}", str(server.server_address[1]))
    assert await add(server) == {"content": [{"type": "text", "text": "5"}]}


@pytest.mark.parametrize("endpoint", ["http://localhost:{port}/messages?session={session}",
                                      "http://127.0.0.1:1/messages?session={session}",
                                      "https://127.0.0.1:{port}/messages?session={session}",
                                      "//evil.example/messages?session={session}"])
async def test_an_endpoint_on_another_origin_is_refused(server: SseMcpServer, endpoint: str) -> None:
    server.endpoint = endpoint.replace("{port}", str(server.server_address[1]))
    error = await refusal(server)
    assert error.code == "mcp_endpoint_refused" and server.url in error.message and "another origin" in error.message
    assert not any(s["path"].startswith("/messages") for s in server.seen)


async def test_no_endpoint_event_within_the_timeout_is_an_error_naming_the_server(server: SseMcpServer) -> None:
    server.endpoint = None  # the stream stays open, sending only keep-alive comments
    started = time.monotonic()
    error = await refusal(server, FetchPolicy(allow_private=True, timeout_seconds=0.5, deadline_seconds=20))
    assert error.code == "mcp_timeout" and error.status == 504
    assert error.message == f"the MCP server {server.url} sent no endpoint event within 0.5 seconds"
    assert time.monotonic() - started < 3


async def test_an_answer_that_never_comes_is_an_error_naming_the_server(server: SseMcpServer) -> None:
    server.answers = False
    error = await refusal(server, FetchPolicy(allow_private=True, timeout_seconds=0.5, deadline_seconds=20))
    assert error.code == "mcp_timeout"
    assert error.message == f"the MCP server {server.url} sent no answer to initialize within 0.5 seconds"


async def test_a_private_address_is_refused_without_zhiku_allow_private_urls(server: SseMcpServer) -> None:
    error = await refusal(server, FetchPolicy())
    assert error.code == "url_private_address" and "ZHIKU_ALLOW_PRIVATE_URLS" in error.message
    assert server.seen == []


async def test_an_oversized_event_is_refused(server: SseMcpServer) -> None:
    server.first_event = b"event: message\ndata: " + b"x" * 5000 + b"\n\n"
    error = await refusal(server, FetchPolicy(allow_private=True, timeout_seconds=5, max_bytes=2000))
    assert error.code == "url_too_large" and server.url in error.message


async def test_a_url_that_is_neither_transport_is_an_error_naming_both_tries(server: SseMcpServer) -> None:
    server.stream_type = "text/html"
    error = await refusal(server)
    assert error.code == "mcp_error"
    assert error.message.startswith(f"the MCP server {server.url} answered initialize with HTTP 405, and is no "
                                    "server of the older SSE transport either: ")
    assert "not an event stream" in error.message


@pytest.mark.integration
def test_a_workflow_calls_the_tools_of_an_sse_transport_server(private_server, private_client, server,
                                                               fake) -> None:
    graph = json.loads(json.dumps(fixture("tools_mcp.json")).replace("http://mcp.invalid/mcp", server.url))
    key = app_key(private_client, "tools_mcp", graph)
    fake.tool_calls([{"name": "calc0", "arguments": {"a": 2, "b": 3}, "id": "call_add"},
                     {"name": "shouter", "arguments": {"text": "hi there"}, "id": "call_shout"}])
    fake.reply("2 + 3 = 5, and HI THERE")
    body = chat(private_server, key, "Add 2 and 3, then shout hi there", detail=True)
    assert text_of(body) == "2 + 3 = 5, and HI THERE"
    results = {m["tool_call_id"]: json.loads(m["content"])
               for m in fake.requests[1].json["messages"] if m["role"] == "tool"}
    assert results == {"call_add": {"content": [{"type": "text", "text": "5"}]},
                       "call_shout": {"content": [{"type": "text", "text": "HI THERE"}]}}
    calls = [s["message"]["params"] for s in server.seen if (s["message"] or {}).get("method") == "tools/call"]
    assert sorted(calls, key=lambda c: c["name"]) == [{"name": "add", "arguments": {"a": 2, "b": 3}},
                                                       {"name": "shout", "arguments": {"text": "hi there"}}]
    ran = [d for d in tools_item(body["responseData"])["toolDetail"] if d["moduleType"] == "tool"]
    assert [d["toolRes"] for d in ran] == [{"content": [{"type": "text", "text": "5"}]},
                                           {"content": [{"type": "text", "text": "HI THERE"}]}]
