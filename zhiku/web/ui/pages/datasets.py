"""Knowledge-base pages: the datasets list and create form, a dataset's collections (live progress, retry,
delete, tags, sync) and its import forms. Files are uploaded by ``static/datasets.js`` to the JSON API's own
upload routes; everything else posts here and calls the same services as the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiku.errors import NotFound, ZhikuError
from zhiku.gateway.domain import DEFAULT_GROUP
from zhiku.knowledge import collections, datasets, links
from zhiku.knowledge.links import LinkCollectionCreate, WebsiteCollectionCreate
from zhiku.knowledge.schemas import CollectionPublic, CollectionUpdate, DatasetCreate, Page, TextCollectionCreate
from zhiku.web.deps import PlatformDep, SessionDep
from zhiku.web.ui.deps import UiPrincipal
from zhiku.web.ui.forms import FormError, FormFields, form_error, validated
from zhiku.web.ui.templating import render
from zhiku.wiring import Platform

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
# A collection in one of these states changes no more by itself: the page stops polling.
FINAL_STATUSES = frozenset({"ready", "error"})
# The event a change to the collections raises on <body>; the collections fragment reloads on it.
COLLECTIONS_CHANGED = "collections-changed"


@dataclass(frozen=True)
class Pager:
    page: int
    pages: int
    total: int

    @classmethod
    def of(cls, page: int, total: int, size: int = PAGE_SIZE) -> Pager:
        pages = max(1, -(-total // size))
        return cls(page=min(max(page, 1), pages), pages=pages, total=total)

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE


# Each form's inputs and the labels they show (datasets/list.html and the import forms of datasets/dataset.html).
DATASET_FORM = FormFields(labels={"name": "datasets.name", "description": "datasets.intro",
                                  "embedding_model": "datasets.embedding_model", "chunk_size": "datasets.chunk_size",
                                  "agent_model": "datasets.agent_model"},
                            codes={"dataset_exists": "name"})
TAGS_FORM = FormFields(labels={"tags": "datasets.tags"})
TEXT_FORM = FormFields(labels={"name": "datasets.name", "text": "datasets.text",
                               "training_mode": "datasets.training_mode", "tags": "datasets.tags"},
                       codes={"file_too_large": "text"})
LINKS_FORM = FormFields(labels={"urls": "datasets.urls", "training_mode": "datasets.training_mode",
                                "tags": "datasets.tags"})
WEBSITE_FORM = FormFields(labels={"url": "datasets.start_url", "max_pages": "datasets.max_pages",
                                  "max_depth": "datasets.max_depth", "tags": "datasets.tags"})


def refused_form(request: Request, template: str, form_id: str, error: FormError, **context: Any) -> HTMLResponse:
    """A form htmx posted with its result going elsewhere, shown again in its own place (``#form_id``) with
    what was typed and why."""
    return render(request, template, status_code=error.status, form_error=error,
                  headers={"HX-Retarget": f"#{form_id}", "HX-Reswap": "outerHTML"}, **context)


def words(value: str) -> list[str]:
    """Tags or URLs typed into one field: separated by commas or new lines, blanks dropped."""
    return [w.strip() for w in value.replace("\n", ",").split(",") if w.strip()]


def optional_int(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def done(request: Request, key: str, **params: Any) -> HTMLResponse:
    """What an htmx action answers when it worked: the catalogue ``key``'s text, and the event on which
    the collections table reloads. (A domain error is the foundation's error fragment, in the same place.)"""
    return render(request, "datasets/_done.html", key=key, params=params,
                  headers={"HX-Trigger": COLLECTIONS_CHANGED})


def imported(request: Request, form_template: str, dataset_id: int, **params: Any) -> HTMLResponse:
    """An import's outcome, like :func:`done`, with its form (``form_template``) empty again."""
    return render(request, "datasets/_imported.html", key="datasets.imported", params=params,
                  form_template=form_template, dataset={"id": dataset_id}, headers={"HX-Trigger": COLLECTIONS_CHANGED})


def chat_models(platform: Platform) -> list[str]:
    """The chat models the gateway serves (and the configured default): for an app's model and a
    dataset's agent model (training mode qa)."""
    names: set[str] = set()
    if platform.gateway is not None:
        names.update(platform.gateway.snapshot.models_for(DEFAULT_GROUP))
    if platform.settings.chat_model_configured:
        names.add(platform.settings.chat_model)
    return sorted(names)


# --- datasets -------------------------------------------------------------------------------------------

async def paged(fetch: Callable[[int, int], Awaitable[Page]], page: int) -> tuple[Page, Pager]:
    """Page ``page`` of a listing whose service gives the total with each page (``fetch(offset, limit)``):
    one call, and a second only when ``page`` is past the end (the last page is shown then)."""
    asked = max(page, 1)
    listed = await fetch((asked - 1) * PAGE_SIZE, PAGE_SIZE)
    pager = Pager.of(asked, listed.total)
    if pager.page != asked:
        listed = await fetch(pager.offset, PAGE_SIZE)
    return listed, pager


async def _list_page(request: Request, session: SessionDep, principal: UiPrincipal, platform: Platform,
                     page: int, *, error: FormError | None = None, form: dict[str, Any] | None = None) -> HTMLResponse:
    listed, pager = await paged(lambda offset, limit: datasets.list_datasets_page(
        session, principal, offset=offset, limit=limit), page)
    return render(request, "datasets/list.html", datasets=listed.items, pager=pager, form_error=error,
                  form=form or {}, embedding_models=platform.embedders.names(),
                  default_embedding_model=platform.embedders.default, agent_models=chat_models(platform),
                  default_agent_model=platform.settings.chat_model, status_code=error.status if error else 200)


@router.get("/datasets")
async def list_page(request: Request, session: SessionDep, principal: UiPrincipal, platform: PlatformDep,
                    page: int = 1) -> HTMLResponse:
    return await _list_page(request, session, principal, platform, page)


@router.post("/datasets")
async def create(request: Request, session: SessionDep, principal: UiPrincipal, platform: PlatformDep) -> Response:
    form = dict(await request.form())
    try:
        created = await datasets.create_dataset(session, principal, platform.embedders, validated(DatasetCreate, {
            "name": form.get("name", ""), "description": form.get("description", ""),
            "embedding_model": form.get("embedding_model") or None,
            "chunk_size": optional_int(form.get("chunk_size")) or 1000,
            "agent_model": form.get("agent_model") or None}, DATASET_FORM), vector_store=platform.vector_store)
    except ZhikuError as exc:
        return await _list_page(request, session, principal, platform, 1, error=form_error(exc, DATASET_FORM),
                                form=form)
    return RedirectResponse(f"/datasets/{created.id}", status_code=303)


# --- one dataset: its collections -------------------------------------------------------------------------

async def _collections_page(session: SessionDep, principal: UiPrincipal, dataset_id: int,
                            page: int) -> tuple[list[CollectionPublic], Pager]:
    """Newest first. The service pages oldest first, so page p is read from the end of its order."""
    total = (await collections.list_collections(session, principal, dataset_id, limit=0)).total
    pager = Pager.of(page, total)
    end = total - pager.offset
    start = max(0, end - PAGE_SIZE)
    listed = await collections.list_collections(session, principal, dataset_id, offset=start, limit=end - start)
    return list(reversed(listed.items)), pager


async def _collections_context(session: SessionDep, principal: UiPrincipal, dataset_id: int,
                               page: int) -> dict[str, Any]:
    items, pager = await _collections_page(session, principal, dataset_id, page)
    return {"collections": items, "pager": pager,
            "busy": any(c.status not in FINAL_STATUSES for c in items), "changed_event": COLLECTIONS_CHANGED}


@router.get("/datasets/{dataset_id}")
async def dataset_page(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                       platform: PlatformDep, page: int = 1) -> HTMLResponse:
    dataset = await datasets.get_dataset(session, principal, dataset_id)
    return render(request, "datasets/dataset.html", dataset=dataset,
                  upload_max_bytes=platform.settings.upload_max_bytes,
                  **await _collections_context(session, principal, dataset_id, page))


@router.get("/datasets/{dataset_id}/collections")
async def collections_fragment(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                               page: int = 1) -> HTMLResponse:
    """The collections table alone: what the dataset page polls while any collection is still importing."""
    dataset = await datasets.get_dataset(session, principal, dataset_id)
    return render(request, "datasets/_collections.html", dataset=dataset,
                  **await _collections_context(session, principal, dataset_id, page))


async def own_collection(session: SessionDep, principal: UiPrincipal, dataset_id: int,
                          collection_id: int) -> CollectionPublic:
    collection = await collections.get_collection(session, principal, collection_id)
    if collection.dataset_id != dataset_id:
        raise NotFound(f"collection {collection_id} does not exist", code="collection_not_found")
    return collection


def _collection_action(path: str) -> str:
    return "/datasets/{dataset_id}/collections/{collection_id}/" + path


@router.post(_collection_action("retry"))
async def retry(request: Request, dataset_id: int, collection_id: int, session: SessionDep,
                principal: UiPrincipal, platform: PlatformDep) -> HTMLResponse:
    await own_collection(session, principal, dataset_id, collection_id)
    retried = await collections.retry_collection(session, principal, collection_id,
                                                 max_attempts=platform.settings.job_max_attempts)
    return done(request, "datasets.retried", name=retried.name)


@router.post(_collection_action("sync"))
async def sync(request: Request, dataset_id: int, collection_id: int, session: SessionDep,
               principal: UiPrincipal, platform: PlatformDep) -> HTMLResponse:
    await own_collection(session, principal, dataset_id, collection_id)
    synced = await links.request_sync(session, principal, collection_id,
                                      max_attempts=platform.settings.job_max_attempts)
    return done(request, "datasets.sync_requested", name=synced.name)


@router.post(_collection_action("delete"))
async def delete(request: Request, dataset_id: int, collection_id: int, session: SessionDep,
                 principal: UiPrincipal, platform: PlatformDep) -> HTMLResponse:
    gone = await own_collection(session, principal, dataset_id, collection_id)
    await collections.delete_collection(session, principal, collection_id, blobs=platform.blobs,
                                        vector_store=platform.vector_store)
    return done(request, "datasets.deleted", name=gone.name)


@router.post(_collection_action("tags"))
async def set_tags(request: Request, dataset_id: int, collection_id: int, session: SessionDep,
                   principal: UiPrincipal) -> HTMLResponse:
    form = await request.form()
    collection = await own_collection(session, principal, dataset_id, collection_id)
    typed = str(form.get("tags", ""))
    try:
        tagged = await collections.update_collection(session, principal, collection_id, validated(
            CollectionUpdate, {"tags": words(typed)}, TAGS_FORM))
    except ZhikuError as exc:
        return refused_form(request, "datasets/_tags_form.html", f"tags-{collection_id}", form_error(exc, TAGS_FORM),
                            dataset={"id": dataset_id}, c=collection, typed_tags=typed)
    return done(request, "datasets.tags_saved", name=tagged.name)


# --- imports (files and Q&A tables go to the JSON API's upload routes from datasets.js) -------------------

@router.post("/datasets/{dataset_id}/import/text")
async def import_text(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                      platform: PlatformDep) -> HTMLResponse:
    form = await request.form()
    try:
        body = validated(TextCollectionCreate, {
            "name": form.get("name", ""), "text": form.get("text", ""),
            "chunk_size": optional_int(form.get("chunk_size")), "training_mode": form.get("training_mode", "chunk"),
            "tags": words(str(form.get("tags", "")))}, TEXT_FORM)
        added = await collections.create_text_collection(session, principal, platform.blobs, dataset_id, body,
                                                         max_bytes=platform.settings.upload_max_bytes,
                                                         max_attempts=platform.settings.job_max_attempts)
    except ZhikuError as exc:
        return refused_form(request, "datasets/_import_text.html", "text-import", form_error(exc, TEXT_FORM),
                            dataset={"id": dataset_id}, values=dict(form))
    return imported(request, "datasets/_import_text.html", dataset_id, count=1, name=added.name)


@router.post("/datasets/{dataset_id}/import/links")
async def import_links(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                       platform: PlatformDep) -> HTMLResponse:
    form = await request.form()
    try:
        body = validated(LinkCollectionCreate, {
            "urls": words(str(form.get("urls", ""))), "training_mode": form.get("training_mode", "chunk"),
            "tags": words(str(form.get("tags", "")))}, LINKS_FORM)
        added = await links.create_link_collections(session, principal, dataset_id, body,
                                                    allow_private=platform.settings.allow_private_urls,
                                                    max_attempts=platform.settings.job_max_attempts)
    except ZhikuError as exc:
        return refused_form(request, "datasets/_import_links.html", "link-import", form_error(exc, LINKS_FORM),
                            dataset={"id": dataset_id}, values=dict(form))
    return imported(request, "datasets/_import_links.html", dataset_id, count=len(added),
                    name=", ".join(c.name for c in added))


@router.post("/datasets/{dataset_id}/import/website")
async def import_website(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                         platform: PlatformDep) -> HTMLResponse:
    form = await request.form()
    try:
        body = validated(WebsiteCollectionCreate, {
            "url": str(form.get("url", "")).strip(), "max_pages": optional_int(form.get("max_pages")) or 50,
            "max_depth": optional_int(form.get("max_depth")) or 0, "tags": words(str(form.get("tags", "")))},
            WEBSITE_FORM)
        added = await links.create_website_collection(session, principal, dataset_id, body,
                                                      settings=platform.settings)
    except ZhikuError as exc:
        return refused_form(request, "datasets/_import_website.html", "website-import",
                            form_error(exc, WEBSITE_FORM), dataset={"id": dataset_id}, values=dict(form))
    return imported(request, "datasets/_import_website.html", dataset_id, count=1, name=added.name)
