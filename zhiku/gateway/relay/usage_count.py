"""Local token counts (offline tiktoken) for when an upstream reports no usage."""

from __future__ import annotations

import json
from typing import Any

from zhiku.chat_model import Usage, tool_calls_of
from zhiku.gateway.domain import ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK
from zhiku.tokencount import count_message_tokens, count_tokens


def prompt_tokens(endpoint: str, body: dict[str, Any], model: str) -> int:
    if endpoint == ENDPOINT_CHAT:
        messages = body.get("messages")
        return count_message_tokens([m for m in messages if isinstance(m, dict)], model) \
            if isinstance(messages, list) else 0
    if endpoint == ENDPOINT_COMPLETIONS:
        return count_tokens(_joined(body.get("prompt")), model)
    if endpoint == ENDPOINT_EMBEDDINGS:
        return count_tokens(_joined(body.get("input")), model)
    if endpoint == ENDPOINT_RERANK:
        documents = body.get("documents") or []
        texts = [d.get("text", "") if isinstance(d, dict) else str(d) for d in documents]
        return count_tokens(str(body.get("query") or "") + "".join(texts), model)
    return 0


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v if isinstance(v, str) else "" for v in value)  # token-id lists are not text
    return ""


def completion_text(endpoint: str, raw: bytes) -> str:
    """The generated text of a whole (non-stream) OpenAI-format answer, its tool calls' names and arguments
    included."""
    if endpoint not in (ENDPOINT_CHAT, ENDPOINT_COMPLETIONS):
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    parts: list[str] = []
    for choice in data.get("choices") or [] if isinstance(data, dict) else []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
            parts.extend(call.name + call.arguments for call in tool_calls_of(message.get("tool_calls")))
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)


def counted_usage(endpoint: str, body: dict[str, Any], model: str, completion: str) -> Usage:
    return Usage(prompt_tokens=prompt_tokens(endpoint, body, model),
                 completion_tokens=count_tokens(completion, model) if completion else 0)
