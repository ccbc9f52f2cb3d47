"""The chat page of an app: a conversation (streamed by ``static/chat.js`` from the chat API itself,
``POST /api/v1/chat/completions`` with the session cookie and the CSRF header) and the app's chat
history on the side (continue, rename, delete), with good/bad feedback on answers. History and feedback
go through :mod:`zhiku.apps.history`."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps import history, service
from zhiku.auth.service import Principal
from zhiku.errors import InvalidInput
from zhiku.safetext import check_name
from zhiku.web.deps import SessionDep
from zhiku.web.ui.deps import UiPrincipal
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

HISTORY_PAGE = 30
# The event <body> gets when a turn was stored; the history list reloads on it.
CHAT_SAVED = "chat-saved"
MAX_CHAT_ID = 200  # as the chat API takes


class FeedbackBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    item_id: int = Field(alias="itemId", ge=1, le=2**63 - 1)
    feedback: Literal["good", "bad"] | None


def _chat_id(value: str) -> str:
    """A chat id as the chat API takes it (a name of at most 200 characters)."""
    try:
        value = check_name(value)
    except ValueError as exc:
        raise InvalidInput(f"chat id: {exc}", code="invalid_chat_id") from None
    if len(value) > MAX_CHAT_ID:
        raise InvalidInput(f"a chat id has at most {MAX_CHAT_ID} characters", code="invalid_chat_id")
    return value


async def _page(request: Request, session: AsyncSession, principal: Principal, app_id: int,
                chat_id: str) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    stored = await history.load_chat(session, principal, app_id, chat_id)
    chats, total = await history.list_chats(session, principal, app_id, limit=HISTORY_PAGE)
    data = {"appId": app.id, "chatId": chat_id, "variables": stored.variables,
            "items": [dataclasses.asdict(item) for item in stored.items], "someoneElses": stored.someone_elses}
    return render(request, "chat/chat.html", app=app, chat_id=chat_id, items=stored.items, chat_data=data,
                  chats=chats, total=total, offset=0, page_size=HISTORY_PAGE, saved_event=CHAT_SAVED)


@router.get("/chat/{app_id:int}")
async def new_chat(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    """A new conversation: its id is made here, and the chat is stored under it with its first turn."""
    return await _page(request, session, principal, app_id, uuid.uuid4().hex)


@router.get("/chat/{app_id:int}/{chat_id}")
async def chat_page(request: Request, app_id: int, chat_id: str, session: SessionDep,
                    principal: UiPrincipal) -> HTMLResponse:
    return await _page(request, session, principal, app_id, _chat_id(chat_id))


async def _history(request: Request, session: AsyncSession, principal: Principal, app_id: int, current: str,
                   offset: int = 0, template: str = "chat/_history.html") -> HTMLResponse:
    chats, total = await history.list_chats(session, principal, app_id, offset=offset, limit=HISTORY_PAGE)
    return render(request, template, app_id=app_id, chat_id=current, chats=chats, total=total, offset=offset,
                  page_size=HISTORY_PAGE, saved_event=CHAT_SAVED)


@router.get("/chat/{app_id:int}/{chat_id}/history")
async def history_fragment(request: Request, app_id: int, chat_id: str, session: SessionDep,
                           principal: UiPrincipal, offset: int = 0) -> HTMLResponse:
    """The history list (``offset`` > 0: only the next page of its entries, for "more")."""
    template = "chat/_history_items.html" if offset > 0 else "chat/_history.html"
    return await _history(request, session, principal, app_id, _chat_id(chat_id), max(offset, 0), template)


@router.post("/chat/{app_id:int}/{chat_id}/rename")
async def rename(request: Request, app_id: int, chat_id: str, session: SessionDep,
                 principal: UiPrincipal) -> HTMLResponse:
    form = await request.form()
    title = str(form.get("title") or "").strip()
    if not title:
        raise InvalidInput("a chat needs a title", code="title_required")
    await history.rename_chat(session, principal, app_id, _chat_id(chat_id), title)
    return await _history(request, session, principal, app_id, _chat_id(str(form.get("current") or chat_id)))


@router.post("/chat/{app_id:int}/{chat_id}/pin")
async def pin(request: Request, app_id: int, chat_id: str, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    """Pin a chat to the top of the history, or (``top`` empty) unpin it."""
    form = await request.form()
    await history.update_chat(session, principal, app_id, _chat_id(chat_id), top=bool(form.get("top")))
    return await _history(request, session, principal, app_id, _chat_id(str(form.get("current") or chat_id)))


@router.post("/chat/{app_id:int}/{chat_id}/delete")
async def delete(request: Request, app_id: int, chat_id: str, session: SessionDep,
                 principal: UiPrincipal) -> Response:
    chat_id = _chat_id(chat_id)
    current = str((await request.form()).get("current") or "")
    await history.delete_chat(session, principal, app_id, chat_id)
    if current == chat_id:  # the open conversation is gone: start a new one
        return Response(status_code=204, headers={"HX-Redirect": f"/chat/{app_id}"})
    return await _history(request, session, principal, app_id, _chat_id(current or chat_id))


@router.get("/chat/{app_id:int}/{chat_id}/last-answer")
async def last_answer(app_id: int, chat_id: str, session: SessionDep, principal: UiPrincipal) -> JSONResponse:
    """The id of the answer just streamed, which feedback names."""
    return JSONResponse({"id": await history.last_answer_id(session, principal, app_id, _chat_id(chat_id))})


@router.post("/chat/{app_id:int}/{chat_id}/feedback", status_code=204)
async def feedback(app_id: int, chat_id: str, body: FeedbackBody, session: SessionDep,
                   principal: UiPrincipal) -> Response:
    await history.set_feedback(session, principal, app_id, _chat_id(chat_id), body.item_id, body.feedback)
    return Response(status_code=204)
