"""The gateway console's channels: the list, the editor with each type's own fields (from the provider
registry), the test button, enable/disable, priority and weight, delete."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiku.errors import ZhikuError
from zhiku.gateway.admin import channels
from zhiku.gateway.admin.schemas import ChannelCreate, ChannelPublic, ChannelTestResult, ChannelUpdate
from zhiku.gateway.domain import ENABLED, MANUAL_DISABLED
from zhiku.gateway.providers import channel_fields, channel_types
from zhiku.web.ui.forms import FormError, FormFields, form_error, validated
from zhiku.web.ui.pages.gateway import AdminDep, GatewayDep, names, pager, unreadable, whole_number
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
# The editor's inputs (gateway/channel_edit.html and each type's own config fields) and their labels.
CHANNEL_FORM = FormFields(labels={
    "type": "gateway.type", "name": "gateway.name", "base_url": "gateway.channel.base_url",
    "key": "gateway.channel.key", "models": "gateway.models", "model_mapping": "gateway.channel.model_mapping",
    "groups": "gateway.channel.groups", "priority": "gateway.channel.priority", "weight": "gateway.channel.weight",
    "timeout_seconds": "gateway.channel.timeout",
    **{f"config.{field.name}": f"gateway.channel.config.{field.name}"
       for kind in channel_types() for field in channel_fields(kind).config}})


def mapping(text: str) -> dict[str, str]:
    """The model mapping field: a JSON object of requested → upstream names (OneAPI's format), or empty."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise unreadable("model_mapping", 'not a JSON object such as {"gpt-4o": "gpt-4o-2024-08-06"}',
                         "invalid_model_mapping")
    return {str(k): v for k, v in value.items()}


def channel_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """The editor's fields as the admin service's channel fields; config keys only those of the type."""
    kind = str(form.get("type") or "openai")
    fields = channel_fields(kind) if kind in channel_types() else None
    config: dict[str, Any] = {}
    for field in fields.config if fields else ():
        text = str(form.get(f"config.{field.name}") or "").strip()
        if text:
            config[field.name] = whole_number(form, f"config.{field.name}") if field.integer else text
    timeout = str(form.get("timeout_seconds") or "").strip()
    try:
        timeout_seconds = float(timeout) if timeout else 0.0
    except ValueError:
        raise unreadable("timeout_seconds", f"{timeout!r} is not a number", "field_not_number") from None
    return {"type": kind, "name": str(form.get("name") or "").strip(),
            "base_url": str(form.get("base_url") or "").strip(), "key": str(form.get("key") or "").strip(),
            "models": names(str(form.get("models") or "")), "groups": names(str(form.get("groups") or "")) or
            ["default"], "model_mapping": mapping(str(form.get("model_mapping") or "")), "config": config,
            "priority": whole_number(form, "priority"), "weight": whole_number(form, "weight", 1),
            "timeout_seconds": timeout_seconds}


def editor(request: Request, channel: ChannelPublic | None, values: Mapping[str, Any],
           error: FormError | None = None) -> HTMLResponse:
    kind = str(values.get("type") or "openai")
    response = render(request, "gateway/channel_edit.html", channel=channel, values=values,
                      types=channel_types(), fields=channel_fields(kind if kind in channel_types() else "openai"),
                      form_error=error)
    response.status_code = error.status if error else 200
    return response


def form_values(channel: ChannelPublic) -> dict[str, Any]:
    """A stored channel as the editor's field texts (the key is never sent back: empty keeps it)."""
    return {"type": channel.type, "name": channel.name, "base_url": channel.base_url, "key": "",
            "models": ", ".join(channel.models), "groups": ", ".join(channel.groups),
            "model_mapping": json.dumps(channel.model_mapping, ensure_ascii=False, indent=1)
            if channel.model_mapping else "",
            **{f"config.{k}": str(v) for k, v in channel.config.items()}, "priority": channel.priority,
            "weight": channel.weight, "timeout_seconds": f"{channel.timeout_seconds:g}"}


def row(request: Request, channel: ChannelPublic, *, test: ChannelTestResult | None = None,
        error: FormError | None = None, typed: Mapping[str, Any] | None = None) -> HTMLResponse:
    """A channel's row; after a refused priority or weight, what was typed (``typed``) and why."""
    return render(request, "gateway/_channel_row.html", channel=channel, test=test, form_error=error,
                  typed=typed or {})


