"""FastGPT's workflow JSON as frozen dataclasses (FASTGPT-FORMATS.md §1). Pure.

:func:`parse_workflow` reads ``{nodes|modules, edges, chatConfig}`` and evens out the quirks of older
exports (§6): the CQ template's ``"FlowNodeOutputTypeEnum.static"`` output type, old ifElse nodes whose
``ifElseList`` is one flat list with a separate ``condition: "And"`` input, ``enums``/``maxLen`` on
variables. What it cannot read (not an object, a node without ``nodeId``) is an :class:`InvalidInput`.
The stored JSON is kept as given; this model is built from it whenever a run or a check needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from zhiku.errors import InvalidInput

VARIABLE_NODE_ID = "VARIABLE_NODE_ID"
# The largest graph accepted: FastGPT's own templates have a few dozen nodes.
MAX_NODES = 500
MAX_EDGES = 2000
MAX_VARIABLES = 100
MAX_WORKFLOW_CHARS = 2_000_000  # of the JSON text

SYSTEM_VARIABLES = ("userId", "appId", "chatId", "responseChatItemId", "histories", "cTime")


@dataclass(frozen=True)
class Input:
    key: str
    value: Any
    value_type: str = "any"
    render_types: tuple[str, ...] = ()
    can_edit: bool = False
    label: str = ""
    required: bool = False
    tool_description: str = ""  # non-empty: a tool parameter when the node is a tools node's tool
    description: str = ""
    enum: str = ""  # a tool parameter's allowed values, one a line

    @property
    def render_type(self) -> str:
        return self.render_types[0] if self.render_types else ""


@dataclass(frozen=True)
class Output:
    id: str
    key: str
    value_type: str = "any"
    type: str = "static"
    default_value: Any = None
    required: bool = False
    label: str = ""


@dataclass(frozen=True)
class Node:
    node_id: str
    kind: str  # flowNodeType
    name: str
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    parent_node_id: str | None = None
    show_status: bool = False
    catch_error: bool = False
    version: str = ""
    plugin_id: str = ""  # pluginModule / appModule: the app it runs
    intro: str = ""  # what the node does (a tool's description for the model)
    avatar: str = ""
    # tool / toolSet: the MCP server or FastGPT system tool the node calls (FastGPT's ``toolConfig``)
    tool_config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def input(self, key: str) -> Input | None:
        return next((i for i in self.inputs if i.key == key), None)

    def value(self, key: str, default: Any = None) -> Any:
        """The raw (unresolved) value of an input."""
        found = self.input(key)
        return default if found is None or found.value is None else found.value

    def output_by_id(self, output_id: str) -> Output | None:
        return next((o for o in self.outputs if o.id == output_id), None)

    @property
    def label(self) -> str:
        """How errors name the node: its display name, kind and id."""
        return f'node "{self.name}" ({self.kind}, id {self.node_id})'


@dataclass(frozen=True)
class Edge:
    source: str
    source_handle: str
    target: str
    target_handle: str = ""


@dataclass(frozen=True)
class Variable:
    """A declared global variable (``chatConfig.variables[]``)."""

    key: str
    label: str = ""
    type: str = "input"
    value_type: str = "string"
    required: bool = False
    default_value: Any = None
    max_length: int | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: runs cache facts per parsed graph
class Workflow:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    chat_config: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def by_id(self) -> dict[str, Node]:
        return {n.node_id: n for n in self.nodes}

    @cached_property
    def variables(self) -> tuple[Variable, ...]:
        return tuple(_variable(v) for v in as_list(self.chat_config.get("variables")) if isinstance(v, dict))

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id and e.source_handle != "selectedTools"]

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.target == node_id and e.target_handle != "selectedTools"]


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def as_list(value: Any) -> list[Any]:
    """A list field of the JSON; anything else (a hand-edited file) counts as empty."""
    return value if isinstance(value, list) else []


def _output_type(raw: Any) -> str:
    kind = _text(raw, "static")
    return kind.rsplit(".", 1)[-1]  # "FlowNodeOutputTypeEnum.static" in the CQ template


def _input(raw: Mapping[str, Any]) -> Input:
    render = as_list(raw.get("renderTypeList")) or ([raw["type"]] if isinstance(raw.get("type"), str) else [])
    index = raw.get("selectedTypeIndex") or 0
    render_types = tuple(r for r in render if isinstance(r, str))
    if isinstance(index, int) and 0 < index < len(render_types):  # the editor's chosen render type first
        render_types = (render_types[index],) + render_types[:index] + render_types[index + 1:]
    return Input(key=_text(raw.get("key")), value=raw.get("value"), value_type=_text(raw.get("valueType"), "any"),
                 render_types=render_types, can_edit=bool(raw.get("canEdit")), label=_text(raw.get("label")),
                 required=bool(raw.get("required")), tool_description=_text(raw.get("toolDescription")),
                 description=_text(raw.get("description")), enum=_text(raw.get("enum")))


def _output(raw: Mapping[str, Any]) -> Output:
    key = _text(raw.get("key"))
    return Output(id=_text(raw.get("id"), key) or key, key=key, value_type=_text(raw.get("valueType"), "any"),
                  type=_output_type(raw.get("type")), default_value=raw.get("defaultValue"),
                  required=bool(raw.get("required")), label=_text(raw.get("label")))


def _old_if_else(inputs: list[Input]) -> list[Input]:
    """Old ifElse nodes: ``ifElseList`` was one list of conditions joined by a ``condition`` input."""
    by_key = {i.key: i for i in inputs}
    conditions = by_key.get("ifElseList")
    if conditions is None or not isinstance(conditions.value, list):
        return inputs
    if not conditions.value or any(isinstance(c, dict) and "list" in c for c in conditions.value):
        return inputs
    joiner = str(by_key["condition"].value if "condition" in by_key else "AND").upper()
    group = {"condition": "OR" if joiner == "OR" else "AND", "list": list(conditions.value)}
    return [Input(key=i.key, value=[group], value_type=i.value_type, render_types=i.render_types)
            if i.key == "ifElseList" else i for i in inputs if i.key != "condition"]


def parse_node(raw: Any, index: int) -> Node:
    if not isinstance(raw, dict):
        raise InvalidInput(f"nodes[{index}] is not an object", code="invalid_workflow")
    node_id, kind = raw.get("nodeId"), raw.get("flowNodeType")
    if not isinstance(node_id, str) or not node_id:
        if "moduleId" in raw:
            raise InvalidInput("this is FastGPT's v1 workflow format (moduleId/flowType); open and save the app "
                               "in FastGPT 4.8 or later, then export it again", code="workflow_v1_unsupported")
        raise InvalidInput(f"nodes[{index}] has no nodeId", code="invalid_workflow")
    if not isinstance(kind, str) or not kind:
        raise InvalidInput(f"node {node_id!r} has no flowNodeType", code="invalid_workflow")
    inputs = [_input(i) for i in as_list(raw.get("inputs")) if isinstance(i, dict)]
    if kind == "ifElseNode":
        inputs = _old_if_else(inputs)
    outputs = tuple(_output(o) for o in as_list(raw.get("outputs")) if isinstance(o, dict))
    parent = raw.get("parentNodeId")
    return Node(node_id=node_id, kind=kind, name=_text(raw.get("name"), kind) or kind, inputs=tuple(inputs),
                outputs=outputs, parent_node_id=parent if isinstance(parent, str) and parent else None,
                show_status=bool(raw.get("showStatus")), catch_error=bool(raw.get("catchError")),
                version=str(raw.get("version") or ""), plugin_id=str(raw.get("pluginId") or ""),
                intro=_text(raw.get("intro")), avatar=_text(raw.get("avatar")),
                tool_config=raw["toolConfig"] if isinstance(raw.get("toolConfig"), dict) else {})


def parse_edge(raw: Any, index: int) -> Edge:
    if not isinstance(raw, dict) or not isinstance(raw.get("source"), str) or not isinstance(raw.get("target"), str):
        raise InvalidInput(f"edges[{index}] needs a source and a target", code="invalid_workflow")
    return Edge(source=raw["source"], source_handle=_text(raw.get("sourceHandle")), target=raw["target"],
                target_handle=_text(raw.get("targetHandle")))


def _variable(raw: Mapping[str, Any]) -> Variable:
    options = as_list(raw.get("list")) or as_list(raw.get("enums"))
    values = tuple(str(o.get("value", o.get("label", ""))) if isinstance(o, dict) else str(o) for o in options)
    max_length = raw.get("maxLength", raw.get("maxLen"))
    return Variable(key=_text(raw.get("key")), label=_text(raw.get("label")), type=_text(raw.get("type"), "input"),
                    value_type=_text(raw.get("valueType"), "string"), required=bool(raw.get("required")),
                    default_value=raw.get("defaultValue"),
                    max_length=max_length if isinstance(max_length, int) and max_length > 0 else None,
                    options=values)


def user_guide_config(nodes: list[Any]) -> dict[str, Any]:
    """App settings kept in the inputs of an older app's ``userGuide`` node (§1.8)."""
    config: dict[str, Any] = {}
    renames = {"welcomeText": "welcomeText", "variables": "variables", "questionGuide": "questionGuide",
               "tts": "ttsConfig", "whisper": "whisperConfig", "scheduleTrigger": "scheduledTriggerConfig",
               "chatInputGuide": "chatInputGuide", "instruction": "instruction", "autoExecute": "autoExecute"}
    for node in nodes:
        if isinstance(node, dict) and node.get("flowNodeType") == "userGuide":
            for item in as_list(node.get("inputs")):
                if isinstance(item, dict) and item.get("key") in renames and item.get("value") is not None:
                    config[renames[item["key"]]] = item["value"]
    return config


