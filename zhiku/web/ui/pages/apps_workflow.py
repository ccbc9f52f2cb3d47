"""Workflow pages of an app: import a FastGPT app file (a new workflow app, or a new graph for one),
export the app as FastGPT's JSON, and a read-only view of the graph it runs (nodes, edges, each node's
settings; a simple app shows the workflow its form compiles to). The drag-and-drop editor is a later
issue. Everything goes through :mod:`zhiku.apps.workflow_apps`, as ``/api/apps/import`` and friends do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from zhiku.apps import service, workflow_apps
from zhiku.errors import InvalidInput, ZhikuError
from zhiku.web.deps import SessionDep
from zhiku.web.ui.deps import UiPrincipal
from zhiku.web.ui.forms import FormError, FormFields
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

NODE_WIDTH = 220
NODE_HEIGHT = 60
LAYER_GAP = 90  # between columns of the layered layout (graphs without positions)
ROW_GAP = 40
MARGIN = 30
MAX_SETTING_CHARS = 4000  # of one input's value as shown


@dataclass(frozen=True)
class NodeBox:
    node_id: str
    name: str
    kind: str
    x: float
    y: float


@dataclass(frozen=True)
class NodeSetting:
    key: str
    label: str
    value: str


@dataclass(frozen=True)
class NodeView:
    box: NodeBox
    settings: list[NodeSetting]
    targets: list[str]  # names of the nodes its edges lead to


@dataclass(frozen=True)
class GraphView:
    view_box: str
    width: float
    height: float
    nodes: list[NodeView]
    edges: list[str]  # SVG path data, one per edge


def _position(node: dict[str, Any]) -> tuple[float, float] | None:
    position = node.get("position")
    if isinstance(position, dict):
        x, y = position.get("x"), position.get("y")
        if isinstance(x, int | float) and isinstance(y, int | float):
            return float(x), float(y)
    return None


def _overlapping(points: list[tuple[float, float]]) -> bool:
    """Whether two boxes at these positions would cover each other (graphs saved with all at 0,0)."""
    return any(abs(a[0] - b[0]) < NODE_WIDTH and abs(a[1] - b[1]) < NODE_HEIGHT
               for i, a in enumerate(points) for b in points[i + 1:])


def _layered(ids: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Columns by distance from the nodes nothing leads to (for graphs saved without positions)."""
    incoming = {i: 0 for i in ids}
    for _, target in edges:
        if target in incoming:
            incoming[target] += 1
    depth = {i: 0 for i in ids if incoming[i] == 0}
    if not depth and ids:  # a cycle everywhere: start anywhere
        depth[ids[0]] = 0
    frontier = list(depth)
    while frontier:
        following = []
        for source in frontier:
            for s, target in edges:
                if s == source and target in incoming and target not in depth:
                    depth[target] = depth[source] + 1
                    following.append(target)
        frontier = following
    for i in ids:
        depth.setdefault(i, 0)
    rows: dict[int, int] = {}
    placed = {}
    for i in ids:
        row = rows.get(depth[i], 0)
        rows[depth[i]] = row + 1
        placed[i] = (depth[i] * (NODE_WIDTH + LAYER_GAP), row * (NODE_HEIGHT + ROW_GAP))
    return placed


def _setting_text(value: Any, names: dict[str, str]) -> str:
    """An input's value as text: a reference [nodeId, key] by the node's name, anything else as JSON."""
    if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
            and value[0] in names):
        return f"→ {names[value[0]]}.{value[1]}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    return text if len(text) <= MAX_SETTING_CHARS else text[:MAX_SETTING_CHARS] + "…"


