"""User management for root and admins (logged in; an API key or a member gets 403 ``admin_required``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from zhiku.auth import users
from zhiku.auth.users import PasswordReset, UserCreate, UserPublic
from zhiku.web.deps import CurrentPrincipal, SessionDep

router = APIRouter(prefix="/api/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]  # PostgreSQL's bigint: a larger id is a 422, not a 500


@router.get("")
async def list_users(session: SessionDep, principal: CurrentPrincipal) -> list[UserPublic]:
    return await users.list_users(session, principal)


@router.post("", status_code=201)
async def create_user(body: UserCreate, session: SessionDep, principal: CurrentPrincipal) -> UserPublic:
    return await users.create_user(session, principal, body)


@router.post("/{user_id}/disable")
async def disable_user(user_id: UserId, session: SessionDep, principal: CurrentPrincipal) -> UserPublic:
    return await users.set_user_status(session, principal, user_id, active=False)


@router.post("/{user_id}/enable")
async def enable_user(user_id: UserId, session: SessionDep, principal: CurrentPrincipal) -> UserPublic:
    return await users.set_user_status(session, principal, user_id, active=True)


@router.post("/{user_id}/password")
async def reset_password(user_id: UserId, body: PasswordReset, session: SessionDep,
                         principal: CurrentPrincipal) -> UserPublic:
    return await users.reset_user_password(session, principal, user_id, body.password)


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: UserId, session: SessionDep, principal: CurrentPrincipal) -> None:
    await users.delete_user(session, principal, user_id)
