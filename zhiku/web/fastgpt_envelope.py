"""FastGPT's dataset API spoken over Zhiku's objects: the response envelope, ids, and the shapes.

FastGPT answers every call under ``/api/core/dataset/`` with ``{code, statusText, message, data}``;
so do we, for errors too (``code`` and the HTTP status are the error's status, ``statusText`` its
stable Zhiku code). FastGPT's ids are strings; Zhiku's are integers, sent as strings and taken as
either. Only translation lives here: every operation is Zhiku's own service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from zhiku.errors import InvalidInput, NotFound, ZhikuError
from zhiku.knowledge.schemas import ChunkPublic, CollectionPublic, DatasetPublic
from zhiku.retrieval.index_text import chunk_text
from zhiku.retrieval.settings import SearchMode

PATH_PREFIX = "/api/core/dataset/"
MAX_ID = 2**63 - 1  # the id columns are bigint
MAX_PAGE_SIZE = 100  # FastGPT's docs say 30, its code takes up to 100: larger pages are cut to this

# Zhiku's search modes by FastGPT's names (FastGPT reads both, answers with these).
FASTGPT_SEARCH_MODES: dict[SearchMode, str] = {"embedding": "embedding", "fullText": "fullTextRecall",
                                               "mixed": "mixedRecall"}
# Zhiku collection types by FastGPT's names: pasted text is FastGPT's "virtual" (hand-made) collection.
_COLLECTION_TYPES = {"text": "virtual"}


def ok(data: Any = None) -> dict[str, Any]:
    """A successful answer in FastGPT's envelope."""
    return {"code": 200, "statusText": "", "message": "", "data": data}


def insert_results(inserted: int) -> dict[str, Any]:
    """FastGPT's insert results: its code sends ``insertLen`` only, its docs also ``overToken``, ``repeat`` and
    ``error``; Zhiku refuses a bad item outright, so those lists are always empty."""
    return {"insertLen": inserted, "overToken": [], "repeat": [], "error": []}


def error_body(error: ZhikuError) -> dict[str, Any]:
    """An error in FastGPT's envelope; it goes out with ``error.status`` as the HTTP status."""
    return {"code": error.status, "statusText": error.code, "message": error.message, "data": error.detail}


def _id_text(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value  # a string stays as it is; anything else fails the string check with a clear message


# An id as FastGPT scripts send it: a string ("42") or a number (42).
IdRef = Annotated[str, BeforeValidator(_id_text, json_schema_input_type=str | int), Field(max_length=64)]


def internal_id(ref: str, what: str) -> int:
    """The integer id behind ``ref``; an id that cannot name a row (a Mongo ObjectId, say) is unknown."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput(f"the {what} id is empty", code="id_required")
    if ref.isascii() and ref.isdigit() and 0 < int(ref) <= MAX_ID:
        return int(ref)
    code = "chunk_not_found" if what == "data" else f"{what}_not_found"
    raise NotFound(f"{what} {ref!r} does not exist", code=code)


def require_root(parent_ref: str | None) -> None:
    """Zhiku has no folders: a ``parentId`` may only name the root (null or empty)."""
    if parent_ref is not None and parent_ref.strip():
        raise InvalidInput("folders are not supported: parentId must be null or empty", code="folders_unsupported")


def page_bounds(offset: int | None, page_num: int | None, page_size: int) -> tuple[int, int]:
    """``(offset, limit)`` from either FastGPT pagination: ``offset`` (listV2, v2/list) or ``pageNum``."""
    limit = min(page_size, MAX_PAGE_SIZE)
    if offset is None:
        offset = ((page_num or 1) - 1) * limit
    return offset, limit


def _time(value: datetime) -> str:
    return value.isoformat()


def dataset_item(dataset: DatasetPublic) -> dict[str, Any]:
    return {"_id": str(dataset.id), "parentId": None, "type": "dataset", "status": "active", "avatar": "",
            "name": dataset.name, "intro": dataset.description,
            "vectorModel": {"model": dataset.embedding_model, "name": dataset.embedding_model,
                            "dimensions": dataset.vector_dim},
            "agentModel": {"model": dataset.agent_model, "name": dataset.agent_model} if dataset.agent_model else None,
            "chunkSize": dataset.chunk_size, "createTime": _time(dataset.created_at),
            "updateTime": _time(dataset.updated_at)}


def training_amount(collection: CollectionPublic) -> int:
    """Chunks still waiting for their vectors; at least 1 while the file is still being read, so a
    script that waits for 0 waits for the whole import."""
    waiting = max(collection.chunk_count - collection.indexed_count, 0)
    return waiting if collection.status in ("ready", "error") else max(waiting, 1)


def collection_item(collection: CollectionPublic) -> dict[str, Any]:
    item: dict[str, Any] = {
        "_id": str(collection.id), "parentId": None, "datasetId": str(collection.dataset_id),
        "type": _COLLECTION_TYPES.get(collection.type, collection.type), "name": collection.name,
        "dataAmount": collection.chunk_count, "trainingAmount": training_amount(collection),
        "tags": collection.tags, "forbid": False, "trainingType": collection.training_mode,
        "chunkSize": collection.chunk_size,
        "createTime": _time(collection.created_at), "updateTime": _time(collection.updated_at),
        # Zhiku's own progress, which FastGPT spreads over its training queue:
        "status": collection.status, "hasError": collection.status == "error", "errorMsg": collection.error,
    }
    url = collection.metadata.get("url")
    if url:
        item["rawLink"] = url
    return item


def data_item(chunk: ChunkPublic) -> dict[str, Any]:
    return {"_id": str(chunk.id), "id": str(chunk.id), "datasetId": str(chunk.dataset_id),
            "collectionId": str(chunk.collection_id), "q": chunk.q, "a": chunk.a, "chunkIndex": chunk.chunk_index,
            "updateTime": _time(chunk.updated_at)}


def data_detail(chunk: ChunkPublic, collection: CollectionPublic) -> dict[str, Any]:
    """A chunk with FastGPT's ``indexes``: the default one (the chunk's own text), then its index texts. An
    index's ``dataId`` only numbers it: an update replaces the whole list, re-embedding only new texts."""
    indexes = [{"type": "default", "text": chunk_text(chunk.q, chunk.a)}, *chunk.indexes]
    return {**data_item(chunk), "sourceName": collection.name, "sourceId": str(collection.id),
            "indexes": [{"type": index["type"], "dataId": f"{chunk.id}-{n}", "text": index["text"]}
                        for n, index in enumerate(indexes)]}


def quote_item(quote: dict[str, Any]) -> dict[str, Any]:
    """A search quote (:func:`zhiku.retrieval.search.quote_dict`) with FastGPT's ``sourceId``: Zhiku's
    source of a chunk is its collection."""
    return {**quote, "sourceId": quote["collectionId"]}
