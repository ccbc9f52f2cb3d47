"""The tools node through the chat API: the fake upstream scripts tool calls (streamed and whole), the
tools are an HTTP request to a real local server, a text template and the tools of a real local MCP
server (streamable HTTP), and the model's second request carries the tools' real results. A raw SSE
client reads FastGPT's toolCall/toolParams/toolResponse events; the official openai client streams the
same app."""
# The HTTP target and the server allowed to reach it are test_workflow_nodes_more's module fixtures,
# imported by name (pytest finds fixtures that way), so the tests' parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.integration.helpers import serving
from tests.integration.test_workflow_chat import app_key, chat, fixture, oa, sse, streamed_text
from tests.integration.test_workflow_nodes_more import (  # noqa: F401
    _Echo,
    post,
    private_client,
    private_server,
    target,
)

pytestmark = pytest.mark.integration

ANSWER = "Sunny in Lisbon. Hello, Ana! (warm) "
AFTER = "(city checked: Lisbon)"  # the answerNode after the agent reads the HTTP tool's output


def script_weather_and_greeting(fake) -> None:
    """One answer calling both tools, then the final answer."""
    fake.tool_calls([{"name": "weather", "arguments": {"city": "Lisbon"}, "id": "call_w"},
                     {"name": "greet", "arguments": {"name": "Ana"}, "id": "call_g"}])
    fake.reply(ANSWER)


def text_of(body: dict[str, Any]) -> str:
    """A whole answer's text: with detail an answer with tool calls is FastGPT's item list."""
    content = body["choices"][0]["message"]["content"]
    if isinstance(content, str):
        return content
    return "".join(item["text"]["content"] for item in content if item["type"] == "text")


def tools_item(response_data: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in response_data if r["moduleType"] == "tools")


def assert_model_saw_the_tools_and_their_results(fake) -> None:
    first, second = (r.json for r in fake.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["weather", "greet", "finish"]
    weather = first["tools"][0]["function"]
    assert weather["description"] == "Looks up today's weather for a city"
    assert weather["parameters"] == {"type": "object", "required": ["city"],
                                     "properties": {"city": {"type": "string", "description": "The city to look up"}}}
    assert first["tools"][1]["function"]["parameters"]["properties"]["style"]["enum"] == ["warm", "formal"]
    assert first["tool_choice"] == "auto"
    assert first["messages"][0] == {"role": "system", "content": "You help coffee drinkers. Use the tools."}
    assert first["messages"][-1] == {"role": "user", "content": "Weather in Lisbon, and greet Ana"}
    called, weather_result, greeting = second["messages"][-3:]
    assert called["role"] == "assistant" and called["content"] is None
    assert called["tool_calls"] == [
        {"id": "call_w", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}},
        {"id": "call_g", "type": "function", "function": {"name": "greet", "arguments": '{"name": "Ana"}'}}]
    assert weather_result["role"] == "tool" and weather_result["tool_call_id"] == "call_w"
    # the HTTP tool's JSONPath outputs, read from the real server's answer
    assert json.loads(weather_result["content"]) == {"$.query.city": "Lisbon", "$.method": "GET"}
    assert greeting == {"role": "tool", "tool_call_id": "call_g", "content": "Hello, Ana! (warm)"}
    assert second["tools"] == first["tools"]


