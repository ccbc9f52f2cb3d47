"""Prompt assembly: pure functions from app settings, quotes and history to model messages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from zhiku.chat_model import ChatMessage
from zhiku.errors import InvalidInput
from zhiku.retrieval.fusion import Candidate
from zhiku.safetext import clean

QUOTE_INSTRUCTIONS = (
    "Answer using the knowledge-base excerpts inside <Quotes></Quotes>. If they do not contain the answer, "
    "say that you don't know rather than inventing one. Reply in the language of the question and do not "
    "talk about the excerpts themselves."
)
_VARIABLE = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


def fill_variables(template: str, variables: dict[str, Any]) -> str:
    """Replace ``{{name}}`` with the caller's variables; unknown names stay as written."""
    return _VARIABLE.sub(lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0),
                         template)


def message_text(content: Any) -> str:
    """OpenAI content is a string or a list of parts; keep the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise InvalidInput("message content must be a string or a list of content parts", code="invalid_messages")


MAX_MESSAGE_FILES = 20


def message_files(message: Any) -> list[str]:
    """The URLs of a message's ``file_url`` parts (FastGPT's attached documents), at most ``MAX_MESSAGE_FILES``."""
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    urls = [p["url"] for p in content if isinstance(p, dict) and p.get("type") == "file_url"
            and isinstance(p.get("url"), str) and p["url"].strip()]
    return urls[:MAX_MESSAGE_FILES]


def parse_messages(raw: Sequence[Any]) -> list[ChatMessage]:
    if not raw:
        raise InvalidInput("messages must be a non-empty list", code="invalid_messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
            raise InvalidInput(f"messages[{i}] needs a role of system, user or assistant", code="invalid_messages")
        out.append(ChatMessage(role=m["role"], content=clean(message_text(m.get("content")))))
    if out[-1].role != "user" or not out[-1].content.strip():
        raise InvalidInput("the last message must be a non-empty user message", code="invalid_messages")
    return out


def format_quotes(quotes: Sequence[Candidate]) -> str:
    parts = []
    for i, c in enumerate(quotes, 1):
        body = f"{c.q}\n{c.a}" if c.a.strip() else c.q
        parts.append(f"[{i}] ({c.citation})\n{body}")
    return "<Quotes>\n" + "\n\n".join(parts) + "\n</Quotes>"


def build_messages(system_prompt: str, quotes: Sequence[Candidate], history: Sequence[ChatMessage],
                   question: str, variables: dict[str, Any] | None = None) -> list[ChatMessage]:
    system = fill_variables(system_prompt, variables or {}).strip()
    messages: list[ChatMessage] = []
    if quotes:
        system = f"{system}\n\n{QUOTE_INSTRUCTIONS}" if system else QUOTE_INSTRUCTIONS
    if system:
        messages.append(ChatMessage(role="system", content=system))
    messages.extend(m for m in history if m.role in ("user", "assistant"))
    user = f"{format_quotes(quotes)}\n\nQuestion: {question}" if quotes else question
    messages.append(ChatMessage(role="user", content=user))
    return messages
