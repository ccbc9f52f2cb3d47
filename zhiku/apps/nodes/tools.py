"""tools / stopTool / toolParams: the model calls the nodes hanging off the tools node (FASTGPT-FORMATS.md §1.9).

- **tools** asks its model (system prompt, history, question) with one OpenAI function per node connected
  from its ``selectedTools`` handle: the function's name is the node id, its description the node's
  ``intro`` (else its name), its parameters the node's inputs that carry a ``toolDescription``. Each call
  the model makes runs that node with the call's arguments as those inputs, and the nodes after it in its
  branch, as a nested run; the result goes back to the model as the ``tool`` message and the model is
  asked again, until it answers without a call (that answer streams to the user and is ``answerText``),
  a tool branch reaches a **stopTool** node, or ``MAX_ROUNDS`` model calls still end in calls
  (``tools_round_limit``). The calls stream as FastGPT's ``toolCall`` / ``toolParams`` / ``toolResponse``
  events; responseData has the calls, their tool runs (``toolDetail``) and the tokens.
- **toolParams** is a tool without work of its own: its inputs are the parameters, its outputs the
  arguments, for the nodes after it.
- **stopTool** ends the tools node's loop after the current calls.
- An MCP **tool** offers the schema its server declared; a **toolSet** offers each tool of its server
  (:mod:`zhiku.apps.nodes.mcp_tool`).

A tool's result is what the last node of its branch produced (its user-added outputs, else its one
output, else all of them), as JSON unless it is text; a tool branch that fails gives the model the error.
Calls of one answer run one after another.

A tool branch may pause for the user (a userSelect or formInput in it; FASTGPT-FORMATS.md §2.6): the
answer's other calls still run, then the tools node pauses with FastGPT's ``toolChildrenInteractive``
(``params.childrenResponse``: the branch's own interaction with its entry node, edges and outputs;
``params.toolParams``: ``toolCallId`` and ``memoryRequestMessages``, the conversation with the model so
far). The next message resumes the tools node, which resumes the branch with the user's reply; its
result becomes that call's tool message and the model is asked again. One pause at a time: a second
call of the same answer that asks the user gets an error as its result.
"""

from __future__ import annotations

import dataclasses
import json
import time
from contextlib import aclosing
from typing import Any

from zhiku.apps.nodes._llm import history_items, history_messages, model_name, temperature
from zhiku.apps.nodes._nested import run_nested, unwrap_pause, wrap_pause
from zhiku.apps.nodes.mcp_tool import expand_toolset, tool_data
from zhiku.apps.workflow.events import ToolActivity
from zhiku.apps.workflow.graph import Input, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text
from zhiku.chat_model import (
    ChatMessage,
    ChatParams,
    ToolCall,
    ToolCallAssembler,
    ToolDefinition,
    Usage,
)
from zhiku.errors import ZhikuError

TOOL_HANDLE = "selectedTools"
PAUSE_TYPE = "toolChildrenInteractive"  # FastGPT's interaction of a tools node whose tool branch paused
MAX_ROUNDS = 30  # model calls per run of a tools node (FastGPT's maxRunToolTimes)
PREVIEW_CHARS = 5000  # a toolResponse event shows this much of the result's start and of its end
# Kinds that cannot hang off a tools node: entries and exits, canvas-only kinds, loop parts, the agent
# itself, and the interactive kinds (they take no parameters; a branch may reach one after its tool).
NOT_TOOLS = frozenset({"workflowStart", "userGuide", "pluginInput", "pluginOutput", "pluginConfig",
                       "globalVariable", "comment", "emptyNode", "loopStart", "loopEnd", "tools",
                       "userSelect", "formInput"})
# JSON schema per valueType of a tool parameter (FastGPT's function value types).
_SCHEMA = {"string": {"type": "string"}, "number": {"type": "number"}, "boolean": {"type": "boolean"},
           "object": {"type": "object"}, "arrayString": {"type": "array", "items": {"type": "string"}},
           "arrayNumber": {"type": "array", "items": {"type": "number"}},
           "arrayBoolean": {"type": "array", "items": {"type": "boolean"}},
           "arrayObject": {"type": "array", "items": {"type": "object"}}}