def parse_workflow(raw: Any) -> Workflow:
    """The graph of ``{nodes|modules, edges, chatConfig}``; the app's ``chatConfig`` wins over the
    ``userGuide`` node's older settings."""
    if not isinstance(raw, dict):
        raise InvalidInput("a workflow is a JSON object with nodes, edges and chatConfig", code="invalid_workflow")
    nodes_raw = raw.get("nodes", raw.get("modules"))
    edges_raw = raw.get("edges") if raw.get("edges") is not None else []
    if not isinstance(nodes_raw, list) or not isinstance(edges_raw, list):
        raise InvalidInput("a workflow needs a list of nodes (or modules) and a list of edges",
                           code="invalid_workflow")
    if len(nodes_raw) > MAX_NODES or len(edges_raw) > MAX_EDGES:
        raise InvalidInput(f"a workflow may have at most {MAX_NODES} nodes and {MAX_EDGES} edges "
                           f"(this one: {len(nodes_raw)} and {len(edges_raw)})", code="workflow_too_large")
    chat_config = raw.get("chatConfig") or {}
    if not isinstance(chat_config, dict):
        raise InvalidInput("chatConfig must be an object", code="invalid_workflow")
    chat_config = {**user_guide_config(nodes_raw), **chat_config}
    variables = chat_config.get("variables") or []
    if not isinstance(variables, list) or len(variables) > MAX_VARIABLES:
        raise InvalidInput(f"chatConfig.variables must be a list of at most {MAX_VARIABLES} variables",
                           code="invalid_workflow")
    return Workflow(nodes=tuple(parse_node(n, i) for i, n in enumerate(nodes_raw)),
                    edges=tuple(parse_edge(e, i) for i, e in enumerate(edges_raw)), chat_config=chat_config)
