"""tool / toolSet: a tool of an MCP server, and a set of them (FASTGPT-FORMATS.md §1.9).

- **tool** calls one tool on an MCP server: its ``toolData`` input (``system_toolData`` in some exports)
  holds ``{name, url, headerSecret?, inputSchema?, description?}``; its other inputs are the call's
  arguments. The ``tools/call`` result is ``system_rawResponse`` (and, on a tools node, what the model
  reads). The tool's ``inputSchema`` is its parameters when a tools node offers it to the model.
- **toolSet** is a whole MCP server on a tools node's tool handle: its ``toolConfig.mcpToolSet`` (or, in
  older exports, its first input's value) holds ``{url, headerSecret?, toolList: [{name, description,
  inputSchema}]}``, and the tools node offers every tool of the list, each as a ``tool`` node of its own
  (id: the set's id and the tool's index), as FastGPT expands sets at run time.

Header values come from ``headerSecret`` entries' ``value`` (FastGPT encrypts a ``secret`` with its own
key, which Zhiku cannot read: such a header is refused naming it). FastGPT's system tools
(``toolConfig.systemTool`` / ``systemToolSet``) run in FastGPT's plugin service, and MCP tools that only
name a FastGPT tool-set app (``toolConfig.mcpTool``) keep their server in FastGPT's database: both are
refused when the app is saved, naming the node.
"""

from __future__ import annotations

from typing import Any

from zhiku.apps.workflow.graph import Input, Node, Workflow, as_list
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.errors import InvalidInput

TOOL_DATA_KEYS = ("toolData", "system_toolData")
_NOT_ARGUMENTS = frozenset({*TOOL_DATA_KEYS, "system_input_config"})


def tool_data(node: Node) -> dict[str, Any] | None:
    """An MCP tool node's ``{name, url, ...}``, or None when it has none."""
    for key in TOOL_DATA_KEYS:
        value = node.value(key)
        if isinstance(value, dict) and isinstance(value.get("name"), str) and isinstance(value.get("url"), str):
            return value
    return None


def toolset_data(node: Node) -> dict[str, Any] | None:
    """A toolSet node's ``{url, toolList, ...}``, or None when it has none."""
    candidates = [node.tool_config.get("mcpToolSet")]
    if node.inputs:
        candidates.append(node.inputs[0].value)
    for value in candidates:
        if isinstance(value, dict) and isinstance(value.get("url"), str) and isinstance(value.get("toolList"), list):
            return value
    return None


def expand_toolset(node: Node) -> list[Node]:
    """The ``tool`` nodes a toolSet stands for, one per tool of its list."""
    data = toolset_data(node)
    if data is None:
        return []
    tools = []
    for index, tool in enumerate(t for t in as_list(data.get("toolList")) if isinstance(t, dict) and t.get("name")):
        value = {"name": str(tool["name"]), "description": str(tool.get("description") or ""),
                 "inputSchema": tool.get("inputSchema") if isinstance(tool.get("inputSchema"), dict) else
                 {"type": "object", "properties": {}}, "url": data["url"], "headerSecret": data.get("headerSecret")}
        tools.append(Node(node_id=f"{node.node_id}{index}", kind="tool", name=f"{node.name}/{tool['name']}",
                          intro=value["description"], avatar=node.avatar,
                          inputs=(Input(key="toolData", value=value, value_type="object"),)))
    return tools


def headers_of(data: dict[str, Any], label: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    secret = data.get("headerSecret")
    for name, entry in (secret.items() if isinstance(secret, dict) else ()):
        if isinstance(entry, dict):
            if entry.get("value"):
                headers[str(name)] = str(entry["value"])
            elif entry.get("secret"):
                raise InvalidInput(f"{label}: header {name!r} is encrypted with FastGPT's key; enter its value "
                                   "again", code="mcp_header_encrypted", status=422)
        elif isinstance(entry, str):
            headers[str(name)] = entry
    return headers


async def run_tool(ctx: NodeContext) -> NodeResult:
    from zhiku.apps.nodes._mcp import call_tool  # the HTTP stack loads with the first call, not the registry

    data = tool_data(ctx.node)
    if data is None:
        raise InvalidInput(f"{ctx.node.label}: it names no MCP server (toolData with url and name)",
                           code="mcp_tool_invalid", status=422)
    arguments = {i.key: ctx.inputs.get(i.key) for i in ctx.node.inputs if i.key not in _NOT_ARGUMENTS}
    result = await call_tool(data["url"], headers_of(data, ctx.node.label), data["name"], arguments,
                             ctx.env.deps.fetch_policy)
    return NodeResult(outputs={"system_rawResponse": result},
                      response={"toolRes": result, "moduleLogo": ctx.node.avatar, "toolInput": arguments})


def _external(node: Node) -> str | None:
    config = node.tool_config
    if config.get("systemTool") or config.get("systemToolSet"):
        return "it is a FastGPT system tool, which runs in FastGPT's plugin service (Zhiku has none)"
    return None


def check_tool(node: Node, workflow: Workflow) -> list[str]:
    if tool_data(node) is not None:
        return []
    if node.tool_config.get("mcpTool"):
        return ["it names a tool of a FastGPT MCP tool-set app, whose server address lives in FastGPT; "
                "export the tool with its toolData (url and name) instead"]
    return [_external(node) or "it names no MCP server (toolData with url and name)"]


def check_toolset(node: Node, workflow: Workflow) -> list[str]:
    if toolset_data(node) is not None:
        return []
    return [_external(node) or "it names no MCP server with its tools (toolConfig.mcpToolSet with url and toolList)"]


SPECS = (NodeSpec(kind="tool", run=run_tool, check=check_tool, description="a tool of an MCP server"),
         NodeSpec(kind="toolSet", check=check_toolset, description="the tools of an MCP server"))