def test_tools_stream_their_calls_and_the_answer_as_fastgpt_events(private_server, private_client, target,
                                                                   fake) -> None:
    key = app_key(private_client, "tools_agent")
    _Echo.seen.clear()
    fake.set_default(chunk_size=5)
    script_weather_and_greeting(fake)
    frames = sse(private_server, key, "Weather in Lisbon, and greet Ana", detail=True, variables={"base": target})
    assert streamed_text(frames) == ANSWER + AFTER
    assert _Echo.seen[-1]["method"] == "GET" and _Echo.seen[-1]["query"] == {"city": "Lisbon"}
    assert_model_saw_the_tools_and_their_results(fake)

    tool_frames = [(e, d["tool"]) for e, d in frames if e in ("toolCall", "toolParams", "toolResponse")]
    calls = [t for e, t in tool_frames if e == "toolCall"]
    assert calls == [{"id": "call_w", "toolName": "Weather lookup", "toolAvatar": "core/workflow/template/httpRequest468",
                      "functionName": "weather", "params": "", "response": ""},
                     {"id": "call_g", "toolName": "Greeting writer", "toolAvatar": "core/workflow/template/textEditor",
                      "functionName": "greet", "params": "", "response": ""}]
    for call_id, arguments in (("call_w", '{"city": "Lisbon"}'), ("call_g", '{"name": "Ana"}')):
        pieces = [t for e, t in tool_frames if e == "toolParams" and t["id"] == call_id]
        assert len(pieces) > 1 and "".join(t["params"] for t in pieces) == arguments
        assert all(t["toolName"] == "" and t["response"] == "" and "functionName" not in t for t in pieces)
    responses = {t["id"]: t["response"] for e, t in tool_frames if e == "toolResponse"}
    assert json.loads(responses["call_w"]) == {"$.query.city": "Lisbon", "$.method": "GET"}
    assert responses["call_g"] == "Hello, Ana! (warm)"
    names = [e for e, _ in frames]
    # the calls stream before the tool runs answer, and all of it before the final answer
    assert names.index("toolCall") < names.index("toolResponse") < names.index("answer", names.index("toolResponse"))
    assert ("flowNodeStatus", {"status": "running", "name": "工具调用"}) in frames

    agent = tools_item(next(d for e, d in frames if e == "flowResponses"))
    assert [c["functionName"] for c in agent["toolCalls"]] == ["weather", "greet"]
    assert all(c["runningTime"] >= 0 for c in agent["toolCalls"])
    assert {d["nodeId"] for d in agent["toolDetail"]} == {"weather", "greet"}
    assert agent["toolCallInputTokens"] > 0 and agent["toolCallOutputTokens"] > 0
    assert agent["model"] == "fake-chat" and agent["finishReason"] == "stop"


def test_tools_without_stream_return_response_data_with_the_calls(private_server, private_client, target,
                                                                 fake) -> None:
    key = app_key(private_client, "tools_agent")
    script_weather_and_greeting(fake)
    body = chat(private_server, key, "Weather in Lisbon, and greet Ana", detail=True, variables={"base": target})
    # with detail an answer of several items is FastGPT's item list: the calls, then the text
    content = body["choices"][0]["message"]["content"]
    assert [item["type"] for item in content] == ["tool", "text"], content
    assert [c["functionName"] for c in content[0]["tools"]] == ["weather", "greet"]
    assert content[1] == {"type": "text", "text": {"content": ANSWER + AFTER}}
    assert_model_saw_the_tools_and_their_results(fake)
    assert all(r.json["stream"] is False for r in fake.requests)
    agent = tools_item(body["responseData"])
    weather = next(c for c in agent["toolCalls"] if c["id"] == "call_w")
    assert weather["toolName"] == "Weather lookup" and weather["params"] == '{"city": "Lisbon"}'
    assert json.loads(weather["response"]) == {"$.query.city": "Lisbon", "$.method": "GET"}
    http = next(d for d in agent["toolDetail"] if d["moduleType"] == "httpRequest468")
    assert http["params"] == {"city": "Lisbon"}
    text = next(d for d in agent["toolDetail"] if d["moduleType"] == "textEditor")
    assert text["textOutput"] == "Hello, Ana! (warm)"
    # the turn's usage counts both model calls
    assert body["usage"]["prompt_tokens"] == agent["toolCallInputTokens"] > 0
    assert agent["inputTokens"] == agent["toolCallInputTokens"]


