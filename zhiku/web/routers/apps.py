from __future__ import annotations

from fastapi import APIRouter

from zhiku.apps import service
from zhiku.apps.schemas import AppCreate, AppPublic, AppUpdate
from zhiku.web.deps import SessionDep, TeamPrincipal

router = APIRouter(prefix="/api/apps", tags=["apps"])


@router.post("", status_code=201)
async def create_app(body: AppCreate, session: SessionDep, principal: TeamPrincipal) -> AppPublic:
    return await service.create_app(session, principal, body)


@router.get("")
async def list_apps(session: SessionDep, principal: TeamPrincipal) -> list[AppPublic]:
    return await service.list_apps(session, principal)


@router.get("/{app_id}")
async def get_app(app_id: int, session: SessionDep, principal: TeamPrincipal) -> AppPublic:
    return await service.get_app(session, principal, app_id)


@router.patch("/{app_id}")
async def update_app(app_id: int, body: AppUpdate, session: SessionDep, principal: TeamPrincipal) -> AppPublic:
    return await service.update_app(session, principal, app_id, body)


@router.delete("/{app_id}", status_code=204)
async def delete_app(app_id: int, session: SessionDep, principal: TeamPrincipal) -> None:
    await service.delete_app(session, principal, app_id)
