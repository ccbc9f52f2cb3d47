"""Who is using a page: the session cookie, checked like the API's credentials, plus CSRF.

``UiPrincipal`` gives a page the :class:`~zhiku.auth.service.Principal` the services take. A page
request without a valid session is sent to ``/login?next=…`` (htmx requests get ``HX-Redirect``); a
state-changing request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in the
``X-CSRF-Token`` header or a ``csrf_token`` form field, else 403. ``UiAdmin`` also requires root or an
admin, else the 403 page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.account import Account, account_of
from zhiku.auth.csrf import CSRF_FIELD, CSRF_HEADER, SAFE_METHODS, csrf_matches, csrf_token
from zhiku.auth.service import SESSION_COOKIE, SESSION_PREFIX, Principal, authenticate
from zhiku.errors import Forbidden, Unauthorized
from zhiku.web.deps import SessionDep


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login page."""


class CsrfRefused(Forbidden):
    def __init__(self) -> None:
        super().__init__("this form is out of date or was not sent by Zhiku's own page: reload the page and "
                         "try again", code="csrf_failed")


# The layout's navigation: (path, catalogue key, for admins only).
NAV_AREAS = (("/datasets", "common.nav.datasets", False), ("/apps", "common.nav.apps", False),
             ("/gateway", "common.nav.gateway", True), ("/users", "common.nav.users", True))


@dataclass(frozen=True)
class UiUser:
    """The logged-in user as the layout shows them (the standalone gateway's console has its own, with
    the same attributes)."""

    principal: Principal
    account: Account
    csrf_token: str
    nav_areas: tuple[tuple[str, str, bool], ...] = NAV_AREAS
    account_page: bool = True

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


async def sent_csrf(request: Request) -> str:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)  # parsed once: FastAPI reuses the parsed form
        sent = value if isinstance(value, str) else ""
    return sent


async def logged_in(request: Request, session: AsyncSession) -> Principal | None:
    """The user whose session the cookie holds, or None."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token.startswith(SESSION_PREFIX):  # an API key in the cookie is no login
        return None
    try:
        return await authenticate(session, token)
    except Unauthorized:
        return None


async def get_ui_principal(request: Request, session: SessionDep) -> Principal:
    principal = await logged_in(request, session)
    if principal is None:
        raise LoginRequired
    token = request.cookies[SESSION_COOKIE]
    if request.method not in SAFE_METHODS and not csrf_matches(token, await sent_csrf(request)):
        raise CsrfRefused
    request.state.ui_user = UiUser(principal=principal, account=await account_of(session, principal),
                                   csrf_token=csrf_token(token))
    return principal


async def reload_account(request: Request, session: AsyncSession) -> None:
    """Read the user's account again after a page changed it, so the page it renders shows the change."""
    user: UiUser = request.state.ui_user
    request.state.ui_user = replace(user, account=await account_of(session, user.principal))


UiPrincipal = Annotated[Principal, Depends(get_ui_principal)]


async def get_ui_admin(principal: UiPrincipal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this page is for root and admins", code="admin_required")
    return principal


UiAdmin = Annotated[Principal, Depends(get_ui_admin)]
