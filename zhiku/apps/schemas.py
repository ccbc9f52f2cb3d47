"""Edge schemas for apps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AppCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str = Field(min_length=1, max_length=200)
    dataset_ids: list[int] = Field(default_factory=list, alias="datasetIds")
    system_prompt: str = Field("", alias="systemPrompt")
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, alias="maxTokens")
    search: dict[str, Any] = Field(default_factory=dict)


class AppUpdate(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str | None = Field(None, min_length=1, max_length=200)
    dataset_ids: list[int] | None = Field(None, alias="datasetIds")
    system_prompt: str | None = Field(None, alias="systemPrompt")
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, alias="maxTokens")
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
