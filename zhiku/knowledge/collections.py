"""Collections: what was imported into a dataset (pasted text, an uploaded file, a Q&A table, pushed data),
with status and counts, and what can be done to one: edit its name and tags, retry it, re-index it, delete it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import ChatFile, Chunk, Collection, Dataset, Job, StoredFile
from zhiku.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from zhiku.knowledge.datasets import load_dataset
from zhiku.knowledge.files import BlobStore, register_file
from zhiku.knowledge.parsers import parser_for
from zhiku.knowledge.schemas import (
    CollectionPublic,
    CollectionReindex,
    CollectionUpdate,
    Page,
    TextCollectionCreate,
    TrainingMode,
)
from zhiku.retrieval import fulltext
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.vector_store import VectorStore
from zhiku.safetext import check_name
from zhiku.worker import queue

PARSE_JOB = "parse"
EMBED_JOB = "embed"
QA_JOB = "qa"
MAX_FILENAME_CHARS = 500  # the collections.name column
QA_TABLE_EXTENSIONS = (".csv", ".xlsx")
# A re-index runs in a hidden twin collection whose metadata names the collection it re-indexes.
REINDEX_OF = "reindex_of"
# The status a failed collection goes back to when its failed job of this kind runs again ("pending" for
# any other kind: the job starts the collection's pipeline from its beginning).
RETRY_STATUS = {EMBED_JOB: "indexing", QA_JOB: "indexing"}
# A collection in these states is being written by its import; pushes and re-indexing wait.
BUSY_STATUSES = ("pending", "parsing")


async def load_collection(session: AsyncSession, principal: Principal, collection_id: int) -> Collection:
    """The caller's collection; a re-index twin is internal and does not exist for callers."""
    row = (await session.execute(
        select(Collection).join(Dataset, Dataset.id == Collection.dataset_id)
        .where(Collection.id == collection_id, Dataset.team_id == principal.team_id, _visible())
    )).scalar_one_or_none()
    if row is None:
        raise NotFound(f"collection {collection_id} does not exist", code="collection_not_found")
    return row


def _public(collection: Collection) -> CollectionPublic:
    return CollectionPublic.model_validate(collection)


async def _create(session: AsyncSession, dataset: Dataset, blobs: BlobStore, data: bytes, *, name: str,
                  type_: str, chunk_size: int | None, meta: dict, max_attempts: int,
                  training_mode: TrainingMode = "chunk", tags: list[str] | None = None) -> CollectionPublic:
    file_id = blobs.id_of(data)
    # The row first, with its lock: a delete dropping the same blob finishes first or waits for this commit.
    await register_file(session, file_id, len(data))
    blobs.write(data)
    collection = Collection(dataset_id=dataset.id, name=name, type=type_, status="pending", file_id=file_id,
                            chunk_size=chunk_size or dataset.chunk_size, meta=meta, training_mode=training_mode,
                            tags=list(dict.fromkeys(tags or [])))
    session.add(collection)
    await session.flush()
    # The job is written in the same transaction: a collection never exists without its import job.
    await queue.enqueue(session, PARSE_JOB, collection_id=collection.id, max_attempts=max_attempts)
    await session.commit()
    await session.refresh(collection)
    return _public(collection)


def qa_meta(training_mode: str, qa_prompt: str | None) -> dict:
    return {"qa_prompt": qa_prompt} if training_mode == "qa" and qa_prompt else {}


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
    return await _create(session, dataset, blobs, raw, name=data.name.strip(), type_="text",
                         chunk_size=data.chunk_size, max_attempts=max_attempts, training_mode=data.training_mode,
                         tags=data.tags, meta={"filename": data.name.strip(), "format": "markdown",
                                               **qa_meta(data.training_mode, data.qa_prompt)})


async def create_empty_collection(session: AsyncSession, principal: Principal, dataset_id: int, name: str, *,
                                  tags: list[str] | None = None) -> CollectionPublic:
    """An empty collection that pushed data fills (FastGPT's hand-made "virtual" collection): no source to
    read, so it is ready at once; it cannot be re-indexed or retried, having no stored file."""
    dataset = await load_dataset(session, principal, dataset_id)
    collection = Collection(dataset_id=dataset.id, name=name.strip(), type="virtual", status="ready",
                            chunk_size=dataset.chunk_size, meta={}, tags=list(dict.fromkeys(tags or [])))
    session.add(collection)
    await session.commit()
    await session.refresh(collection)
    return _public(collection)


def _checked_upload(filename: str, data: bytes, max_bytes: int, check_type: Callable[[str], object]) -> str:
    """The upload's file name (its last path part), or the specific error for a bad name, a type
    ``check_type`` refuses (before anything is stored), a size over the limit or an empty body."""
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
    check_type(name)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name} is {len(data)} bytes; the upload limit is {max_bytes} bytes",
                              detail={"limit": max_bytes, "size": len(data)})
    if not data:
        raise InvalidInput(f"{name} is empty (0 bytes)", code="empty_file")
    return name