def test_a_stop_tool_ends_the_loop_without_asking_the_model_again(private_server, private_client, fake) -> None:
    key = app_key(private_client, "tools_agent")
    fake.tool_call("finish", {"reason": "user left"}, call_id="call_f", content="Goodbye! ")
    frames = sse(private_server, key, "bye", detail=True)
    assert len(fake.requests) == 1  # no second model call after stopTool
    assert streamed_text(frames) == "Goodbye! (city checked: )"
    response = next(d["tool"] for e, d in frames if e == "toolResponse")
    assert response["id"] == "call_f" and json.loads(response["response"]) == {"reason": "user left"}
    agent = tools_item(next(d for e, d in frames if e == "flowResponses"))
    by_type = {d["moduleType"]: d for d in agent["toolDetail"]}
    assert by_type["toolParams"]["toolParamsResult"] == {"reason": "user left"}
    assert by_type["stopTool"]["toolStop"] is True


def test_a_model_that_never_stops_calling_tools_hits_the_round_limit(private_server, private_client, fake) -> None:
    key = app_key(private_client, "tools_agent")
    fake.set_default(tool_calls=({"id": "call_again", "name": "greet", "arguments": '{"name": "Bo"}'},),
                     finish_reason="tool_calls")
    r = post(private_server, key, "loop forever")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "tools_round_limit"
    assert "after 30 rounds" in r.json()["error"]["message"] and "工具调用" in r.json()["error"]["message"]
    assert len(fake.requests) == 30
    last = fake.requests[-1].json["messages"]
    assert sum(1 for m in last if m["role"] == "tool") == 29
    assert last[-1] == {"role": "tool", "tool_call_id": "call_again", "content": "Hello, Bo! (warm)"}


def test_a_tool_branch_that_asks_the_user_pauses_the_agent(private_server, private_client, fake) -> None:
    # Once refused (422 tools_interactive); the pause and resume are test_workflow_tools_interactive's.
    graph = fixture("tools_agent.json")
    graph["nodes"].append(next(n for n in fixture("interactive_order.json")["nodes"] if n["flowNodeType"] == "userSelect"))
    stop = next(e for e in graph["edges"] if e["target"] == "stop")
    stop.update(target="sel", targetHandle="sel-target-left")
    key = app_key(private_client, "tools_agent", graph)
    fake.tool_call("finish", {"reason": "ask"}, call_id="call_ask")
    r = post(private_server, key, "ask me", chatId=unique("tools-ask"), detail=True)
    assert r.status_code == 200, r.text
    asked = r.json()["choices"][0]["message"]["content"][-1]["interactive"]
    assert asked["type"] == "toolChildrenInteractive" and asked["params"]["toolParams"]["toolCallId"] == "call_ask"
    assert asked["params"]["childrenResponse"]["entryNodeIds"] == ["sel"]


def test_the_official_openai_client_streams_a_tools_app(private_server, private_client, target, fake) -> None:
    key = app_key(private_client, "tools_agent")
    script_weather_and_greeting(fake)
    stream = oa(private_server, key).chat.completions.create(
        model="x", stream=True, messages=[{"role": "user", "content": "Weather in Lisbon, and greet Ana"}],
        extra_body={"variables": {"base": target}})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER + AFTER
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(fake.requests) == 2


def test_a_tools_node_without_a_model_or_with_a_bad_tool_is_refused_naming_it(private_client) -> None:
    graph = fixture("tools_agent.json")
    agent = next(n for n in graph["nodes"] if n["nodeId"] == "agent")
    next(i for i in agent["inputs"] if i["key"] == "model")["value"] = ""
    graph["edges"].append({"source": "agent", "target": "448745", "sourceHandle": "selectedTools",
                           "targetHandle": "selectedTools"})
    r = private_client.post("/api/apps/import", params={"name": unique("tools-bad")}, json=graph)
    assert r.status_code == 400 and r.json()["code"] == "workflow_invalid_node"
    problems = [p["message"] for p in r.json()["detail"]["problems"]]
    assert 'node "工具调用" (tools, id agent): it has no model' in problems
    assert any("its tool handle is connected to node \"流程开始\" (workflowStart, id 448745)" in p for p in problems)


