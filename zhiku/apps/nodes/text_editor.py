"""textEditor: a text template; ``{{key}}`` also names the node's own dynamic inputs."""

from __future__ import annotations

from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import render_variables, to_text


async def run(ctx: NodeContext) -> NodeResult:
    text = render_variables(to_text(ctx.get("system_textareaInput")), ctx.dynamic_inputs())
    return NodeResult(outputs={"system_text": text}, response={"textOutput": text})


SPEC = NodeSpec(kind="textEditor", inline=True, run=run, description="text template")
