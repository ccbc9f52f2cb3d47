"""Edge schemas for apps."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zhiku.safetext import Name, StoredText

MAX_ID = 2**63 - 1  # the largest id PostgreSQL's bigint holds


class ChatVariable(BaseModel):
    """A value whoever chats fills in before the first question; ``{{key}}`` in the system prompt takes
    it (FastGPT's ``chatConfig.variables`` item, the fields a simple app uses)."""

    model_config = ConfigDict(populate_by_name=True)
    key: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    label: Name = Field(min_length=1, max_length=100)
    type: Literal["input", "textarea", "numberInput", "select"] = "input"
    required: bool = False
    description: StoredText = Field("", max_length=1000)
    default_value: StoredText = Field("", alias="defaultValue", max_length=1000)
    options: list[Annotated[StoredText, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50)  # the choices of a select


class ChatConfig(BaseModel):
    """What a chat of the app shows (stored as FastGPT's ``chatConfig`` keys)."""

    model_config = ConfigDict(populate_by_name=True)
    welcome_text: StoredText = Field("", alias="welcomeText", max_length=10_000)
    opening_questions: list[Annotated[StoredText, Field(min_length=1, max_length=500)]] = Field(
        default_factory=list, alias="openingQuestions", max_length=10)
    variables: list[ChatVariable] = Field(default_factory=list, max_length=30)

    def stored(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


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
    chat_config: ChatConfig = Field(default_factory=ChatConfig, alias="chatConfig")


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
    chat_config: ChatConfig | None = Field(None, alias="chatConfig")


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
    chat_config: ChatConfig = Field(default_factory=ChatConfig)
    created_at: datetime
    updated_at: datetime
