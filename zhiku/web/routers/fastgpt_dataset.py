"""FastGPT's dataset OpenAPI under ``/api/core/dataset/…``, so scripts written for FastGPT run unchanged.

Each route takes FastGPT's body, calls the Zhiku service that does the work, and answers in FastGPT's
envelope (``zhiku.web.fastgpt_envelope``). Where FastGPT's docs and code disagree, both request shapes
are taken and the code's response shape is sent.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from zhiku.errors import InvalidInput
from zhiku.knowledge import chunks, collections, datasets, links
from zhiku.knowledge.fetch import MAX_URL_CHARS
from zhiku.knowledge.push import push_data
from zhiku.knowledge.schemas import (
    MAX_TAGS,
    ChunkUpdate,
    CollectionPublic,
    DatasetCreate,
    IndexText,
    PushItem,
    Tag,
    TextCollectionCreate,
    TrainingMode,
)
from zhiku.retrieval.search import quote_dict, search
from zhiku.retrieval.settings import SearchSettings
from zhiku.safetext import Name, StoredText
from zhiku.web.deps import PlatformDep, SessionDep, TeamPrincipal
from zhiku.web.fastgpt_envelope import (
    FASTGPT_SEARCH_MODES,
    IdRef,
    collection_item,
    data_detail,
    data_item,
    dataset_item,
    insert_results,
    internal_id,
    ok,
    page_bounds,
    quote_item,
    require_root,
)
from zhiku.web.routers.collections import read_upload

router = APIRouter(prefix="/api/core/dataset", tags=["FastGPT dataset API"])

SEARCH_MAX_TOKENS = 20_000  # FastGPT caps searchTest's token limit here
MAX_OFFSET = 10**9
ID_QUERY = Query(max_length=64, description="the id, as a string")


class Body(BaseModel):
    """FastGPT bodies carry fields Zhiku has no use for (avatar, billId, …): they are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# --- datasets -----------------------------------------------------------------------------------


class DatasetCreateBody(Body):
    name: Name = Field(min_length=1, max_length=200)
    intro: StoredText = Field("", max_length=10_000)
    type: Literal["dataset", "folder"] = "dataset"
    parent_id: IdRef | None = Field(None, alias="parentId")
    vector_model: str | None = Field(None, alias="vectorModel", max_length=100)
    agent_model: str | None = Field(None, alias="agentModel", max_length=100)
    avatar: str | None = Field(None, max_length=2000)


class DatasetListBody(Body):
    parent_id: IdRef | None = Field(None, alias="parentId")
    type: str | None = Field(None, max_length=50)
    search_key: str | None = Field(None, alias="searchKey", max_length=200)


@router.post("/create")
async def create_dataset(body: DatasetCreateBody, session: SessionDep, principal: TeamPrincipal,
                         platform: PlatformDep) -> dict:
    """``data``: the new dataset's id. Folders are not supported."""
    require_root(body.parent_id)
    if body.type == "folder":
        raise InvalidInput("dataset folders are not supported", code="folders_unsupported")
    created = await datasets.create_dataset(
        session, principal, platform.embedders,
        DatasetCreate(name=body.name, description=body.intro, embedding_model=body.vector_model or None,
                      agent_model=body.agent_model or None),
        vector_store=platform.vector_store)
    return ok(str(created.id))


@router.post("/list")
async def list_datasets(session: SessionDep, principal: TeamPrincipal, body: DatasetListBody | None = None,
                        parent_id: str | None = Query(None, alias="parentId", max_length=64)) -> dict:
    """The team's datasets (all at the root); ``searchKey`` matches names, ``type=folder`` finds none."""
    body = body or DatasetListBody()
    require_root(body.parent_id or parent_id)
    if body.type not in (None, "", "dataset"):
        return ok([])
    key = (body.search_key or "").casefold()
    return ok([dataset_item(d) for d in await datasets.list_datasets(session, principal)
               if key in d.name.casefold()])


@router.get("/detail")
async def dataset_detail(session: SessionDep, principal: TeamPrincipal, id: str = ID_QUERY) -> dict:
    return ok(dataset_item(await datasets.get_dataset(session, principal, internal_id(id, "dataset"))))


@router.delete("/delete")
async def delete_dataset(session: SessionDep, principal: TeamPrincipal, platform: PlatformDep,
                         id: str = ID_QUERY) -> dict:
    await datasets.delete_dataset(session, principal, internal_id(id, "dataset"),
                                  vector_store=platform.vector_store)
    return ok(None)


