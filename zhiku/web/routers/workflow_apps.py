"""Workflow apps over HTTP: the native ``/api/apps/{id}/workflow``, ``/api/apps/import`` and
``/api/apps/{id}/export``, and FastGPT's app API under ``/api/core/app/`` (its JSON envelope)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from zhiku.apps import service, workflow_apps
from zhiku.apps.schemas import AppPublic, AppUpdate
from zhiku.errors import InvalidInput
from zhiku.web.deps import SessionDep, TeamPrincipal
from zhiku.web.fastgpt_envelope import internal_id, ok

router = APIRouter(tags=["workflow apps"])
RawJson = Any


@router.get("/api/apps/{app_id}/workflow")
async def get_workflow(app_id: int, session: SessionDep, principal: TeamPrincipal) -> dict[str, Any]:
    return await workflow_apps.get_workflow(session, principal, app_id)


@router.put("/api/apps/{app_id}/workflow")
async def put_workflow(app_id: int, session: SessionDep, principal: TeamPrincipal,
                       body: RawJson = Body(...)) -> dict[str, Any]:
    return await workflow_apps.save_workflow(session, principal, app_id, body)


@router.post("/api/apps/import", status_code=201)
async def import_app(session: SessionDep, principal: TeamPrincipal, body: RawJson = Body(...),
                     name: str | None = Query(None, max_length=200)) -> AppPublic:
    """The body is the FastGPT file itself (export, template or ``modules`` app)."""
    return await workflow_apps.import_workflow_app(session, principal, body, name)


@router.get("/api/apps/{app_id}/export")
async def export_app(app_id: int, session: SessionDep, principal: TeamPrincipal) -> dict[str, Any]:
    return await workflow_apps.export_app(session, principal, app_id)


# ---- FastGPT's paths --------------------------------------------------------------------------------

class FastGPTAppCreate(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str = Field(min_length=1, max_length=200)
    type: str = "advanced"
    intro: str = Field("", max_length=5000)
    modules: list[Any] | None = None
    nodes: list[Any] | None = None
    edges: list[Any] = Field(default_factory=list)
    chat_config: dict[str, Any] = Field(default_factory=dict, alias="chatConfig")


def _fastgpt_app(app: AppPublic, graph: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"_id": str(app.id), "name": app.name, "intro": "", "avatar": "",
                           "type": "advanced" if app.type == workflow_apps.WORKFLOW_TYPE else "simple",
                           "updateTime": app.updated_at.isoformat()}
    if graph is not None:
        out.update(modules=graph["nodes"], edges=graph["edges"], chatConfig=graph["chatConfig"], version="v2")
    return out


@router.post("/api/core/app/create")
async def fastgpt_create(body: FastGPTAppCreate, session: SessionDep, principal: TeamPrincipal) -> dict[str, Any]:
    if body.type not in ("advanced", "workflow"):
        raise InvalidInput(f"app type {body.type!r} is not created here: Zhiku makes workflow apps (advanced) "
                           "at this path, simple apps at POST /api/apps", code="unsupported_app_type")
    graph = {"nodes": body.nodes if body.nodes is not None else body.modules or [], "edges": body.edges,
             "chatConfig": body.chat_config}
    created = await workflow_apps.import_workflow_app(session, principal, graph, body.name)
    return ok(str(created.id))


@router.post("/api/core/app/list")
async def fastgpt_list(session: SessionDep, principal: TeamPrincipal) -> dict[str, Any]:
    return ok([_fastgpt_app(a) for a in await service.list_apps(session, principal)])


@router.get("/api/core/app/detail")
async def fastgpt_detail(session: SessionDep, principal: TeamPrincipal,
                         app_id: str = Query(alias="appId", max_length=64)) -> dict[str, Any]:
    pk = internal_id(app_id, "app")
    app = await service.get_app(session, principal, pk)
    return ok(_fastgpt_app(app, await workflow_apps.get_workflow(session, principal, pk)))


@router.put("/api/core/app/update")
async def fastgpt_update(session: SessionDep, principal: TeamPrincipal, body: RawJson = Body(...),
                         app_id: str = Query(alias="appId", max_length=64)) -> dict[str, Any]:
    pk = internal_id(app_id, "app")
    if not isinstance(body, dict):
        raise InvalidInput("the body is a JSON object", code="invalid_workflow")
    if "nodes" in body or "modules" in body:
        await workflow_apps.save_workflow(session, principal, pk, body)
    if isinstance(body.get("name"), str) and body["name"].strip():
        await service.update_app(session, principal, pk, AppUpdate(name=body["name"]))
    return ok(None)


@router.post("/api/core/app/version/publish")
async def fastgpt_publish(session: SessionDep, principal: TeamPrincipal, body: RawJson = Body(...),
                          app_id: str = Query(alias="appId", max_length=64)) -> dict[str, Any]:
    await workflow_apps.save_workflow(session, principal, internal_id(app_id, "app"), body)
    return ok(None)


@router.delete("/api/core/app/del")
async def fastgpt_delete(session: SessionDep, principal: TeamPrincipal,
                         app_id: str = Query(alias="appId", max_length=64)) -> dict[str, Any]:
    await service.delete_app(session, principal, internal_id(app_id, "app"))
    return ok(None)
