"""Collections: what was imported into a dataset (pasted text, an uploaded file), with status and counts."""

from __future__ import annotations

from pathlib import PurePath

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import Collection, Dataset
from zhiku.errors import InvalidInput, NotFound, PayloadTooLarge
from zhiku.knowledge.datasets import load_dataset
from zhiku.knowledge.files import BlobStore, register_file
from zhiku.knowledge.parsers import parser_for
from zhiku.knowledge.schemas import CollectionPublic, Page, TextCollectionCreate
from zhiku.retrieval import fulltext
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.vector_store import VectorStore
from zhiku.safetext import check_name
from zhiku.worker import queue

PARSE_JOB = "parse"
EMBED_JOB = "embed"
MAX_FILENAME_CHARS = 500  # the collections.name column


async def load_collection(session: AsyncSession, principal: Principal, collection_id: int) -> Collection:
    row = (await session.execute(
        select(Collection).join(Dataset, Dataset.id == Collection.dataset_id)
        .where(Collection.id == collection_id, Dataset.team_id == principal.team_id))).scalar_one_or_none()
    if row is None:
        raise NotFound(f"collection {collection_id} does not exist", code="collection_not_found")
    return row


async def _create(session: AsyncSession, dataset: Dataset, *, name: str, type_: str, file_id: str, size: int,
                  chunk_size: int | None, meta: dict, max_attempts: int) -> CollectionPublic:
    await register_file(session, file_id, size)
    collection = Collection(dataset_id=dataset.id, name=name, type=type_, status="pending", file_id=file_id,
                            chunk_size=chunk_size or dataset.chunk_size, meta=meta)
    session.add(collection)
    await session.flush()
    # The job is written in the same transaction: a collection never exists without its import job.
    await queue.enqueue(session, PARSE_JOB, collection_id=collection.id, max_attempts=max_attempts)
    await session.commit()
    await session.refresh(collection)
    return CollectionPublic.model_validate(collection)


async def create_text_collection(session: AsyncSession, principal: Principal, blobs: BlobStore,
                                 dataset_id: int, data: TextCollectionCreate, *, max_bytes: int,
                                 max_attempts: int = 5) -> CollectionPublic:
    """Pasted text: held to the same size limit as an upload."""
    dataset = await load_dataset(session, principal, dataset_id)
    if not data.text.strip():
        raise InvalidInput("the text is empty", code="empty_text")
    raw = data.text.encode("utf-8")
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the text is {len(raw)} bytes; the limit is {max_bytes} bytes",
                              detail={"limit": max_bytes, "size": len(raw)})
    file_id = blobs.write(raw)
    return await _create(session, dataset, name=data.name.strip(), type_="text", file_id=file_id, size=len(raw),
                         chunk_size=data.chunk_size, meta={"filename": data.name.strip(), "format": "markdown"},
                         max_attempts=max_attempts)


async def create_file_collection(session: AsyncSession, principal: Principal, blobs: BlobStore,
                                 dataset_id: int, filename: str, data: bytes, *, max_bytes: int,
                                 chunk_size: int | None = None, max_attempts: int = 5) -> CollectionPublic:
    dataset = await load_dataset(session, principal, dataset_id)
    name = PurePath(filename or "").name
    if not name:
        raise InvalidInput("the upload has no file name", code="filename_required")
    try:
        name = check_name(name)
    except ValueError as exc:
        raise InvalidInput(f"the file name {exc}", code="invalid_filename") from None
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidInput(f"the file name is {len(name)} characters long; at most {MAX_FILENAME_CHARS}",
                           code="filename_too_long")
    parser_for(name)  # unknown type: refuse now, before anything is stored
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name} is {len(data)} bytes; the upload limit is {max_bytes} bytes",
                              detail={"limit": max_bytes, "size": len(data)})
    if not data:
        raise InvalidInput(f"{name} is empty (0 bytes)", code="empty_file")
    file_id = blobs.write(data)
    return await _create(session, dataset, name=name, type_="file", file_id=file_id, size=len(data),
                         chunk_size=chunk_size, meta={"filename": name, "size": len(data)},
                         max_attempts=max_attempts)


async def list_collections(session: AsyncSession, principal: Principal, dataset_id: int, *,
                           offset: int = 0, limit: int = 100) -> Page:
    await load_dataset(session, principal, dataset_id)
    total = (await session.execute(
        select(func.count()).select_from(Collection).where(Collection.dataset_id == dataset_id))).scalar_one()
    rows = await session.execute(select(Collection).where(Collection.dataset_id == dataset_id)
                                 .order_by(Collection.id).offset(offset).limit(limit))
    return Page(total=total, items=[CollectionPublic.model_validate(c) for c in rows.scalars()])


async def get_collection(session: AsyncSession, principal: Principal, collection_id: int) -> CollectionPublic:
    return CollectionPublic.model_validate(await load_collection(session, principal, collection_id))


async def delete_collection(session: AsyncSession, principal: Principal, collection_id: int, *,
                            vector_store: VectorStore = PGVECTOR_STORE) -> None:
    """Delete a collection with its chunks, vectors and pending jobs, in one transaction."""
    collection = await load_collection(session, principal, collection_id)
    await fulltext.unindex_collection(session, collection.id)
    await vector_store.delete_collection(session, collection.id)
    await session.delete(collection)
    await session.commit()
