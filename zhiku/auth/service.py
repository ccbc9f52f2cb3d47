"""Users, root bootstrap, sessions and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.login_limits import LoginLimits
from zhiku.auth.secrets import check_password, hash_password_async, hash_token, new_password, new_token
from zhiku.db.models import ApiKey, App, Session, Team, TeamMember, User
from zhiku.errors import InvalidInput, NotFound, Unauthorized

ROOT_USERNAME = "root"
SESSION_PREFIX = "zks-"
API_KEY_PREFIX = "zk-"
SESSION_COOKIE = "zhiku_session"
# Passwords the seed stacks ship with or their guides suggest (FastGPT's root 1234, OneAPI's 123456):
# root keeps a banner in the web UI while its password is one of these, and no user is given one.
WELL_KNOWN_PASSWORDS = frozenset({"1234", "12345", "123456", "12345678", "123456789", "password", "changeme",
                                  "change-me", "root", "admin", "zhiku", "fastgpt", "oneapi"})


def is_well_known_password(password: str) -> bool:
    return password.strip().lower() in WELL_KNOWN_PASSWORDS


def bearer_or_cookie(authorization: str, session_cookie: str) -> str:
    """The credential a request carries: ``Authorization: Bearer …`` first, else the session cookie."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return session_cookie


@dataclass(frozen=True)
class ShareGrant:
    """A share-link visitor's access (``zhiku.apps.share_links``): the link, the visitor's id (FastGPT's
    outLinkUid, or the uid the link's auth hook gave for the visitor's token) and what the link shows."""

    share_id: str
    link_id: int
    uid: str
    token: str  # the outLinkUid as sent (the auth hook's token)
    response_detail: bool
    show_node_status: bool
    hook_url: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user, an API key (team-wide or bound to one app), or a share-link
    visitor (bound to the link's app; only its own chats)."""

    kind: Literal["session", "api_key", "share_link"]
    team_id: int
    user_id: int | None
    role: str
    app_id: int | None = None
    key_id: int | None = None
    share: ShareGrant | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in ("root", "admin")


@dataclass(frozen=True)
class RootBootstrap:
    created: bool
    generated_password: str | None  # set only when we made one up; print it once


async def ensure_root(session: AsyncSession, configured_password: str | None, *,
                      apply_to_existing: bool = True) -> RootBootstrap:
    """Create ``root`` on first start; apply ``DEFAULT_ROOT_PSW`` on every start when it is set.

    ``apply_to_existing=False`` (one-shot commands) only creates a missing root: checking the password
    of an existing one costs a password hash, a noticeable share of a short command's time.
    """
    root = (await session.execute(select(User).where(User.username == ROOT_USERNAME))).scalar_one_or_none()
    if root is None:
        password = configured_password or new_password()
        team = Team(name="root's team")
        session.add(team)
        await session.flush()
        root = User(username=ROOT_USERNAME, password_hash=await hash_password_async(password), role="root",
                    team_id=team.id, default_password=not configured_password or is_well_known_password(password))
        session.add(root)
        await session.flush()
        session.add(TeamMember(team_id=team.id, user_id=root.id, role="owner"))
        await session.commit()
        return RootBootstrap(created=True, generated_password=None if configured_password else password)
    if apply_to_existing and configured_password:
        if not await check_password(root.password_hash, configured_password):
            root.password_hash = await hash_password_async(configured_password)
        root.default_password = is_well_known_password(configured_password)
        await session.commit()
    return RootBootstrap(created=False, generated_password=None)


async def reset_password(session: AsyncSession, username: str, password: str | None) -> str:
    user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user {username!r} does not exist", code="user_not_found")
    user.default_password = not password or is_well_known_password(password)  # generated here, or 1234 & co.
    password = password or new_password()
    user.password_hash = await hash_password_async(password)
    await session.execute(delete(Session).where(Session.user_id == user.id))
    await session.commit()
    return password


async def login(session: AsyncSession, username: str, password: str, ttl_hours: int, *,
                limits: LoginLimits, address: str) -> tuple[str, User]:
    """A new session token for a right password; 401 otherwise, 429 when ``limits`` refuse the attempt.

    Every outcome but a refusal costs one password check, also for unknown and disabled users, so the
    response time does not tell whether an account exists.
    """
    with limits.attempt(username, address) as attempt:
        user = (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()
        await session.commit()  # hand the connection back while the hash runs: a burst must not drain the pool
        usable_hash = user.password_hash if user is not None and user.status == "active" else None
        right = await check_password(usable_hash, password)  # a dummy hash when None: same time either way
        if user is None or not right:
            attempt.failed()
            raise Unauthorized("wrong username or password", code="invalid_credentials")
        attempt.succeeded()
    token = new_token(SESSION_PREFIX)
    session.add(Session(token_hash=hash_token(token), user_id=user.id,
                        expires_at=datetime.now(UTC) + timedelta(hours=ttl_hours)))
    await session.commit()
    return token, user


async def logout(session: AsyncSession, token: str) -> None:
    await session.execute(delete(Session).where(Session.token_hash == hash_token(token)))
    await session.commit()


async def authenticate(session: AsyncSession, token: str) -> Principal:
    """Resolve a bearer token or session cookie value to a principal, or raise 401."""
    if not token:
        raise Unauthorized("missing credentials: send 'Authorization: Bearer <key>' or log in")
    digest = hash_token(token)
    if token.startswith(SESSION_PREFIX):
        row = (await session.execute(
            select(Session, User).join(User, User.id == Session.user_id).where(Session.token_hash == digest)
        )).first()
        if row is None or row.Session.expires_at < datetime.now(UTC) or row.User.status != "active":
            raise Unauthorized("session expired or invalid: log in again", code="invalid_session")
        return Principal(kind="session", team_id=row.User.team_id, user_id=row.User.id, role=row.User.role)
    row = (await session.execute(
        select(ApiKey, User.status).outerjoin(User, User.id == ApiKey.created_by).where(ApiKey.key_hash == digest)
    )).first()
    if row is None:
        raise Unauthorized("invalid API key", code="invalid_api_key")
    key, owner_status = row
    if owner_status is not None and owner_status != "active":  # a disabled user's keys stop with them
        raise Unauthorized("this API key belongs to a disabled user", code="api_key_owner_disabled")
    await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=datetime.now(UTC)))
    await session.commit()
    return Principal(kind="api_key", team_id=key.team_id, user_id=key.created_by, role="user",
                     app_id=key.app_id, key_id=key.id)


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    key: str  # shown once
    app_id: int | None


