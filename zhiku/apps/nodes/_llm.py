"""Helpers the model-calling kinds share: history rounds, quotes back from JSON, JSON replies."""

from __future__ import annotations

import json
import re
from typing import Any

from zhiku.apps.workflow.graph import as_list
from zhiku.apps.workflow.node import NodeContext
from zhiku.apps.workflow.refs import to_text
from zhiku.chat_model import ChatMessage, ChatParams, ChatResult
from zhiku.errors import ZhikuError
from zhiku.retrieval.fusion import Candidate, ScoreItem

DEFAULT_HISTORY_ROUNDS = 6
MAX_TEMPERATURE = 2.0  # FastGPT's 0–10 temperature scale maps onto OpenAI's 0–2
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_ROLES = {"Human": "user", "AI": "assistant", "System": "system"}


def history_messages(ctx: NodeContext, value: Any) -> list[ChatMessage]:
    """A history input: a number of rounds (2 messages each) of the run's history, or a chatHistory list."""
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, ChatMessage):
                out.append(item)
            elif isinstance(item, dict):
                role = _ROLES.get(str(item.get("obj")), item.get("role") or "user")
                out.append(ChatMessage(role=str(role), content=to_text(item.get("value", item.get("content")))))
        return out
    try:
        rounds = int(value) if value is not None else DEFAULT_HISTORY_ROUNDS
    except (TypeError, ValueError):
        rounds = DEFAULT_HISTORY_ROUNDS
    histories = ctx.env.histories
    return list(histories[-rounds * 2:]) if rounds > 0 else []


def history_items(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"obj": {"user": "Human", "assistant": "AI"}.get(m.role, "System"), "value": m.content}
            for m in messages]


def candidate_from_quote(raw: dict[str, Any]) -> Candidate:
    """A quote item (FastGPT's quoteList shape) back into a search candidate."""
    def number(value: Any) -> int:
        return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else 0

    scores = tuple(ScoreItem(type=s.get("type"), value=float(s.get("value") or 0), index=int(s.get("index") or 0))
                   for s in as_list(raw.get("score")) if isinstance(s, dict)
                   and s.get("type") in ("embedding", "fullText", "reRank", "rrf"))
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return Candidate(chunk_id=number(raw.get("id")), q=to_text(raw.get("q")), a=to_text(raw.get("a")),
                     dataset_id=number(raw.get("datasetId")), collection_id=number(raw.get("collectionId")),
                     chunk_index=number(raw.get("chunkIndex")), source_name=to_text(raw.get("sourceName")),
                     scores=scores, meta=meta)


def model_name(ctx: NodeContext, key: str = "model") -> str:
    return to_text(ctx.get(key)).strip() or ctx.env.deps.default_model


def temperature(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return min(max(float(value), 0.0), 10.0) / 10 * MAX_TEMPERATURE
    except (TypeError, ValueError):
        return None


async def complete(ctx: NodeContext, messages: list[ChatMessage], model: str,
                   temperature_value: float | None = 0.0) -> ChatResult:
    chat_model = ctx.env.deps.chat_model
    if chat_model is None:
        raise ZhikuError(f"{ctx.node.label} needs a chat model, and none is configured "
                         "(set OPENAI_BASE_URL and CHAT_API_KEY, or add a gateway channel)",
                         code="chat_model_required", status=422)
    return await chat_model.complete(messages, ChatParams(model=model, temperature=temperature_value))


def json_reply(text: str, kind: type | None = None) -> Any:
    """The JSON in a model's reply: the whole text, a fenced block, or the outermost {...} / [...];
    with ``kind`` (dict or list) the first of those that is one."""
    candidates = [text.strip()] + [m.strip() for m in _FENCE.findall(text)]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if kind is None or isinstance(parsed, kind):
            return parsed
    return None
