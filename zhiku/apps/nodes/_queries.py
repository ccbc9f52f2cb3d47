"""Query extension (FastGPT's "question optimisation"), shared by cfr and datasetSearchNode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zhiku.apps.nodes._llm import complete, json_reply
from zhiku.apps.workflow.node import NodeContext
from zhiku.chat_model import ChatMessage, Usage

MAX_EXTRA_QUERIES = 5
MAX_BACKGROUND_CHARS = 300
EXTENSION_TEMPERATURE = 0.1

PROMPT = (
    "You rewrite a user's question into up to {limit} alternative search queries that help a knowledge-base "
    "search find the answer: resolve pronouns and references from the conversation, add synonyms, split "
    "compound questions. Keep the question's language. Reply with a JSON array of strings only, e.g. "
    '["query one", "query two"].\n\nBackground: {background}\n\nConversation:\n{history}\n\nQuestion: {question}'
)


@dataclass(frozen=True)
class Extension:
    queries: list[str]  # the original first, then the rewrites, without repeats
    usage: Usage
    model: str

    @property
    def response(self) -> dict[str, Any]:
        return {"model": self.model, "inputTokens": self.usage.prompt_tokens,
                "outputTokens": self.usage.completion_tokens, "query": self.queries[1:]}


async def extend_query(ctx: NodeContext, question: str, model: str, background: str,
                       history: list[ChatMessage]) -> tuple[list[str], Extension]:
    lines = "\n".join(f"{m.role}: {m.content}" for m in history[-6:] if m.role in ("user", "assistant"))
    prompt = PROMPT.format(limit=MAX_EXTRA_QUERIES, background=background[:MAX_BACKGROUND_CHARS] or "(none)",
                           history=lines or "(none)", question=question)
    result = await complete(ctx, [ChatMessage("user", prompt)], model, EXTENSION_TEMPERATURE)
    parsed = json_reply(result.content, list)
    extra = [str(q).strip() for q in parsed if isinstance(q, (str, int, float)) and str(q).strip()] \
        if isinstance(parsed, list) else []
    queries = list(dict.fromkeys([question] + extra[:MAX_EXTRA_QUERIES]))
    return queries, Extension(queries=queries, usage=result.usage or Usage(), model=result.model or model)
