from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from zhiku.auth import service
from zhiku.errors import Forbidden
from zhiku.safetext import Name
from zhiku.web.deps import CurrentPrincipal, SessionDep

router = APIRouter(prefix="/api/keys", tags=["api keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: Name = Field(min_length=1, max_length=100)
    app_id: int | None = Field(None, alias="appId", ge=1, le=2**63 - 1)


class KeyPublic(BaseModel):
    id: int
    name: str
    app_id: int | None
    key_prefix: str
    created_at: datetime
    last_used_at: datetime | None


def _require_login(principal: service.Principal) -> None:
    if principal.kind != "session":
        raise Forbidden("API keys are managed by a logged-in user, not with an API key", code="login_required")


@router.post("", status_code=201)
async def create_key(body: KeyCreate, session: SessionDep, principal: CurrentPrincipal) -> dict:
    _require_login(principal)
    created = await service.create_api_key(session, principal, body.name, body.app_id)
    return {"id": created.id, "name": created.name, "appId": created.app_id, "key": created.key}


@router.get("")
async def list_keys(session: SessionDep, principal: CurrentPrincipal) -> list[KeyPublic]:
    _require_login(principal)
    return [KeyPublic(id=k.id, name=k.name, app_id=k.app_id, key_prefix=k.key_prefix, created_at=k.created_at,
                      last_used_at=k.last_used_at) for k in await service.list_api_keys(session, principal)]


@router.delete("/{key_id}", status_code=204)
async def delete_key(key_id: int, session: SessionDep, principal: CurrentPrincipal) -> None:
    _require_login(principal)
    await service.delete_api_key(session, principal, key_id)
