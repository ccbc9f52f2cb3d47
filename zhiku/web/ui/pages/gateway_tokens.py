"""The gateway console's tokens (created with the key shown once; quota, expiry, models and limits edited
later) and users (quota, group, role)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiku.errors import ZhikuError
from zhiku.gateway.admin import tokens, users
from zhiku.gateway.admin.schemas import TokenCreate, TokenPublic, TokenUpdate, UserCreate, UserPublic, UserUpdate
from zhiku.gateway.domain import ENABLED
from zhiku.gateway.runtime import Gateway
from zhiku.web.ui.forms import FormError, FormFields, form_error, validated
from zhiku.web.ui.pages.gateway import AdminDep, ConsoleAdmin, GatewayDep, names, pager, utc_datetime, whole_number
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
# The token forms' inputs (gateway/_tokens_panel.html, token_edit.html, _token_fields.html) and their labels.
TOKEN_FORM = FormFields(labels={
    "name": "gateway.name", "user_id": "gateway.token.owner", "unlimited_quota": "gateway.token.unlimited",
    "remain_quota": "gateway.token.quota", "expires_at": "gateway.token.expires", "models": "gateway.token.models",
    "subnets": "gateway.token.subnets", "rpm_limit": "gateway.token.rpm", "tpm_limit": "gateway.token.tpm"},
    inputs={"clear_expiry": "expires_at"}, codes={"user_not_found": "user_id"})
# The user forms' inputs (gateway/_users_panel.html, and each row's role, group and quota forms).
USER_FORM = FormFields(labels={
    "username": "gateway.user.username", "display_name": "gateway.user.display_name", "role": "gateway.user.role",
    "group": "gateway.user.group", "quota": "gateway.token.quota", "add_quota": "gateway.user.add_quota"},
    codes={"user_exists": "username"})


# ---- tokens -------------------------------------------------------------------------------------


def token_values(form: Mapping[str, Any], admin: ConsoleAdmin) -> dict[str, Any]:
    unlimited = form.get("unlimited_quota") == "on"
    return {"name": str(form.get("name") or "").strip(),
            "user_id": whole_number(form, "user_id", admin.gateway_user_id),
            "expires_at": utc_datetime(str(form.get("expires_at") or ""), "expires_at"),
            "unlimited_quota": unlimited, "remain_quota": 0 if unlimited else whole_number(form, "remain_quota"),
            "models": names(str(form.get("models") or "")) or None,
            "subnets": names(str(form.get("subnets") or "")) or None,
            "rpm_limit": whole_number(form, "rpm_limit"), "tpm_limit": whole_number(form, "tpm_limit")}


async def token_panel(request: Request, gateway: Gateway, admin: ConsoleAdmin, page: int, *,
                      created: Any = None, error: FormError | None = None,
                      form: Mapping[str, Any] | None = None) -> HTMLResponse:
    """The tokens list and the create form; after a create, the dialog that shows the key once."""
    items, total = await tokens.list_tokens(gateway.store, page=page, size=PAGE_SIZE)
    owners, _ = await users.list_users(gateway.store, size=1000)
    template = "gateway/_tokens_panel.html" if request.headers.get("hx-request") else "gateway/tokens.html"
    return render(request, template, items=items, owners={u.id: u.username for u in owners},
                  me=admin.gateway_user_id, created=created, form_error=error, form=form or {},
                  pages=pager(request, page, PAGE_SIZE, total))


@router.get("/gateway/tokens", response_class=HTMLResponse)
async def token_list(request: Request, admin: AdminDep, gateway: GatewayDep,
                     page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    return await token_panel(request, gateway, admin, page)


@router.post("/gateway/tokens", response_class=HTMLResponse)
async def create_token(request: Request, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    try:
        body = validated(TokenCreate, token_values(form, admin), TOKEN_FORM)
        owner = body.user_id or admin.gateway_user_id
        await users.get_user(gateway.store, owner)  # an unknown owner is a visible error
        created = await tokens.create_token(gateway.store, owner, body)
    except ZhikuError as exc:
        return await token_panel(request, gateway, admin, 1, error=form_error(exc, TOKEN_FORM), form=dict(form))
    await gateway.reload()
    return await token_panel(request, gateway, admin, 1, created=created)


def token_form(token: TokenPublic) -> dict[str, str]:
    """A stored token as the editor's field texts (``on`` for a checked box, as a browser sends it)."""
    return {"name": token.name, "unlimited_quota": "on" if token.unlimited_quota else "",
            "remain_quota": str(token.remain_quota),
            "expires_at": token.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if token.expires_at else "",
            "models": ", ".join(token.models or []), "subnets": ", ".join(token.subnets or []),
            "rpm_limit": str(token.rpm_limit), "tpm_limit": str(token.tpm_limit)}


def token_changes(form: Mapping[str, Any], admin: ConsoleAdmin) -> TokenUpdate:
    """The editor's fields as the admin service's update: every field set (an empty expiry clears it, empty
    models or subnets allow any); the owner is not changed here."""
    values = token_values(form, admin)
    del values["user_id"]
    values["models"], values["subnets"] = values["models"] or [], values["subnets"] or []
    if values["expires_at"] is None:
        del values["expires_at"]
        values["clear_expiry"] = True
    return validated(TokenUpdate, values, TOKEN_FORM)


