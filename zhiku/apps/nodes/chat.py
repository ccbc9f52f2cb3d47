"""chatNode: the AI chat step — system prompt, quotes, history and question to the chat model.

With no chat model configured (or the model ``zhiku-extractive``) it answers with the built-in
extractive answerer from its quotes, so a fresh install still answers.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from zhiku.apps.extractive import MODEL_NAME as EXTRACTIVE_MODEL
from zhiku.apps.extractive import extractive_answer
from zhiku.apps.nodes._llm import candidate_from_quote, history_items, history_messages, model_name, temperature
from zhiku.apps.prompt import build_messages
from zhiku.apps.workflow.graph import as_list
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text
from zhiku.chat_model import ChatMessage, ChatParams, Usage

EXTRACTIVE_STREAM_PIECE = 24


def _extra(ctx: NodeContext) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if ctx.get("aiChatTopP") not in (None, ""):
        extra["top_p"] = ctx.get("aiChatTopP")
    if to_text(ctx.get("aiChatStopSign")).strip():
        extra["stop"] = to_text(ctx.get("aiChatStopSign")).split("|")
    response_format = to_text(ctx.get("aiChatResponseFormat")).strip()
    if response_format in ("json_object", "json_schema"):
        extra["response_format"] = {"type": response_format}
        schema = ctx.get("aiChatJsonSchema")
        if response_format == "json_schema" and schema:
            extra["response_format"]["json_schema"] = schema
    return extra


async def run(ctx: NodeContext) -> NodeResult:
    deps = ctx.env.deps
    question = to_text(ctx.get("userChatInput")).strip() or ctx.env.query
    quotes = [candidate_from_quote(q) for q in as_list(ctx.get("quoteQA")) if isinstance(q, dict)]
    history = history_messages(ctx, ctx.get("history"))
    # client-sent system messages (a request without chatId carries its own history) join the prompt
    system = "\n\n".join([to_text(ctx.get("systemPrompt"))]
                         + [m.content for m in history if m.role == "system"]).strip()
    messages = build_messages(system, quotes, history, question)
    visible = ctx.get("isResponseAnswerText", True) is not False
    model = model_name(ctx)
    max_tokens = ctx.get("maxToken")
    parts: list[str] = []
    usage: Usage | None = None
    finish = "stop"
    extractive = deps.chat_model is None or model == EXTRACTIVE_MODEL
    if extractive:
        model = EXTRACTIVE_MODEL
        answer = extractive_answer(question, quotes)
        for start in range(0, len(answer), EXTRACTIVE_STREAM_PIECE):
            parts.append(answer[start:start + EXTRACTIVE_STREAM_PIECE])
            if visible:
                ctx.stream_answer(parts[-1])
        usage = Usage()
    else:
        assert deps.chat_model is not None
        params = ChatParams(model=model, temperature=temperature(ctx.get("temperature")),
                            max_tokens=int(max_tokens) if isinstance(max_tokens, (int, float)) and max_tokens > 0
                            else None, extra=_extra(ctx))
        if ctx.env.stream:
            async with aclosing(deps.chat_model.stream(messages, params)) as deltas:
                async for delta in deltas:
                    if delta.content:
                        parts.append(delta.content)
                        if visible:
                            ctx.stream_answer(delta.content)
                    if delta.finish_reason:
                        finish = delta.finish_reason
                    if delta.usage is not None:
                        usage = delta.usage
        else:
            result = await deps.chat_model.complete(messages, params)
            parts.append(result.content)
            if visible:
                ctx.stream_answer(result.content)
            usage, finish, model = result.usage, result.finish_reason, result.model or model
    answer = "".join(parts)
    usage = usage or Usage()
    new_history = history_items([m for m in history if m.role != "system"]
                                + [ChatMessage("user", question), ChatMessage("assistant", answer)])
    return NodeResult(
        outputs={"answerText": answer, "history": new_history, "reasoningText": ""},
        usage=usage, model=model, finish_reason=finish,
        response={"totalPoints": 0, "model": model, "extractive": extractive, "tokens": usage.total_tokens,
                  "query": question, "maxToken": max_tokens, "reasoningText": "",
                  "historyPreview": history_items(messages[-6:]), "finishReason": finish,
                  "contextTotalLen": len(messages)})


SPEC = NodeSpec(kind="chatNode", run=run, description="AI chat")
