"""The chat-model seam. Implementations live beside it; the platform only sees this protocol."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    content: str
    model: str
    finish_reason: str = "stop"
    usage: Usage | None = None


@dataclass(frozen=True)
class ChatDelta:
    """One streamed piece: text, and on the last piece the finish reason and usage."""

    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class ChatParams:
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChatModel(Protocol):
    async def complete(self, messages: Sequence[ChatMessage], params: ChatParams) -> ChatResult: ...

    def stream(self, messages: Sequence[ChatMessage],
               params: ChatParams) -> AsyncGenerator[ChatDelta, None]: ...


def openai_chat_body(messages: Sequence[ChatMessage], params: ChatParams, *, stream: bool) -> dict[str, Any]:
    """The OpenAI ``/chat/completions`` request body for these messages and parameters.

    ``params.extra`` may override sampling settings, never the model, messages or stream flag; streams
    always ask for the usage chunk (``stream_options.include_usage``).
    """
    body: dict[str, Any] = {}
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.max_tokens is not None:
        body["max_tokens"] = params.max_tokens
    body.update(params.extra)
    body["model"] = params.model
    body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
    body["stream"] = stream
    if stream:
        body["stream_options"] = {**(params.extra.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream_options", None)
    return body
