"""FastGPT's app chat API: ``POST /api/v1/chat/completions`` and ``/api/v2/chat/completions``.

The routes run :func:`zhiku.apps.chat.run_chat_turn` and only encode its events: as OpenAI chunks
over SSE (with FastGPT's named events when ``detail`` is true: ``answer``, ``fastAnswer``,
``flowNodeStatus``, ``toolCall``, ``toolParams``, ``toolResponse``, ``updateVariables``, ``interactive``,
``workflowDuration``, ``error``, and
``flowResponses`` at the end of v1 or ``flowNodeResponse`` per node in v2), or as one JSON body.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from zhiku import sse
from zhiku.apps.chat import (
    AnswerText,
    ChatEvent,
    ChatRequest,
    InteractionRequested,
    NodeResponse,
    NodeStatus,
    ToolActivity,
    TurnDone,
    TurnFailed,
    TurnStarted,
    VariablesUpdated,
    run_chat_turn,
)
from zhiku.chat_model import Usage
from zhiku.errors import InvalidInput, PayloadTooLarge, openai_body
from zhiku.safetext import Name, clean_json
from zhiku.apps import share_links
from zhiku.web.deps import ChatDepsDep, ChatPrincipal, SettingsDep, hook_policy

router = APIRouter(tags=["chat"])

MAX_VARIABLES_CHARS = 100_000  # of the variables' JSON text
MAX_METADATA_CHARS = 10_000
# FastGPT's citation markers: [<24-hex id>](CITE) or 【<id>】(CITE); Zhiku's ids are numbers.
CITE = re.compile(r"[\[【](?:[0-9a-f]{24}|\d{1,19})[\]】]\(CITE\)")
_CITE_TAIL = 40  # a marker is at most this long, so a streamed piece holds back at most this much
KEEPALIVE_SECONDS = 10.0  # an empty answer chunk after this long without an event


def _bounded(limit: int, what: str) -> Any:
    def check(value: Any) -> Any:
        value = clean_json(value)
        if len(json.dumps(value, ensure_ascii=False)) > limit:
            raise PayloadTooLarge(f"{what} may be at most {limit} characters of JSON", code=f"{what}_too_large")
        return value
    return AfterValidator(check)


def _object(what: str) -> Any:
    def check(value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidInput(f"{what} must be a JSON object", code=f"invalid_{what}")
        return value
    return check


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    chat_id: Name | None = Field(None, alias="chatId", max_length=200)
    detail: bool = False
    variables: Annotated[dict[str, Any], _bounded(MAX_VARIABLES_CHARS, "variables")] = Field(default_factory=dict)
    app_id: int | None = Field(None, alias="appId", ge=1, le=2**63 - 1)
    response_chat_item_id: Name | None = Field(None, alias="responseChatItemId", max_length=200)
    retain_dataset_cite: bool = Field(False, alias="retainDatasetCite")
    custom_uid: Name | None = Field(None, alias="customUid", max_length=200)
    # FastGPT's chat metadata: a JSON object kept with the chat (merged over earlier turns', with originIp).
    metadata: Annotated[dict[str, Any], BeforeValidator(_object("metadata")),
                        _bounded(MAX_METADATA_CHARS, "metadata")] = Field(default_factory=dict)


def _usage_dict(usage: Usage | None) -> dict[str, int]:
    usage = usage or Usage()
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


class CiteFilter:
    """Removes citation markers from answer text, also across streamed pieces."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self._held = ""

    def feed(self, text: str) -> str:
        if self.keep:
            return text
        text = CITE.sub("", self._held + text)
        start = max(text.rfind("["), text.rfind("【"))
        if start >= 0 and len(text) - start < _CITE_TAIL and ")" not in text[start:]:
            self._held, text = text[start:], text[:start]
        else:
            self._held = ""
        return text

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held if self.keep else CITE.sub("", held)

    @classmethod
    def whole(cls, text: str, keep: bool) -> str:
        """A whole text at once, its markers removed unless ``keep``."""
        cites = cls(keep)
        return cites.feed(text) + cites.flush()


@router.post("/api/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, http: Request, principal: ChatPrincipal, deps: ChatDepsDep,
                           settings: SettingsDep) -> dict | StreamingResponse:
    return await _complete(body, http, principal, deps, settings, version=1)


@router.post("/api/v2/chat/completions", response_model=None)
async def chat_completions_v2(body: ChatCompletionRequest, http: Request, principal: ChatPrincipal,
                              deps: ChatDepsDep, settings: SettingsDep) -> dict | StreamingResponse:
    return await _complete(body, http, principal, deps, settings, version=2)