@router.get("/gateway/channels", response_class=HTMLResponse)
async def channel_list(request: Request, admin: AdminDep, gateway: GatewayDep,
                       page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    await gateway.settle_writes()  # show an auto-disable found on the hot path
    items, total = await channels.list_channels(gateway.store, page=page, size=PAGE_SIZE)
    return render(request, "gateway/channels.html", items=items, pages=pager(request, page, PAGE_SIZE, total))


@router.get("/gateway/channels/new", response_class=HTMLResponse)
async def new_channel(request: Request, admin: AdminDep, gateway: GatewayDep, type: str = "openai") -> HTMLResponse:
    return editor(request, None, {"type": type, "groups": "default", "priority": 0, "weight": 1})


@router.get("/gateway/channels/fields", response_class=HTMLResponse)
async def type_fields(request: Request, admin: AdminDep, type: str = "openai") -> HTMLResponse:
    """The editor's type-specific part, swapped in when the type changes."""
    kind = type if type in channel_types() else "openai"
    return render(request, "gateway/_channel_type_fields.html", fields=channel_fields(kind),
                  values=dict(request.query_params), channel=None)


@router.post("/gateway/channels", response_class=HTMLResponse)
async def create_channel(request: Request, admin: AdminDep, gateway: GatewayDep) -> Response:
    form = await request.form()
    try:
        await channels.create_channel(gateway.store, gateway.keybox,
                                      validated(ChannelCreate, channel_values(form), CHANNEL_FORM))
    except ZhikuError as exc:
        return editor(request, None, dict(form), form_error(exc, CHANNEL_FORM))
    await gateway.reload()
    return RedirectResponse("/gateway/channels", status_code=303)


@router.get("/gateway/channels/{channel_id}/edit", response_class=HTMLResponse)
async def edit_channel(request: Request, channel_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    channel = await channels.get_channel(gateway.store, channel_id)
    return editor(request, channel, form_values(channel))


@router.post("/gateway/channels/{channel_id}", response_class=HTMLResponse)
async def update_channel(request: Request, channel_id: int, admin: AdminDep, gateway: GatewayDep) -> Response:
    channel = await channels.get_channel(gateway.store, channel_id)
    form = await request.form()
    try:
        values = channel_values(form)
        if not values["key"]:
            del values["key"]  # empty: keep the stored key
        await channels.update_channel(gateway.store, gateway.keybox, channel_id,
                                      validated(ChannelUpdate, values, CHANNEL_FORM))
    except ZhikuError as exc:
        return editor(request, channel, dict(form), form_error(exc, CHANNEL_FORM))
    await gateway.reload()
    return RedirectResponse("/gateway/channels", status_code=303)


@router.post("/gateway/channels/{channel_id}/test", response_class=HTMLResponse)
async def test_channel(request: Request, channel_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    result = await gateway.test_channel(channel_id)
    return row(request, await channels.get_channel(gateway.store, channel_id), test=result)


@router.post("/gateway/channels/{channel_id}/status", response_class=HTMLResponse)
async def switch_channel(request: Request, channel_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    form = await request.form()
    status = ENABLED if form.get("status") == ENABLED else MANUAL_DISABLED
    updated = await channels.update_channel(gateway.store, gateway.keybox, channel_id, ChannelUpdate(status=status))
    if status == ENABLED:
        gateway.cooling.pop(channel_id, None)
    await gateway.reload()
    return row(request, updated)


@router.post("/gateway/channels/{channel_id}/order", response_class=HTMLResponse)
async def order_channel(request: Request, channel_id: int, admin: AdminDep, gateway: GatewayDep) -> HTMLResponse:
    """Priority and weight, edited in the list."""
    form = await request.form()
    try:
        change = validated(ChannelUpdate, {"priority": whole_number(form, "priority"),
                                           "weight": whole_number(form, "weight", 1)}, CHANNEL_FORM)
        updated = await channels.update_channel(gateway.store, gateway.keybox, channel_id, change)
    except ZhikuError as exc:
        return row(request, await channels.get_channel(gateway.store, channel_id), error=form_error(exc, CHANNEL_FORM),
                   typed=form)
    await gateway.reload()
    return row(request, updated)


@router.post("/gateway/channels/{channel_id}/delete")
async def delete_channel(request: Request, channel_id: int, admin: AdminDep, gateway: GatewayDep) -> Response:
    await channels.delete_channel(gateway.store, channel_id)
    await gateway.reload()
    return HTMLResponse("")  # htmx swaps the row out
