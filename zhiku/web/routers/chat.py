"""``POST /api/v1/chat/completions``: FastGPT's OpenAI-shaped app chat API."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from zhiku.apps import chat
from zhiku.chat_model import ChatDelta, Usage
from zhiku.errors import ZhikuError
from zhiku.web.deps import CurrentPrincipal, PlatformDep

router = APIRouter(tags=["chat"])


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    chat_id: str | None = Field(None, alias="chatId", max_length=200)
    detail: bool = False
    variables: dict[str, Any] = Field(default_factory=dict)
    app_id: int | None = Field(None, alias="appId")


def _sse(data: Any, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def _usage_dict(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


@router.post("/api/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, principal: CurrentPrincipal,
                           platform: PlatformDep) -> dict | StreamingResponse:
    turn = await chat.prepare_turn(platform, principal, body.messages, app_id=body.app_id, chat_id=body.chat_id,
                                   variables=body.variables)
    completion_id = chat.new_completion_id(body.chat_id)
    created = int(time.time())
    if not body.stream:
        result = await chat.complete_turn(platform, turn)
        await chat.store_turn(platform, turn, result.content, result.usage, result.model)
        response: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": result.model,
            "usage": _usage_dict(result.usage),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.content},
                         "finish_reason": result.finish_reason}],
        }
        if body.detail:
            response["responseData"] = chat.response_data(turn, result.model, result.usage)
        return response

    deltas = chat.stream_turn(platform, turn)
    # Wait for the first piece before answering, so an unreachable model still gets a proper HTTP error.
    first = await deltas.__anext__()
    return StreamingResponse(_stream(platform, turn, body.detail, completion_id, created, first, deltas),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(platform, turn: chat.ChatTurn, detail: bool, completion_id: str, created: int,
                  first: ChatDelta, rest: AsyncIterator[ChatDelta]) -> AsyncIterator[str]:
    answer_event = "answer" if detail else None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": turn.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                    answer_event)

    if detail:
        yield _sse({"status": "running", "name": "AI chat"}, "flowNodeStatus")
    parts: list[str] = []
    usage: Usage | None = None
    finish = "stop"
    yield chunk({"role": "assistant", "content": ""})
    try:
        async for delta in _prepend(first, rest):
            if delta.content:
                parts.append(delta.content)
                yield chunk({"content": delta.content})
            if delta.usage is not None:
                usage = delta.usage
            if delta.finish_reason:
                finish = delta.finish_reason
    except ZhikuError as exc:
        error = {"message": exc.message, "type": "api_error", "code": exc.code}
        yield _sse(error if detail else {"error": error}, "error" if detail else None)
        finish = "error"
    yield chunk({}, finish)
    if detail:
        yield _sse(chat.response_data(turn, turn.model, usage), "flowResponses")
    yield _sse("[DONE]", answer_event)
    await chat.store_turn(platform, turn, "".join(parts), usage, turn.model)


async def _prepend(first: ChatDelta, rest: AsyncIterator[ChatDelta]) -> AsyncIterator[ChatDelta]:
    yield first
    async for delta in rest:
        yield delta