# --- collections --------------------------------------------------------------------------------


class CollectionParams(Body):
    """The parameters every FastGPT collection-creating call shares."""

    dataset_id: IdRef = Field(alias="datasetId")
    parent_id: IdRef | None = Field(None, alias="parentId")
    training_type: str = Field("chunk", alias="trainingType", max_length=20)
    chunk_setting_mode: Literal["auto", "custom"] | None = Field(None, alias="chunkSettingMode")
    chunk_size: int | None = Field(None, alias="chunkSize", ge=100, le=20000)
    qa_prompt: StoredText | None = Field(None, alias="qaPrompt", max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] | None = None

    def chunk_size_to_use(self) -> int | None:
        """``chunkSize`` counts unless ``chunkSettingMode`` is ``auto`` (older scripts send no mode)."""
        return None if self.chunk_setting_mode == "auto" else self.chunk_size

    def mode(self, *, supported: tuple[TrainingMode, ...] = ("chunk", "qa")) -> TrainingMode:
        return checked_training_mode(self.training_type, supported)

    def checked_dataset_id(self) -> int:
        require_root(self.parent_id)
        return internal_id(self.dataset_id, "dataset")


def checked_training_mode(name: str, supported: tuple[TrainingMode, ...]) -> TrainingMode:
    """FastGPT's ``trainingType`` as Zhiku's training mode; its other modes (imageParse, backup, template …)
    are refused by name."""
    for mode in supported:
        if name == mode:
            return mode
    raise InvalidInput(f"training type {name!r} is not supported here (use {' or '.join(supported)})",
                       code="unsupported_training_type")


class EmptyCollectionBody(Body):
    dataset_id: IdRef = Field(alias="datasetId")
    parent_id: IdRef | None = Field(None, alias="parentId")
    name: Name = Field(min_length=1, max_length=500)
    type: Literal["folder", "virtual"]
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] | None = None


class TextCollectionBody(CollectionParams):
    name: Name = Field(min_length=1, max_length=500)
    text: StoredText


class LinkCollectionBody(CollectionParams):
    link: str = Field(min_length=1, max_length=MAX_URL_CHARS)


def _created(collection: CollectionPublic) -> dict:
    """FastGPT's answer to a new collection. ``insertLen`` counts the chunks made so far: Zhiku reads and
    splits the source in the background, so it is 0 until then (``listV2`` shows the progress)."""
    return ok({"collectionId": str(collection.id), "results": insert_results(collection.chunk_count)})


