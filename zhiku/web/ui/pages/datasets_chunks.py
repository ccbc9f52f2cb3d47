"""Knowledge-base pages, continued: a collection's chunk browser (paged, searchable, edit and delete) and a
dataset's search-test panel (every quote with its score breakdown and citation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from zhiku.errors import NotFound, ZhikuError
from zhiku.knowledge import chunks, datasets
from zhiku.knowledge.schemas import MAX_INDEXES, ChunkPublic, ChunkUpdate
from zhiku.retrieval.search import search
from zhiku.retrieval.settings import MAX_QUERY_CHARS, MAX_SEARCH_TOKENS, SearchSettings
from zhiku.web.deps import PlatformDep, SessionDep
from zhiku.web.ui.deps import UiPrincipal
from zhiku.web.ui.forms import FormError, FormFields, form_error, validated
from zhiku.web.ui.pages.datasets import own_collection, paged
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)
MAX_SEARCH_TEXT_CHARS = 200  # of the chunk browser's filter box
# The chunk editor's inputs (datasets/_chunk.html): its index texts are one list, marked as one.
CHUNK_FORM = FormFields(labels={"q": "datasets.chunk_q", "a": "datasets.chunk_a", "index_text": "datasets.index_texts"},
                        inputs={"indexes": "index_text"})


# --- chunk browser --------------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}/collections/{collection_id}/chunks")
async def chunks_page(request: Request, dataset_id: int, collection_id: int, session: SessionDep,
                      principal: UiPrincipal, page: int = 1, q: str = "") -> HTMLResponse:
    dataset = await datasets.get_dataset(session, principal, dataset_id)
    collection = await own_collection(session, principal, dataset_id, collection_id)
    q = q.strip()[:MAX_SEARCH_TEXT_CHARS]
    listed, pager = await paged(lambda offset, limit: chunks.list_chunks(
        session, principal, collection_id, offset=offset, limit=limit, text_contains=q or None), page)
    return render(request, "datasets/chunks.html", dataset=dataset, collection=collection, chunks=listed.items,
                  pager=pager, q=q)


async def _own_chunk(session: SessionDep, principal: UiPrincipal, dataset_id: int, chunk_id: int) -> ChunkPublic:
    chunk = await chunks.get_chunk(session, principal, chunk_id)
    if chunk.dataset_id != dataset_id:
        raise NotFound(f"chunk {chunk_id} does not exist", code="chunk_not_found")
    return chunk


def _chunk_fragment(request: Request, chunk: ChunkPublic, *, editing: bool = False,
                    error: FormError | None = None) -> HTMLResponse:
    return render(request, "datasets/_chunk.html", chunk=chunk, editing=editing, form_error=error,
                  max_indexes=MAX_INDEXES, status_code=error.status if error else 200)


@router.get("/datasets/{dataset_id}/chunks/{chunk_id}")
async def chunk_fragment(request: Request, dataset_id: int, chunk_id: int, session: SessionDep,
                         principal: UiPrincipal, edit: bool = False) -> HTMLResponse:
    """One chunk as shown in the browser, or (``edit``) as its edit form."""
    return _chunk_fragment(request, await _own_chunk(session, principal, dataset_id, chunk_id), editing=edit)


def _indexes_of(form: Any) -> list[dict[str, str]]:
    """The edit form's index texts: each ``index_text`` with its ``index_type``; empty ones are removed."""
    kinds = form.getlist("index_type")
    return [{"type": kind, "text": str(text)} for kind, text in zip(kinds, form.getlist("index_text"), strict=True)
            if str(text).strip()]


@router.post("/datasets/{dataset_id}/chunks/{chunk_id}")
async def update_chunk(request: Request, dataset_id: int, chunk_id: int, session: SessionDep,
                       principal: UiPrincipal, platform: PlatformDep) -> HTMLResponse:
    """Save an edit; a refused one shows the form again with what was typed and why."""
    chunk = await _own_chunk(session, principal, dataset_id, chunk_id)
    form = await request.form()
    typed = {"q": str(form.get("q", "")), "a": str(form.get("a", "")), "indexes": _indexes_of(form)}
    try:
        changed = await chunks.update_chunk(session, principal, platform.embedders, chunk_id,
                                            validated(ChunkUpdate, typed, CHUNK_FORM), vector_store=platform.vector_store)
    except ZhikuError as exc:
        await session.rollback()
        return _chunk_fragment(request, chunk.model_copy(update=typed), editing=True, error=form_error(exc, CHUNK_FORM))
    return _chunk_fragment(request, changed)


@router.post("/datasets/{dataset_id}/chunks/{chunk_id}/delete")
async def delete_chunk(dataset_id: int, chunk_id: int, session: SessionDep, principal: UiPrincipal,
                       platform: PlatformDep) -> Response:
    await _own_chunk(session, principal, dataset_id, chunk_id)
    await chunks.delete_chunk(session, principal, chunk_id, vector_store=platform.vector_store)
    return HTMLResponse("")  # htmx swaps the chunk out


# --- search test ----------------------------------------------------------------------------------------

@router.get("/datasets/{dataset_id}/search")
async def search_page(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                      platform: PlatformDep) -> HTMLResponse:
    dataset = await datasets.get_dataset(session, principal, dataset_id)
    return render(request, "datasets/search.html", dataset=dataset, settings=SearchSettings(),
                  rerank_available=platform.reranker is not None, max_query_chars=MAX_QUERY_CHARS)


def _number(form: Any, name: str, default: float, low: float, high: float) -> float:
    """A number field of the search form, held to its range; blank or not a number: the default."""
    try:
        value = float(str(form.get(name, "")).strip() or default)
    except ValueError:
        return default
    return min(max(value, low), high)


def _search_settings(form: Any) -> SearchSettings:
    defaults = SearchSettings()
    return SearchSettings.from_dict({
        "mode": form.get("mode", defaults.mode),
        "similarity": _number(form, "similarity", defaults.similarity, 0.0, 1.0),
        "limit": int(_number(form, "limit", defaults.max_tokens, 1, MAX_SEARCH_TOKENS)),
        "embedding_weight": _number(form, "embedding_weight", defaults.embedding_weight, 0.0, 1.0),
        "rerank": form.get("rerank") == "on"})


@router.post("/datasets/{dataset_id}/search")
async def search_test(request: Request, dataset_id: int, session: SessionDep, principal: UiPrincipal,
                      platform: PlatformDep) -> HTMLResponse:
    """The results fragment of a search test (the same search as ``POST /api/datasets/{id}/search``)."""
    form = await request.form()
    dataset = await datasets.load_dataset(session, principal, dataset_id)
    result = await search(platform.db.sessions, platform.embedders, [dataset], str(form.get("text", "")),
                          _search_settings(form), reranker=platform.reranker, vector_store=platform.vector_store)
    return render(request, "datasets/_results.html", dataset_id=dataset_id, result=result)
