"""Login, logout and the account page (change password), over the same services as ``/api/auth``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from zhiku.auth import account, service
from zhiku.auth.service import SESSION_COOKIE
from zhiku.errors import Forbidden, InvalidInput, RateLimited, Unauthorized
from zhiku.web.deps import SessionDep, SettingsDep
from zhiku.web.routers.auth import LoginLimitsDep
from zhiku.web.ui.deps import UiPrincipal, logged_in, reload_account
from zhiku.web.ui.forms import FormFields
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

HOME = "/datasets"
TextField = Annotated[str, Form(max_length=10_000)]
# The password change form (auth/account.html): its inputs' labels, and the input each refusal is about.
PASSWORD_FORM = FormFields(
    labels={"current_password": "auth.password.current", "new_password": "auth.password.new",
            "confirm_password": "auth.password.confirm"},
    codes={"wrong_password": "current_password", "password_mismatch": "confirm_password",
           "invalid_password": "new_password", "password_too_common": "new_password"})


def safe_next(target: str) -> str:
    """Where to go after logging in: a path on this site, never another site (``//evil``, ``/\\evil``)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or urlsplit(target).netloc:
        return HOME
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"  # uvicorn applied trusted proxies already


def _same_origin(request: Request) -> bool:
    """A login form posted from another site would log the victim into the attacker's account."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


@router.get("/login")
async def login_page(request: Request, session: SessionDep, next: str = "") -> Response:
    if await logged_in(request, session):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/login.html", next=safe_next(next), username="")


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep, limits: LoginLimitsDep,
                username: TextField = "", password: TextField = "", next: TextField = "") -> Response:
    if not _same_origin(request):
        raise Forbidden("log in from Zhiku's own login page", code="cross_site_login")
    try:
        token, _ = await service.login(session, username, password, settings.session_ttl_hours,
                                       limits=limits, address=client_address(request))
    except (Unauthorized, RateLimited) as error:
        return render(request, "auth/login.html", status_code=error.status, headers=error.headers,  # Retry-After
                      error=error, next=safe_next(next), username=username)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https" or settings.profile == "prod",
                        max_age=settings.session_ttl_hours * 3600)
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep, principal: UiPrincipal) -> Response:
    await service.logout(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/account")
async def account_page(request: Request, principal: UiPrincipal) -> Response:
    return render(request, "auth/account.html")


@router.post("/account/password")
async def change_password(request: Request, session: SessionDep, principal: UiPrincipal, limits: LoginLimitsDep,
                          current_password: TextField = "", new_password: TextField = "",
                          confirm_password: TextField = "") -> Response:
    try:
        if new_password != confirm_password:
            raise InvalidInput("the new password and its confirmation differ", code="password_mismatch")
        await account.change_password(session, principal, current_password, new_password,
                                      keep_session=request.cookies.get(SESSION_COOKIE, ""), limits=limits,
                                      address=client_address(request))
    except (InvalidInput, RateLimited) as error:
        return render(request, "auth/account.html", status_code=error.status, headers=error.headers,
                      form_error=PASSWORD_FORM.error(error))
    await reload_account(request, session)  # the banner about root's password goes with the change
    return render(request, "auth/account.html", changed=True)
