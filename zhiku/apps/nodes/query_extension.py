"""cfr (query extension): the model rewrites the question into several; the output is a JSON array,
the original question first. Without a chat model the array holds the question alone."""

from __future__ import annotations

import json

from zhiku.apps.nodes._llm import history_messages, model_name
from zhiku.apps.nodes._queries import extend_query
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text


async def run(ctx: NodeContext) -> NodeResult:
    question = to_text(ctx.get("userChatInput")).strip() or ctx.env.query
    if ctx.env.deps.chat_model is None or not question:
        text = json.dumps([question] if question else [], ensure_ascii=False)
        return NodeResult(outputs={"system_text": text}, response={"query": question, "textOutput": text})
    model = model_name(ctx)
    queries, extension = await extend_query(ctx, question, model, to_text(ctx.get("systemPrompt")),
                                            history_messages(ctx, ctx.get("history")))
    text = json.dumps(queries, ensure_ascii=False)
    return NodeResult(outputs={"system_text": text}, usage=extension.usage, model=None,
                      response={"totalPoints": 0, "model": extension.model, "query": question, "textOutput": text})


SPEC = NodeSpec(kind="cfr", run=run, description="query extension")
