"""Admin API and CLI schemas: ``XCreate`` / ``XUpdate`` in, ``XPublic`` out. Rows never leave the services."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zhiku.gateway.domain import CHANNEL_STATUSES, parse_model_list
from zhiku.gateway.providers import channel_types


def _names(value: Any) -> Any:
    return parse_model_list(value) if isinstance(value, (str, list, tuple)) else value


def _check_subnets(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR subnet") from None
    return value


def _check_type(value: str | None) -> str | None:
    if value is not None and value not in channel_types():
        raise ValueError(f"unknown channel type {value!r}; one of {', '.join(channel_types())}")
    return value


def _check_wire_text(value: str | None) -> str | None:
    """A key or URL goes into an HTTP request line or header: printable ASCII only."""
    if value is not None and not all(" " < ch < "\x7f" for ch in value):
        raise ValueError("must be printable ASCII without spaces (it is sent in HTTP headers)")
    return value


INT32 = 2**31 - 1


def _check_status(value: str | None) -> str | None:
    if value is not None and value not in CHANNEL_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CHANNEL_STATUSES)}")
    return value


class Patch(BaseModel):
    """A partial update: only the fields the client sent change. An explicit null clears a field that may be
    empty (``NULLABLE``) and is taken as "unchanged" for the others, as clients that send whole objects with
    nulls (OneAPI's UI) mean it."""

    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    def changes(self) -> dict[str, Any]:
        return {name: value for name, value in self.model_dump(exclude_unset=True).items()
                if value is not None or name in self.NULLABLE}


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = "openai"
    name: str = Field(min_length=1, max_length=100)
    base_url: str = Field("", max_length=2000)
    key: str = Field("", max_length=10_000)
    models: list[str] = Field(min_length=1)
    groups: list[str] = Field(default_factory=lambda: ["default"])
    model_mapping: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    priority: int = Field(0, ge=-INT32, le=INT32)
    weight: int = Field(1, ge=0, le=INT32)
    status: str = "enabled"
    timeout_seconds: float = Field(0.0, ge=0, le=86_400, allow_inf_nan=False)

    _models = field_validator("models", "groups", mode="before")(_names)
    _type = field_validator("type")(_check_type)
    _status = field_validator("status")(_check_status)
    _wire = field_validator("base_url", "key")(_check_wire_text)


class ChannelUpdate(Patch):
    NULLABLE = frozenset({"model_mapping", "config"})
    type: str | None = None
    name: str | None = Field(None, min_length=1, max_length=100)
    base_url: str | None = Field(None, max_length=2000)
    key: str | None = Field(None, max_length=10_000)  # omitted or empty: keep the stored key
    models: list[str] | None = None
    groups: list[str] | None = None
    model_mapping: dict[str, str] | None = None
    config: dict[str, Any] | None = None
    priority: int | None = Field(None, ge=-INT32, le=INT32)
    weight: int | None = Field(None, ge=0, le=INT32)
    status: str | None = None
    timeout_seconds: float | None = Field(None, ge=0, le=86_400, allow_inf_nan=False)

    _models = field_validator("models", "groups", mode="before")(_names)
    _type = field_validator("type")(_check_type)
    _status = field_validator("status")(_check_status)
    _wire = field_validator("base_url", "key")(_check_wire_text)


class ChannelPublic(BaseModel):
    id: int
    type: str
    name: str
    base_url: str
    key: str  # masked
    models: list[str]
    groups: list[str]
    model_mapping: dict[str, str]
    config: dict[str, Any]
    priority: int
    weight: int
    status: str
    status_reason: str | None
    timeout_seconds: float
    response_time_ms: int
    used_quota: int
    request_count: int
    tested_at: datetime | None
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    user_id: int | None = None  # admins may create for another user; default: the caller (or root)
    expires_at: datetime | None = None
    remain_quota: int = Field(0, ge=0)
    unlimited_quota: bool = True
    models: list[str] | None = None
    subnets: list[str] | None = None
    rpm_limit: int = Field(0, ge=0)
    tpm_limit: int = Field(0, ge=0)

    _models = field_validator("models", "subnets", mode="before")(_names)
    _subnets = field_validator("subnets")(_check_subnets)


class TokenUpdate(Patch):
    NULLABLE = frozenset({"expires_at", "models", "subnets"})  # never expires; any model; any client
    name: str | None = Field(None, min_length=1, max_length=100)
    status: str | None = Field(None, pattern="^(enabled|disabled)$")
    expires_at: datetime | None = None
    clear_expiry: bool = False
    remain_quota: int | None = Field(None, ge=0)
    unlimited_quota: bool | None = None
    models: list[str] | None = None
    subnets: list[str] | None = None
    rpm_limit: int | None = Field(None, ge=0)
    tpm_limit: int | None = Field(None, ge=0)

    _models = field_validator("models", "subnets", mode="before")(_names)
    _subnets = field_validator("subnets")(_check_subnets)


class TokenPublic(BaseModel):
    id: int
    user_id: int
    name: str
    key_prefix: str
    status: str
    expires_at: datetime | None
    remain_quota: int
    unlimited_quota: bool
    used_quota: int
    request_count: int
    models: list[str] | None
    subnets: list[str] | None
    rpm_limit: int
    tpm_limit: int
    internal: bool
    created_at: datetime
    accessed_at: datetime | None


class TokenCreated(TokenPublic):
    key: str  # shown once


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    display_name: str = ""
    role: str = Field("user", pattern="^(admin|user)$")
    group: str = Field("default", min_length=1, max_length=32)
    quota: int = Field(0, ge=0)


class UserUpdate(Patch):
    display_name: str | None = None
    role: str | None = Field(None, pattern="^(admin|user)$")
    status: str | None = Field(None, pattern="^(enabled|disabled)$")
    group: str | None = Field(None, min_length=1, max_length=32)
    quota: int | None = Field(None, ge=0)
    add_quota: int | None = None  # top up (or take away) relative to what is left


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    status: str
    group: str
    quota: int
    used_quota: int
    request_count: int
    created_at: datetime


class UserCreated(UserPublic):
    access_token: str | None = None  # for the admin API without the platform; shown once


class LogPublic(BaseModel):
    id: int
    created_at: datetime
    type: str
    request_id: str
    endpoint: str
    user_id: int | None
    username: str
    token_id: int | None
    token_name: str
    channel_id: int | None
    channel_name: str
    model: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    usage_source: str
    quota: int
    latency_ms: int
    first_token_ms: int | None
    is_stream: bool
    status: int
    attempts: int
    error: str | None


class Page(BaseModel):
    items: list[Any]
    total: int
    page: int
    size: int


class OptionsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[str, str]


class ChannelTestResult(BaseModel):
    id: int
    ok: bool
    latency_ms: int
    status: str
    message: str
