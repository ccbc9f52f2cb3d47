"""Edge schemas for datasets, collections and chunks (ORM rows never leave the services)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zhiku.safetext import Name, StoredText


class DatasetCreate(BaseModel):
    name: Name = Field(min_length=1, max_length=200)
    description: StoredText = Field("", max_length=10_000)
    embedding_model: str | None = Field(None, alias="embeddingModel")
    chunk_size: int = Field(1000, ge=100, le=20000, alias="chunkSize")
    # The chat model that writes Q&A pairs in training mode "qa" (FastGPT's agentModel); None: the default.
    agent_model: Name | None = Field(None, max_length=100, alias="agentModel")
    model_config = ConfigDict(populate_by_name=True)


class DatasetUpdate(BaseModel):
    name: Name | None = Field(None, min_length=1, max_length=200)
    description: StoredText | None = Field(None, max_length=10_000)
    agent_model: Name | None = Field(None, max_length=100, alias="agentModel")
    model_config = ConfigDict(populate_by_name=True)


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    embedding_model: str
    vector_dim: int
    chunk_size: int
    agent_model: str | None = None
    created_at: datetime
    updated_at: datetime


# Limits on data written directly (push, Q&A tables, chunk edits), in characters. A q is the size of the
# largest chunk a collection may be split into; an index text is a search phrase or a short summary.
MAX_Q_CHARS = 20_000
MAX_A_CHARS = 20_000
MAX_INDEX_CHARS = 2_000
MAX_INDEXES = 10  # per chunk; FastGPT allows 5 custom indexes
MAX_PUSH_ITEMS = 200  # per push, as FastGPT's pushData
MAX_TAGS = 20
MAX_TAG_CHARS = 100

TrainingMode = Literal["chunk", "qa"]
Tag = Annotated[Name, Field(min_length=1, max_length=MAX_TAG_CHARS)]
IndexType = Literal["custom", "question", "summary"]


class TextCollectionCreate(BaseModel):
    name: Name = Field(min_length=1, max_length=500)
    text: StoredText
    chunk_size: int | None = Field(None, ge=100, le=20000, alias="chunkSize")
    training_mode: TrainingMode = Field("chunk", alias="trainingMode")
    qa_prompt: StoredText | None = Field(None, max_length=10_000, alias="qaPrompt")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    model_config = ConfigDict(populate_by_name=True)


class CollectionUpdate(BaseModel):
    name: Name | None = Field(None, min_length=1, max_length=500)
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)


class CollectionReindex(BaseModel):
    """New chunk settings; what is left out stays as it was."""

    chunk_size: int | None = Field(None, ge=100, le=20000, alias="chunkSize")
    training_mode: TrainingMode | None = Field(None, alias="trainingMode")
    qa_prompt: StoredText | None = Field(None, max_length=10_000, alias="qaPrompt")
    model_config = ConfigDict(populate_by_name=True)


class CollectionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    dataset_id: int
    name: str
    type: str
    status: str
    error_code: str | None
    error: str | None
    chunk_size: int
    chunk_count: int
    indexed_count: int
    training_mode: str = "chunk"
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias="meta")
    created_at: datetime
    updated_at: datetime


class IndexText(BaseModel):
    """An extra index text of a chunk (FastGPT's ``indexes`` item): embedded as its own vector.
    FastGPT's ``default`` type (the chunk's own text) is accepted and kept as ``custom``; the chunk's
    own text is always indexed anyway. FastGPT's ``dataId`` is accepted and ignored."""

    type: IndexType | Literal["default"] = "custom"
    text: StoredText = Field(min_length=1)
    model_config = ConfigDict(extra="ignore")


class ChunkUpdate(BaseModel):
    q: StoredText | None = Field(None, min_length=1)
    a: StoredText | None = None
    indexes: list[IndexText] | None = None  # replaces the chunk's index texts when given


class PushItem(BaseModel):
    """One item of a push (FastGPT's ``pushData`` ``data[]``); lengths are checked by the service, which
    answers 413 with the item's position."""

    q: StoredText
    a: StoredText = ""
    indexes: list[IndexText] = Field(default_factory=list)
    model_config = ConfigDict(extra="ignore")


class PushData(BaseModel):
    data: list[PushItem]
    training_mode: TrainingMode = Field("chunk", alias="trainingType")
    qa_prompt: StoredText | None = Field(None, max_length=10_000, alias="prompt")
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class PushResult(BaseModel):
    insert_len: int = Field(serialization_alias="insertLen")
    collection_id: int = Field(serialization_alias="collectionId")
    model_config = ConfigDict(populate_by_name=True)


class ChunkPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    dataset_id: int
    collection_id: int
    chunk_index: int
    q: str
    a: str
    headings: list[str]
    indexes: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedded: bool
    updated_at: datetime


class Page(BaseModel):
    total: int
    items: list[Any]