def test_a_share_link_shows_tool_events_only_with_node_status(private_server, private_client, fake) -> None:
    r = private_client.post("/api/apps/import", params={"name": unique("tools-share")}, json=fixture("tools_agent.json"))
    assert r.status_code == 201, r.text
    for show, expected in ((False, set()), (True, {"flowNodeStatus", "toolCall", "toolParams", "toolResponse"})):
        link = private_client.post("/api/support/outLink/create", json={
            "appId": str(r.json()["id"]), "type": "share", "name": unique("tools"), "showNodeStatus": show})
        assert link.status_code == 200, link.text
        fake.tool_call("finish", {"reason": "bye"}, call_id="call_f")
        with httpx.stream("POST", private_server.base_url + "/api/v1/chat/completions", timeout=60, json={
                "shareId": link.json()["data"], "outLinkUid": "visitor-t", "stream": True, "detail": True,
                "messages": [{"role": "user", "content": "bye"}]}) as streamed:  # a visitor: no credentials
            assert streamed.status_code == 200
            names = {line[7:] for line in streamed.iter_lines() if line.startswith("event: ")}
        assert names & {"flowNodeStatus", "toolCall", "toolParams", "toolResponse"} == expected
        assert "answer" in names


def test_tool_events_only_with_detail(private_server, private_client, target, fake) -> None:
    key = app_key(private_client, "tools_agent")
    script_weather_and_greeting(fake)
    frames = sse(private_server, key, "Weather in Lisbon, and greet Ana", variables={"base": target})
    assert {e for e, _ in frames} == {""}
    assert streamed_text(frames) == ANSWER + AFTER
    assert not any(isinstance(d, dict) and "tool" in d for _, d in frames)


# ---- the calls stored with the answer (fact sheet §3.5) ------------------------------------------------

def records(server, key: str | None, chat_id: str, **caller: Any) -> list[dict[str, Any]]:
    r = httpx.post(server.base_url + "/api/core/chat/getPaginationRecords", timeout=30,
                   headers={"Authorization": f"Bearer {key}"} if key else {},
                   json={"chatId": chat_id, "offset": 0, "pageSize": 20, **caller})
    assert r.status_code == 200 and r.json()["code"] == 200, r.text
    return r.json()["data"]["list"]


def test_the_tool_calls_are_stored_between_the_answers_text_as_fastgpt_stores_them(private_server, private_client,
                                                                                  target, fake) -> None:
    key = app_key(private_client, "tools_agent")
    chat_id = unique("tools-chat")
    fake.set_default(chunk_size=4)
    script_weather_and_greeting(fake)  # both calls in one model answer, no text before them
    frames = sse(private_server, key, "Weather in Lisbon, and greet Ana", detail=True, chatId=chat_id,
                 variables={"base": target})
    assert streamed_text(frames) == ANSWER + AFTER
    fake.tool_call("finish", {"reason": "user left"}, call_id="call_f", content="Goodbye! ")  # text, then a call
    body = chat(private_server, key, "bye", chatId=chat_id)
    assert body["choices"][0]["message"]["content"] == "Goodbye! (city checked: )"

    first_q, first, second_q, second = records(private_server, key, chat_id)
    assert [first_q["obj"], first["obj"], second_q["obj"], second["obj"]] == ["Human", "AI", "Human", "AI"]
    assert [v["type"] for v in first["value"]] == ["tool", "text"]
    weather, greet = first["value"][0]["tools"]
    assert weather == {"id": "call_w", "toolName": "Weather lookup", "toolAvatar": "core/workflow/template/httpRequest468",
                       "functionName": "weather", "params": '{"city": "Lisbon"}', "response": weather["response"]}
    assert json.loads(weather["response"]) == {"$.query.city": "Lisbon", "$.method": "GET"}  # the real result
    assert greet["toolName"] == "Greeting writer" and greet["params"] == '{"name": "Ana"}'
    assert greet["response"] == "Hello, Ana! (warm)"
    assert first["value"][1] == {"type": "text", "text": {"content": ANSWER + AFTER}}
    # without stream: the text before the call, the call, the text after it
    assert [v["type"] for v in second["value"]] == ["text", "tool", "text"]
    assert second["value"][0]["text"]["content"] == "Goodbye! "
    [stop] = second["value"][1]["tools"]
    assert stop["id"] == "call_f" and stop["functionName"] == "finish" and stop["toolName"] == "Say goodbye"
    assert stop["params"] == '{"reason": "user left"}' and json.loads(stop["response"]) == {"reason": "user left"}
    assert second["value"][2]["text"]["content"] == "(city checked: )"


