"""A logged-in user's own account: who they are, and changing their own password."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.login_limits import LoginLimits
from zhiku.auth.secrets import check_password, hash_password_async, hash_token
from zhiku.auth.service import Principal
from zhiku.auth.users import PASSWORD_MAX, checked_password, public_role
from zhiku.db.models import Session, User
from zhiku.errors import Forbidden, InvalidInput


@dataclass(frozen=True)
class Account:
    username: str
    role: str  # root | admin | member
    root_password_default: bool  # root's password is still the generated one or a well-known default


async def account_of(session: AsyncSession, principal: Principal) -> Account:
    root_default = select(User.default_password).where(User.role == "root").scalar_subquery()
    username, root_password_default = (await session.execute(
        select(User.username, root_default).where(User.id == principal.user_id))).one()
    return Account(username=username, role=public_role(principal.role),
                   root_password_default=bool(root_password_default))


async def change_password(session: AsyncSession, principal: Principal, current_password: str,
                          new_password: str, *, keep_session: str, limits: LoginLimits, address: str) -> None:
    """Set a logged-in user's own password after checking the current one. Their other sessions end
    (whoever else knew the old password is logged out); ``keep_session``, the caller's, stays.

    The check of the current password counts as a login attempt of the user's (``limits``), so a
    session left open cannot be used to guess the password faster than the login page allows."""
    if principal.kind != "session" or principal.user_id is None:
        raise Forbidden("log in to change your password (an API key cannot)", code="login_required")
    new_password = checked_password(new_password)
    user = await session.get(User, principal.user_id)
    if user is None:  # deleted since the request's session was checked
        raise Forbidden("this user no longer exists", code="user_not_found")
    stored_hash, username = user.password_hash, user.username
    await session.commit()  # hand the connection back while the hashes run
    with limits.attempt(username, address) as attempt:
        if len(current_password) > PASSWORD_MAX or not await check_password(stored_hash, current_password):
            attempt.failed()
            raise InvalidInput("the current password is wrong", code="wrong_password")
        attempt.succeeded()
    user.password_hash = await hash_password_async(new_password)
    user.default_password = False  # chosen by its user now (checked_password refused the well-known ones)
    await session.execute(delete(Session).where(Session.user_id == user.id,
                                                Session.token_hash != hash_token(keep_session)))
    await session.commit()
