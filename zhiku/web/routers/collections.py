from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile

from zhiku.errors import PayloadTooLarge
from zhiku.knowledge import collections, links
from zhiku.knowledge.links import LinkCollectionCreate, WebsiteCollectionCreate
from zhiku.knowledge.push import push_data
from zhiku.knowledge.schemas import (
    MAX_TAGS,
    CollectionPublic,
    CollectionReindex,
    CollectionUpdate,
    Page,
    PushData,
    PushResult,
    Tag,
    TextCollectionCreate,
    TrainingMode,
)
from zhiku.web.deps import PlatformDep, SessionDep, TeamPrincipal

router = APIRouter(tags=["collections"])
# Room for multipart boundaries and headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
READ_BLOCK = 1024 * 1024


@router.post("/api/datasets/{dataset_id}/collections/text", status_code=201)
async def create_text(dataset_id: int, body: TextCollectionCreate, session: SessionDep, principal: TeamPrincipal,
                      platform: PlatformDep) -> CollectionPublic:
    return await collections.create_text_collection(session, principal, platform.blobs, dataset_id, body,
                                                    max_bytes=platform.settings.upload_max_bytes,
                                                    max_attempts=platform.settings.job_max_attempts)


# Tags on a multipart form: the field repeated once per tag.
TagsForm = Annotated[list[Tag] | None, Form(max_length=MAX_TAGS)]


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    data = bytearray()
    while block := await upload.read(READ_BLOCK):
        data += block
        if len(data) > limit:
            raise PayloadTooLarge(f"{upload.filename} is over the upload limit of {limit} bytes",
                                  detail={"limit": limit})
    return bytes(data)


@router.post("/api/datasets/{dataset_id}/collections/file", status_code=201)
async def create_file(dataset_id: int, request: Request, file: UploadFile, session: SessionDep,
                      principal: TeamPrincipal, platform: PlatformDep,
                      chunk_size: int | None = Form(None, alias="chunkSize", ge=100, le=20000),
                      training_mode: TrainingMode = Form("chunk", alias="trainingMode"),
                      qa_prompt: str | None = Form(None, alias="qaPrompt", max_length=10_000),
                      tags: TagsForm = None) -> CollectionPublic:
    data = await read_upload(request, file, platform.settings.upload_max_bytes)
    return await collections.create_file_collection(
        session, principal, platform.blobs, dataset_id, file.filename or "", data,
        max_bytes=platform.settings.upload_max_bytes, chunk_size=chunk_size,
        max_attempts=platform.settings.job_max_attempts, training_mode=training_mode, qa_prompt=qa_prompt,
        tags=tags)


async def read_upload(request: Request, file: UploadFile, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload is {declared} bytes; the limit is {limit} bytes", detail={"limit": limit})
    return await _read_limited(file, limit)


@router.get("/api/datasets/{dataset_id}/collections")
async def list_collections(dataset_id: int, session: SessionDep, principal: TeamPrincipal,
                           offset: int = 0, limit: int = 100) -> Page:
    return await collections.list_collections(session, principal, dataset_id, offset=offset,
                                              limit=min(max(limit, 1), 1000))


@router.get("/api/collections/{collection_id}")
async def get_collection(collection_id: int, session: SessionDep, principal: TeamPrincipal) -> CollectionPublic:
    return await collections.get_collection(session, principal, collection_id)


@router.delete("/api/collections/{collection_id}", status_code=204)
async def delete_collection(collection_id: int, session: SessionDep, principal: TeamPrincipal,
                            platform: PlatformDep) -> None:
    await collections.delete_collection(session, principal, collection_id, vector_store=platform.vector_store,
                                        blobs=platform.blobs)


@router.post("/api/datasets/{dataset_id}/collections/link", status_code=201)
async def create_links(dataset_id: int, body: LinkCollectionCreate, session: SessionDep, principal: TeamPrincipal,
                       platform: PlatformDep) -> list[CollectionPublic]:
    """One collection per URL; a worker fetches each page."""
    return await links.create_link_collections(session, principal, dataset_id, body,
                                               allow_private=platform.settings.allow_private_urls,
                                               max_attempts=platform.settings.job_max_attempts)


@router.post("/api/datasets/{dataset_id}/collections/website", status_code=201)
async def create_website(dataset_id: int, body: WebsiteCollectionCreate, session: SessionDep,
                         principal: TeamPrincipal, platform: PlatformDep) -> CollectionPublic:
    """A crawl from ``url`` within its host; each page becomes a link collection."""
    return await links.create_website_collection(session, principal, dataset_id, body, settings=platform.settings)


@router.post("/api/collections/{collection_id}/sync", status_code=202)
async def sync_collection(collection_id: int, session: SessionDep, principal: TeamPrincipal,
                          platform: PlatformDep) -> CollectionPublic:
    """Fetch a link (or crawl a website) again; only pages whose content changed are indexed again."""
    return await links.request_sync(session, principal, collection_id,
                                    max_attempts=platform.settings.job_max_attempts)


@router.post("/api/datasets/{dataset_id}/collections/qa-table", status_code=201)
async def create_qa_table(dataset_id: int, request: Request, file: UploadFile, session: SessionDep,
                          principal: TeamPrincipal, platform: PlatformDep, tags: TagsForm = None) -> CollectionPublic:
    """A CSV/XLSX of question, answer and index-text columns: one chunk per row."""
    data = await read_upload(request, file, platform.settings.upload_max_bytes)
    return await collections.create_qa_table_collection(
        session, principal, platform.blobs, dataset_id, file.filename or "", data,
        max_bytes=platform.settings.upload_max_bytes, max_attempts=platform.settings.job_max_attempts, tags=tags)


@router.patch("/api/collections/{collection_id}")
async def update_collection(collection_id: int, body: CollectionUpdate, session: SessionDep,
                            principal: TeamPrincipal) -> CollectionPublic:
    return await collections.update_collection(session, principal, collection_id, body)


@router.post("/api/collections/{collection_id}/retry", status_code=202)
async def retry_collection(collection_id: int, session: SessionDep, principal: TeamPrincipal,
                           platform: PlatformDep) -> CollectionPublic:
    """Run a failed collection again from the step that failed."""
    return await collections.retry_collection(session, principal, collection_id,
                                              max_attempts=platform.settings.job_max_attempts)


@router.post("/api/collections/{collection_id}/reindex", status_code=202)
async def reindex_collection(collection_id: int, body: CollectionReindex, session: SessionDep,
                             principal: TeamPrincipal, platform: PlatformDep) -> CollectionPublic:
    """Chunk and embed again with new settings; the new chunks replace the old ones when all are embedded."""
    return await collections.reindex_collection(session, principal, collection_id, body,
                                                max_attempts=platform.settings.job_max_attempts)


@router.post("/api/collections/{collection_id}/data", status_code=201)
async def push(collection_id: int, body: PushData, session: SessionDep, principal: TeamPrincipal,
               platform: PlatformDep) -> PushResult:
    """Add chunks directly (FastGPT's pushData body): at most 200 items, each {q, a?, indexes?}."""
    return await push_data(session, principal, collection_id, body.data, mode=body.training_mode,
                           qa_prompt=body.qa_prompt, embed_batch_size=platform.settings.embed_batch_size,
                           max_attempts=platform.settings.job_max_attempts)