async def _complete(body: ChatCompletionRequest, http: Request, principal: Any, deps: Any, settings: Any, *,
                    version: int) -> dict | StreamingResponse:
    share = principal.share  # a share link's visitor: source "share", the visitor's id as the uid
    request = ChatRequest(messages=body.messages, app_id=body.app_id, chat_id=body.chat_id,
                          variables=body.variables, stream=body.stream, source="share" if share else "api",
                          response_chat_item_id=body.response_chat_item_id,
                          custom_uid=share.uid if share else body.custom_uid, metadata=body.metadata,
                          origin_ip=http.client.host if http.client else None)
    # FastGPT's id: the chat's (v1: the one made for a request without chatId; v2: the request's, or "").
    completion_id = body.chat_id or ""
    created = int(time.time())
    events = run_chat_turn(deps, principal, request)
    if share is not None:  # filtered as the link shows it; its usage counted (zhiku.apps.share_links)
        events = share_links.shared_turn(deps.sessions, share, events, hook_policy(settings))
        body.retain_dataset_cite = body.retain_dataset_cite and share.response_detail
    # Events up to the first answer text are read before answering, so a request or model error that
    # comes before any answer still gets a proper HTTP error.
    head: list[ChatEvent] = []
    async for event in events:
        if isinstance(event, TurnFailed) and not event.answered:
            await events.aclose()
            raise event.error
        if isinstance(event, TurnStarted) and version == 1:
            completion_id = event.chat_id
        head.append(event)
        if isinstance(event, (AnswerText, TurnDone, TurnFailed)):
            break
    if not body.stream:
        return await _whole(head, events, body, completion_id, created)
    return StreamingResponse(_encode(head, events, body, completion_id, created, version),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _whole(head: list[ChatEvent], events: AsyncIterator[ChatEvent], body: ChatCompletionRequest,
                 completion_id: str, created: int) -> dict[str, Any]:
    end: TurnDone | TurnFailed | None = None
    parts: list[str] = []
    async with aclosing(_chain(head, events)) as all_events:
        async for event in all_events:
            if isinstance(event, AnswerText):
                parts.append(event.text)
            elif isinstance(event, (TurnDone, TurnFailed)):
                end = event
    assert end is not None
    if isinstance(end, TurnFailed) and not end.answered:
        raise end.error
    content = CiteFilter.whole("".join(parts), body.retain_dataset_cite)
    model = end.model if isinstance(end, TurnDone) else ""
    response: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "usage": _usage_dict(end.usage if isinstance(end, TurnDone) else None),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": end.finish_reason if isinstance(end, TurnDone) else "error"}],
    }
    if isinstance(end, TurnFailed):
        response["error"] = openai_body(end.error)["error"]
    if isinstance(end, TurnDone) and body.detail and end.value and [i.get("type") for i in end.value] != ["text"]:
        # FastGPT: with detail, an answer that is more than one text item (tool calls, an interaction) is
        # its item list.
        response["choices"][0]["message"]["content"] = [_cited_item(item, body.retain_dataset_cite)
                                                        for item in end.value]
    if body.detail:
        response["responseData"] = end.response_data
        response["newVariables"] = end.new_variables
    return response


def _cited_item(item: dict[str, Any], retain_cite: bool) -> dict[str, Any]:
    if item.get("type") != "text":
        return item
    return {**item, "text": {**item["text"], "content": CiteFilter.whole(item["text"]["content"], retain_cite)}}


async def _encode(head: list[ChatEvent], rest: AsyncIterator[ChatEvent], body: ChatCompletionRequest,
                  completion_id: str, created: int, version: int) -> AsyncIterator[bytes]:
    """The turn's events as OpenAI chunks; with ``detail``, FastGPT's named events around them."""
    detail = body.detail
    answer_event = "answer" if detail else None
    model = ""
    cites = CiteFilter(body.retain_dataset_cite)

    def chunk(delta: dict[str, Any], finish: str | None = None, event: str | None = answer_event) -> bytes:
        return sse.encode({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                          event)

    started = False
    async with aclosing(_with_keepalive(_chain(head, rest))) as events:
        async for event in events:
            if event is None:
                if started:
                    yield chunk({"content": ""})
                continue
            if isinstance(event, TurnStarted):
                model = event.model
                continue
            if isinstance(event, (NodeStatus, VariablesUpdated, InteractionRequested, NodeResponse, ToolActivity)):
                if detail:
                    encoded = _detail_event(event, version)
                    if encoded is not None:
                        yield encoded
                continue
            if not started and isinstance(event, (AnswerText, TurnDone, TurnFailed)):
                started = True
                yield chunk({"role": "assistant", "content": ""})
            if isinstance(event, AnswerText):
                text = cites.feed(event.text)
                if text:
                    yield chunk({"content": text}, event="fastAnswer" if detail and event.fast else answer_event)
            elif isinstance(event, (TurnDone, TurnFailed)):
                tail = cites.flush()
                if tail:
                    yield chunk({"content": tail})
                if isinstance(event, TurnFailed):
                    error = openai_body(event.error)
                    yield sse.encode(error["error"] if detail else error, "error" if detail else None)
                if detail:
                    yield sse.encode({"durationSeconds": round(event.duration_s, 2)}, "workflowDuration")
                yield chunk({}, event.finish_reason if isinstance(event, TurnDone) else "error")
                if detail and version == 1:
                    yield sse.encode(event.response_data, "flowResponses")
                yield sse.encode("[DONE]", answer_event)


def _detail_event(event: ChatEvent, version: int) -> bytes | None:
    if isinstance(event, NodeStatus):
        return sse.encode({"status": event.status, "name": event.name}, "flowNodeStatus")
    if isinstance(event, VariablesUpdated):
        return sse.encode(event.variables, "updateVariables")
    if isinstance(event, InteractionRequested):
        return sse.encode({"interactive": event.interactive}, "interactive")
    if isinstance(event, ToolActivity):
        return sse.encode(event.payload(), event.event)
    if isinstance(event, NodeResponse) and version == 2:
        return sse.encode(event.item, "flowNodeResponse")
    return None


async def _chain(head: list[ChatEvent], rest: AsyncIterator[ChatEvent]) -> AsyncIterator[ChatEvent]:
    for event in head:
        yield event
    async with aclosing(rest):
        async for event in rest:
            yield event


_END = object()


async def _with_keepalive(events: AsyncIterator[ChatEvent]) -> AsyncIterator[ChatEvent | None]:
    """``events``, with None after every ``KEEPALIVE_SECONDS`` without one (FastGPT's keep-alive): the
    events are read by a task of their own, so a quiet stretch never cancels the turn."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async with aclosing(events):
                async for event in events:
                    await queue.put(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(exc)
            return
        await queue.put(_END)

    reader = asyncio.ensure_future(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not reader.done():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
