"""One chat turn of an app, as one stream of typed events: history → search → prompt → model → store.

:func:`run_chat_turn` is the only way a turn runs: the chat API encodes its events (SSE or one JSON
body), the CLI prints them, and the web UI and workflow engine will consume the same stream. The turn
is stored when it ends, also when the consumer goes away before the end (a client that hangs up keeps
its question and the answer received so far).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zhiku.apps.extractive import MODEL_NAME as EXTRACTIVE_MODEL
from zhiku.apps.extractive import extractive_answer
from zhiku.apps.prompt import build_messages, parse_messages
from zhiku.apps.service import app_datasets_of, load_app
from zhiku.auth.service import Principal
from zhiku.chat_model import ChatMessage, ChatModel, ChatParams, Usage
from zhiku.db.models import App, Chat, ChatItem
from zhiku.embedding.base import Reranker
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.errors import Forbidden, InvalidInput, ZhikuError
from zhiku.retrieval.fusion import Candidate
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.search import SearchResult, quote_dict, search
from zhiku.retrieval.settings import SearchSettings, check_query_length
from zhiku.retrieval.vector_store import VectorStore

# How many earlier messages of a stored chat are sent back to the model (FastGPT keeps a few turns).
MAX_HISTORY_MESSAGES = 12
EXTRACTIVE_STREAM_PIECE = 24
SEARCH_NODE = "Dataset search"
CHAT_NODE = "AI chat"


@dataclass(frozen=True)
class ChatDeps:
    """What a chat turn uses, handed in by whoever wires the process."""

    sessions: async_sessionmaker[AsyncSession]
    embedders: EmbedderRegistry
    chat_model: ChatModel | None  # None: the built-in extractive answerer
    default_model: str
    reranker: Reranker | None = None
    vector_store: VectorStore = PGVECTOR_STORE


@dataclass(frozen=True)
class ChatRequest:
    messages: Sequence[Any]  # OpenAI-style messages; with a chat_id only the last one counts
    app_id: int | None = None
    chat_id: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    stream: bool = True  # False: the model answers in one piece (one AnswerText event)
    source: str = "api"


# ---- the events ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TurnStarted:
    """Always first: the model that will answer."""

    model: str


@dataclass(frozen=True)
class NodeStatus:
    """A step started (FastGPT's ``flowNodeStatus``)."""

    name: str
    status: str = "running"


@dataclass(frozen=True)
class QuotesFound:
    quotes: list[Candidate]


@dataclass(frozen=True)
class AnswerText:
    text: str


@dataclass(frozen=True)
class TurnDone:
    answer: str
    model: str
    finish_reason: str
    usage: Usage
    response_data: list[dict[str, Any]]  # FastGPT's per-node ``responseData``


@dataclass(frozen=True)
class TurnFailed:
    """The turn stopped with this error; the answer received before it (if any) was streamed."""

    error: ZhikuError
    answered: bool  # some answer text went out before the error
    response_data: list[dict[str, Any]]


ChatEvent = TurnStarted | NodeStatus | QuotesFound | AnswerText | TurnDone | TurnFailed


# ---- the turn ------------------------------------------------------------------------------------

@dataclass
class ChatTurn:
    """Everything one question needs, gathered before the model is called."""

    app_id: int
    chat_id: str | None
    question: str
    model: str
    params: ChatParams
    prompt: list[ChatMessage]
    quotes: list[Candidate]
    search: SearchResult | None
    variables: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def extractive(self) -> bool:
        return self.model == EXTRACTIVE_MODEL


async def run_chat_turn(deps: ChatDeps, principal: Principal,
                        request: ChatRequest) -> AsyncIterator[ChatEvent]:
    """Run one turn: its events in order, ending with :class:`TurnDone` or :class:`TurnFailed`.

    Errors in the request itself (no such app, a key bound to another app, no question) are raised
    before the first event; everything after is reported as events.
    """
    turn = await _prepare(deps, principal, request)
    yield TurnStarted(turn.model)
    if turn.search is not None:
        yield NodeStatus(SEARCH_NODE)
        yield QuotesFound(turn.quotes)
    yield NodeStatus(CHAT_NODE)
    parts: list[str] = []
    usage: Usage | None = None
    finish = "stop"
    model = turn.model
    failed: ZhikuError | None = None
    try:
        try:
            async with aclosing(_answer(deps, turn, stream=request.stream)) as answer:
                async for text, done in answer:
                    if text:
                        parts.append(text)
                        yield AnswerText(text)
                    if done is not None:
                        finish, usage, model = done
        except ZhikuError as exc:
            failed = exc
        if failed is not None:
            yield TurnFailed(failed, answered=bool(parts), response_data=response_data(turn, model, usage))
            return
        usage = usage or Usage()
        yield TurnDone(answer="".join(parts), model=model, finish_reason=finish, usage=usage,
                       response_data=response_data(turn, model, usage))
    finally:
        if parts or failed is None:  # a turn that failed before any answer is not kept
            await _store_even_if_cancelled(deps, turn, "".join(parts), usage, model, request.source)


async def _answer(deps: ChatDeps, turn: ChatTurn, *,
                  stream: bool) -> AsyncIterator[tuple[str, tuple[str, Usage | None, str] | None]]:
    """(text, None) per piece of the answer, then ("", (finish reason, usage, model))."""
    if turn.extractive or deps.chat_model is None:
        answer = extractive_answer(turn.question, turn.quotes)
        for start in range(0, len(answer), EXTRACTIVE_STREAM_PIECE):
            yield answer[start:start + EXTRACTIVE_STREAM_PIECE], None
        yield "", ("stop", Usage(), EXTRACTIVE_MODEL)
        return
    if not stream:
        result = await deps.chat_model.complete(turn.prompt, turn.params)
        yield result.content, (result.finish_reason, result.usage, result.model)
        return
    async with aclosing(deps.chat_model.stream(turn.prompt, turn.params)) as deltas:
        async for delta in deltas:
            yield delta.content, ((delta.finish_reason, delta.usage, turn.model)
                                  if delta.finish_reason or delta.usage else None)


def _resolve_app_id(principal: Principal, app_id: int | None) -> int:
    if principal.app_id is not None:
        if app_id is not None and app_id != principal.app_id:
            raise Forbidden("this API key is bound to another app", code="app_key_mismatch")
        return principal.app_id
    if app_id is None:
        raise InvalidInput("this key is not bound to an app: pass appId, or use an app key", code="app_required")
    return app_id


async def _history(session: AsyncSession, app_id: int, chat_id: str) -> list[ChatMessage]:
    chat = (await session.execute(select(Chat).where(Chat.app_id == app_id, Chat.chat_id == chat_id))).scalar_one_or_none()
    if chat is None:
        return []
    rows = await session.execute(select(ChatItem.role, ChatItem.content).where(ChatItem.chat_pk == chat.id)
                                 .order_by(ChatItem.id.desc()).limit(MAX_HISTORY_MESSAGES))
    return [ChatMessage(role=r, content=c) for r, c in reversed(rows.all())]


async def _prepare(deps: ChatDeps, principal: Principal, request: ChatRequest) -> ChatTurn:
    messages = parse_messages(list(request.messages))
    check_query_length(messages[-1].content.strip())  # before any database or model work
    app_pk = _resolve_app_id(principal, request.app_id)
    chat_id = request.chat_id
    async with deps.sessions() as session:
        app: App = await load_app(session, principal, app_pk)
        datasets = await app_datasets_of(session, app.id)
        # With a chatId the server keeps the history and only the last message counts (FastGPT behaviour).
        history = await _history(session, app.id, chat_id) if chat_id else messages[:-1]
    question = messages[-1].content.strip()
    settings = SearchSettings.from_dict(app.search)
    result = (await search(deps.sessions, deps.embedders, datasets, question, settings,
                           reranker=deps.reranker, vector_store=deps.vector_store) if datasets else None)
    quotes = result.quotes if result else []
    model = (app.model or deps.default_model) if deps.chat_model is not None else EXTRACTIVE_MODEL
    system_prompt = app.system_prompt
    if not chat_id:
        # client-sent system messages are honoured when the client keeps the history itself
        system_prompt = "\n\n".join([system_prompt] + [m.content for m in history if m.role == "system"]).strip()
    prompt = build_messages(system_prompt, quotes, history, question, request.variables)
    return ChatTurn(app_id=app.id, chat_id=chat_id, question=question, model=model,
                    params=ChatParams(model=model, temperature=app.temperature, max_tokens=app.max_tokens),
                    prompt=prompt, quotes=quotes, search=result, variables=request.variables)


# Stores still running after their turn's consumer left (a strong reference until they finish).
_pending_stores: set[asyncio.Task[None]] = set()


async def _store_even_if_cancelled(deps: ChatDeps, turn: ChatTurn, answer: str, usage: Usage | None,
                                   model: str, source: str) -> None:
    if not turn.chat_id:
        return
    task = asyncio.ensure_future(_store_turn(deps.sessions, turn, answer, usage, model, source))
    _pending_stores.add(task)
    task.add_done_callback(_pending_stores.discard)
    await asyncio.shield(task)  # a cancelled consumer stops waiting; the store goes on


async def _store_turn(sessions: async_sessionmaker[AsyncSession], turn: ChatTurn, answer: str,
                      usage: Usage | None, model: str, source: str) -> None:
    """Keep the question and answer (with quotes) under the chat id, creating the chat on first use."""
    async with sessions() as session:
        chat_pk = (await session.execute(
            pg_insert(Chat).values(app_id=turn.app_id, chat_id=turn.chat_id, title=turn.question[:100],
                                   source=source, variables=turn.variables)
            .on_conflict_do_update(constraint="uq_chats_app_chat", set_={"updated_at": func.now()})
            .returning(Chat.id))).scalar_one()
        session.add(ChatItem(chat_pk=chat_pk, role="user", content=turn.question))
        session.add(ChatItem(chat_pk=chat_pk, role="assistant", content=answer, model=model,
                             quotes=[quote_dict(q) for q in turn.quotes],
                             usage={"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
                             if usage else {}))
        await session.commit()


def response_data(turn: ChatTurn, answer_model: str, usage: Usage | None) -> list[dict[str, Any]]:
    """FastGPT's per-node ``responseData`` for ``detail: true``."""
    nodes: list[dict[str, Any]] = []
    if turn.search is not None:
        nodes.append({"moduleType": "datasetSearchNode", "moduleName": SEARCH_NODE,
                      "runningTime": round(turn.search.duration_ms / 1000, 3), "searchMode": turn.search.mode,
                      "reranked": turn.search.reranked,
                      "query": turn.question, "quoteList": [quote_dict(q) for q in turn.quotes]})
    nodes.append({"moduleType": "chatNode", "moduleName": CHAT_NODE, "model": answer_model,
                  "extractive": answer_model == EXTRACTIVE_MODEL,
                  "tokens": usage.total_tokens if usage else 0,
                  "runningTime": round(time.perf_counter() - turn.started, 3)})
    return nodes
