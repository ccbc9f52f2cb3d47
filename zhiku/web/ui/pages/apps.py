"""App pages: the apps list, the editor of a simple app (prompt, model, datasets, search settings, what a
new chat shows) and the app's API keys (a new key shown once). The forms post here and call the same
services as ``/api/apps`` and ``/api/keys``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from zhiku.apps import service
from zhiku.apps.schemas import AppCreate, AppPublic, AppUpdate, ChatConfig
from zhiku.apps.workflow_apps import WORKFLOW_TYPE
from zhiku.auth import service as auth
from zhiku.auth.service import Principal
from zhiku.errors import NotFound, ZhikuError
from zhiku.knowledge.datasets import dataset_names, list_datasets
from zhiku.retrieval.settings import SearchSettings
from zhiku.web.deps import PlatformDep, SessionDep
from zhiku.web.ui.deps import UiPrincipal
from zhiku.web.ui.forms import FormError, FormFields, form_error, validated
from zhiku.web.ui.pages.datasets import chat_models, paged
from zhiku.web.ui.templating import render
from zhiku.wiring import Platform

router = APIRouter(include_in_schema=False)

SEARCH_MODES = ("mixed", "embedding", "fullText")
VARIABLE_TYPES = ("input", "textarea", "numberInput", "select")
BLANK_VARIABLE_ROWS = 2  # empty rows under the app's variables, for adding new ones
MAX_VARIABLE_ROWS = 100  # read no more rows than this from a form


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _number(form: FormData, name: str) -> str | None:
    """A number field as typed (pydantic checks it); blank: not given."""
    value = str(form.get(name) or "").strip()
    return value or None


def _variables(form: FormData) -> list[dict[str, Any]]:
    """The variable rows of the editor; a row without a key is an unused row."""
    rows = []
    rows_sent = str(form.get("variable_rows") or "")
    for i in range(min(int(rows_sent) if rows_sent.isdigit() else 0, MAX_VARIABLE_ROWS)):
        key = str(form.get(f"var_key_{i}") or "").strip()
        if not key:
            continue
        rows.append({"key": key, "label": str(form.get(f"var_label_{i}") or "").strip() or key,
                     "type": form.get(f"var_type_{i}") or "input", "required": f"var_required_{i}" in form,
                     "defaultValue": str(form.get(f"var_default_{i}") or ""),
                     "options": [o.strip() for o in str(form.get(f"var_options_{i}") or "").split(",") if o.strip()]})
    return rows


# The editor's inputs: the label each shows (apps/edit.html), and the API key paths typed into them.
APP_FORM = FormFields(
    labels={"name": "apps.name", "system_prompt": "apps.system_prompt", "model": "apps.model",
            "temperature": "apps.temperature", "max_tokens": "apps.max_tokens", "dataset_ids": "apps.datasets",
            "search_mode": "apps.search_mode", "embedding_weight": "apps.embedding_weight",
            "search_max_tokens": "apps.search_max_tokens", "similarity": "apps.similarity", "rerank": "apps.rerank",
            "rerank_weight": "apps.rerank_weight", "welcome_text": "apps.welcome_text",
            "opening_questions": "apps.opening_questions", "variables": "apps.variables"},
    inputs={"systemPrompt": "system_prompt", "maxTokens": "max_tokens", "datasetIds": "dataset_ids",
            "search.mode": "search_mode", "search.embedding_weight": "embedding_weight",
            "search.max_tokens": "search_max_tokens", "search.similarity": "similarity", "search.rerank": "rerank",
            "search.rerank_weight": "rerank_weight", "chatConfig.welcomeText": "welcome_text",
            "chatConfig.openingQuestions": "opening_questions", "chatConfig.variables": "variables"},
    codes={"invalid_search_mode": "search_mode"})


def app_fields(form: FormData) -> dict[str, Any]:
    """The editor's fields in the API's names (AppCreate and AppUpdate take the same)."""
    return {
        "name": str(form.get("name") or ""),
        "systemPrompt": str(form.get("system_prompt") or ""),
        "model": str(form.get("model") or "").strip() or None,
        "temperature": _number(form, "temperature"),
        "maxTokens": _number(form, "max_tokens"),
        "datasetIds": [str(v) for v in form.getlist("dataset_ids")],
        "search": {"mode": form.get("search_mode") or "mixed",
                   "embedding_weight": _number(form, "embedding_weight") or SearchSettings.embedding_weight,
                   "max_tokens": _number(form, "search_max_tokens") or SearchSettings.max_tokens,
                   "similarity": _number(form, "similarity") or SearchSettings.similarity,
                   "rerank": "rerank" in form,
                   "rerank_weight": _number(form, "rerank_weight") or SearchSettings.rerank_weight},
        "chatConfig": {"welcomeText": str(form.get("welcome_text") or ""),
                       "openingQuestions": lines(str(form.get("opening_questions") or "")),
                       "variables": _variables(form)},
    }


def _as_public(fields: dict[str, Any]) -> dict[str, Any]:
    """What the form sent, shaped like an app, so a refused form shows again as typed."""
    try:
        chat_config = ChatConfig.model_validate(fields["chatConfig"])
    except ValueError:
        chat_config = ChatConfig()
    return {"name": fields["name"], "system_prompt": fields["systemPrompt"], "model": fields["model"],
            "temperature": fields["temperature"], "max_tokens": fields["maxTokens"],
            "dataset_ids": [int(d) for d in fields["datasetIds"] if d.isdigit()], "search": fields["search"],
            "chat_config": chat_config}


async def _editor(request: Request, session: AsyncSession, principal: Principal, platform: Platform, *,
                  app: AppPublic | dict[str, Any] | None, app_id: int | None,
                  error: FormError | None = None) -> HTMLResponse:
    if app is None:
        app = {"name": "", "system_prompt": "", "model": None, "temperature": None, "max_tokens": None,
               "dataset_ids": [], "search": SearchSettings().to_dict(), "chat_config": ChatConfig()}
    elif isinstance(app, AppPublic):
        app = app.model_dump()
        app["chat_config"] = ChatConfig.model_validate(app["chat_config"])
    return render(request, "apps/edit.html", status_code=error.status if error else 200, app=app, app_id=app_id,
                  form_error=error,
                  datasets=await list_datasets(session, principal), models=chat_models(platform),
                  default_model=platform.settings.chat_model if platform.settings.chat_model_configured else None,
                  search_modes=SEARCH_MODES, variable_types=VARIABLE_TYPES,
                  variable_rows=len(app["chat_config"].variables) + BLANK_VARIABLE_ROWS)


@router.get("/apps")
async def list_page(request: Request, session: SessionDep, principal: UiPrincipal, page: int = 1) -> HTMLResponse:
    """The apps a page at a time, the newest first as the datasets list."""
    listed, pager = await paged(lambda offset, limit: service.list_apps_page(
        session, principal, offset=offset, limit=limit), page)
    names = await dataset_names(session, principal, (i for app in listed.items for i in app.dataset_ids))
    return render(request, "apps/list.html", apps=listed.items, pager=pager,
                  dataset_names=names)


@router.get("/apps/new")
async def new_page(request: Request, session: SessionDep, principal: UiPrincipal,
                   platform: PlatformDep) -> HTMLResponse:
    return await _editor(request, session, principal, platform, app=None, app_id=None)


@router.post("/apps/new")
async def create(request: Request, session: SessionDep, principal: UiPrincipal, platform: PlatformDep) -> Response:
    fields = app_fields(await request.form())
    try:
        created = await service.create_app(session, principal, validated(AppCreate, fields, APP_FORM))
    except ZhikuError as exc:
        return await _editor(request, session, principal, platform, app=_as_public(fields), app_id=None,
                             error=form_error(exc, APP_FORM))
    return RedirectResponse(f"/apps/{created.id}?saved=1", status_code=303)


@router.get("/apps/{app_id:int}")
async def edit_page(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal,
                    platform: PlatformDep) -> Response:
    app = await service.get_app(session, principal, app_id)
    if app.type == WORKFLOW_TYPE:  # its settings are its graph
        return RedirectResponse(f"/apps/{app_id}/workflow", status_code=303)
    return await _editor(request, session, principal, platform, app=app, app_id=app_id)


@router.post("/apps/{app_id:int}")
async def update(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal,
                 platform: PlatformDep) -> Response:
    fields = app_fields(await request.form())
    try:
        await service.update_app(session, principal, app_id, validated(AppUpdate, fields, APP_FORM))
    except ZhikuError as exc:
        await service.get_app(session, principal, app_id)  # an unknown app is a 404 page, not a form
        return await _editor(request, session, principal, platform, app=_as_public(fields), app_id=app_id,
                             error=form_error(exc, APP_FORM))
    return RedirectResponse(f"/apps/{app_id}?saved=1", status_code=303)


@router.post("/apps/{app_id:int}/delete")
async def delete(app_id: int, session: SessionDep, principal: UiPrincipal) -> Response:
    await service.delete_app(session, principal, app_id)
    return RedirectResponse("/apps", status_code=303)


# --- API keys ---------------------------------------------------------------------------------------------

KEY_FORM = FormFields(labels={"name": "apps.key_name"}, codes={"name_required": "name"})


async def _keys_fragment(request: Request, session: AsyncSession, principal: Principal, app: AppPublic, *,
                         created: auth.CreatedKey | None = None, error: FormError | None = None,
                         typed_name: str = "", template: str = "apps/_keys.html") -> HTMLResponse:
    """The keys and their create form: empty, or after a refused create what was typed and why."""
    keys = [k for k in await auth.list_api_keys(session, principal) if k.app_id == app.id]
    return render(request, template, app=app, keys=keys, created=created, form_error=error, typed_name=typed_name)


@router.get("/apps/{app_id:int}/keys")
async def keys_page(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    return await _keys_fragment(request, session, principal, app, template="apps/keys.html")


@router.post("/apps/{app_id:int}/keys")
async def create_key(request: Request, app_id: int, session: SessionDep, principal: UiPrincipal) -> HTMLResponse:
    """The keys list with the new key in a dialog: the only time its full text is shown."""
    app = await service.get_app(session, principal, app_id)
    name = str((await request.form()).get("name") or "").strip()
    try:
        created = await auth.create_api_key(session, principal, name, app.id)
    except ZhikuError as exc:
        return await _keys_fragment(request, session, principal, app, error=form_error(exc, KEY_FORM),
                                    typed_name=name)
    return await _keys_fragment(request, session, principal, app, created=created)


@router.post("/apps/{app_id:int}/keys/{key_id:int}/revoke")
async def revoke_key(request: Request, app_id: int, key_id: int, session: SessionDep,
                     principal: UiPrincipal) -> HTMLResponse:
    app = await service.get_app(session, principal, app_id)
    if not any(k.id == key_id and k.app_id == app.id for k in await auth.list_api_keys(session, principal)):
        raise NotFound(f"API key {key_id} does not exist", code="api_key_not_found")
    await auth.delete_api_key(session, principal, key_id)
    return await _keys_fragment(request, session, principal, app)
