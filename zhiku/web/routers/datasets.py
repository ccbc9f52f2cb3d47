from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from zhiku.knowledge import datasets
from zhiku.knowledge.export import dataset_csv, export_name
from zhiku.knowledge.schemas import MAX_TAGS, DatasetCreate, DatasetPublic, DatasetUpdate, Tag
from zhiku.retrieval.search import quote_dict, search
from zhiku.retrieval.settings import SearchSettings
from zhiku.web.deps import PlatformDep, SessionDep, TeamPrincipal

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


@router.post("", status_code=201)
async def create_dataset(body: DatasetCreate, session: SessionDep, principal: TeamPrincipal,
                         platform: PlatformDep) -> DatasetPublic:
    return await datasets.create_dataset(session, principal, platform.embedders, body,
                                         vector_store=platform.vector_store)


@router.get("")
async def list_datasets(session: SessionDep, principal: TeamPrincipal) -> list[DatasetPublic]:
    return await datasets.list_datasets(session, principal)


@router.get("/{dataset_id}")
async def get_dataset(dataset_id: int, session: SessionDep, principal: TeamPrincipal) -> DatasetPublic:
    return await datasets.get_dataset(session, principal, dataset_id)


@router.patch("/{dataset_id}")
async def update_dataset(dataset_id: int, body: DatasetUpdate, session: SessionDep,
                         principal: TeamPrincipal) -> DatasetPublic:
    return await datasets.update_dataset(session, principal, dataset_id, body)


@router.delete("/{dataset_id}", status_code=204)
async def delete_dataset(dataset_id: int, session: SessionDep, principal: TeamPrincipal,
                         platform: PlatformDep) -> None:
    await datasets.delete_dataset(session, principal, dataset_id, vector_store=platform.vector_store)


class SearchTest(BaseModel):
    text: str = Field(min_length=1)
    mode: str | None = Field(None, alias="searchMode")
    similarity: float | None = None
    limit: int | None = Field(None, ge=1, description="token budget")
    embedding_weight: float | None = Field(None, ge=0, le=1, alias="embeddingWeight")
    rerank: bool | None = Field(None, alias="usingReRank")
    rerank_weight: float | None = Field(None, ge=0, le=1, alias="rerankWeight")
    collection_ids: list[int] | None = Field(None, alias="collectionIds", max_length=1000)
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)
    model_config = {"populate_by_name": True}


@router.post("/{dataset_id}/search")
async def search_test(dataset_id: int, body: SearchTest, session: SessionDep, principal: TeamPrincipal,
                      platform: PlatformDep) -> dict:
    """Search one dataset and show every quote with its score breakdown (FastGPT's search test)."""
    dataset = await datasets.load_dataset(session, principal, dataset_id)
    raw = {k: v for k, v in {"mode": body.mode, "similarity": body.similarity, "limit": body.limit,
                              "embedding_weight": body.embedding_weight, "rerank": body.rerank,
                              "rerank_weight": body.rerank_weight}.items() if v is not None}
    settings = SearchSettings.from_dict(raw, where="")
    result = await search(platform.db.sessions, platform.embedders, [dataset], body.text, settings,
                          reranker=platform.reranker, vector_store=platform.vector_store,
                          collection_ids=body.collection_ids, tags=body.tags)
    return {"mode": result.mode, "durationMs": round(result.duration_ms, 2), "settings": settings.to_dict(),
            "reranked": result.reranked,
            "quotes": [quote_dict(q) for q in result.quotes]}


@router.get("/{dataset_id}/export.csv")
async def export_csv(dataset_id: int, session: SessionDep, principal: TeamPrincipal,
                     platform: PlatformDep) -> StreamingResponse:
    """Every chunk as FastGPT's export CSV (q, a, index texts); it imports back as a Q&A table."""
    name = await export_name(session, principal, dataset_id)
    return StreamingResponse(dataset_csv(platform.db.sessions, dataset_id), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