async def create_file_collection(session: AsyncSession, principal: Principal, blobs: BlobStore,
                                 dataset_id: int, filename: str, data: bytes, *, max_bytes: int,
                                 chunk_size: int | None = None, max_attempts: int = 5,
                                 training_mode: TrainingMode = "chunk", qa_prompt: str | None = None,
                                 tags: list[str] | None = None, source: dict | None = None) -> CollectionPublic:
    """``source``: kept in the metadata (``zhiku import`` records the path a file came from and its sha256)."""
    dataset = await load_dataset(session, principal, dataset_id)
    name = _checked_upload(filename, data, max_bytes, parser_for)
    return await _create(session, dataset, blobs, data, name=name, type_="file", chunk_size=chunk_size,
                         max_attempts=max_attempts, training_mode=training_mode, tags=tags,
                         meta={**(source or {}), "filename": name, "size": len(data),
                               **qa_meta(training_mode, qa_prompt)})


async def create_qa_table_collection(session: AsyncSession, principal: Principal, blobs: BlobStore,
                                     dataset_id: int, filename: str, data: bytes, *, max_bytes: int,
                                     max_attempts: int = 5, tags: list[str] | None = None) -> CollectionPublic:
    """A CSV/XLSX Q&A table: column 1 the question, column 2 the answer, further columns index texts; one
    chunk per row (the first row is the header). A dataset export (``export.csv``) is one."""
    dataset = await load_dataset(session, principal, dataset_id)
    name = _checked_upload(filename, data, max_bytes, _qa_table_type)
    return await _create(session, dataset, blobs, data, name=name, type_="qa_table", chunk_size=None,
                         max_attempts=max_attempts, tags=tags, meta={"filename": name, "size": len(data)})


def _qa_table_type(name: str) -> None:
    extension = PurePath(name).suffix.lower()
    if extension not in QA_TABLE_EXTENSIONS:
        raise InvalidInput(f"a Q&A table is a .csv or .xlsx file, not {extension or 'a file without extension'}",
                           code="unsupported_file_type",
                           detail={"extension": extension, "supported": list(QA_TABLE_EXTENSIONS)})


def _visible() -> ColumnElement[bool]:
    """Collections people see: not the hidden twin of a re-index."""
    return ~Collection.meta.has_key(REINDEX_OF)


async def list_collections(session: AsyncSession, principal: Principal, dataset_id: int, *,
                           offset: int = 0, limit: int = 100, name_contains: str | None = None) -> Page:
    """A page of the dataset's collections; ``name_contains``: only those whose name has it (any case)."""
    await load_dataset(session, principal, dataset_id)
    where: tuple[ColumnElement[bool], ...] = (Collection.dataset_id == dataset_id, _visible())
    if name_contains:
        where += (Collection.name.icontains(name_contains, autoescape=True),)
    total = (await session.execute(select(func.count()).select_from(Collection).where(*where))).scalar_one()
    rows = await session.execute(select(Collection).where(*where)
                                 .order_by(Collection.id).offset(offset).limit(limit))
    return Page(total=total, items=[_public(c) for c in rows.scalars()])


async def get_collection(session: AsyncSession, principal: Principal, collection_id: int) -> CollectionPublic:
    return _public(await load_collection(session, principal, collection_id))


async def update_collection(session: AsyncSession, principal: Principal, collection_id: int,
                            data: CollectionUpdate) -> CollectionPublic:
    collection = await load_collection(session, principal, collection_id)
    if data.name is not None:
        collection.name = data.name.strip()
    if data.tags is not None:
        collection.tags = list(dict.fromkeys(data.tags))
    collection.updated_at = func.now()
    await session.commit()
    await session.refresh(collection)
    return _public(collection)


async def reindex_twin(session: AsyncSession, collection: Collection) -> Collection | None:
    """The hidden collection re-indexing ``collection`` now, if any."""
    return (await session.execute(select(Collection).where(
        Collection.dataset_id == collection.dataset_id,
        Collection.meta[REINDEX_OF].astext == str(collection.id)))).scalar_one_or_none()


async def retry_collection(session: AsyncSession, principal: Principal, collection_id: int, *,
                           max_attempts: int = 5) -> CollectionPublic:
    """Run a failed collection again from the step that failed: its failed jobs go back to the queue with
    their attempts reset (for a failed re-index, its twin's). With no failed job left to rerun, the import
    starts over from the stored file."""
    collection = await load_collection(session, principal, collection_id)
    if collection.status != "error":
        raise Conflict(f"collection {collection_id} has not failed (it is {collection.status})",
                       code="collection_not_failed")
    twin = await reindex_twin(session, collection)
    failed = twin or collection
    kinds = (await session.execute(text(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_after = now(), locked_by = NULL, "
        "locked_until = NULL, updated_at = now() WHERE collection_id = :c AND status = 'failed' "
        "RETURNING kind"), {"c": failed.id})).scalars().all()
    if kinds:
        failed.status = "indexing" if all(k in RETRY_STATUS for k in kinds) else "pending"
    elif failed.file_id is not None:
        failed.status = "pending"
        await queue.enqueue(session, PARSE_JOB, collection_id=failed.id, max_attempts=max_attempts)
    else:
        raise Conflict(f"collection {collection_id} has no failed step to run again and no stored file",
                       code="nothing_to_retry")
    failed.error = failed.error_code = None
    if twin is not None:
        collection.status, collection.error, collection.error_code = "indexing", None, None
    await session.commit()
    await session.refresh(collection)
    return _public(collection)


