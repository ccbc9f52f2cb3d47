from __future__ import annotations

from fastapi import APIRouter, Form, Request, UploadFile

from zhiku.errors import PayloadTooLarge
from zhiku.knowledge import collections, links
from zhiku.knowledge.links import LinkCollectionCreate, WebsiteCollectionCreate
from zhiku.knowledge.schemas import CollectionPublic, Page, TextCollectionCreate
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
                      chunk_size: int | None = Form(None, alias="chunkSize", ge=100, le=20000)) -> CollectionPublic:
    limit = platform.settings.upload_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"the upload is {declared} bytes; the limit is {limit} bytes", detail={"limit": limit})
    data = await _read_limited(file, limit)
    return await collections.create_file_collection(
        session, principal, platform.blobs, dataset_id, file.filename or "", data, max_bytes=limit,
        chunk_size=chunk_size, max_attempts=platform.settings.job_max_attempts)


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
    await collections.delete_collection(session, principal, collection_id, vector_store=platform.vector_store)


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