def token_editor(request: Request, token: TokenPublic, form: Mapping[str, Any],
                 error: FormError | None = None) -> HTMLResponse:
    return render(request, "gateway/token_edit.html", status_code=error.status if error else 200, token=token,
                  form=form, form_error=error)


@router.get("/gateway/tokens/{token_id}/edit", response_class=HTMLResponse)
async def edit_token(request: Request, token_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    token = await tokens.get_token(gateway.store, token_id)
    return token_editor(request, token, token_form(token))


@router.post("/gateway/tokens/{token_id}", response_class=HTMLResponse)
async def update_token(request: Request, token_id: int, admin: AdminDep, gateway: GatewayDep) -> Response:
    token = await tokens.get_token(gateway.store, token_id)
    form = await request.form()
    await gateway.flush()  # a new quota replaces what is left after the spending counted so far
    try:
        await tokens.update_token(gateway.store, token_id, token_changes(form, admin))
    except ZhikuError as exc:
        return token_editor(request, token, dict(form), form_error(exc, TOKEN_FORM))
    await gateway.reload()
    return RedirectResponse("/gateway/tokens", status_code=303)


@router.post("/gateway/tokens/{token_id}/status", response_class=HTMLResponse)
async def switch_token(request: Request, token_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    status = ENABLED if form.get("status") == ENABLED else "disabled"
    updated = await tokens.update_token(gateway.store, token_id, TokenUpdate(status=status))
    await gateway.reload()
    owners, _ = await users.list_users(gateway.store, size=1000)
    return render(request, "gateway/_token_row.html", token=updated, owners={u.id: u.username for u in owners})


@router.post("/gateway/tokens/{token_id}/delete")
async def delete_token(request: Request, token_id: int, admin: AdminDep, gateway: GatewayDep) -> Response:
    await tokens.delete_token(gateway.store, token_id)
    await gateway.reload()
    return HTMLResponse("")


# ---- users --------------------------------------------------------------------------------------


async def user_panel(request: Request, gateway: Gateway, page: int, *, created: Any = None,
                     error: FormError | None = None, form: Mapping[str, Any] | None = None) -> HTMLResponse:
    items, total = await users.list_users(gateway.store, page=page, size=PAGE_SIZE)
    template = "gateway/_users_panel.html" if request.headers.get("hx-request") else "gateway/users.html"
    return render(request, template, items=items, created=created, form_error=error, form=form or {},
                  pages=pager(request, page, PAGE_SIZE, total))


def user_row(request: Request, user: UserPublic, error: FormError | None = None,
             typed: Mapping[str, Any] | None = None) -> HTMLResponse:
    """A user's row; after a refused change, what was typed (``typed``) and why."""
    return render(request, "gateway/_user_row.html", gw_user=user, form_error=error, typed=typed or {})


@router.get("/gateway/users", response_class=HTMLResponse)
async def user_list(request: Request, admin: AdminDep, gateway: GatewayDep,
                    page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    return await user_panel(request, gateway, page)


@router.post("/gateway/users", response_class=HTMLResponse)
async def create_user(request: Request, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    try:
        body = validated(UserCreate, {"username": str(form.get("username") or "").strip(),
                                      "display_name": str(form.get("display_name") or "").strip(),
                                      "role": str(form.get("role") or "user"),
                                      "group": str(form.get("group") or "default").strip(),
                                      "quota": whole_number(form, "quota")}, USER_FORM)
        created = await users.create_user(gateway.store, body,
                                          with_access_token=form.get("access_token") == "on")
    except ZhikuError as exc:
        return await user_panel(request, gateway, 1, error=form_error(exc, USER_FORM), form=dict(form))
    await gateway.reload()
    return await user_panel(request, gateway, 1, created=created)


async def _change_user(request: Request, gateway: Gateway, user_id: int, change: dict[str, Any],
                       typed: Mapping[str, Any]) -> HTMLResponse:
    await gateway.flush()  # a quota change is relative to what was spent so far
    try:
        updated = await users.update_user(gateway.store, user_id, validated(UserUpdate, change, USER_FORM))
    except ZhikuError as exc:
        return user_row(request, await users.get_user(gateway.store, user_id), form_error(exc, USER_FORM), typed)
    await gateway.reload()
    return user_row(request, updated)


@router.post("/gateway/users/{user_id}/quota", response_class=HTMLResponse)
async def add_quota(request: Request, user_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    try:
        amount = whole_number(form, "add_quota")
    except ZhikuError as exc:
        return user_row(request, await users.get_user(gateway.store, user_id), form_error(exc, USER_FORM), form)
    return await _change_user(request, gateway, user_id, {"add_quota": amount}, form)


@router.post("/gateway/users/{user_id}/role", response_class=HTMLResponse)
async def change_role(request: Request, user_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    change: dict[str, Any] = {"group": str(form.get("group") or "").strip() or None}
    if form.get("role"):
        change["role"] = str(form.get("role"))
    return await _change_user(request, gateway, user_id, {k: v for k, v in change.items() if v is not None}, form)


@router.post("/gateway/users/{user_id}/status", response_class=HTMLResponse)
async def switch_user(request: Request, user_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    status = ENABLED if form.get("status") == ENABLED else "disabled"
    return await _change_user(request, gateway, user_id, {"status": status}, {})