_HOLDERS = frozenset({"system_addOutputParam", "system_addInputParam", "system_error_text"})


class ToolsRoundLimit(ZhikuError):
    status = 422
    code = "tools_round_limit"


def tool_node_ids(node: Node, workflow: Workflow) -> list[str]:
    """The nodes on the tools node's ``selectedTools`` handle, in edge order."""
    return list(dict.fromkeys(e.target for e in workflow.edges
                              if e.source == node.node_id and e.source_handle == TOOL_HANDLE))


def tool_nodes(node: Node, workflow: Workflow) -> dict[str, Node]:
    """The tools by function name (the node id); a toolSet stands for the tools of its server."""
    found: dict[str, Node] = {}
    for target in tool_node_ids(node, workflow):
        tool = workflow.by_id.get(target)
        if tool is not None:
            found.update({t.node_id: t for t in expand_toolset(tool)} if tool.kind == "toolSet"
                         else {tool.node_id: tool})
    return found


def tool_definition(node: Node) -> ToolDefinition:
    data = tool_data(node)
    if data is not None and isinstance(data.get("inputSchema"), dict):  # an MCP tool: its server's schema
        return ToolDefinition(name=node.node_id, description=node.intro or str(data.get("description") or "")
                              or node.name, parameters={"type": "object", "properties": {}, **data["inputSchema"]})
    properties: dict[str, Any] = {}
    required = []
    for item in node.inputs:
        if not item.tool_description:
            continue
        schema = dict(_SCHEMA.get(item.value_type, _SCHEMA["string"]), description=item.tool_description)
        options = [o for o in item.enum.split("\n") if o.strip()]
        if options:
            schema["enum"] = options
        properties[item.key] = schema
        if item.required:
            required.append(item.key)
    return ToolDefinition(name=node.node_id, description=node.intro or node.name,
                          parameters={"type": "object", "properties": properties, "required": required})


def tool_result(node: Node, values: dict[str, Any]) -> Any:
    """What a node of a tool branch hands back to the model: its user-added outputs when it has any set,
    else its one output, else all of them by key; None when it produced nothing."""
    found: dict[str, Any] = {}
    declared = set()
    dynamic = set()
    for output in node.outputs:
        declared.add(output.id)
        if output.type in ("error", "hidden") or output.key in _HOLDERS or output.value_type == "chatHistory":
            continue
        if output.id in values:
            found[output.key] = values[output.id]
            if output.type == "dynamic":
                dynamic.add(output.key)
    for key, value in values.items():  # outputs a kind returns without declaring them (toolParams)
        if key not in declared and key not in _HOLDERS:
            found.setdefault(key, value)
    found = {k: v for k, v in found.items() if v is not None and v != "" and v != [] and v != {}}
    if dynamic & found.keys():
        return {k: v for k, v in found.items() if k in dynamic}
    if len(found) == 1:
        return next(iter(found.values()))
    return found or None


def result_text(value: Any) -> str:
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


def preview(text: str) -> str:
    if len(text) <= 2 * PREVIEW_CHARS:
        return text
    return f"{text[:PREVIEW_CHARS]}\n...[{len(text) - 2 * PREVIEW_CHARS} characters]...\n{text[-PREVIEW_CHARS:]}"


