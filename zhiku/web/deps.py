"""Request dependencies as ``Annotated`` aliases; tests swap them with ``app.dependency_overrides``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps import share_links
from zhiku.apps.chat import ChatDeps
from zhiku.auth.csrf import CSRF_HEADER, cookie_request_allowed
from zhiku.auth.service import SESSION_COOKIE, Principal, authenticate, bearer_or_cookie
from zhiku.config import Settings
from zhiku.errors import Forbidden
from zhiku.gateway.store.keybox import KeyBox, open_keybox
from zhiku.knowledge.fetch import FetchPolicy
from zhiku.wiring import Platform


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_settings(platform: PlatformDep) -> Settings:
    return platform.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_sealer(request: Request, platform: PlatformDep) -> KeyBox:
    """What seals short-lived links (a collection's source file): the gateway's key box, or, with the gateway
    off, one opened once from the same secret (``ZHIKU_SECRET_KEY`` or the data dir's ``secret.key``)."""
    if platform.gateway is not None:
        return platform.gateway.keybox
    sealer = getattr(request.app.state, "sealer", None)
    if sealer is None:
        sealer = request.app.state.sealer = open_keybox(platform.settings)
    return sealer


SealerDep = Annotated[KeyBox, Depends(get_sealer)]


def get_chat_deps(platform: PlatformDep) -> ChatDeps:
    return platform.chat_deps()


ChatDepsDep = Annotated[ChatDeps, Depends(get_chat_deps)]


async def get_session(platform: PlatformDep) -> AsyncIterator[AsyncSession]:
    async with platform.db.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def credential_of(request: Request) -> str:
    return bearer_or_cookie(request.headers.get("authorization", ""), request.cookies.get(SESSION_COOKIE, ""))


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The caller. A state-changing request that rides on the session cookie (a web page's script)
    must also send the session's ``X-CSRF-Token``, which another site cannot know; a bearer header is
    never sent by a browser on its own, so it needs none."""
    bearer = bearer_or_cookie(request.headers.get("authorization", ""), "")
    credential = bearer or request.cookies.get(SESSION_COOKIE, "")
    principal = await authenticate(session, credential)
    sent_csrf = request.headers.get(CSRF_HEADER, "")
    if not bearer and not cookie_request_allowed(request.method, credential, sent_csrf):
        raise Forbidden("a request authenticated by the session cookie needs the X-CSRF-Token header "
                        "(send 'Authorization: Bearer <token>' from scripts instead)", code="csrf_failed")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_team_principal(principal: CurrentPrincipal) -> Principal:
    """Management routes: a login or a team-wide key; an app-bound key may only chat."""
    if principal.app_id is not None:
        raise Forbidden("this API key is bound to one app and can only be used for its chat",
                        code="app_key_scope")
    return principal


TeamPrincipal = Annotated[Principal, Depends(get_team_principal)]


def hook_policy(settings: Settings) -> FetchPolicy:
    """How a share link's auth hook is called: the platform's fetch settings, short waits, no redirects."""
    return FetchPolicy.from_settings(settings, timeout_seconds=min(settings.fetch_timeout_seconds, 10.0),
                                     deadline_seconds=min(settings.fetch_deadline_seconds, 15.0), max_redirects=0)


async def get_chat_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """The chat API's caller: a login or an API key as everywhere; without either, a share link's visitor
    (``shareId`` + ``outLinkUid`` in the body), after the link's limits and auth hook allowed the turn."""
    if request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE):
        return await get_principal(request, session)
    try:
        body = await request.json()  # a JSON body was already parsed for the route: no second parse
    except ValueError:  # not JSON (an empty body, another content type): no share link in it
        body = None
    shared = share_links.share_body_fields(body)
    if shared is None:
        return await get_principal(request, session)  # no credentials at all: 401
    chat_id = body.get("chatId")
    return await share_links.start_chat(session, *shared, question=share_links.question_of(body.get("messages")),
                                        chat_id=chat_id if isinstance(chat_id, str) else None,
                                        policy=hook_policy(settings))


ChatPrincipal = Annotated[Principal, Depends(get_chat_principal)]