def test_a_share_link_that_hides_node_status_hides_the_stored_calls_too(private_server, private_client, fake) -> None:
    r = private_client.post("/api/apps/import", params={"name": unique("tools-share")}, json=fixture("tools_agent.json"))
    assert r.status_code == 201, r.text
    for show in (False, True):
        link = private_client.post("/api/support/outLink/create", json={
            "appId": str(r.json()["id"]), "type": "share", "name": unique("tools"), "showNodeStatus": show})
        assert link.status_code == 200, link.text
        visitor = {"shareId": link.json()["data"], "outLinkUid": "visitor-r"}
        chat_id = unique("share-tools")
        fake.tool_call("finish", {"reason": "bye"}, call_id="call_f", content="Bye. ")
        answered = httpx.post(private_server.base_url + "/api/v1/chat/completions", timeout=60, json={
            **visitor, "chatId": chat_id, "messages": [{"role": "user", "content": "bye"}]})
        assert answered.status_code == 200, answered.text
        answer = records(private_server, None, chat_id, **visitor)[-1]
        assert [v["type"] for v in answer["value"]] == (["text", "tool", "text"] if show else ["text", "text"])
        assert "".join(v["text"]["content"] for v in answer["value"] if v["type"] == "text") == "Bye. (city checked: )"


# ---- MCP tools (tool / toolSet) ----------------------------------------------------------------------

class _Mcp(BaseHTTPRequestHandler):
    """An MCP server on streamable HTTP: ``initialize`` answers JSON with a session id, notifications
    202, ``tools/call`` (tools ``add`` and ``shout``) an event stream; a call without the session or
    the token is refused."""

    seen: list[dict[str, Any]] = []

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        _Mcp.seen.append({"message": message, "session": self.headers.get("mcp-session-id"),
                          "authorization": self.headers.get("authorization"), "accept": self.headers.get("accept")})
        if self.headers.get("authorization") != "Bearer mcp-token":
            self._send(401, b"", "text/plain")
            return
        if "id" not in message:
            self._send(202, b"", "text/plain")
            return
        if message["method"] == "initialize":
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "calc", "version": "1"}}
            self._send(200, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode(),
                       "application/json", {"Mcp-Session-Id": "sess-42"})
            return
        if self.headers.get("mcp-session-id") != "sess-42":
            self._send(400, b"no session", "text/plain")
            return
        name, args = message["params"]["name"], message["params"]["arguments"]
        text = str(args["a"] + args["b"]) if name == "add" else str(args["text"]).upper()
        answer = {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [{"type": "text", "text": text}]}}
        self._send(200, f"event: message\ndata: {json.dumps(answer)}\n\n".encode(), "text/event-stream")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with serving(_Mcp) as url:
        yield f"{url}/mcp"


def mcp_graph(url: str) -> dict[str, Any]:
    return json.loads(json.dumps(fixture("tools_mcp.json")).replace("http://mcp.invalid/mcp", url))


