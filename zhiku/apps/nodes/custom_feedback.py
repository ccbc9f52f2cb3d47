"""customFeedback: attaches a note to the chat record (FastGPT's ``customFeedbacks``)."""

from __future__ import annotations

from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text


async def run(ctx: NodeContext) -> NodeResult:
    text = to_text(ctx.get("system_textareaInput"))
    if text:
        ctx.env.custom_feedbacks.append(text)
    return NodeResult(response={"textOutput": text})


SPEC = NodeSpec(kind="customFeedback", inline=True, run=run, description="feedback note on the record")
