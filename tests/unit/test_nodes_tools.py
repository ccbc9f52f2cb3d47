"""The tools node's pure parts: a tool's definition from its node, a call's arguments on the node, a tool
branch's result for the model; MCP tool sets expanded, headers, JSON-RPC answers found in a body."""

from __future__ import annotations

import json

import pytest

from zhiku.apps.nodes._mcp import _message
from zhiku.apps.nodes.mcp_tool import expand_toolset, headers_of
from zhiku.apps.nodes.tools import (
    PREVIEW_CHARS,
    message_from_openai,
    pause_payload,
    paused_call,
    preview,
    result_text,
    tool_definition,
    tool_nodes,
    tool_result,
    with_arguments,
)
from zhiku.apps.workflow.graph import Node, parse_node, parse_workflow
from zhiku.chat_model import ChatMessage, ToolCall
from zhiku.errors import InvalidInput
from zhiku.knowledge.fetch import FetchedPage


def _node(inputs: list[dict], outputs: list[dict], kind: str = "code") -> Node:
    return parse_node({"nodeId": "n1", "flowNodeType": kind, "name": "Tool", "intro": "Does it",
                       "inputs": inputs, "outputs": outputs}, 0)


def test_tool_definition_from_inputs_with_a_tool_description() -> None:
    node = _node([{"key": "q", "valueType": "string", "toolDescription": "the query", "required": True},
                  {"key": "n", "valueType": "arrayNumber", "toolDescription": "counts"},
                  {"key": "mode", "valueType": "string", "toolDescription": "how", "enum": "a\nb\n"},
                  {"key": "code", "valueType": "string", "value": "x"}], [])
    definition = tool_definition(node)
    assert definition.name == "n1" and definition.description == "Does it"
    assert definition.parameters == {"type": "object", "required": ["q"], "properties": {
        "q": {"type": "string", "description": "the query"},
        "n": {"type": "array", "items": {"type": "number"}, "description": "counts"},
        "mode": {"type": "string", "description": "how", "enum": ["a", "b"]}}}


def test_a_tool_result_prefers_user_outputs_then_the_one_output() -> None:
    outputs = [{"id": "system_addOutputParam", "key": "system_addOutputParam", "type": "static"},
               {"id": "system_rawResponse", "key": "system_rawResponse", "type": "static"},
               {"id": "error", "key": "error", "type": "error"},
               {"id": "u1", "key": "upper", "type": "dynamic"}]
    node = _node([], outputs)
    assert tool_result(node, {"system_rawResponse": {"upper": "A"}, "u1": "A", "error": "x"}) == {"upper": "A"}
    assert tool_result(node, {"system_rawResponse": {"upper": "A"}}) == {"upper": "A"}
    assert tool_result(node, {}) is None
    undeclared = _node([], [], kind="toolParams")
    assert tool_result(undeclared, {"reason": "bye", "empty": ""}) == "bye"
    assert result_text(None) == "none" and result_text("text") == "text"
    assert json.loads(result_text({"a": [1]})) == {"a": [1]}
    long = "a" * PREVIEW_CHARS + "b" * 10 + "c" * PREVIEW_CHARS
    shown = preview(long)
    assert shown.startswith("a" * PREVIEW_CHARS) and shown.endswith("c" * PREVIEW_CHARS) and "b" not in shown
    assert preview("short") == "short"


def test_arguments_set_only_tool_parameters_and_add_unknown_keys() -> None:
    node = parse_node({"nodeId": "http", "flowNodeType": "httpRequest468", "name": "HTTP", "inputs": [
        {"key": "city", "valueType": "string", "toolDescription": "the city", "value": ""},
        {"key": "system_httpReqUrl", "valueType": "string", "value": "https://example.com/api"}]}, 0)
    workflow = parse_workflow({"nodes": [{"nodeId": "start", "flowNodeType": "workflowStart"}], "edges": []})
    called = with_arguments(workflow, node, {"city": "Lisbon", "system_httpReqUrl": "http://169.254.169.254/",
                                             "extra": 1})
    values = {i.key: i.value for i in called.by_id["http"].inputs}
    assert values == {"city": "Lisbon", "system_httpReqUrl": "https://example.com/api", "extra": 1}
    assert [n.node_id for n in called.nodes] == ["start", "http"]  # a tool not in the graph (a set's) joins it


TOOLSET = {"nodeId": "calc", "flowNodeType": "toolSet", "name": "Calc", "avatar": "a.svg", "inputs": [],
           "toolConfig": {"mcpToolSet": {"url": "https://mcp.example/mcp", "headerSecret": {
               "Authorization": {"value": "Bearer t", "secret": ""}}, "toolList": [
               {"name": "add", "description": "Adds", "inputSchema": {"type": "object", "properties": {
                   "a": {"type": "number"}}}},
               {"name": "ping"}, "junk"]}}}