def test_mcp_tools_of_a_tool_set_and_a_single_tool_are_called(private_server, private_client, mcp_url,
                                                              fake) -> None:
    key = app_key(private_client, "tools_mcp", mcp_graph(mcp_url))
    _Mcp.seen.clear()
    fake.tool_calls([{"name": "calc0", "arguments": {"a": 2, "b": 3}, "id": "call_add"},
                     {"name": "shouter", "arguments": {"text": "hi there"}, "id": "call_shout"}])
    fake.reply("2 + 3 = 5, and HI THERE")
    body = chat(private_server, key, "Add 2 and 3, then shout hi there", detail=True)
    assert text_of(body) == "2 + 3 = 5, and HI THERE"
    first, second = (r.json for r in fake.requests)
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert list(offered) == ["calc0", "calc1", "shouter"]
    assert offered["calc0"]["description"] == "Adds two numbers"
    assert offered["calc0"]["parameters"]["required"] == ["a", "b"]
    assert offered["shouter"]["description"] == "Shouts a text back"
    results = {m["tool_call_id"]: json.loads(m["content"]) for m in second["messages"] if m["role"] == "tool"}
    assert results == {"call_add": {"content": [{"type": "text", "text": "5"}]},
                       "call_shout": {"content": [{"type": "text", "text": "HI THERE"}]}}
    calls = [s for s in _Mcp.seen if s["message"].get("method") == "tools/call"]
    assert [c["message"]["params"] for c in calls] == [{"name": "add", "arguments": {"a": 2, "b": 3}},
                                                       {"name": "shout", "arguments": {"text": "hi there"}}]
    assert all(c["session"] == "sess-42" for c in calls)
    assert [s["message"].get("method") for s in _Mcp.seen[:3]] == ["initialize", "notifications/initialized",
                                                                    "tools/call"]
    assert all(s["authorization"] == "Bearer mcp-token" and "text/event-stream" in s["accept"] for s in _Mcp.seen)
    agent = tools_item(body["responseData"])
    ran = [d for d in agent["toolDetail"] if d["moduleType"] == "tool"]
    assert [d["moduleName"] for d in ran] == ["Calculator/add", "Shouter"]
    assert ran[0]["toolRes"] == {"content": [{"type": "text", "text": "5"}]}


def test_an_mcp_error_reaches_the_model_as_the_tool_result(private_server, private_client, mcp_url, fake) -> None:
    graph = mcp_graph(mcp_url)
    shouter = next(n for n in graph["nodes"] if n["nodeId"] == "shouter")
    shouter["inputs"][0]["value"]["headerSecret"] = {"Authorization": {"value": "Bearer wrong", "secret": ""}}
    key = app_key(private_client, "tools_mcp", graph)
    fake.tool_call("shouter", {"text": "x"}, call_id="call_bad")
    fake.reply("The shouter is broken.")
    body = chat(private_server, key, "shout x", detail=True)
    assert text_of(body) == "The shouter is broken."
    message = next(m for m in fake.requests[1].json["messages"] if m["role"] == "tool")
    assert message["tool_call_id"] == "call_bad" and message["content"].startswith("error: ")
    assert "401" in message["content"]


def test_fastgpt_system_tools_and_sets_without_a_server_are_refused_naming_them(private_client) -> None:
    graph = mcp_graph("http://127.0.0.1:9/mcp")
    shouter = next(n for n in graph["nodes"] if n["nodeId"] == "shouter")
    shouter["inputs"] = []
    shouter["toolConfig"] = {"systemTool": {"toolId": "community-fetchUrl"}}
    calc = next(n for n in graph["nodes"] if n["nodeId"] == "calc")
    calc["toolConfig"] = {"mcpToolSet": {"toolId": "6800000000000000000000aa"}}
    r = private_client.post("/api/apps/import", params={"name": unique("tools-mcp-bad")}, json=graph)
    assert r.status_code == 400 and r.json()["code"] == "workflow_invalid_node"
    problems = [p["message"] for p in r.json()["detail"]["problems"]]
    assert any(p.startswith('node "Shouter" (tool, id shouter): it is a FastGPT system tool') for p in problems)
    assert any(p.startswith('node "Calculator" (toolSet, id calc): it names no MCP server') for p in problems)