async def create_api_key(session: AsyncSession, principal: Principal, name: str,
                         app_id: int | None = None) -> CreatedKey:
    if not name.strip():
        raise InvalidInput("an API key needs a name", code="name_required")
    if app_id is not None:
        app = await session.get(App, app_id)
        if app is None or app.team_id != principal.team_id:
            raise NotFound(f"app {app_id} does not exist", code="app_not_found")
    key = new_token(API_KEY_PREFIX)
    row = ApiKey(team_id=principal.team_id, app_id=app_id, name=name.strip(), key_hash=hash_token(key),
                 key_prefix=key[:8], created_by=principal.user_id)
    session.add(row)
    await session.commit()
    return CreatedKey(id=row.id, name=row.name, key=key, app_id=app_id)


async def list_api_keys(session: AsyncSession, principal: Principal) -> list[ApiKey]:
    rows = await session.execute(select(ApiKey).where(ApiKey.team_id == principal.team_id).order_by(ApiKey.id))
    return list(rows.scalars())


async def delete_api_key(session: AsyncSession, principal: Principal, key_id: int) -> None:
    result = await session.execute(
        delete(ApiKey).where(ApiKey.id == key_id, ApiKey.team_id == principal.team_id))
    if result.rowcount == 0:
        raise NotFound(f"API key {key_id} does not exist", code="api_key_not_found")
    await session.commit()


async def root_principal(session: AsyncSession) -> Principal:
    """The principal the local CLI acts as: having the database is having root."""
    root = (await session.execute(select(User).where(User.username == ROOT_USERNAME))).scalar_one()
    return Principal(kind="session", team_id=root.team_id, user_id=root.id, role="root")
