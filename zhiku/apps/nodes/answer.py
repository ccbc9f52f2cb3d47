"""answerNode: a fixed reply, sent whole as ``fastAnswer``."""

from __future__ import annotations

from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text


async def run(ctx: NodeContext) -> NodeResult:
    text = to_text(ctx.get("text"))
    ctx.fast_answer(text)
    return NodeResult(outputs={"answerText": text}, response={"textOutput": text})


SPEC = NodeSpec(kind="answerNode", inline=True, run=run, description="fixed reply")
