"""classifyQuestion: the model picks one category; the branches of the others are skipped.

The model is asked for a JSON reply ``{"type": "<category id>"}`` (FastGPT's prompt mode, which works with
any chat model); a reply naming no known category picks the last one, as FastGPT does.
"""

from __future__ import annotations

import json
from typing import Any

from zhiku.apps.nodes._llm import complete, history_messages, json_reply, model_name
from zhiku.apps.workflow.graph import as_list, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text
from zhiku.chat_model import ChatMessage

PROMPT = (
    "Classify the user's question into exactly one of these categories. Reply with JSON only: "
    '{{"type": "<id>"}} where <id> is the id of the category.\n\nCategories:\n{categories}\n\n'
    "Background: {background}\n\nConversation so far:\n{history}"
)


def agents(value: Any) -> list[dict[str, str]]:
    return [{"key": str(a.get("key")), "value": to_text(a.get("value"))}
            for a in as_list(value) if isinstance(a, dict) and a.get("key")]


def choose(reply: str, categories: list[dict[str, str]]) -> dict[str, str]:
    parsed = json_reply(reply, dict)
    wanted = to_text(parsed.get("type")).strip() if isinstance(parsed, dict) else reply.strip()
    for category in categories:
        if wanted in (category["key"], category["value"]):
            return category
    for category in categories:  # a reply that names a category inside some text
        if category["key"] in reply or (category["value"] and category["value"] in reply):
            return category
    return categories[-1]


async def run(ctx: NodeContext) -> NodeResult:
    categories = agents(ctx.get("agents"))
    question = to_text(ctx.get("userChatInput")).strip() or ctx.env.query
    history = history_messages(ctx, ctx.get("history"))
    listed = "\n".join(f'- id "{c["key"]}": {c["value"]}' for c in categories)
    lines = "\n".join(f"{m.role}: {m.content}" for m in history if m.role in ("user", "assistant")) or "(none)"
    system = PROMPT.format(categories=listed, background=to_text(ctx.get("systemPrompt")) or "(none)",
                           history=lines)
    model = model_name(ctx)
    result = await complete(ctx, [ChatMessage("system", system), ChatMessage("user", question)], model)
    chosen = choose(result.content, categories)
    return NodeResult(outputs={"cqResult": chosen["value"]},
                      skip_handles=tuple(c["key"] for c in categories if c["key"] != chosen["key"]),
                      usage=result.usage,
                      response={"totalPoints": 0, "model": result.model or model, "query": question,
                                "cqList": categories, "cqResult": chosen["value"],
                                "contextTotalLen": len(history) + 2, "modelReply": json.dumps(result.content)[:500]})


def check(node: Node, workflow: Workflow) -> list[str]:
    found = agents(node.value("agents"))
    if not found:
        return ["it has no categories (agents)"]
    keys = [a["key"] for a in found]
    return [f"category id {k!r} is used twice" for k in sorted({k for k in keys if keys.count(k) > 1})]


SPEC = NodeSpec(kind="classifyQuestion", run=run, check=check,
                branches=lambda node: [a["key"] for a in agents(node.value("agents"))],
                description="question classification")
