"""The gateway console on a standalone gateway (``zhiku gateway serve``): its own login.

A standalone gateway has no platform users or passwords: its admins hold access tokens (OneAPI's
``access_token``; root's is ``ZHIKU_GATEWAY_ADMIN_TOKEN``), the credential its admin API takes. The
login page takes that token once; the browser then holds a cookie with the token sealed by the
server's secret (Fernet: encrypted, authenticated, dated), so the token never sits readable in the
browser, the login ends after ``session_ttl_hours``, and rotating the token or disabling or demoting
the user ends it at the next request. State-changing requests carry the CSRF token derived from the
cookie, as on the platform. The cookie has its own name: the JSON admin API never takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response

from zhiku.auth.account import Account
from zhiku.auth.csrf import SAFE_METHODS, csrf_matches, csrf_token
from zhiku.errors import Forbidden, Unauthorized
from zhiku.gateway.admin import users
from zhiku.gateway.runtime import Gateway
from zhiku.gateway.store.tables import GatewayUser
from zhiku.web.ui import install_pages
from zhiku.web.ui.deps import CsrfRefused, LoginRequired, sent_csrf
from zhiku.web.ui.pages import api_docs
from zhiku.web.ui.pages.auth import safe_next
from zhiku.web.ui.pages.gateway import ConsoleAdmin, running_gateway
from zhiku.web.ui.pages.home import switch_language
from zhiku.web.ui.templating import render

CONSOLE_COOKIE = "zhiku_gateway_console"
CONSOLE_HOME = "/gateway"
GATEWAY_PAGES = "gateway"  # the page modules ``zhiku.web.ui.pages.gateway*``
ADMIN_ROLES = ("root", "admin")

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class ConsoleUser:
    """The layout's ``user`` on a standalone gateway: the console is its only area, no account page."""

    account: Account
    csrf_token: str
    is_admin: bool = True
    nav_areas: tuple[tuple[str, str, bool], ...] = (("/gateway", "common.nav.gateway", True),)
    account_page: bool = False


def session_seconds(gateway: Gateway) -> int:
    return int(gateway.settings.session_ttl_hours * 3600)


async def cookie_user(request: Request, gateway: Gateway) -> GatewayUser | None:
    sealed = request.cookies.get(CONSOLE_COOKIE, "")
    token = gateway.keybox.decrypt_recent(sealed, session_seconds(gateway)) if sealed else None
    user = await users.user_by_access_token(gateway.store, token) if token else None
    return user if user is not None and user.status == "enabled" else None


async def console_login(request: Request) -> ConsoleAdmin:
    """The console's admin check on a standalone gateway (``state.gateway_console_login``)."""
    gateway = running_gateway(request)
    user = await cookie_user(request, gateway)
    if user is None:
        raise LoginRequired
    if user.role not in ADMIN_ROLES:
        raise Forbidden("the gateway console is for root and admins", code="admin_required")
    sealed = request.cookies[CONSOLE_COOKIE]
    if request.method not in SAFE_METHODS and not csrf_matches(sealed, await sent_csrf(request)):
        raise CsrfRefused
    request.state.ui_user = ConsoleUser(account=Account(username=user.username, role=user.role,
                                                        root_password_default=False),
                                        csrf_token=csrf_token(sealed))
    return ConsoleAdmin(gateway_user_id=user.id)


def next_page(target: str) -> str:
    return safe_next(target) if target.startswith(CONSOLE_HOME) else CONSOLE_HOME


@router.get("/")
async def front_door() -> Response:
    return RedirectResponse(CONSOLE_HOME, status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = "") -> Response:
    if await cookie_user(request, running_gateway(request)) is not None:
        return RedirectResponse(next_page(next), status_code=303)
    return render(request, "gateway/login.html", next=next_page(next))


@router.post("/login")
async def login(request: Request, access_token: Annotated[str, Form(max_length=1000)] = "",
                next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("log in from the gateway's own login page", code="cross_site_login")
    gateway = running_gateway(request)
    user = await users.user_by_access_token(gateway.store, access_token.strip()) if access_token.strip() else None
    if user is None or user.status != "enabled":
        error = Unauthorized("that access token belongs to no enabled gateway user", code="invalid_admin_token")
        return render(request, "gateway/login.html", status_code=401, error=error, next=next_page(next))
    if user.role not in ADMIN_ROLES:
        error = Forbidden("the gateway console is for root and admins", code="admin_required")
        return render(request, "gateway/login.html", status_code=403, error=error, next=next_page(next))
    response = RedirectResponse(next_page(next), status_code=303)
    response.set_cookie(CONSOLE_COOKIE, gateway.keybox.encrypt(access_token.strip()), httponly=True,
                        samesite="lax", max_age=session_seconds(gateway),
                        secure=request.url.scheme == "https" or gateway.settings.profile == "prod")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await console_login(request)  # the CSRF check: another site cannot log an admin out
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(CONSOLE_COOKIE)
    return response


router.add_api_route("/lang/{lang}", switch_language, methods=["GET"])


def install_gateway_console(app: FastAPI) -> None:
    """The console's pages, ``/static``, this login and the offline ``/api/docs`` on a standalone gateway's
    app."""
    app.state.gateway_console_login = console_login
    app.include_router(router)
    app.include_router(api_docs.router)
    install_pages(app, GATEWAY_PAGES)
