"""Edge schemas for datasets, collections and chunks (ORM rows never leave the services)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zhiku.safetext import Name, StoredText


class DatasetCreate(BaseModel):
    name: Name = Field(min_length=1, max_length=200)
    description: StoredText = Field("", max_length=10_000)
    embedding_model: str | None = Field(None, alias="embeddingModel")
    chunk_size: int = Field(1000, ge=100, le=20000, alias="chunkSize")
    model_config = ConfigDict(populate_by_name=True)


class DatasetUpdate(BaseModel):
    name: Name | None = Field(None, min_length=1, max_length=200)
    description: StoredText | None = Field(None, max_length=10_000)


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    embedding_model: str
    vector_dim: int
    chunk_size: int
    created_at: datetime
    updated_at: datetime


class TextCollectionCreate(BaseModel):
    name: Name = Field(min_length=1, max_length=500)
    text: StoredText
    chunk_size: int | None = Field(None, ge=100, le=20000, alias="chunkSize")
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
    metadata: dict[str, Any] = Field(default_factory=dict, validation_alias="meta")
    created_at: datetime
    updated_at: datetime


class ChunkUpdate(BaseModel):
    q: StoredText | None = Field(None, min_length=1)
    a: StoredText | None = None


class ChunkPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    dataset_id: int
    collection_id: int
    chunk_index: int
    q: str
    a: str
    headings: list[str]
    embedded: bool
    updated_at: datetime


class Page(BaseModel):
    total: int
    items: list[Any]
