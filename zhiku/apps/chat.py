"""The chat pipeline of a simple app, as composable steps: history → search → prompt → model → store.

A later workflow engine compiles a simple app into start → dataset search →
chat nodes; those nodes will call these same steps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.extractive import MODEL_NAME as EXTRACTIVE_MODEL
from zhiku.apps.extractive import extractive_answer
from zhiku.apps.prompt import build_messages, parse_messages
from zhiku.apps.service import app_datasets_of, load_app
from zhiku.auth.service import Principal
from zhiku.chat_model import ChatDelta, ChatMessage, ChatParams, ChatResult, Usage
from zhiku.db.models import App, Chat, ChatItem
from zhiku.errors import Forbidden, InvalidInput
from zhiku.retrieval.fusion import Candidate
from zhiku.retrieval.search import SearchResult, SearchSettings, quote_dict, search
from zhiku.wiring import Platform

# How many earlier messages of a stored chat are sent back to the model (FastGPT keeps a few turns).
MAX_HISTORY_MESSAGES = 12
EXTRACTIVE_STREAM_PIECE = 24


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


async def prepare_turn(platform: Platform, principal: Principal, raw_messages: list[Any], *,
                       app_id: int | None = None, chat_id: str | None = None,
                       variables: dict[str, Any] | None = None) -> ChatTurn:
    messages = parse_messages(raw_messages)
    app_pk = _resolve_app_id(principal, app_id)
    async with platform.db.sessions() as session:
        app: App = await load_app(session, principal, app_pk)
        datasets = await app_datasets_of(session, app.id)
        # With a chatId the server keeps the history and only the last message counts (FastGPT behaviour).
        history = await _history(session, app.id, chat_id) if chat_id else messages[:-1]
    question = messages[-1].content.strip()
    settings = SearchSettings.from_dict(app.search)
    result = (await search(platform.db.sessions, platform.embedders, datasets, question, settings,
                           reranker=platform.reranker) if datasets else None)
    quotes = result.quotes if result else []
    model = (app.model or platform.settings.chat_model) if platform.chat_model is not None else EXTRACTIVE_MODEL
    system_prompt = app.system_prompt
    if not chat_id:
        # client-sent system messages are honoured when the client keeps the history itself
        system_prompt = "\n\n".join([system_prompt] + [m.content for m in history if m.role == "system"]).strip()
    prompt = build_messages(system_prompt, quotes, history, question, variables)
    return ChatTurn(app_id=app.id, chat_id=chat_id, question=question, model=model,
                    params=ChatParams(model=model, temperature=app.temperature, max_tokens=app.max_tokens),
                    prompt=prompt, quotes=quotes, search=result, variables=variables or {})


async def complete_turn(platform: Platform, turn: ChatTurn) -> ChatResult:
    if turn.extractive or platform.chat_model is None:
        return ChatResult(content=extractive_answer(turn.question, turn.quotes), model=EXTRACTIVE_MODEL,
                          usage=Usage())
    return await platform.chat_model.complete(turn.prompt, turn.params)


async def stream_turn(platform: Platform, turn: ChatTurn) -> AsyncIterator[ChatDelta]:
    if turn.extractive or platform.chat_model is None:
        answer = extractive_answer(turn.question, turn.quotes)
        for start in range(0, len(answer), EXTRACTIVE_STREAM_PIECE):
            yield ChatDelta(content=answer[start:start + EXTRACTIVE_STREAM_PIECE])
        yield ChatDelta(finish_reason="stop", usage=Usage())
        return
    async for delta in platform.chat_model.stream(turn.prompt, turn.params):
        yield delta


async def store_turn(platform: Platform, turn: ChatTurn, answer: str, usage: Usage | None, model: str,
                     source: str = "api") -> None:
    """Keep the question and answer (with quotes) under the chat id, creating the chat on first use."""
    if not turn.chat_id:
        return
    async with platform.db.sessions() as session:
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
        nodes.append({"moduleType": "datasetSearchNode", "moduleName": "Dataset search",
                      "runningTime": round(turn.search.duration_ms / 1000, 3), "searchMode": turn.search.mode,
                      "reranked": turn.search.reranked,
                      "query": turn.question, "quoteList": [quote_dict(q) for q in turn.quotes]})
    nodes.append({"moduleType": "chatNode", "moduleName": "AI chat", "model": answer_model,
                  "extractive": answer_model == EXTRACTIVE_MODEL,
                  "tokens": usage.total_tokens if usage else 0,
                  "runningTime": round(time.perf_counter() - turn.started, 3)})
    return nodes


def new_completion_id(chat_id: str | None) -> str:
    return chat_id or f"chatcmpl-{uuid.uuid4().hex}"
