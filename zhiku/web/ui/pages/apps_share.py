"""An app's share links (FastGPT's outLinks): create one with what it shows and its limits, copy its address
or an iframe snippet that embeds it, change its settings, revoke it. The forms call :mod:`zhiku.apps.share_links`, the service
behind ``/api/support/outLink/*``; the page a link opens is ``pages/chat_share.py``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from zhiku.apps import service, share_links
from zhiku.apps.schemas import AppPublic
from zhiku.apps.share_links import ShareLinkCreate, ShareLinkPublic, ShareLinkUpdate
from zhiku.auth.service import Principal
from zhiku.errors import NotFound, ZhikuError
from zhiku.web.deps import SessionDep
from zhiku.web.ui.deps import UiPrincipal
from zhiku.web.ui.forms import FormError, FormFields, form_error, validated
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

NEW_LINK = "new"  # the create form's name among the forms of the share links fragment (the others: link ids)
# A link form's inputs (apps/_share_link_fields.html): the label each shows, the API key path typed into it.
LINK_FORM = FormFields(
    labels={"name": "apps.name", "response_detail": "apps.share_response_detail",
            "show_node_status": "apps.share_node_status", "show_raw_source": "apps.share_raw_source",
            "expired_time": "apps.share_expires", "qpm": "apps.share_qpm",
            "max_usage_points": "apps.share_max_points", "hook_url": "apps.share_hook"},
    inputs={"responseDetail": "response_detail", "showNodeStatus": "show_node_status",
            "showRawSource": "show_raw_source", "limit.expiredTime": "expired_time", "limit.QPM": "qpm",
            "limit.maxUsagePoints": "max_usage_points", "limit.hookUrl": "hook_url"},
    form=NEW_LINK)


def link_fields(form: FormData) -> dict[str, Any]:
    """A link form's fields in the API's names (blank limits: the API's defaults)."""
    limit = {"expiredTime": str(form.get("expired_time") or "").strip() or None,
             "QPM": str(form.get("qpm") or "").strip() or None,
             "maxUsagePoints": str(form.get("max_usage_points") or "").strip() or None,
             "hookUrl": str(form.get("hook_url") or "").strip() or None}
    return {"name": str(form.get("name") or "").strip(), "responseDetail": "response_detail" in form,
            "showNodeStatus": "show_node_status" in form, "showRawSource": "show_raw_source" in form,
            "limit": {key: value for key, value in limit.items() if value is not None}}


def typed_values(form: FormData) -> dict[str, Any]:
    """A refused link form's fields as the user left them."""
    return {**{name: str(form.get(name) or "") for name in ("name", "expired_time", "qpm", "max_usage_points",
                                                            "hook_url")},
            **{box: box in form for box in ("response_detail", "show_node_status", "show_raw_source")}}


def link_values(link: ShareLinkPublic) -> dict[str, Any]:
    """A stored link as its editor's field texts."""
    return {"name": link.name, "response_detail": link.response_detail, "show_node_status": link.show_node_status,
            "show_raw_source": link.show_raw_source,
            "expired_time": link.expired_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if link.expired_at else "",
            "qpm": link.qpm, "max_usage_points": f"{link.max_usage_points:g}", "hook_url": link.hook_url}


def share_url(request: Request, share_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/chat/share/{share_id}"


async def _links(request: Request, session: AsyncSession, principal: Principal, app: AppPublic, *,
                 error: FormError | None = None, typed: dict[str, Any] | None = None,
                 template: str = "apps/_share_links.html") -> HTMLResponse:
    """The create form and the links with their editors. After a refused create or change, the form that was
    sent shows what was typed (``typed``) and why; otherwise the create form is empty."""
    links = await share_links.list_links(session, principal, app.id)
    refused = error.form if error else None

    def values(link: ShareLinkPublic) -> dict[str, Any]:
        return typed if typed is not None and refused == str(link.id) else link_values(link)

    return render(request, template, app=app, form_error=error, new_values=typed if refused == NEW_LINK else {},
                  refused=refused,
                  links=[(link, share_url(request, link.share_id), values(link)) for link in links])


@router.get("/apps/{app_id:int}/share")
async def share_page(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    return await _links(request, session, principal, app, template="apps/share.html")


@router.post("/apps/{app_id:int}/share")
async def create_link(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    form = await request.form()
    try:
        await share_links.create_link(session, principal, app.id,
                                      validated(ShareLinkCreate, link_fields(form), LINK_FORM))
    except ZhikuError as exc:
        return await _links(request, session, principal, app, error=form_error(exc, LINK_FORM),
                            typed=typed_values(form))
    return await _links(request, session, principal, app)  # the create form empty again


async def _app_link(session: AsyncSession, principal: Principal, app_id: int, link_id: int) -> AppPublic:
    """The app, once the link is known to be one of its own."""
    app = await service.get_app(session, principal, app_id)
    if not any(link.id == link_id for link in await share_links.list_links(session, principal, app.id)):
        raise NotFound(f"share link {link_id} does not exist", code="share_link_not_found")
    return app


@router.post("/apps/{app_id:int}/share/{link_id:int}")
async def update_link(request: Request, app_id: int, link_id: int, session: SessionDep,
                      principal: UiPrincipal) -> HTMLResponse:
    """Every setting as the editor sent it (a blank limit: its default)."""
    app = await _app_link(session, principal, app_id, link_id)
    form = await request.form()
    fields = replace(LINK_FORM, form=str(link_id))
    try:
        await share_links.update_link(session, principal, link_id, validated(ShareLinkUpdate, link_fields(form), fields))
    except ZhikuError as exc:
        return await _links(request, session, principal, app, error=form_error(exc, fields), typed=typed_values(form))
    return await _links(request, session, principal, app)


@router.post("/apps/{app_id:int}/share/{link_id:int}/revoke")
async def revoke_link(request: Request, app_id: int, link_id: int, session: SessionDep,
                      principal: UiPrincipal) -> HTMLResponse:
    app = await _app_link(session, principal, app_id, link_id)
    await share_links.delete_link(session, principal, link_id)
    return await _links(request, session, principal, app)
