"""The chat-model seam. Implementations live beside it; the platform only sees this protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Sequence


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

    def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[ChatDelta]: ...