async def reindex_collection(session: AsyncSession, principal: Principal, collection_id: int,
                             data: CollectionReindex, *, max_attempts: int = 5) -> CollectionPublic:
    """Chunk and embed the collection again with new settings. The work happens in a hidden twin; its chunks
    replace the collection's in one transaction once they are all embedded, so a search sees the old chunks
    until then and the new ones after, never a mix. The collection is ``indexing`` meanwhile."""
    collection = await load_collection(session, principal, collection_id)
    if collection.file_id is None or collection.type not in ("text", "file", "qa_table", "link"):
        raise Conflict(f"collection {collection_id} has no stored source to chunk again", code="nothing_to_reindex")
    if collection.status in BUSY_STATUSES or await reindex_twin(session, collection) is not None:
        raise Conflict(f"collection {collection_id} is being imported or re-indexed; try again when it is done",
                       code="collection_busy")
    training_mode = data.training_mode or collection.training_mode
    if collection.type == "qa_table":
        training_mode = "chunk"
    meta = {k: v for k, v in collection.meta.items() if k != "qa_prompt"}
    prompt = data.qa_prompt if data.qa_prompt is not None else collection.meta.get("qa_prompt")
    twin = Collection(dataset_id=collection.dataset_id, name=collection.name, type=collection.type,
                      status="pending", file_id=collection.file_id, training_mode=training_mode,
                      chunk_size=data.chunk_size or collection.chunk_size, tags=list(collection.tags or []),
                      meta={**meta, **qa_meta(training_mode, prompt), REINDEX_OF: collection.id})
    session.add(twin)
    await session.flush()
    await queue.enqueue(session, PARSE_JOB, collection_id=twin.id, max_attempts=max_attempts)
    collection.status, collection.error, collection.error_code = "indexing", None, None
    await session.commit()
    await session.refresh(collection)
    return _public(collection)


async def delete_collection(session: AsyncSession, principal: Principal, collection_id: int, *,
                            blobs: BlobStore, vector_store: VectorStore = PGVECTOR_STORE) -> None:
    """Delete a collection (with a re-index twin of it, and a website's pages) with its chunks, vectors,
    postings and jobs, and its stored files when no other collection uses them, in one transaction.

    The chunk rows are locked first, as the import jobs lock them (chunks, then the collection row): a
    running embed batch commits before this goes on, and finds nothing left to do afterwards; a job that
    was waiting for the model finds its chunk gone and stops. No lock order is reversed, so no deadlock.
    """
    collection = await load_collection(session, principal, collection_id)
    doomed = [collection]
    if collection.type == "website":
        doomed += (await session.execute(select(Collection).where(
            Collection.dataset_id == collection.dataset_id,
            Collection.meta["website"].as_integer() == collection.id))).scalars().all()
    doomed += [twin for c in list(doomed) if (twin := await reindex_twin(session, c)) is not None]
    ids = [c.id for c in doomed]
    await session.execute(select(Chunk.id).where(Chunk.collection_id.in_(ids)).with_for_update())
    for target in doomed:
        await fulltext.unindex_collection(session, target.id)
        await vector_store.delete_collection(session, target.id)
    await session.execute(delete(Job).where(Job.collection_id.in_(ids)))
    await session.execute(delete(Chunk).where(Chunk.collection_id.in_(ids)))
    await session.execute(delete(Collection).where(Collection.id.in_(ids)))
    set_aside = {}
    for file_id in {c.file_id for c in doomed if c.file_id}:
        if (aside := await _drop_file_if_unused(session, blobs, file_id)) is not None:
            set_aside[file_id] = aside
    try:
        await session.commit()
    except BaseException:
        for file_id, aside in set_aside.items():
            blobs.restore(aside, file_id)
        raise
    for aside in set_aside.values():
        aside.unlink(missing_ok=True)


async def _drop_file_if_unused(session: AsyncSession, blobs: BlobStore, file_id: str) -> Path | None:
    """Remove the file row when no collection (nor a file uploaded for a chat) refers to it any more, and move
    its blob aside (unlinked after the commit). The row is locked first, so a concurrent upload of the same bytes either finishes first
    (and the file stays) or writes the row and the blob again after this commits."""
    locked = (await session.execute(
        select(StoredFile.id).where(StoredFile.id == file_id).with_for_update())).scalar_one_or_none()
    used = (await session.execute(select(Collection.id).where(Collection.file_id == file_id).limit(1))).first()
    chat_file = (await session.execute(select(ChatFile.id).where(ChatFile.blob_id == file_id).limit(1))).first()
    if locked is None or used is not None or chat_file is not None:
        return None
    await session.execute(delete(StoredFile).where(StoredFile.id == file_id))
    return blobs.trash(file_id)
