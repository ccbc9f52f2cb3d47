"""``POST /api/v1/chat/completions``: FastGPT's OpenAI-shaped app chat API.

The route runs :func:`zhiku.apps.chat.run_chat_turn` and only encodes its events: as OpenAI chunks
over SSE (with FastGPT's named events when ``detail`` is true), or as one JSON body.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from zhiku import sse
from zhiku.apps.chat import (
    AnswerText,
    ChatEvent,
    ChatRequest,
    NodeStatus,
    TurnDone,
    TurnFailed,
    TurnStarted,
    run_chat_turn,
)
from zhiku.chat_model import Usage
from zhiku.errors import openai_body
from zhiku.safetext import Name, clean_json
from zhiku.web.deps import ChatDepsDep, CurrentPrincipal

router = APIRouter(tags=["chat"])


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    chat_id: Name | None = Field(None, alias="chatId", max_length=200)
    detail: bool = False
    variables: Annotated[dict[str, Any], AfterValidator(clean_json)] = Field(default_factory=dict)
    app_id: int | None = Field(None, alias="appId", ge=1, le=2**63 - 1)


def _usage_dict(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


@router.post("/api/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, principal: CurrentPrincipal,
                           deps: ChatDepsDep) -> dict | StreamingResponse:
    request = ChatRequest(messages=body.messages, app_id=body.app_id, chat_id=body.chat_id,
                          variables=body.variables, stream=body.stream)
    completion_id = body.chat_id or f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    events = run_chat_turn(deps, principal, request)
    # Events up to the first answer text are read before answering, so a request or model error that
    # comes before any answer still gets a proper HTTP error.
    head: list[ChatEvent] = []
    async for event in events:
        if isinstance(event, TurnFailed):
            await events.aclose()
            raise event.error
        head.append(event)
        if isinstance(event, (AnswerText, TurnDone)):
            break
    if not body.stream:
        async with aclosing(events):
            done = next((e for e in head if isinstance(e, TurnDone)), None)
            parts = [e.text for e in head if isinstance(e, AnswerText)]
            async for event in events:
                if isinstance(event, TurnFailed):
                    raise event.error
                if isinstance(event, AnswerText):
                    parts.append(event.text)
                elif isinstance(event, TurnDone):
                    done = event
        assert done is not None
        response: dict[str, Any] = {
            "id": completion_id, "object": "chat.completion", "created": created, "model": done.model,
            "usage": _usage_dict(done.usage),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.answer},
                         "finish_reason": done.finish_reason}],
        }
        if body.detail:
            response["responseData"] = done.response_data
        return response
    return StreamingResponse(_encode(head, events, body.detail, completion_id, created),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _encode(head: list[ChatEvent], rest: AsyncIterator[ChatEvent], detail: bool, completion_id: str,
                  created: int) -> AsyncIterator[bytes]:
    """The turn's events as OpenAI chunks; with ``detail``, FastGPT's named events around them."""
    answer_event = "answer" if detail else None
    model = ""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse.encode({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                          answer_event)

    started = False
    async with aclosing(_chain(head, rest)) as events:
        async for event in events:
            if isinstance(event, TurnStarted):
                model = event.model
                continue
            if isinstance(event, NodeStatus):
                if detail:
                    yield sse.encode({"status": event.status, "name": event.name}, "flowNodeStatus")
                continue
            if not started and isinstance(event, (AnswerText, TurnDone, TurnFailed)):
                started = True
                yield chunk({"role": "assistant", "content": ""})
            if isinstance(event, AnswerText):
                yield chunk({"content": event.text})
            elif isinstance(event, TurnFailed):
                error = openai_body(event.error)
                yield sse.encode(error["error"] if detail else error, "error" if detail else None)
                yield chunk({}, "error")
                if detail:
                    yield sse.encode(event.response_data, "flowResponses")
                yield sse.encode("[DONE]", answer_event)
            elif isinstance(event, TurnDone):
                yield chunk({}, event.finish_reason)
                if detail:
                    yield sse.encode(event.response_data, "flowResponses")
                yield sse.encode("[DONE]", answer_event)


async def _chain(head: list[ChatEvent], rest: AsyncIterator[ChatEvent]) -> AsyncIterator[ChatEvent]:
    for event in head:
        yield event
    async with aclosing(rest):
        async for event in rest:
            yield event