@router.post("/collection/create")
async def create_empty_collection(body: EmptyCollectionBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    """``data``: the new collection's id. A ``virtual`` collection starts empty and is filled by ``pushData``;
    folders are not supported."""
    require_root(body.parent_id)
    if body.type == "folder":
        raise InvalidInput("collection folders are not supported", code="folders_unsupported")
    collection = await collections.create_empty_collection(session, principal, internal_id(body.dataset_id, "dataset"),
                                                           body.name, tags=body.tags)
    return ok(str(collection.id))


@router.post("/collection/create/text")
async def create_text_collection(body: TextCollectionBody, session: SessionDep, principal: TeamPrincipal,
                                 platform: PlatformDep) -> dict:
    data = TextCollectionCreate(name=body.name, text=body.text, chunk_size=body.chunk_size_to_use(),
                                training_mode=body.mode(), qa_prompt=body.qa_prompt, tags=body.tags)
    collection = await collections.create_text_collection(
        session, principal, platform.blobs, body.checked_dataset_id(), data,
        max_bytes=platform.settings.upload_max_bytes, max_attempts=platform.settings.job_max_attempts)
    return _created(collection)


@router.post("/collection/create/link")
async def create_link_collection(body: LinkCollectionBody, session: SessionDep, principal: TeamPrincipal,
                                 platform: PlatformDep) -> dict:
    """One web page, fetched by a worker. ``metadata.webPageSelector`` is not used: the page's main text is
    found by itself."""
    collection = await links.create_link_collection(
        session, principal, body.checked_dataset_id(), body.link, chunk_size=body.chunk_size_to_use(),
        tags=body.tags, allow_private=platform.settings.allow_private_urls, training_mode=body.mode(),
        qa_prompt=body.qa_prompt, max_attempts=platform.settings.job_max_attempts)
    return _created(collection)


@router.post("/collection/create/localFile")
async def create_file_collection(request: Request, session: SessionDep, principal: TeamPrincipal,
                                 platform: PlatformDep, file: UploadFile = File(),
                                 data: str = Form("{}", max_length=100_000,
                                                  description="the common collection parameters, as JSON")) -> dict:
    """Multipart: ``file`` and ``data`` (a JSON string of the common parameters, ``datasetId`` required)."""
    try:
        params = CollectionParams.model_validate_json(data)
    except ValidationError as exc:  # reported like any request body error, under the "data" field
        raise RequestValidationError([{**e, "loc": ("body", "data", *e["loc"])}
                                      for e in exc.errors(include_url=False, include_context=False)]) from None
    dataset_id, mode = params.checked_dataset_id(), params.mode()
    limit = platform.settings.upload_max_bytes
    collection = await collections.create_file_collection(
        session, principal, platform.blobs, dataset_id, file.filename or "",
        await read_upload(request, file, limit), max_bytes=limit, chunk_size=params.chunk_size_to_use(),
        max_attempts=platform.settings.job_max_attempts, training_mode=mode, qa_prompt=params.qa_prompt,
        tags=params.tags)
    return _created(collection)


class PageBody(Body):
    """Either of FastGPT's paginations: ``offset`` (listV2, v2/list) or ``pageNum`` (the older lists)."""

    search_text: str | None = Field(None, alias="searchText", max_length=200)
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET)
    page_num: int | None = Field(None, alias="pageNum", ge=1, le=MAX_OFFSET)
    page_size: int = Field(10, alias="pageSize", ge=1)

    def bounds(self) -> tuple[int, int]:
        return page_bounds(self.offset, self.page_num, self.page_size)

    def answer(self, items: list[dict], total: int, *, numbered: bool) -> dict:
        """``{list, total}``, or for the older lists ``{pageNum, pageSize, data, total}``."""
        if numbered:
            return ok({"pageNum": self.page_num or 1, "pageSize": self.bounds()[1], "data": items, "total": total})
        return ok({"list": items, "total": total})


class CollectionListBody(PageBody):
    dataset_id: IdRef = Field(alias="datasetId")
    parent_id: IdRef | None = Field(None, alias="parentId")


async def _collections(session: SessionDep, principal: TeamPrincipal, body: CollectionListBody, *,
                       numbered: bool) -> dict:
    require_root(body.parent_id)
    offset, limit = body.bounds()
    page = await collections.list_collections(session, principal, internal_id(body.dataset_id, "dataset"),
                                              offset=offset, limit=limit, name_contains=body.search_text)
    return body.answer([collection_item(c) for c in page.items], page.total, numbered=numbered)


