"""Pushing data into a collection (FastGPT's ``pushData``): chunks written directly, then indexed.

Each item is ``{q, a?, indexes?: [{type?, text}]}``. In mode ``chunk`` every item becomes a chunk
as given; in mode ``qa`` its text goes to the dataset's agent model first, as an imported
chunk does in training mode ``qa``. Limits (``zhiku.knowledge.schemas``): at most
``MAX_PUSH_ITEMS`` items a call (400 ``too_many_items``), ``q`` up to ``MAX_Q_CHARS``
characters, ``a`` up to ``MAX_A_CHARS``, up to ``MAX_INDEXES`` index texts of up to
``MAX_INDEX_CHARS`` each (413 ``item_too_long`` / 400 ``too_many_indexes``, naming the item).
A push is all or nothing: every item is checked before any is written.
"""

from __future__ import annotations

import asyncio

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import Chunk, Collection
from zhiku.errors import Conflict, InvalidInput, PayloadTooLarge
from zhiku.knowledge.collections import BUSY_STATUSES, REINDEX_OF, load_collection, reindex_twin
from zhiku.knowledge.indexing import AWAITING_QA, QA_STRIDE, enqueue_qa_jobs, index_new_chunks
from zhiku.knowledge.schemas import (
    MAX_A_CHARS,
    MAX_INDEX_CHARS,
    MAX_INDEXES,
    MAX_PUSH_ITEMS,
    MAX_Q_CHARS,
    IndexText,
    PushItem,
    PushResult,
    TrainingMode,
)
from zhiku.retrieval.index_text import chunk_text, fulltext_text
from zhiku.retrieval.segment import index_document


def checked_indexes(q: str, a: str, indexes: Sequence[IndexText], where: str) -> list[dict[str, str]]:
    """Index texts as stored: ``default`` ones (FastGPT's name for the chunk's own text) are dropped when they
    repeat the chunk's text and kept as ``custom`` otherwise; count and lengths checked."""
    own = chunk_text(q, a).strip()
    kept = [{"type": "custom" if i.type == "default" else i.type, "text": i.text.strip()}
            for i in indexes if i.text.strip() and not (i.type == "default" and i.text.strip() == own)]
    if len(kept) > MAX_INDEXES:
        raise InvalidInput(f"{where} has {len(kept)} index texts; at most {MAX_INDEXES}", code="too_many_indexes",
                           detail={"limit": MAX_INDEXES})
    for index in kept:
        check_length(where, "an index text", index["text"], MAX_INDEX_CHARS)
    return kept


def check_length(where: str, what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise PayloadTooLarge(f"{where}: {what} is {len(value)} characters long; at most {limit}",
                              code="item_too_long", detail={"limit": limit, "length": len(value)})


def _checked(items: Sequence[PushItem]) -> list[dict[str, Any]]:
    if not items:
        raise InvalidInput("the push holds no items", code="no_items")
    if len(items) > MAX_PUSH_ITEMS:
        raise InvalidInput(f"a push takes at most {MAX_PUSH_ITEMS} items; this one has {len(items)}",
                           code="too_many_items", detail={"limit": MAX_PUSH_ITEMS, "count": len(items)})
    rows = []
    for position, item in enumerate(items):
        where = f"item {position}"
        q, a = item.q.strip(), item.a.strip()
        if not q:
            raise InvalidInput(f"{where}: q is empty", code="empty_text", detail={"item": position})
        check_length(where, "q", q, MAX_Q_CHARS)
        check_length(where, "a", a, MAX_A_CHARS)
        rows.append({"q": q, "a": a, "indexes": checked_indexes(q, a, item.indexes, where)})
    return rows


async def push_data(session: AsyncSession, principal: Principal, collection_id: int, items: Sequence[PushItem],
                    *, mode: TrainingMode = "chunk", qa_prompt: str | None = None, embed_batch_size: int = 64,
                    max_attempts: int = 5) -> PushResult:
    """Append ``items`` to the collection as chunks and index them as an import does: full-text postings now,
    embedding (or, in mode ``qa``, the agent model then embedding) by the worker. The collection goes back
    to ``indexing`` until they are done (a failed collection keeps its error). ``qa_prompt`` replaces the
    instructions to the model for these items (FastGPT's ``prompt``)."""
    rows = _checked(items)
    # jieba over up to 200 items of 20,000 characters: seconds of CPU, never on the event loop.
    fulltexts = await asyncio.to_thread(
        lambda: [index_document(fulltext_text(row["q"], row["a"], row["indexes"])) for row in rows])
    collection = await load_collection(session, principal, collection_id)
    if REINDEX_OF in (collection.meta or {}) or collection.status in BUSY_STATUSES \
            or await reindex_twin(session, collection) is not None:
        raise Conflict(f"collection {collection_id} is being imported or re-indexed; push when it is done",
                       code="collection_busy")
    # The row lock orders pushes into one collection, so their chunk indexes never collide.
    await session.execute(select(Collection.id).where(Collection.id == collection.id).with_for_update())
    # A source text still waiting for the model keeps the indexes after it for its Q&A pairs.
    taken = case((Chunk.embedded == AWAITING_QA, Chunk.chunk_index + QA_STRIDE - 1), else_=Chunk.chunk_index)
    last_index, last_id = (await session.execute(
        select(func.max(taken), func.max(Chunk.id)).where(Chunk.collection_id == collection.id))).one()
    first = -1 if last_index is None else last_index
    for position, (row, terms) in enumerate(zip(rows, fulltexts)):
        row.update(dataset_id=collection.dataset_id, collection_id=collection.id, headings=[], meta={},
                   fulltext=terms)
        if mode == "qa":
            row.update(chunk_index=(first // QA_STRIDE + 1 + position) * QA_STRIDE, embedded=AWAITING_QA)
        else:
            row.update(chunk_index=first + 1 + position, embedded=0)
    await session.execute(insert(Chunk), rows)
    since = last_id or 0
    if mode == "qa":
        await enqueue_qa_jobs(session, collection.id, max_attempts=max_attempts, since_id=since,
                              qa_prompt=qa_prompt)
    else:
        await index_new_chunks(session, collection.dataset_id, collection.id, len(rows),
                               batch_size=embed_batch_size, max_attempts=max_attempts, since_id=since)
    collection.chunk_count += len(rows)
    if collection.status != "error":
        collection.status = "indexing"
    collection.updated_at = func.now()
    await session.commit()
    return PushResult(insert_len=len(rows), collection_id=collection.id)
