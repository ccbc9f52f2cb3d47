"""An app's share links (FastGPT's outLinks): create one with what it shows and its limits, copy its address
or an iframe snippet that embeds it, change its settings, revoke it. The forms call :mod:`zhiku.apps.share_links`, the service
behind ``/api/support/outLink/*``; the page a link opens is ``pages/chat_share.py``."""

from __future__ import annotations

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
from zhiku.web.ui.pages.apps import checked
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)


def link_fields(form: FormData) -> dict[str, Any]:
    """A link form's fields in the API's names (blank limits: the API's defaults)."""
    limit = {"expiredTime": str(form.get("expired_time") or "").strip() or None,
             "QPM": str(form.get("qpm") or "").strip() or None,
             "maxUsagePoints": str(form.get("max_usage_points") or "").strip() or None,
             "hookUrl": str(form.get("hook_url") or "").strip() or None}
    return {"name": str(form.get("name") or "").strip(), "responseDetail": "response_detail" in form,
            "showNodeStatus": "show_node_status" in form, "showRawSource": "show_raw_source" in form,
            "limit": {key: value for key, value in limit.items() if value is not None}}


def link_values(link: ShareLinkPublic) -> dict[str, Any]:
    """A stored link as its editor's field texts."""
    return {"name": link.name, "response_detail": link.response_detail, "show_node_status": link.show_node_status,
            "show_raw_source": link.show_raw_source,
            "expired_time": link.expired_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if link.expired_at else "",
            "qpm": link.qpm, "max_usage_points": f"{link.max_usage_points:g}", "hook_url": link.hook_url}


def share_url(request: Request, share_id: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/chat/share/{share_id}"


async def _links(request: Request, session: AsyncSession, principal: Principal, app: AppPublic, *,
                 error: ZhikuError | None = None, template: str = "apps/_share_links.html") -> HTMLResponse:
    links = await share_links.list_links(session, principal, app.id)
    return render(request, template, app=app, error=error,
                  links=[(link, share_url(request, link.share_id), link_values(link)) for link in links])


@router.get("/apps/{app_id:int}/share")
async def share_page(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    return await _links(request, session, principal, app, template="apps/share.html")


@router.post("/apps/{app_id:int}/share")
async def create_link(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    try:
        await share_links.create_link(session, principal, app.id,
                                      checked(ShareLinkCreate, link_fields(await request.form())))
    except ZhikuError as exc:
        return await _links(request, session, principal, app, error=exc)
    return await _links(request, session, principal, app)


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
    try:
        await share_links.update_link(session, principal, link_id,
                                      checked(ShareLinkUpdate, link_fields(await request.form())))
    except ZhikuError as exc:
        return await _links(request, session, principal, app, error=exc)
    return await _links(request, session, principal, app)


@router.post("/apps/{app_id:int}/share/{link_id:int}/revoke")
async def revoke_link(request: Request, app_id: int, link_id: int, session: SessionDep,
                      principal: UiPrincipal) -> HTMLResponse:
    app = await _app_link(session, principal, app_id, link_id)
    await share_links.delete_link(session, principal, link_id)
    return await _links(request, session, principal, app)
