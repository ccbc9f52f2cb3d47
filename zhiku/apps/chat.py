"""One chat turn of an app, as one stream of typed events: history → the app's workflow → store.

:func:`run_chat_turn` is the only way a turn runs: the chat API encodes its events (SSE or one JSON
body), the CLI prints them, and the web UI consumes the same stream. Every app runs on the workflow
executor: a simple app compiles to workflowStart → datasetSearchNode → chatNode
(:func:`zhiku.apps.workflow_apps.simple_workflow`). The turn is stored when it ends, also when the
consumer goes away before the end (a client that hangs up keeps its question and the answer received
so far).

Which turns are stored follows FastGPT's completions: a turn without a chat id is stored under a fresh
random one (its context is the request's messages; the v1 API answers with that id), a turn with the id
``NO_RECORD_HISTORIES`` is not stored, and a message that answers a paused run is merged into the answer
that paused (:mod:`zhiku.apps.chat_values`) instead of being stored as a new question and answer.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zhiku.apps.chat_access import may_continue
from zhiku.apps.chat_values import AnswerItems, resumed_value, stored_value
from zhiku.apps.extractive import MODEL_NAME as EXTRACTIVE_MODEL
from zhiku.apps.nodes import REGISTRY
from zhiku.apps.prompt import message_files, parse_messages
from zhiku.apps.service import load_app
from zhiku.apps.workflow.events import (
    AnswerText,
    InteractionRequested,
    NodeResponse,
    NodeStatus,
    QuotesFound,
    ToolActivity,
    VariablesUpdated,
    WorkflowFinished,
)
from zhiku.apps.workflow.executor import Limits, run_workflow
from zhiku.apps.workflow.graph import SYSTEM_VARIABLES, Workflow, parse_workflow
from zhiku.apps.workflow.node import ChatDeps, RunEnv
from zhiku.apps.workflow.refs import coerce, to_text
from zhiku.apps.workflow_apps import app_graph
from zhiku.auth.service import Principal
from zhiku.chat_model import ChatMessage, Usage
from zhiku.db.models import Chat, ChatItem
from zhiku.errors import Forbidden, InvalidInput, ZhikuError
from zhiku.retrieval.fusion import Candidate
from zhiku.retrieval.search import quote_dict
from zhiku.retrieval.settings import check_query_length

__all__ = ["AnswerText", "ChatDeps", "ChatEvent", "ChatRequest", "InteractionRequested", "NodeResponse",
           "NodeStatus", "QuotesFound", "ToolActivity", "TurnDone", "TurnFailed", "TurnStarted",
           "VariablesUpdated", "run_chat_turn"]

# Stored messages loaded for a turn: FastGPT loads twice the largest history setting, at least 20.
MIN_HISTORY_MESSAGES = 20
MAX_HISTORY_MESSAGES = 200
# FastGPT's chat id for a turn that is run but never stored.
NO_RECORD_CHAT_ID = "NO_RECORD_HISTORIES"
_ID_ALPHABET = string.ascii_letters + string.digits


def new_chat_id() -> str:
    """A chat id for a turn sent without one (24 characters, as FastGPT's nanoid)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


@dataclass(frozen=True)
class ChatRequest:
    messages: Sequence[Any]  # OpenAI-style messages; with a chat_id only the last one counts
    app_id: int | None = None
    chat_id: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    stream: bool = True  # False: the model answers in one piece (one AnswerText event)
    source: str = "api"
    response_chat_item_id: str | None = None
    custom_uid: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # kept with the chat (FastGPT's chat metadata)
    origin_ip: str | None = None  # the caller's address, kept in the metadata as ``originIp``
    limits: Limits = Limits()


# ---- the turn's own events (the nodes' events come from zhiku.apps.workflow.events) ---------------

@dataclass(frozen=True)
class TurnStarted:
    """Always first: the model that will answer, and the chat the turn belongs to (a fresh id when the
    request named none)."""

    model: str
    chat_id: str = ""


@dataclass(frozen=True)
class TurnDone:
    answer: str
    model: str
    finish_reason: str
    usage: Usage
    response_data: list[dict[str, Any]]  # FastGPT's per-node ``responseData``
    new_variables: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    interactive: dict[str, Any] | None = None
    custom_feedbacks: list[str] = field(default_factory=list)
    # FastGPT's value items of the answer, as stored: text, tool calls and the pending interaction in order.
    value: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class TurnFailed:
    """The turn stopped with this error; the answer received before it (if any) was streamed."""

    error: ZhikuError
    answered: bool  # some answer text went out before the error
    response_data: list[dict[str, Any]]
    new_variables: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0


ChatEvent = (TurnStarted | NodeStatus | QuotesFound | AnswerText | NodeResponse | VariablesUpdated
             | InteractionRequested | ToolActivity | TurnDone | TurnFailed)


@dataclass
class _Turn:
    app_id: int
    chat_id: str
    question: str
    model: str
    workflow: Workflow
    env: RunEnv
    data_id: str | None = None  # the answer's FastGPT dataId (responseChatItemId)
    out_link_uid: str | None = None  # FastGPT's outLinkUid: a share visitor's id, or an API call's customUid
    resume: dict[str, Any] | None = None  # the interactive state this turn's message answers
    record: bool = True  # False: FastGPT's NO_RECORD_HISTORIES, the turn is not stored
    metadata: dict[str, Any] = field(default_factory=dict)


async def run_chat_turn(deps: ChatDeps, principal: Principal,
                        request: ChatRequest) -> AsyncIterator[ChatEvent]:
    """Run one turn: its events in order, ending with :class:`TurnDone` or :class:`TurnFailed`.

    Errors in the request itself (no such app, a key bound to another app, no question) are raised
    before the first event; everything after is reported as events.
    """
    turn = await _prepare(deps, principal, request)
    yield TurnStarted(turn.model, turn.chat_id)
    parts: list[str] = []
    items = AnswerItems()  # the answer as FastGPT stores it: its text and tool calls in order
    quotes: list[Candidate] = []
    finished: WorkflowFinished | None = None
    try:
        async with aclosing(run_workflow(turn.workflow, REGISTRY, turn.env, request.limits,
                                         resume=turn.resume)) as events:
            async for event in events:
                if isinstance(event, WorkflowFinished):
                    finished = event
                    continue
                if isinstance(event, AnswerText):
                    parts.append(event.text)
                    items.add_text(event.text)
                elif isinstance(event, ToolActivity):
                    items.add_tool(event)
                elif isinstance(event, QuotesFound):
                    quotes.extend(event.quotes)
                yield event
        assert finished is not None
        if finished.error is not None:
            yield TurnFailed(finished.error, answered=bool(parts), response_data=finished.response_data,
                             new_variables=finished.new_variables, duration_s=finished.duration_s)
            return
        yield TurnDone(answer="".join(parts), model=finished.model or turn.model,
                       finish_reason=finished.finish_reason, usage=finished.usage,
                       response_data=finished.response_data, new_variables=finished.new_variables,
                       duration_s=finished.duration_s, interactive=finished.interactive,
                       custom_feedbacks=finished.custom_feedbacks, value=items.value(finished.interactive))
    finally:
        if parts or (finished is not None and finished.error is None):  # a turn failed before any answer: not kept
            model = (finished.model if finished is not None else None) or turn.model
            usage = finished.usage if finished is not None else None
            await _store_even_if_cancelled(deps, turn, "".join(parts), items, quotes, usage, model,
                                           request.source, finished)


def _resolve_app_id(principal: Principal, app_id: int | None) -> int:
    if principal.app_id is not None:
        if app_id is not None and app_id != principal.app_id:
            raise Forbidden("this API key is bound to another app", code="app_key_mismatch")
        return principal.app_id
    if app_id is None:
        raise InvalidInput("this key is not bound to an app: pass appId, or use an app key", code="app_required")
    return app_id


async def _stored_chat(session: AsyncSession, app_id: int, chat_id: str,
                       limit: int) -> tuple[list[ChatMessage], dict[str, Any]]:
    chat = (await session.execute(select(Chat).where(Chat.app_id == app_id, Chat.chat_id == chat_id))).scalar_one_or_none()
    if chat is None:
        return [], {}
    rows = await session.execute(select(ChatItem.role, ChatItem.content).where(ChatItem.chat_pk == chat.id)
                                 .order_by(ChatItem.id.desc()).limit(limit))
    return [ChatMessage(role=r, content=c) for r, c in reversed(rows.all())], dict(chat.variables or {})


async def _pending_interaction(session: AsyncSession, app_id: int, chat_id: str) -> dict[str, Any] | None:
    """The interactive state of the chat's last answer, when its run paused for the user."""
    return (await session.execute(
        select(ChatItem.interactive).join(Chat, Chat.id == ChatItem.chat_pk)
        .where(Chat.app_id == app_id, Chat.chat_id == chat_id, ChatItem.role == "assistant")
        .order_by(ChatItem.id.desc()).limit(1))).scalar_one_or_none()


def _history_limit(workflow: Workflow) -> int:
    rounds = [n.value("history") for n in workflow.nodes]
    largest = max([r for r in rounds if isinstance(r, int) and not isinstance(r, bool)] or [0])
    return min(max(MIN_HISTORY_MESSAGES, 2 * largest), MAX_HISTORY_MESSAGES)


def initial_variables(workflow: Workflow, given: dict[str, Any]) -> dict[str, Any]:
    """FastGPT's run-start variables: each declared one from the caller by label, then key, else its
    default, in its value type; undeclared ones the caller sent are kept as sent."""
    variables = dict(given)
    for declared in workflow.variables:
        if declared.label and declared.label in given:
            value = given[declared.label]
            variables.pop(declared.label, None)
        elif declared.key in given:
            value = given[declared.key]
        else:
            value = declared.default_value
        value = coerce(value, declared.value_type) if value is not None else None
        if declared.max_length is not None and len(to_text(value)) > declared.max_length:
            raise InvalidInput(f"variable {declared.key!r} is longer than its {declared.max_length} characters",
                               code="variable_too_long")
        variables[declared.key] = value
    return variables


def _first_model(workflow: Workflow, deps: ChatDeps) -> str:
    if deps.chat_model is None:
        return EXTRACTIVE_MODEL
    for node in workflow.nodes:
        if node.kind in ("chatNode", "tools"):
            model = node.value("model")
            return model if isinstance(model, str) and model.strip() else deps.default_model
    return deps.default_model


async def _prepare(deps: ChatDeps, principal: Principal, request: ChatRequest) -> _Turn:
    messages = parse_messages(list(request.messages))
    check_query_length(messages[-1].content.strip())  # before any database or model work
    app_pk = _resolve_app_id(principal, request.app_id)
    stored = bool(request.chat_id) and request.chat_id != NO_RECORD_CHAT_ID
    chat_id = request.chat_id or new_chat_id()
    async with deps.sessions() as session:
        app = await load_app(session, principal, app_pk)
        workflow = parse_workflow(await app_graph(session, app))
        # With a chatId the server keeps the history and only the last message counts (FastGPT behaviour).
        if stored:
            if not await may_continue(session, principal, app.id, chat_id):
                raise Forbidden(f"chat {chat_id!r} belongs to someone else", code="chat_forbidden")
            history, stored_variables = await _stored_chat(session, app.id, chat_id, _history_limit(workflow))
            resume = await _pending_interaction(session, app.id, chat_id)
        else:
            history, stored_variables, resume = messages[:-1], {}, None
    question = messages[-1].content.strip()
    if resume is not None:  # the message answers the paused node; the exchange that asked is not history
        history = history[:-2]
    variables = initial_variables(workflow, {**stored_variables, **request.variables})
    variables.update(userId=request.custom_uid or (str(principal.user_id) if principal.user_id else ""),
                     appId=str(app.id), chatId=chat_id, responseChatItemId=request.response_chat_item_id or "",
                     histories=[{"role": m.role, "content": m.content} for m in history],
                     cTime=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %A"))
    env = RunEnv(deps=deps, principal=principal, query=question, histories=history, variables=variables,
                 stream=request.stream, app_id=app.id, chat_id=chat_id,
                 resume_reply=question if resume is not None else None, files=message_files(request.messages[-1]))
    return _Turn(app_id=app.id, chat_id=chat_id, question=question, model=_first_model(workflow, deps),
                 workflow=workflow, env=env, data_id=request.response_chat_item_id, out_link_uid=request.custom_uid,
                 resume=resume, record=request.chat_id != NO_RECORD_CHAT_ID,
                 metadata={**request.metadata, **({"originIp": request.origin_ip} if request.origin_ip else {})})


# Stores still running after their turn's consumer left (a strong reference until they finish).
_pending_stores: set[asyncio.Task[None]] = set()


async def _store_even_if_cancelled(deps: ChatDeps, turn: _Turn, answer: str, items: AnswerItems,
                                   quotes: list[Candidate], usage: Usage | None, model: str, source: str,
                                   finished: WorkflowFinished | None = None) -> None:
    if not turn.record:
        return
    task = asyncio.ensure_future(_store_turn(deps.sessions, turn, answer, items, quotes, usage, model, source,
                                             finished))
    _pending_stores.add(task)
    task.add_done_callback(_pending_stores.discard)
    await asyncio.shield(task)  # a cancelled consumer stops waiting; the store goes on


async def _store_turn(sessions: async_sessionmaker[AsyncSession], turn: _Turn, answer: str, items: AnswerItems,
                      quotes: list[Candidate], usage: Usage | None, model: str, source: str,
                      finished: WorkflowFinished | None = None) -> None:
    """Keep the question and answer (its text, its value items with the tool calls in order, with quotes, the run's responseData and custom feedbacks) under the
    chat id, creating the chat on first use (with the share link and visitor, or the user, it belongs to);
    the chat keeps the run's variables for later turns and the requests' metadata merged. A message that
    answered a paused run is merged into the answer that paused instead (FastGPT's updateInteractiveChat)."""
    variables = {k: v for k, v in turn.env.variables.items() if k not in SYSTEM_VARIABLES}
    interactive = finished.interactive if finished is not None else None
    value = items.value(interactive)
    response_data = finished.response_data if finished is not None else []
    custom_feedbacks = finished.custom_feedbacks if finished is not None else []
    quoted = [quote_dict(q) for q in quotes]
    share = turn.env.principal.share
    async with sessions() as session:
        if turn.resume is not None and await _merge_resumed(session, turn, answer, value, quoted, usage, model,
                                                            interactive, response_data, custom_feedbacks, variables,
                                                            items.earlier_responses):
            await session.commit()
            return
        statement = pg_insert(Chat).values(
            app_id=turn.app_id, chat_id=turn.chat_id, title=turn.question[:100], source=source, variables=variables,
            share_id=share.share_id if share else None, out_link_uid=turn.out_link_uid,
            user_id=turn.env.principal.user_id if share is None else None, meta=turn.metadata)
        chat_pk = (await session.execute(
            statement.on_conflict_do_update(constraint="uq_chats_app_chat",
                                            set_={"updated_at": func.now(), "variables": variables,
                                                  "metadata": Chat.meta.op("||")(statement.excluded["metadata"])})
            .returning(Chat.id))).scalar_one()
        session.add(ChatItem(chat_pk=chat_pk, role="user", content=turn.question, data_id=uuid.uuid4().hex))
        session.add(ChatItem(chat_pk=chat_pk, role="assistant", content=answer, model=model,
                             data_id=turn.data_id or uuid.uuid4().hex, response_data=response_data,
                             custom_feedbacks=custom_feedbacks, interactive=interactive,
                             value=value, quotes=quoted, usage=_usage_json(usage)))
        await session.commit()


def _usage_json(usage: Usage | None) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens} if usage else {}


async def _merge_resumed(session: AsyncSession, turn: _Turn, answer: str, value: list[Any],
                         quotes: list[dict[str, Any]], usage: Usage | None, model: str,
                         interactive: dict[str, Any] | None,
                         response_data: list[Any], custom_feedbacks: list[Any], variables: dict[str, Any],
                         tool_responses: dict[str, str] | None = None) -> bool:
    """Append a resumed run to the chat's paused answer; False when there is none any more (deleted
    meanwhile: the turn is then stored as a new question and answer)."""
    paused = (await session.execute(
        select(ChatItem).join(Chat, Chat.id == ChatItem.chat_pk)
        .where(Chat.app_id == turn.app_id, Chat.chat_id == turn.chat_id, ChatItem.role == "assistant")
        .order_by(ChatItem.id.desc()).limit(1).with_for_update(of=ChatItem))).scalar_one_or_none()
    if paused is None or paused.interactive is None:
        return False
    before = stored_value(paused.content, paused.interactive, paused.value)
    paused.value = resumed_value(before, turn.question, value, tool_responses)
    paused.content = "\n".join(part for part in (paused.content, answer) if part)
    paused.interactive = interactive  # the run's new pause, if it paused again; else nothing is pending
    paused.response_data = [*(paused.response_data or []), *response_data]
    paused.custom_feedbacks = [*(paused.custom_feedbacks or []), *custom_feedbacks]
    paused.quotes = [*(paused.quotes or []), *quotes]
    earlier = paused.usage or {}
    added = _usage_json(usage)
    paused.usage = {k: int(earlier.get(k, 0)) + added.get(k, 0) for k in ("prompt_tokens", "completion_tokens")}
    paused.model = model
    await session.execute(update(Chat).where(Chat.id == paused.chat_pk)
                          .values(updated_at=func.now(), variables=variables))
    return True