def graph_view(graph: dict[str, Any]) -> GraphView:
    """Boxes at the graph's own positions (or in layers), edges as curves from right side to left side."""
    nodes = [n for n in graph.get("nodes") or [] if isinstance(n, dict) and isinstance(n.get("nodeId"), str)]
    ids = [n["nodeId"] for n in nodes]
    names = {n["nodeId"]: str(n.get("name") or n["nodeId"]) for n in nodes}
    links = [(e["source"], e["target"]) for e in graph.get("edges") or []
             if isinstance(e, dict) and e.get("source") in names and e.get("target") in names]
    positions = {n["nodeId"]: _position(n) for n in nodes}
    usable = {i: p for i, p in positions.items() if p is not None}
    placed = usable if len(usable) == len(nodes) and not _overlapping(list(usable.values())) else _layered(ids, links)
    xs = [p[0] for p in placed.values()] or [0.0]
    ys = [p[1] for p in placed.values()] or [0.0]
    left, top = min(xs) - MARGIN, min(ys) - MARGIN
    width = max(xs) + NODE_WIDTH + MARGIN - left
    height = max(ys) + NODE_HEIGHT + MARGIN - top
    paths = []
    for source, target in links:
        (x1, y1), (x2, y2) = placed[source], placed[target]
        x1, y1, y2 = x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2, y2 + NODE_HEIGHT / 2
        bend = max(40.0, abs(x2 - x1) / 2)
        paths.append(f"M {x1:.0f} {y1:.0f} C {x1 + bend:.0f} {y1:.0f}, {x2 - bend:.0f} {y2:.0f}, {x2:.0f} {y2:.0f}")
    views = []
    for node in nodes:
        node_id = node["nodeId"]
        x, y = placed[node_id]
        settings = [NodeSetting(key=str(i.get("key", "")), label=str(i.get("label") or ""),
                                value=_setting_text(i.get("value"), names))
                    for i in node.get("inputs") or [] if isinstance(i, dict) and "value" in i]
        views.append(NodeView(box=NodeBox(node_id=node_id, name=names[node_id], kind=str(node.get("flowNodeType", "")),
                                          x=x, y=y), settings=settings,
                              targets=[names[t] for s, t in links if s == node_id]))
    return GraphView(view_box=f"{left:.0f} {top:.0f} {width:.0f} {height:.0f}", width=width, height=height,
                     nodes=views, edges=paths)


# The import form's inputs (apps/_import_form.html); a missing or unreadable file is about the pasted JSON.
IMPORT_FORM = FormFields(labels={"name": "apps.import_name", "file": "apps.import_file", "json": "apps.import_paste"},
                         codes={"workflow_required": "json", "invalid_json": "json"})


async def _sent_json(form: FormData) -> Any:
    """The app file of an import form: the uploaded file, else the pasted text."""
    upload = form.get("file")
    text = ""
    if isinstance(upload, UploadFile) and upload.filename:
        text = (await upload.read()).decode("utf-8-sig", errors="replace")
    if not text.strip():
        text = str(form.get("json") or "")
    if not text.strip():
        raise InvalidInput("choose a FastGPT app file or paste its JSON", code="workflow_required")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the file is not JSON: {exc}", code="invalid_json") from None


@router.get("/apps/import")
async def import_page(request: Request, principal: UiPrincipal) -> HTMLResponse:
    return render(request, "apps/import.html", name="")


@router.post("/apps/import")
async def import_app(request: Request, session: SessionDep, principal: UiPrincipal) -> Response:
    form = await request.form()
    name = str(form.get("name") or "").strip()
    try:
        app = await workflow_apps.import_workflow_app(session, principal, await _sent_json(form), name or None)
    except ZhikuError as exc:
        return render(request, "apps/import.html", status_code=exc.status, form_error=IMPORT_FORM.error(exc), name=name)
    return RedirectResponse(f"/apps/{app.id}/workflow", status_code=303)


async def _workflow_page(request: Request, session: SessionDep, principal: UiPrincipal, app_id: int, *,
                         error: FormError | None = None) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    graph = await workflow_apps.get_workflow(session, principal, app_id)
    return render(request, "apps/workflow.html", status_code=error.status if error else 200, app=app,
                  graph=graph_view(graph), form_error=error, is_workflow=app.type == workflow_apps.WORKFLOW_TYPE,
                  node_size=(NODE_WIDTH, NODE_HEIGHT))


@router.get("/apps/{app_id:int}/workflow")
async def workflow_page(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    return await _workflow_page(request, session, principal, app_id)


@router.post("/apps/{app_id:int}/workflow")
async def replace_workflow(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> Response:
    """A new graph from a FastGPT file; a simple app becomes a workflow app."""
    try:
        await workflow_apps.save_workflow(session, principal, app_id, await _sent_json(await request.form()))
    except ZhikuError as exc:
        return await _workflow_page(request, session, principal, app_id, error=IMPORT_FORM.error(exc))
    return RedirectResponse(f"/apps/{app_id}/workflow?saved=1", status_code=303)


@router.get("/apps/{app_id:int}/export")
async def export(app_id: int, session: SessionDep, principal: UiPrincipal) -> Response:
    """FastGPT's export file (2-space JSON, no dataset ids or secrets), downloaded as ``<app name>.json``."""
    app = await service.get_app(session, principal, app_id)
    body = json.dumps(await workflow_apps.export_app(session, principal, app_id), ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(app.name + '.json', safe='')}"})
