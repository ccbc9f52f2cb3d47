from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from zhiku.auth import service
from zhiku.web.deps import SESSION_COOKIE, CurrentPrincipal, SessionDep, SettingsDep, credential_of

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str
    password: str


@router.post("/login")
async def login(body: LoginRequest, response: Response, session: SessionDep, settings: SettingsDep) -> dict:
    token, user = await service.login(session, body.username, body.password, settings.session_ttl_hours)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=settings.profile == "prod", max_age=settings.session_ttl_hours * 3600)
    return {"token": token, "user": {"id": user.id, "username": user.username, "role": user.role}}


@router.post("/logout", status_code=204)
async def logout(request: Request, response: Response, session: SessionDep, principal: CurrentPrincipal) -> None:
    await service.logout(session, credential_of(request))
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me")
async def me(principal: CurrentPrincipal) -> dict:
    return {"userId": principal.user_id, "teamId": principal.team_id, "role": principal.role,
            "kind": principal.kind, "appId": principal.app_id}
