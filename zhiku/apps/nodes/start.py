"""workflowStart: the chat's entry; gives the user's question and the files sent with it."""

from __future__ import annotations

from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec


async def run(ctx: NodeContext) -> NodeResult:
    return NodeResult(outputs={"userChatInput": ctx.env.query, "userFiles": list(ctx.env.files)})


SPEC = NodeSpec(kind="workflowStart", inline=True, run=run, entry=True, description="the user's question")
