"""pluginInput / pluginOutput and pluginModule / appModule: another Zhiku app of the same team run as a node.

- **pluginInput** is a plugin app's entry: each of its inputs becomes the output of the same key, from the
  caller's values (the calling node's inputs, or the chat request's ``variables``), else its own value.
- **pluginOutput** is its exit: its resolved inputs are the plugin's result (``pluginOutput``).
- **pluginModule** runs the workflow app named by the node's ``pluginId`` with the node's inputs as the
  plugin inputs; its outputs are the plugin's ``pluginOutput`` by key, its ``pluginDetail`` the child
  run's responses.
- **appModule** runs the app with ``userChatInput`` as the question; the child's answer streams to the
  user and is ``answerText``.

The child is a nested run (depth + 1): one deeper than ``MAX_DEPTH`` is an error, so an app that calls
itself stops. The child app must be a workflow app of the caller's team.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from zhiku.apps.service import load_app
from zhiku.apps.workflow.events import AnswerText, NodeResponse, WorkflowFinished
from zhiku.apps.workflow.executor import MAX_DEPTH, run_workflow
from zhiku.apps.workflow.graph import Node, Workflow, parse_workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec, RunEnv
from zhiku.apps.workflow.refs import coerce, to_text
from zhiku.errors import InvalidInput, ZhikuError

# Inputs of a calling node that are settings, not plugin parameters.
_SETTINGS = frozenset({"system_forbid_stream", "history", "userChatInput", "system_addInputParam"})


async def run_input(ctx: NodeContext) -> NodeResult:
    given = ctx.env.variables
    return NodeResult(outputs={i.key: given.get(i.key, ctx.inputs.get(i.key)) for i in ctx.node.inputs})


async def run_output(ctx: NodeContext) -> NodeResult:
    result = {i.key: ctx.inputs.get(i.key) for i in ctx.node.inputs}
    return NodeResult(outputs=result, response={"pluginOutput": result})


def app_id_of(node: Node) -> int:
    raw = node.plugin_id or node.value("pluginId") or node.value("appId")
    if isinstance(raw, dict):  # older selectApp inputs hold {"id": ...}
        raw = raw.get("id")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        raise InvalidInput(f"{node.label}: it names no Zhiku app to run (pluginId {raw!r})",
                           code="app_module_invalid") from None


async def _child(ctx: NodeContext) -> tuple[Workflow, RunEnv]:
    if ctx.env.depth + 1 > MAX_DEPTH:
        raise InvalidInput(f"{ctx.node.label}: apps call each other more than {MAX_DEPTH} levels deep",
                           code="app_module_too_deep", status=422)
    principal = dataclasses.replace(ctx.env.principal, app_id=None)  # same team; the caller's key chose this app
    async with ctx.env.deps.sessions() as session:
        app = await load_app(session, principal, app_id_of(ctx.node))
        if app.workflow is None:
            raise InvalidInput(f"{ctx.node.label}: app {app.id} is a simple app; only workflow apps run as a node",
                               code="app_module_invalid")
        workflow = parse_workflow(app.workflow)
    variables = {v.key: coerce(v.default_value, v.value_type) if v.default_value is not None else None
                 for v in workflow.variables}  # the child's declared defaults, as a fresh chat would start
    env = RunEnv(deps=ctx.env.deps, principal=ctx.env.principal, query=ctx.env.query, variables=variables,
                 files=list(ctx.env.files), stream=ctx.env.stream, app_id=app.id, chat_id=ctx.env.chat_id,
                 depth=ctx.env.depth + 1)
    return workflow, env


async def _run_child(ctx: NodeContext, workflow: Workflow, env: RunEnv,
                     on_text: Callable[[str, bool], None] | None) -> tuple[WorkflowFinished, dict[str, Any]]:
    assert ctx.registry is not None
    finished: WorkflowFinished | None = None
    plugin_output: dict[str, Any] = {}
    async with aclosing(run_workflow(workflow, ctx.registry, env)) as events:
        async for event in events:
            if isinstance(event, WorkflowFinished):
                finished = event
            elif isinstance(event, AnswerText):
                if on_text is not None:
                    on_text(event.text, event.fast)
            elif isinstance(event, NodeResponse):
                if event.item.get("moduleType") == "pluginOutput":
                    plugin_output.update(event.item.get("pluginOutput") or {})
    assert finished is not None
    if finished.error is not None:
        if finished.error.code == "app_module_too_deep":  # said once, not once per level
            raise finished.error
        raise ZhikuError(f"{ctx.node.label}: app {env.app_id} failed: {finished.error.message}",
                         code=finished.error.code, status=finished.error.status)
    return finished, plugin_output


async def run_plugin(ctx: NodeContext) -> NodeResult:
    workflow, env = await _child(ctx)
    env.variables.update({i.key: ctx.inputs.get(i.key) for i in ctx.node.inputs
                          if i.key not in _SETTINGS and i.key not in ("pluginId", "appId")})
    finished, output = await _run_child(ctx, workflow, env, None)
    return NodeResult(outputs=output, usage=finished.usage,
                      response={"totalPoints": 0, "pluginOutput": output, "pluginDetail": finished.response_data})


async def run_app(ctx: NodeContext) -> NodeResult:
    workflow, env = await _child(ctx)
    env.query = to_text(ctx.get("userChatInput")).strip() or ctx.env.query
    parts: list[str] = []

    def on_text(text: str, fast: bool) -> None:
        parts.append(text)
        (ctx.fast_answer if fast else ctx.stream_answer)(text)

    finished, _ = await _run_child(ctx, workflow, env, on_text)
    text = "".join(parts)
    return NodeResult(outputs={"answerText": text, "history": []}, usage=finished.usage,
                      response={"totalPoints": 0, "query": env.query, "textOutput": text,
                                "pluginDetail": finished.response_data})


def check_module(node: Node, workflow: Workflow) -> list[str]:
    try:
        app_id_of(node)
    except InvalidInput as exc:
        return [exc.message.split(": ", 1)[-1]]
    return []


SPECS = (NodeSpec(kind="pluginInput", run=run_input, entry=True, description="plugin entry"),
         NodeSpec(kind="pluginOutput", run=run_output, description="plugin result"),
         NodeSpec(kind="pluginModule", run=run_plugin, check=check_module, description="run a plugin app"),
         NodeSpec(kind="appModule", run=run_app, check=check_module, description="run another app"))