def test_a_toolset_stands_for_its_tools() -> None:
    tools = expand_toolset(parse_node(TOOLSET, 0))
    assert [(t.node_id, t.kind, t.name, t.intro, t.avatar) for t in tools] == [
        ("calc0", "tool", "Calc/add", "Adds", "a.svg"), ("calc1", "tool", "Calc/ping", "", "a.svg")]
    assert tool_definition(tools[0]).parameters == {"type": "object", "properties": {"a": {"type": "number"}}}
    assert tool_definition(tools[1]).parameters == {"type": "object", "properties": {}}
    assert tools[0].value("toolData")["url"] == "https://mcp.example/mcp"
    older = {**TOOLSET, "toolConfig": {}, "inputs": [{"key": "toolSetData", "valueType": "object",
                                                      "value": TOOLSET["toolConfig"]["mcpToolSet"]}]}
    assert [t.node_id for t in expand_toolset(parse_node(older, 0))] == ["calc0", "calc1"]
    workflow = parse_workflow({"nodes": [{"nodeId": "agent", "flowNodeType": "tools"}, TOOLSET], "edges": [
        {"source": "agent", "target": "calc", "sourceHandle": "selectedTools", "targetHandle": "selectedTools"}]})
    assert list(tool_nodes(workflow.by_id["agent"], workflow)) == ["calc0", "calc1"]


def test_mcp_headers_take_values_and_refuse_fastgpt_encrypted_ones() -> None:
    assert headers_of({"headerSecret": {"Authorization": {"value": "Bearer t", "secret": ""}, "X-A": "b"}},
                      "n") == {"Authorization": "Bearer t", "X-A": "b"}
    assert headers_of({}, "n") == {}
    with pytest.raises(InvalidInput) as caught:
        headers_of({"headerSecret": {"Authorization": {"value": "", "secret": "a1b2"}}}, "node x")
    assert caught.value.code == "mcp_header_encrypted" and "Authorization" in caught.value.message


def _page(body: bytes, content_type: str) -> FetchedPage:
    return FetchedPage(url="u", final_url="u", status=200, content_type=content_type, charset=None, body=body)


def test_the_json_rpc_answer_is_found_in_json_or_in_events() -> None:
    answer = {"jsonrpc": "2.0", "id": 7, "result": {"ok": True}}
    assert _message(_page(json.dumps(answer).encode(), "application/json"), 7) == answer
    events = (b'event: message\ndata: {"jsonrpc": "2.0", "method": "notifications/progress"}\n\n'
              b"event: message\ndata: " + json.dumps(answer).encode())  # the last event without its blank line
    assert _message(_page(events, "text/event-stream"), 7) == answer
    assert _message(_page(json.dumps([answer]).encode(), "application/json"), 7) == answer
    assert _message(_page(b"not json", "application/json"), 7) is None
    assert _message(_page(json.dumps(answer).encode(), "application/json"), 8) is None


def test_a_paused_tool_call_is_stored_in_fastgpts_shape_and_read_back() -> None:
    call = ToolCall("call_1", "order", '{"drink": "tea"}')
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "tea"),
                ChatMessage("assistant", "", tool_calls=(call,)), ChatMessage("tool", "", tool_call_id="call_1")]
    branch = {"type": "userSelect", "params": {}, "entryNodeIds": ["sel"], "memoryEdges": [], "nodeOutputs": []}
    payload = json.loads(json.dumps(pause_payload(branch, "call_1", messages)))  # as stored: plain JSON
    assert payload["type"] == "toolChildrenInteractive" and payload["params"]["childrenResponse"] == branch
    assert payload["params"]["toolParams"]["toolCallId"] == "call_1"
    assert payload["params"]["toolParams"]["memoryRequestMessages"][2] == {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "order", "arguments": '{"drink": "tea"}'}}]}
    paused = paused_call(payload)
    assert paused is not None and paused.call == call and paused.branch == branch
    assert paused.messages == messages


def test_a_stored_interaction_that_is_no_tool_pause_is_not_resumed_as_one() -> None:
    assert paused_call(None) is None
    assert paused_call({"type": "userSelect", "params": {}}) is None
    assert paused_call({"type": "toolChildrenInteractive", "params": {"childrenResponse": "x"}}) is None
    # the call it names is not in the conversation
    assert paused_call({"type": "toolChildrenInteractive", "params": {
        "childrenResponse": {}, "toolParams": {"toolCallId": "gone", "memoryRequestMessages": []}}}) is None
    assert message_from_openai("text") is None and message_from_openai({"content": "no role"}) is None
