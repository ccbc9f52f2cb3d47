"""The chat-model seam. Implementations live beside it; the platform only sees this protocol.

Tool calling is OpenAI's: :class:`ChatParams` carries the tool definitions, an assistant
:class:`ChatMessage` the calls it made and a ``tool`` message the result of one call (its
``tool_call_id``). A whole answer's calls are in :attr:`ChatResult.tool_calls`; a stream hands on
the pieces as they come (:class:`ToolCallDelta`, keyed by the call's ``index``), which
:class:`ToolCallAssembler` puts together.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ToolDefinition:
    """A function the model may call: its name, what it does, and its arguments as a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolCall:
    """One call the model made; ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = ""

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolCallDelta:
    """A streamed piece of a tool call: the first piece of a call has its ``id`` and ``name``, later
    ones more ``arguments`` text; ``index`` says which call of the answer it belongs to."""

    index: int
    id: str | None = None
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant message: the calls it made
    tool_call_id: str | None = None  # a ``tool`` message: the call whose result ``content`` is

    def as_openai(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.as_openai() for call in self.tool_calls]
            message["content"] = self.content or None  # OpenAI's own shape for a message that only calls
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


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
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ChatDelta:
    """One streamed piece: text or pieces of tool calls, and on the last piece the finish reason and usage."""

    content: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()


@dataclass(frozen=True)
class ChatParams:
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: str | dict[str, Any] | None = None  # OpenAI's: "auto", "none", "required" or one function


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
    body["messages"] = [m.as_openai() for m in messages]
    if params.tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                           "parameters": t.parameters}} for t in params.tools]
        if params.tool_choice is not None:
            body["tool_choice"] = params.tool_choice
    body["stream"] = stream
    if stream:
        body["stream_options"] = {**(params.extra.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream_options", None)
    return body


def tool_calls_of(raw: Any) -> tuple[ToolCall, ...]:
    """The calls of a whole answer's ``message.tool_calls`` (OpenAI's shape); malformed items are left out."""
    calls = []
    for item in raw if isinstance(raw, list) else ():
        function = item.get("function") if isinstance(item, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            arguments = function.get("arguments")
            calls.append(ToolCall(id=str(item.get("id") or ""), name=function["name"],
                                  arguments=arguments if isinstance(arguments, str) else
                                  "" if arguments is None else json.dumps(arguments, ensure_ascii=False)))
    return tuple(calls)


def tool_call_deltas_of(raw: Any) -> tuple[ToolCallDelta, ...]:
    """The pieces in a stream chunk's ``delta.tool_calls`` (OpenAI's shape)."""
    pieces = []
    for position, item in enumerate(raw if isinstance(raw, list) else ()):
        if not isinstance(item, dict):
            continue
        function = item.get("function") if isinstance(item.get("function"), dict) else {}
        index = item.get("index")
        pieces.append(ToolCallDelta(index=index if isinstance(index, int) else position,
                                    id=item["id"] if isinstance(item.get("id"), str) and item["id"] else None,
                                    name=function.get("name") if isinstance(function.get("name"), str) else "",
                                    arguments=function.get("arguments")
                                    if isinstance(function.get("arguments"), str) else ""))
    return tuple(pieces)


class ToolCallAssembler:
    """Puts streamed tool-call pieces together by their index, in the order the calls began.

    A piece with a new index starts a call; pieces with a known index add to its name and arguments
    (OpenAI sends the name once; some compatible servers split it). A call whose first piece has no id
    gets ``call_<index>``.
    """

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]

    def feed(self, pieces: Sequence[ToolCallDelta]) -> list[ToolCallDelta]:
        """Take in pieces; return the ones that started a call."""
        started = []
        for piece in pieces:
            call = self._calls.get(piece.index)
            if call is None:
                self._calls[piece.index] = [piece.id or f"call_{piece.index}", piece.name, piece.arguments]
                started.append(piece)
            else:
                if piece.id and not call[0]:
                    call[0] = piece.id
                call[1] += piece.name
                call[2] += piece.arguments
        return started

    def call_id(self, index: int) -> str:
        return self._calls[index][0]

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(id=i, name=n, arguments=a) for i, n, a in self._calls.values())
