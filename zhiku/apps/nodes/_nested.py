"""A node's nested run (a loop's body, a tool's branch): its answer text reaches the user, its node
responses are collected for the node's own responseData, every other event passes on to the caller but
a pause for the user: that is the nested run's ``interactive``, for the caller to wrap into its own
pause (a tools node's ``toolChildrenInteractive``, a loop's ``loopInteractive``) and later hand back as
``resume``."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

from zhiku.apps.workflow.events import AnswerText, InteractionRequested, NodeResponse, WorkflowFinished
from zhiku.apps.workflow.executor import run_workflow
from zhiku.apps.workflow.graph import Workflow
from zhiku.apps.workflow.node import NodeContext, RunEnv


async def run_nested(ctx: NodeContext, workflow: Workflow, env: RunEnv,
                     entries: Sequence[str], resume: dict[str, Any] | None = None,
                     ) -> tuple[WorkflowFinished | None, list[dict[str, Any]]]:
    """The nested run's end (None past the nesting limit, where nothing ran) and its node responses.
    ``resume``: the nested run's own interaction it paused on earlier, to continue from."""
    assert ctx.registry is not None
    finished: WorkflowFinished | None = None
    responses: list[dict[str, Any]] = []
    async with aclosing(run_workflow(workflow, ctx.registry, env, resume=resume, entries=entries)) as events:
        async for event in events:
            if isinstance(event, WorkflowFinished):
                finished = event
            elif isinstance(event, AnswerText):
                (ctx.fast_answer if event.fast else ctx.stream_answer)(event.text)
            elif isinstance(event, NodeResponse):
                responses.append(event.item)
            elif not isinstance(event, InteractionRequested):
                ctx.emit(event)
    return finished, responses


def wrap_pause(kind: str, child: dict[str, Any], **params: Any) -> dict[str, Any]:
    """The node's own pause of ``kind`` around its nested run's ``child`` interaction (FastGPT keeps the
    child in ``params.childrenResponse``); the executor adds the node's entry, edges and outputs."""
    return {"type": kind, "params": {**params, "childrenResponse": child}}


def unwrap_pause(interaction: dict[str, Any] | None, kind: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The ``params`` and nested ``child`` interaction of a stored pause of ``kind`` (see :func:`wrap_pause`);
    None when it is not one."""
    if not isinstance(interaction, dict) or interaction.get("type") != kind:
        return None
    params = interaction.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("childrenResponse"), dict):
        return None
    return params, params["childrenResponse"]
