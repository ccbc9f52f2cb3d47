from __future__ import annotations

from fastapi import APIRouter

from zhiku.knowledge import chunks
from zhiku.knowledge.schemas import ChunkPublic, ChunkUpdate, Page
from zhiku.web.deps import PlatformDep, SessionDep, TeamPrincipal

router = APIRouter(tags=["chunks"])


@router.get("/api/collections/{collection_id}/chunks")
async def list_chunks(collection_id: int, session: SessionDep, principal: TeamPrincipal,
                      offset: int = 0, limit: int = 100) -> Page:
    return await chunks.list_chunks(session, principal, collection_id, offset=offset, limit=min(max(limit, 1), 1000))


@router.get("/api/chunks/{chunk_id}")
async def get_chunk(chunk_id: int, session: SessionDep, principal: TeamPrincipal) -> ChunkPublic:
    return await chunks.get_chunk(session, principal, chunk_id)


@router.patch("/api/chunks/{chunk_id}")
async def update_chunk(chunk_id: int, body: ChunkUpdate, session: SessionDep, principal: TeamPrincipal,
                       platform: PlatformDep) -> ChunkPublic:
    return await chunks.update_chunk(session, principal, platform.embedders, chunk_id, body,
                                     vector_store=platform.vector_store)


@router.delete("/api/chunks/{chunk_id}", status_code=204)
async def delete_chunk(chunk_id: int, session: SessionDep, principal: TeamPrincipal, platform: PlatformDep) -> None:
    await chunks.delete_chunk(session, principal, chunk_id, vector_store=platform.vector_store)