def _arguments(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def with_arguments(workflow: Workflow, node: Node, arguments: dict[str, Any]) -> Workflow:
    """The graph with the tool node's parameters (inputs with a ``toolDescription``) set from the call's
    arguments; an argument the node has no input for becomes one (an MCP tool passes them all on), one
    naming another input is ignored, so the model cannot change a node's settings (its URL, a header).
    A tool of a toolSet joins the graph."""
    known = {i.key for i in node.inputs}
    inputs = tuple(dataclasses.replace(i, value=arguments[i.key]) if i.key in arguments and i.tool_description
                   else i for i in node.inputs)
    inputs += tuple(Input(key=key, value=value) for key, value in arguments.items() if key not in known)
    called = dataclasses.replace(node, inputs=inputs)
    nodes = tuple(called if n.node_id == node.node_id else n for n in workflow.nodes)
    if node.node_id not in workflow.by_id:
        nodes += (called,)
    return Workflow(nodes=nodes, edges=workflow.edges, chat_config=workflow.chat_config)


def message_from_openai(item: Any) -> ChatMessage | None:
    """A message of a stored conversation (OpenAI's shape, as ``ChatMessage.as_openai`` wrote it)."""
    if not isinstance(item, dict) or not isinstance(item.get("role"), str):
        return None
    calls = tuple(ToolCall(id=str(c.get("id") or ""), name=str(c["function"].get("name") or ""),
                           arguments=str(c["function"].get("arguments") or ""))
                  for c in item.get("tool_calls") or [] if isinstance(c, dict) and isinstance(c.get("function"), dict))
    call_id = item.get("tool_call_id")
    return ChatMessage(item["role"], to_text(item.get("content")), tool_calls=calls,
                       tool_call_id=str(call_id) if call_id is not None else None)


@dataclasses.dataclass(frozen=True)
class PausedCall:
    """A tools node's pause, read back from its stored interaction: the tool branch's own interaction,
    the call it answers and the conversation with the model up to it."""

    branch: dict[str, Any]
    call: ToolCall
    messages: list[ChatMessage]


def pause_payload(branch: dict[str, Any], call_id: str, messages: list[ChatMessage]) -> dict[str, Any]:
    """FastGPT's ``toolChildrenInteractive`` (the executor adds the tools node's entry, edges, outputs)."""
    return wrap_pause(PAUSE_TYPE, branch, toolParams={
        "memoryRequestMessages": [m.as_openai() for m in messages], "toolCallId": call_id})


def paused_call(interaction: dict[str, Any] | None) -> PausedCall | None:
    """The pause a resumed tools node continues from; None when the stored interaction is not one."""
    unwrapped = unwrap_pause(interaction, PAUSE_TYPE)
    if unwrapped is None:
        return None
    params, branch = unwrapped
    tool_params = params.get("toolParams") if isinstance(params.get("toolParams"), dict) else {}
    call_id = tool_params.get("toolCallId")
    messages = [m for m in map(message_from_openai, tool_params.get("memoryRequestMessages") or []) if m is not None]
    call = next((c for m in messages for c in m.tool_calls if c.id == call_id), None)
    if call is None:
        return None
    return PausedCall(branch, call, messages)


@dataclasses.dataclass
class _ToolRun:
    text: str  # for the model
    stopped: bool
    details: list[dict[str, Any]]
    usage: Usage
    interactive: dict[str, Any] | None = None  # the branch paused for the user: its own interaction


class _Agent:
    """One run of a tools node: the conversation with the model and the tool runs it asks for."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.tools = tool_nodes(ctx.node, ctx.workflow)
        self.answer: list[str] = []
        self.usage = Usage()  # the tools node's own model calls
        self.child_usage = Usage()
        self.details: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.finish = "stop"
        self.model = model_name(ctx)
        self.pause: tuple[dict[str, Any], str] | None = None  # a tool branch's interaction and its call id

    async def ask(self, messages: list[ChatMessage], params: ChatParams) -> tuple[str, tuple[ToolCall, ...]]:
        """One model call: its text (streamed to the user as it comes) and the calls it made."""
        ctx = self.ctx
        chat_model = ctx.env.deps.chat_model
        assert chat_model is not None
        parts: list[str] = []
        usage: Usage | None = None
        if not ctx.env.stream:
            result = await chat_model.complete(messages, params)
            parts.append(result.content)
            ctx.stream_answer(result.content)
            for call in result.tool_calls:
                self._announce(call.id, call.name, call.arguments)
            usage, self.finish, self.model = result.usage, result.finish_reason, result.model or self.model
            calls = result.tool_calls
        else:
            assembler = ToolCallAssembler()
            async with aclosing(chat_model.stream(messages, params)) as deltas:
                async for delta in deltas:
                    if delta.content:
                        parts.append(delta.content)
                        ctx.stream_answer(delta.content)
                    for piece in delta.tool_calls:
                        if assembler.feed([piece]):
                            self._announce(assembler.call_id(piece.index), piece.name, piece.arguments)
                        elif piece.arguments:
                            ctx.emit(ToolActivity("toolParams", assembler.call_id(piece.index),
                                                  params=piece.arguments))
                    if delta.finish_reason:
                        self.finish = delta.finish_reason
                    if delta.usage is not None:
                        usage = delta.usage
            calls = assembler.calls()
        if usage is not None:
            self.usage = Usage(self.usage.prompt_tokens + usage.prompt_tokens,
                               self.usage.completion_tokens + usage.completion_tokens)
        text = "".join(parts)
        self.answer.append(text)
        return text, calls

    def _announce(self, call_id: str, function: str, arguments: str) -> None:
        node = self.tools.get(function)
        self.ctx.emit(ToolActivity("toolCall", call_id, tool_name=node.name if node else function,
                                   tool_avatar=node.avatar if node else "", function_name=function,
                                   params=arguments))

    async def run_tool(self, call: ToolCall) -> _ToolRun:
        """The call's node and its branch as a nested run; the result as the model will read it."""
        node = self.tools.get(call.name)
        if node is None:
            return _ToolRun(f"error: there is no tool named {call.name!r}", False, [], Usage())
        return await self._branch(with_arguments(self.ctx.workflow, node, _arguments(call.arguments)),
                                  [node.node_id], None)

    async def _branch(self, workflow: Workflow, entries: list[str], resume: dict[str, Any] | None) -> _ToolRun:
        """A tool branch run from its tool node, or resumed from where it paused for the user."""
        ctx = self.ctx
        env = dataclasses.replace(ctx.env, depth=ctx.env.depth + 1, parent_lookup=ctx.lookup)
        finished, details = await run_nested(ctx, workflow, env, entries, resume=resume)
        if finished is None:  # the nesting limit: nothing ran
            return _ToolRun("none", False, details, Usage())
        for node_id, values in finished.outputs.items():  # the branch's outputs stay readable after the agent
            for output_id, value in values.items():
                ctx.set_output(node_id, output_id, value)
        stopped = any(item.get("moduleType") == "stopTool" for item in details)
        if finished.interactive is not None and finished.error is None:
            return _ToolRun("", False, details, finished.usage, interactive=finished.interactive)
        if finished.error is not None:
            text = f"error: {finished.error.message}"
        else:
            text = "none"
            for item in reversed(details):  # the last node of the branch with a result
                ran = workflow.by_id.get(item.get("nodeId", ""))
                value = tool_result(ran, finished.outputs.get(ran.node_id, {})) if ran is not None else None
                if value is not None:
                    text = result_text(value)
                    break
        return _ToolRun(text, stopped, details, finished.usage)

    def _settle(self, call: ToolCall, ran: _ToolRun, started: float) -> str | None:
        """Account for a call's run; the tool message's text, or None when the call now waits for the user."""
        self.details.extend(ran.details)
        self.child_usage = Usage(self.child_usage.prompt_tokens + ran.usage.prompt_tokens,
                                 self.child_usage.completion_tokens + ran.usage.completion_tokens)
        text = ran.text
        if ran.interactive is not None:
            if self.pause is None:
                self.pause = (ran.interactive, call.id)
                return None
            text = "error: this tool asks the user a question while another tool already waits for the user's answer"
        self.ctx.emit(ToolActivity("toolResponse", call.id, response=preview(text)))
        node = self.tools.get(call.name)
        self.calls.append({"id": call.id, "toolName": node.name if node else call.name,
                           "functionName": call.name, "params": call.arguments, "response": preview(text),
                           "runningTime": round(time.perf_counter() - started, 2)})
        return text

    async def resume(self, paused: PausedCall) -> bool:
        """Continue the paused tool branch with the user's reply; True when the agent may go on (the
        branch finished without reaching a stopTool)."""
        started = time.perf_counter()
        ran = await self._branch(self.ctx.workflow, [], paused.branch)
        text = self._settle(paused.call, ran, started)
        if text is not None:
            for i, message in enumerate(paused.messages):
                if message.role == "tool" and message.tool_call_id == paused.call.id:
                    paused.messages[i] = dataclasses.replace(message, content=text)
        return self.pause is None and not ran.stopped

    async def run(self, messages: list[ChatMessage], params: ChatParams) -> None:
        ctx = self.ctx
        for _ in range(MAX_ROUNDS):
            text, calls = await self.ask(messages, params)
            if not calls:
                return
            messages.append(ChatMessage("assistant", text, tool_calls=calls))
            stopped = False
            for call in calls:
                started = time.perf_counter()
                ran = await self.run_tool(call)
                result = self._settle(call, ran, started)
                messages.append(ChatMessage("tool", result or "", tool_call_id=call.id))
                stopped = stopped or ran.stopped
            if stopped or self.pause is not None:
                return
        raise ToolsRoundLimit(f"{ctx.node.label}: the model still called tools after {MAX_ROUNDS} rounds; "
                              "the tool loop was stopped")


async def run(ctx: NodeContext) -> NodeResult:
    deps = ctx.env.deps
    if deps.chat_model is None:
        raise ZhikuError(f"{ctx.node.label} needs a chat model, and none is configured "
                         "(set OPENAI_BASE_URL and CHAT_API_KEY, or add a gateway channel)",
                         code="chat_model_required", status=422)
    agent = _Agent(ctx)
    paused = paused_call(ctx.interaction) if ctx.resumed else None
    if paused is not None:  # the conversation goes on from where a tool branch paused for the user
        messages = paused.messages
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
    else:
        question = to_text(ctx.get("userChatInput")).strip() or ctx.env.query
        history = history_messages(ctx, ctx.get("history"))
        system = "\n\n".join([to_text(ctx.get("systemPrompt"))]
                              + [m.content for m in history if m.role == "system"]).strip()
        messages = ([ChatMessage("system", system)] if system else []) + \
            [m for m in history if m.role in ("user", "assistant")] + [ChatMessage("user", question)]
    max_tokens = ctx.get("maxToken")
    definitions = tuple(tool_definition(n) for n in agent.tools.values())
    params = ChatParams(model=agent.model, temperature=temperature(ctx.get("temperature")),
                        max_tokens=int(max_tokens) if isinstance(max_tokens, (int, float)) and max_tokens > 0 else None,
                        tools=definitions, tool_choice="auto" if definitions else None)
    if paused is None or await agent.resume(paused):
        await agent.run(messages, params)
    answer = "".join(agent.answer)
    usage = Usage(agent.usage.prompt_tokens + agent.child_usage.prompt_tokens,
                  agent.usage.completion_tokens + agent.child_usage.completion_tokens)
    preview_messages = [m for m in messages if m.role in ("system", "user", "assistant") and m.content]
    interactive = pause_payload(agent.pause[0], agent.pause[1], messages) if agent.pause is not None else None
    return NodeResult(
        outputs={} if interactive else {"answerText": answer}, usage=usage, interactive=interactive,
        model=agent.model, finish_reason=agent.finish,
        response={"totalPoints": 0, "model": agent.model, "query": question,
                  "inputTokens": agent.usage.prompt_tokens, "outputTokens": agent.usage.completion_tokens,
                  "toolCallInputTokens": agent.usage.prompt_tokens,
                  "toolCallOutputTokens": agent.usage.completion_tokens,
                  "toolCalls": agent.calls, "toolDetail": agent.details, "finishReason": agent.finish,
                  "historyPreview": history_items(preview_messages[-10:]), "mergeSignId": ctx.node.node_id})


async def run_tool_params(ctx: NodeContext) -> NodeResult:
    params = {i.key: ctx.inputs.get(i.key) for i in ctx.node.inputs}
    return NodeResult(outputs=params, response={"toolParamsResult": params})


async def run_stop(ctx: NodeContext) -> NodeResult:
    return NodeResult(response={"toolStop": True})


def check(node: Node, workflow: Workflow) -> list[str]:
    problems = []
    if not to_text(node.value("model")).strip():
        problems.append("it has no model")
    for target in tool_node_ids(node, workflow):
        tool = workflow.by_id.get(target)
        if tool is not None and tool.kind in NOT_TOOLS:
            problems.append(f"its tool handle is connected to {tool.label}, and a {tool.kind} node cannot be a tool")
    return problems


SPECS = (NodeSpec(kind="tools", run=run, check=check, description="the model calls tools"),
         NodeSpec(kind="toolParams", run=run_tool_params, inline=True, description="a tool's custom parameters"),
         NodeSpec(kind="stopTool", run=run_stop, inline=True, description="ends the tool calls"))
