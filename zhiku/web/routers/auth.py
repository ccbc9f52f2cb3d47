from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from zhiku.auth import account, service
from zhiku.auth.csrf import csrf_token
from zhiku.auth.login_limits import LoginLimits, LoginPolicy
from zhiku.web.deps import SESSION_COOKIE, CurrentPrincipal, SessionDep, SettingsDep, credential_of

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


def get_login_limits(request: Request, settings: SettingsDep) -> LoginLimits:
    """The app's one set of login counts, made on first use (in memory, per process)."""
    limits: LoginLimits | None = getattr(request.app.state, "login_limits", None)
    if limits is None:
        limits = request.app.state.login_limits = LoginLimits(LoginPolicy.from_settings(settings))
    return limits


LoginLimitsDep = Annotated[LoginLimits, Depends(get_login_limits)]


@router.post("/login")
async def login(body: LoginRequest, request: Request, response: Response, session: SessionDep,
                settings: SettingsDep, limits: LoginLimitsDep) -> dict:
    # uvicorn has already replaced the peer with a trusted proxy's X-Forwarded-For client
    address = request.client.host if request.client else "unknown"
    token, user = await service.login(session, body.username, body.password, settings.session_ttl_hours,
                                      limits=limits, address=address)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=settings.profile == "prod", max_age=settings.session_ttl_hours * 3600)
    # csrfToken: what a page script sends as X-CSRF-Token when it changes things with the cookie alone
    return {"token": token, "csrfToken": csrf_token(token),
            "user": {"id": user.id, "username": user.username, "role": user.role}}


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1000)
    new_password: str = Field(max_length=1000)


@router.post("/password", status_code=204)
async def change_password(body: PasswordChange, request: Request, session: SessionDep,
                          principal: CurrentPrincipal, limits: LoginLimitsDep) -> None:
    """A logged-in user's own new password; their other sessions end, this one stays."""
    address = request.client.host if request.client else "unknown"
    await account.change_password(session, principal, body.current_password, body.new_password,
                                  keep_session=credential_of(request), limits=limits, address=address)


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, session: SessionDep, principal: CurrentPrincipal) -> None:
    await service.logout(session, credential_of(request))
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me")
async def me(principal: CurrentPrincipal) -> dict:
    return {"userId": principal.user_id, "teamId": principal.team_id, "role": principal.role,
            "kind": principal.kind, "appId": principal.app_id}