@router.post("/collection/listV2")
async def list_collections(body: CollectionListBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    return await _collections(session, principal, body, numbered=False)


@router.post("/collection/list")
async def list_collections_by_page(body: CollectionListBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    """The pre-4.8.19 list, by ``pageNum``."""
    return await _collections(session, principal, body, numbered=True)


@router.get("/collection/detail")
async def collection_detail(session: SessionDep, principal: TeamPrincipal, id: str = ID_QUERY) -> dict:
    return ok(collection_item(await collections.get_collection(session, principal, internal_id(id, "collection"))))


@router.delete("/collection/delete")
async def delete_collection(session: SessionDep, principal: TeamPrincipal, platform: PlatformDep,
                            id: str = ID_QUERY) -> dict:
    await collections.delete_collection(session, principal, internal_id(id, "collection"),
                                        vector_store=platform.vector_store, blobs=platform.blobs)
    return ok(None)


# --- data (chunks) ------------------------------------------------------------------------------


class DataListBody(PageBody):
    collection_id: IdRef = Field(alias="collectionId")


async def _data(session: SessionDep, principal: TeamPrincipal, body: DataListBody, *, numbered: bool) -> dict:
    offset, limit = body.bounds()
    page = await chunks.list_chunks(session, principal, internal_id(body.collection_id, "collection"),
                                    offset=offset, limit=limit, text_contains=body.search_text)
    return body.answer([data_item(c) for c in page.items], page.total, numbered=numbered)


@router.post("/data/v2/list")
async def list_data(body: DataListBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    return await _data(session, principal, body, numbered=False)


@router.post("/data/list")
async def list_data_by_page(body: DataListBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    """The older list, by ``pageNum``."""
    return await _data(session, principal, body, numbered=True)


@router.get("/data/detail")
async def data_detail_route(session: SessionDep, principal: TeamPrincipal, id: str = ID_QUERY) -> dict:
    chunk = await chunks.get_chunk(session, principal, internal_id(id, "data"))
    collection = await collections.get_collection(session, principal, chunk.collection_id)
    return ok(data_detail(chunk, collection))


class PushBody(Body):
    collection_id: IdRef = Field(alias="collectionId")
    training_type: str = Field("chunk", validation_alias=AliasChoices("trainingType", "mode"), max_length=20)
    prompt: StoredText | None = Field(None, max_length=10_000, description="the Q&A prompt, for trainingType qa")
    data: list[PushItem]


@router.post("/data/pushData")
async def push(body: PushBody, session: SessionDep, principal: TeamPrincipal, platform: PlatformDep) -> dict:
    """At most 200 items ``{q, a?, indexes?}``, added as chunks (``chunk``) or given to the dataset's agent model
    first (``qa``, with ``prompt`` when given). ``billId`` and ``indexSize`` are not used."""
    result = await push_data(session, principal, internal_id(body.collection_id, "collection"), body.data,
                             mode=checked_training_mode(body.training_type, ("chunk", "qa")), qa_prompt=body.prompt or None,
                             embed_batch_size=platform.settings.embed_batch_size,
                             max_attempts=platform.settings.job_max_attempts)
    return ok(insert_results(result.insert_len))


class DataUpdateBody(Body):
    data_id: IdRef = Field(validation_alias=AliasChoices("dataId", "id"))
    q: StoredText | None = None
    a: StoredText | None = None
    indexes: list[IndexText] | None = Field(None, description="replaces the data's index texts when given")


@router.put("/data/update")
async def update_data(body: DataUpdateBody, session: SessionDep, principal: TeamPrincipal,
                      platform: PlatformDep) -> dict:
    await chunks.update_chunk(session, principal, platform.embedders, internal_id(body.data_id, "data"),
                              ChunkUpdate(q=body.q, a=body.a, indexes=body.indexes),
                              vector_store=platform.vector_store)
    return ok(None)


@router.delete("/data/delete")
async def delete_data(session: SessionDep, principal: TeamPrincipal, platform: PlatformDep,
                      id: str = ID_QUERY) -> dict:
    await chunks.delete_chunk(session, principal, internal_id(id, "data"), vector_store=platform.vector_store)
    return ok("success")


# --- search test --------------------------------------------------------------------------------


class SearchTestBody(Body):
    dataset_id: IdRef = Field(alias="datasetId")
    text: str = Field(min_length=1)
    limit: int = Field(5000, ge=1, description="token budget; more than 20000 is cut to 20000")
    similarity: float | None = Field(None, ge=0, le=1)
    search_mode: str | None = Field(None, alias="searchMode", max_length=30)
    embedding_weight: float | None = Field(None, alias="embeddingWeight", ge=0, le=1)
    using_rerank: bool | None = Field(None, alias="usingReRank")
    rerank_weight: float | None = Field(None, alias="rerankWeight", ge=0, le=1)


@router.post("/searchTest")
async def search_test(body: SearchTestBody, session: SessionDep, principal: TeamPrincipal,
                      platform: PlatformDep) -> dict:
    """FastGPT's code answers ``{list, duration, limit, searchMode, usingReRank, similarity}`` (its docs
    show a bare list): the code's shape is sent. Query extension is not run here."""
    dataset = await datasets.load_dataset(session, principal, internal_id(body.dataset_id, "dataset"))
    settings = SearchSettings.from_dict(body.model_dump(
        by_alias=True, exclude_none=True, include={"search_mode", "similarity", "embedding_weight",
                                                   "using_rerank", "rerank_weight"})
        | {"limit": min(body.limit, SEARCH_MAX_TOKENS)}, where="")
    result = await search(platform.db.sessions, platform.embedders, [dataset], body.text, settings,
                          reranker=platform.reranker, vector_store=platform.vector_store)
    return ok({"list": [quote_item(quote_dict(q)) for q in result.quotes],
               "duration": f"{result.duration_ms / 1000:.3f}s", "limit": settings.max_tokens,
               "searchMode": FASTGPT_SEARCH_MODES[settings.mode], "usingReRank": result.reranked,
               "similarity": settings.similarity})
