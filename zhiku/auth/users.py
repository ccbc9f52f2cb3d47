"""User management: create, list, disable, enable and delete the users of a team.

Only root and admins, logged in, manage users (the CLI acts as root). The database calls a plain
user's role ``user``; the CLI and the API call it ``member``, as the issue does, and map back here.

Nothing is cached per process: :func:`zhiku.auth.service.authenticate` reads the user's status and the
key's row on every request, so disabling or deleting a user (and deleting a key) holds on every
process at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.secrets import hash_password_async
from zhiku.auth.service import Principal, is_well_known_password
from zhiku.db.models import ApiKey, Session, TeamMember, User
from zhiku.errors import Conflict, Forbidden, InvalidInput, NotFound
from zhiku.safetext import check_name

USERNAME_MAX = 100  # the column's length
PASSWORD_MIN = 8
PASSWORD_MAX = 1000  # the login route's limit: a longer one could never be typed in

Role = Literal["admin", "member"]
_DB_ROLE = {"admin": "admin", "member": "user"}
_PUBLIC_ROLE = {"root": "root", "admin": "admin", "user": "member"}


class UserCreate(BaseModel):
    username: str
    password: str
    role: Role = "member"


class PasswordReset(BaseModel):
    password: str


class UserPublic(BaseModel):
    id: int
    username: str
    role: str  # root | admin | member
    status: str  # active | disabled
    created_at: datetime


def public_role(db_role: str) -> str:
    return _PUBLIC_ROLE.get(db_role, db_role)


def _public(user: User) -> UserPublic:
    return UserPublic(id=user.id, username=user.username, role=public_role(user.role),
                      status=user.status, created_at=user.created_at)


def _require_user_admin(principal: Principal) -> None:
    if principal.kind != "session" or not principal.is_admin:
        raise Forbidden("only root and admins, logged in, manage users", code="admin_required")


def _checked_username(username: str) -> str:
    try:
        username = check_name(username)
    except ValueError as exc:
        raise InvalidInput(f"username {exc}", code="invalid_username") from None
    if len(username) > USERNAME_MAX:
        raise InvalidInput(f"a username has at most {USERNAME_MAX} characters", code="invalid_username")
    return username


def checked_password(password: str) -> str:
    """A password a user may be given: of a length that can be typed in, and no well-known default."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters", code="invalid_password")
    if is_well_known_password(password):
        raise InvalidInput("that password is a well-known default; choose another", code="password_too_common")
    return password


async def create_user(session: AsyncSession, principal: Principal, body: UserCreate) -> UserPublic:
    """A new active user in the caller's team; 409 ``username_taken`` when the name is in use."""
    _require_user_admin(principal)
    username = _checked_username(body.username)
    password = checked_password(body.password)
    password_hash = await hash_password_async(password)  # before any query: no connection held meanwhile
    user = User(username=username, password_hash=password_hash, role=_DB_ROLE[body.role], status="active",
                team_id=principal.team_id, default_password=True)  # the admin chose it, not the user
    session.add(user)
    try:
        await session.flush()
        session.add(TeamMember(team_id=principal.team_id, user_id=user.id,
                               role="admin" if body.role == "admin" else "member"))
        await session.commit()
    except IntegrityError:  # the unique username, also when another process took it just now
        await session.rollback()
        raise Conflict(f"username {username!r} is taken", code="username_taken") from None
    await session.refresh(user)
    return _public(user)


async def list_users(session: AsyncSession, principal: Principal) -> list[UserPublic]:
    _require_user_admin(principal)
    rows = await session.execute(select(User).where(User.team_id == principal.team_id).order_by(User.id))
    return [_public(user) for user in rows.scalars()]


async def find_user_id(session: AsyncSession, principal: Principal, username: str) -> int:
    """The id of a user of the caller's team by name (the CLI names users; the API uses ids)."""
    _require_user_admin(principal)
    user_id = (await session.execute(select(User.id).where(
        User.username == username, User.team_id == principal.team_id))).scalar_one_or_none()
    if user_id is None:
        raise NotFound(f"user {username!r} does not exist", code="user_not_found")
    return user_id


# verb -> (code and message when the user is root, code when it is the caller)
_REFUSALS = {"disable": ("root_cannot_be_disabled", "root cannot be disabled", "cannot_disable_self"),
             "delete": ("root_cannot_be_deleted", "root cannot be deleted", "cannot_delete_self"),
             "reset the password of": ("root_password_reset", "root changes root's password (account page, "
                                       "or `zhiku users reset-password` on the server)", "cannot_reset_self")}


async def _managed_user(session: AsyncSession, principal: Principal, user_id: int,
                        verb: Literal["disable", "delete", "reset the password of"]) -> User:
    """A user of the caller's team that the caller may disable, delete or give a new password: never
    root, never oneself (an admin who did so could lock the team out; one's own password is changed
    with the current one, on the account page)."""
    _require_user_admin(principal)
    user = await session.get(User, user_id)
    if user is None or user.team_id != principal.team_id:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    root_code, root_message, self_code = _REFUSALS[verb]
    if user.role == "root":
        raise Forbidden(root_message, code=root_code)
    if user.id == principal.user_id:
        raise InvalidInput(f"you cannot {verb} yourself", code=self_code)
    return user


async def reset_user_password(session: AsyncSession, principal: Principal, user_id: int,
                              password: str) -> UserPublic:
    """An admin sets another user's password (they forgot theirs); the user's sessions end."""
    password_hash = await hash_password_async(checked_password(password))  # before any query, as above
    user = await _managed_user(session, principal, user_id, "reset the password of")
    user.password_hash, user.default_password = password_hash, True  # the admin chose it, not the user
    await session.execute(delete(Session).where(Session.user_id == user.id))
    await session.commit()
    await session.refresh(user)
    return _public(user)


async def set_user_status(session: AsyncSession, principal: Principal, user_id: int, *,
                          active: bool) -> UserPublic:
    """Enable or disable a user. Disabling ends their sessions; their API keys are refused from the next
    request on (``authenticate`` checks the owner's status), and work again once they are enabled."""
    if active:
        _require_user_admin(principal)
        user = await session.get(User, user_id)
        if user is None or user.team_id != principal.team_id:
            raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    else:
        user = await _managed_user(session, principal, user_id, "disable")
        await session.execute(delete(Session).where(Session.user_id == user.id))
    user.status = "active" if active else "disabled"
    await session.commit()
    await session.refresh(user)
    return _public(user)


async def delete_user(session: AsyncSession, principal: Principal, user_id: int) -> None:
    """Delete a user with their sessions and the API keys they made (the keys' ``created_by`` would
    otherwise be set to NULL, leaving them working as ownerless team keys)."""
    user = await _managed_user(session, principal, user_id, "delete")
    await session.execute(delete(ApiKey).where(ApiKey.created_by == user.id))
    await session.execute(delete(User).where(User.id == user.id))  # sessions, membership: ON DELETE CASCADE
    await session.commit()
