"""The gateway's admin API (root and admins only), on OneAPI's paths: ``/api/channel/``, ``/api/token/``,
``/api/user/``, ``/api/log/``, ``/api/option/``.

Who may call: inside ``zhiku serve`` a platform login or key of a root/admin user; anywhere, a gateway
user's access token (root's is ``ZHIKU_GATEWAY_ADMIN_TOKEN``) of role root or admin. Every write
refreshes the gateway's in-memory snapshot before answering, so the next request sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from zhiku.auth.csrf import CSRF_HEADER, cookie_request_allowed
from zhiku.auth.service import SESSION_COOKIE, bearer_or_cookie
from zhiku.errors import Forbidden, Unauthorized
from zhiku.gateway.admin import channels, logs, options, tokens, users
from zhiku.gateway.admin.schemas import (
    ChannelCreate,
    ChannelPublic,
    ChannelTestResult,
    ChannelUpdate,
    OptionsUpdate,
    Page,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    TokenUpdate,
    UserCreate,
    UserCreated,
    UserPublic,
    UserUpdate,
)
from zhiku.gateway.runtime import Gateway

router = APIRouter(tags=["gateway admin"])


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


@dataclass(frozen=True)
class Admin:
    gateway_user_id: int
    via: str  # access_token | platform


# Mounted in the platform's app, the platform's logins reach the admin API too: ``install_gateway`` is
# handed a check that a credential belongs to a platform admin.
PlatformAdminCheck = Callable[[str], Awaitable[bool]]


async def get_admin(request: Request, gateway: GatewayDep) -> Admin:
    bearer = bearer_or_cookie(request.headers.get("authorization", ""), "")
    credential = bearer or request.cookies.get(SESSION_COOKIE, "")
    if not credential:
        raise Unauthorized("missing credentials: log in, or send 'Authorization: Bearer <admin token>'")
    if not bearer and not cookie_request_allowed(request.method, credential, request.headers.get(CSRF_HEADER, "")):
        raise Forbidden("a request authenticated by the session cookie needs the X-CSRF-Token header",
                        code="csrf_failed")
    user = await users.user_by_access_token(gateway.store, credential)
    if user is not None:
        if user.role not in ("root", "admin") or user.status != "enabled":
            raise Forbidden("the gateway admin API is for root and admins", code="admin_required")
        return Admin(gateway_user_id=user.id, via="access_token")
    is_platform_admin: PlatformAdminCheck | None = getattr(request.app.state, "platform_admin_check", None)
    if is_platform_admin is None:
        raise Unauthorized("invalid admin token", code="invalid_admin_token")
    if not await is_platform_admin(credential):
        raise Forbidden("the gateway admin API is for root and admins", code="admin_required")
    return Admin(gateway_user_id=gateway.root_id or 0, via="platform")


AdminDep = Annotated[Admin, Depends(get_admin)]
PageNo = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=1000)]


def _page(items: list[Any], total: int, page: int, size: int) -> Page:
    return Page(items=items, total=total, page=page, size=size)


# ---- channels ----------------------------------------------------------------------------------


@router.get("/api/channel/")
async def list_channels(gateway: GatewayDep, _: AdminDep, page: PageNo = 1, size: PageSize = 100,
                        status: str | None = None) -> Page:
    await gateway.settle_writes()
    items, total = await channels.list_channels(gateway.store, page=page, size=size, status=status)
    return _page(items, total, page, size)


@router.post("/api/channel/", status_code=201)
async def create_channel(body: ChannelCreate, gateway: GatewayDep, _: AdminDep) -> ChannelPublic:
    created = await channels.create_channel(gateway.store, gateway.keybox, body)
    await gateway.reload()
    return created


@router.get("/api/channel/test/{channel_id}")
@router.post("/api/channel/test/{channel_id}")
async def test_channel(channel_id: int, gateway: GatewayDep, _: AdminDep) -> ChannelTestResult:
    return await gateway.test_channel(channel_id)


@router.get("/api/channel/{channel_id}")
async def get_channel(channel_id: int, gateway: GatewayDep, _: AdminDep) -> ChannelPublic:
    await gateway.settle_writes()
    return await channels.get_channel(gateway.store, channel_id)


@router.put("/api/channel/{channel_id}")
@router.patch("/api/channel/{channel_id}")
async def update_channel(channel_id: int, body: ChannelUpdate, gateway: GatewayDep, _: AdminDep) -> ChannelPublic:
    updated = await channels.update_channel(gateway.store, gateway.keybox, channel_id, body)
    if body.status == "enabled":
        gateway.cooling.pop(channel_id, None)
    await gateway.reload()
    return updated


@router.delete("/api/channel/{channel_id}", status_code=204)
async def delete_channel(channel_id: int, gateway: GatewayDep, _: AdminDep) -> None:
    await channels.delete_channel(gateway.store, channel_id)
    await gateway.reload()


# ---- tokens ------------------------------------------------------------------------------------


@router.get("/api/token/")
async def list_tokens(gateway: GatewayDep, _: AdminDep, page: PageNo = 1, size: PageSize = 100,
                      user_id: int | None = None) -> Page:
    items, total = await tokens.list_tokens(gateway.store, owner_id=user_id, page=page, size=size)
    return _page(items, total, page, size)


@router.post("/api/token/", status_code=201)
async def create_token(body: TokenCreate, gateway: GatewayDep, admin: AdminDep) -> TokenCreated:
    owner = body.user_id or admin.gateway_user_id
    await users.get_user(gateway.store, owner)  # 404 for an unknown user
    created = await tokens.create_token(gateway.store, owner, body)
    await gateway.reload()
    return created


@router.get("/api/token/{token_id}")
async def get_token(token_id: int, gateway: GatewayDep, _: AdminDep) -> TokenPublic:
    return await tokens.get_token(gateway.store, token_id)


@router.put("/api/token/{token_id}")
@router.patch("/api/token/{token_id}")
async def update_token(token_id: int, body: TokenUpdate, gateway: GatewayDep, _: AdminDep) -> TokenPublic:
    updated = await tokens.update_token(gateway.store, token_id, body)
    await gateway.reload()
    return updated


@router.delete("/api/token/{token_id}", status_code=204)
async def delete_token(token_id: int, gateway: GatewayDep, _: AdminDep) -> None:
    await tokens.delete_token(gateway.store, token_id)
    await gateway.reload()


# ---- users -------------------------------------------------------------------------------------


@router.get("/api/user/")
async def list_users(gateway: GatewayDep, _: AdminDep, page: PageNo = 1, size: PageSize = 100) -> Page:
    items, total = await users.list_users(gateway.store, page=page, size=size)
    return _page(items, total, page, size)


@router.post("/api/user/", status_code=201)
async def create_user(body: UserCreate, gateway: GatewayDep, _: AdminDep,
                      access_token: bool = False) -> UserCreated:
    created = await users.create_user(gateway.store, body, with_access_token=access_token)
    await gateway.reload()
    return created


@router.get("/api/user/{user_id}")
async def get_user(user_id: int, gateway: GatewayDep, _: AdminDep) -> UserPublic:
    return await users.get_user(gateway.store, user_id)


@router.put("/api/user/{user_id}")
@router.patch("/api/user/{user_id}")
async def update_user(user_id: int, body: UserUpdate, gateway: GatewayDep, _: AdminDep) -> UserPublic:
    await gateway.flush()  # a quota change is relative to what was spent so far
    updated = await users.update_user(gateway.store, user_id, body)
    await gateway.reload()
    return updated


@router.delete("/api/user/{user_id}", status_code=204)
async def delete_user(user_id: int, gateway: GatewayDep, _: AdminDep) -> None:
    await users.delete_user(gateway.store, user_id)
    await gateway.reload()


# ---- logs and statistics -----------------------------------------------------------------------


def _filter(user_id: int | None = None, token_id: int | None = None, token_name: str | None = None,
            channel_id: int | None = None, model: str | None = None, type: str | None = None,
            status: int | None = None, since: datetime | None = None,
            until: datetime | None = None) -> logs.LogFilter:
    return logs.LogFilter(user_id=user_id, token_id=token_id, token_name=token_name, channel_id=channel_id,
                          model=model, type=type, status=status, since=since, until=until)


LogFilterDep = Annotated[logs.LogFilter, Depends(_filter)]


@router.get("/api/log/")
async def list_logs(gateway: GatewayDep, _: AdminDep, where: LogFilterDep, page: PageNo = 1,
                    size: PageSize = 50) -> Page:
    await gateway.flush()  # show what just happened, not what the next flush would write
    items, total = await logs.list_logs(gateway.store, where, page=page, size=size)
    return _page(items, total, page, size)


@router.get("/api/log/stat")
async def usage_stats(gateway: GatewayDep, _: AdminDep, where: LogFilterDep,
                      group_by: str = "day") -> list[dict[str, Any]]:
    await gateway.flush()
    return await logs.usage_stats(gateway.store, group_by, where)


# ---- options -----------------------------------------------------------------------------------


@router.get("/api/option/")
async def get_options(gateway: GatewayDep, _: AdminDep) -> dict[str, Any]:
    return {"values": await options.get_options(gateway.store), "known": options.KNOWN_OPTIONS}


@router.put("/api/option/")
async def set_options(body: OptionsUpdate, gateway: GatewayDep, _: AdminDep) -> dict[str, Any]:
    values = await options.set_options(gateway.store, body.values)
    await gateway.reload()
    return {"values": values, "known": options.KNOWN_OPTIONS}
