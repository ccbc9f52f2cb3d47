"""Datasets (knowledge bases): create, list, get, rename, delete."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import Dataset
from zhiku.errors import Conflict, NotFound
from zhiku.knowledge.schemas import DatasetCreate, DatasetPublic, DatasetUpdate, Page
from zhiku.retrieval import fulltext
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.vector_store import VectorStore

if TYPE_CHECKING:
    from zhiku.embedding.registry import EmbedderRegistry


async def load_dataset(session: AsyncSession, principal: Principal, dataset_id: int) -> Dataset:
    dataset = await session.get(Dataset, dataset_id)
    if dataset is None or dataset.team_id != principal.team_id:
        raise NotFound(f"dataset {dataset_id} does not exist", code="dataset_not_found")
    return dataset


async def find_dataset_by_name(session: AsyncSession, principal: Principal, name: str) -> Dataset | None:
    return (await session.execute(
        select(Dataset).where(Dataset.team_id == principal.team_id, Dataset.name == name))).scalar_one_or_none()


async def create_dataset(session: AsyncSession, principal: Principal, embedders: EmbedderRegistry,
                         data: DatasetCreate, *, vector_store: VectorStore = PGVECTOR_STORE) -> DatasetPublic:
    embedder = embedders.get(data.embedding_model)
    dataset = Dataset(team_id=principal.team_id, name=data.name.strip(), description=data.description,
                      embedding_model=embedder.model_name, vector_dim=embedder.dim, chunk_size=data.chunk_size,
                      agent_model=data.agent_model)
    session.add(dataset)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"a dataset named {data.name!r} already exists", code="dataset_exists") from None
    await vector_store.ensure_index(session, dataset.embedding_model, dataset.vector_dim)
    await session.commit()
    return DatasetPublic.model_validate(dataset)


async def list_datasets(session: AsyncSession, principal: Principal) -> list[DatasetPublic]:
    rows = await session.execute(select(Dataset).where(Dataset.team_id == principal.team_id).order_by(Dataset.id))
    return [DatasetPublic.model_validate(d) for d in rows.scalars()]


async def dataset_names(session: AsyncSession, principal: Principal, ids: Iterable[int]) -> dict[int, str]:
    """The names of those of ``ids`` that are the team's datasets (a list naming a page's datasets)."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = await session.execute(select(Dataset.id, Dataset.name)
                                 .where(Dataset.team_id == principal.team_id, Dataset.id.in_(wanted)))
    return {dataset_id: name for dataset_id, name in rows.all()}


async def list_datasets_page(session: AsyncSession, principal: Principal, *, offset: int = 0,
                             limit: int = 20) -> Page:
    """A page of the team's datasets, newest first, with the total (the web UI's list)."""
    where = Dataset.team_id == principal.team_id
    total = (await session.execute(select(func.count()).select_from(Dataset).where(where))).scalar_one()
    rows = await session.execute(select(Dataset).where(where).order_by(Dataset.id.desc()).offset(offset).limit(limit))
    return Page(total=total, items=[DatasetPublic.model_validate(d) for d in rows.scalars()])


async def get_dataset(session: AsyncSession, principal: Principal, dataset_id: int) -> DatasetPublic:
    return DatasetPublic.model_validate(await load_dataset(session, principal, dataset_id))


async def update_dataset(session: AsyncSession, principal: Principal, dataset_id: int,
                         data: DatasetUpdate) -> DatasetPublic:
    dataset = await load_dataset(session, principal, dataset_id)
    if data.name is not None:
        dataset.name = data.name.strip()
    if data.description is not None:
        dataset.description = data.description
    if data.agent_model is not None:
        dataset.agent_model = data.agent_model
    dataset.updated_at = func.now()
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"a dataset named {data.name!r} already exists", code="dataset_exists") from None
    await session.refresh(dataset)
    return DatasetPublic.model_validate(dataset)


async def delete_dataset(session: AsyncSession, principal: Principal, dataset_id: int, *,
                         vector_store: VectorStore = PGVECTOR_STORE) -> None:
    """Delete a dataset with its collections, chunks, vectors and jobs (cascades in one transaction)."""
    dataset = await load_dataset(session, principal, dataset_id)
    await fulltext.drop_dataset(session, dataset.id)
    await vector_store.delete_dataset(session, dataset.id)
    await session.delete(dataset)
    await session.commit()
