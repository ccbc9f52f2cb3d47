"""The tools node's pure parts: a tool's definition from its node, a tool branch's result for the model."""

from __future__ import annotations

import json

from zhiku.apps.nodes.tools import PREVIEW_CHARS, preview, result_text, tool_definition, tool_result
from zhiku.apps.workflow.graph import Node, parse_node


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
