"""Edge schemas for apps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from zhiku.safetext import Name, StoredText

MAX_ID = 2**63 - 1  # the largest id PostgreSQL's bigint holds


class AppCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: Name = Field(min_length=1, max_length=200)
    dataset_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(default_factory=list,
                                                                      alias="datasetIds", max_length=100)
    system_prompt: StoredText = Field("", alias="systemPrompt", max_length=100_000)
    model: Name | None = Field(None, max_length=100)  # the apps.model column
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, alias="maxTokens")
    search: dict[str, Any] = Field(default_factory=dict)


class AppUpdate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: Name | None = Field(None, min_length=1, max_length=200)
    dataset_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(None, alias="datasetIds",
                                                                             max_length=100)
    system_prompt: StoredText | None = Field(None, alias="systemPrompt", max_length=100_000)
    model: Name | None = Field(None, max_length=100)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, alias="maxTokens")
    search: dict[str, Any] | None = None


class AppPublic(BaseModel):
    id: int
    name: str
    type: str
    system_prompt: str
    model: str | None
    temperature: float | None
    max_tokens: int | None
    dataset_ids: list[int]
    search: dict[str, Any]
    created_at: datetime
    updated_at: datetime
