"""The gateway's tables, on their own metadata and their own migration chain (``zhiku/gateway/store/migrations``).

Portable on PostgreSQL, MySQL/MariaDB and SQLite: no JSONB or arrays (lists and maps are JSON in
``Text``), every ``String`` has a length, times are stored as naive UTC and read back aware. The
columns follow OneAPI's so its users, tokens and channels import one to one (``external_ref`` keeps
where an imported row came from, so an import can run twice).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Naive UTC in the database (every backend has that), aware UTC in Python."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class JsonText(TypeDecorator[Any]):
    """A JSON value kept as text, readable by any backend and by OneAPI's own columns."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value in (None, "") else json.loads(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class GatewayBase(DeclarativeBase):
    pass


class GatewayUser(GatewayBase):
    __tablename__ = "gateway_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(20), default="user")  # root | admin | user
    status: Mapped[str] = mapped_column(String(20), default="enabled")  # enabled | disabled
    group_name: Mapped[str] = mapped_column(String(32), default="default")
    quota: Mapped[int] = mapped_column(BigInteger, default=0)  # remaining
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Admin API access without the platform: sha256 of an access token (OneAPI's ``access_token``).
    access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    platform_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GatewayToken(GatewayBase):
    __tablename__ = "gateway_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[str] = mapped_column(String(20), default="enabled")  # enabled | disabled
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # None: never
    remain_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    unlimited_quota: Mapped[bool] = mapped_column(Boolean, default=False)
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    models: Mapped[Any] = mapped_column(JsonText, nullable=True)  # list of names; None: any
    subnets: Mapped[Any] = mapped_column(JsonText, nullable=True)  # list of CIDRs; None: any client
    rpm_limit: Mapped[int] = mapped_column(Integer, default=0)  # 0: none
    tpm_limit: Mapped[int] = mapped_column(Integer, default=0)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)  # the platform's own token
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    accessed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class GatewayChannel(GatewayBase):
    __tablename__ = "gateway_channels"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    type: Mapped[str] = mapped_column(String(20))  # openai | azure | ollama | anthropic | local
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(Text, default="")
    key_encrypted: Mapped[str] = mapped_column(Text, default="")
    key_hint: Mapped[str] = mapped_column(String(20), default="")
    models: Mapped[Any] = mapped_column(JsonText, default=list)  # "*" serves any model no channel names
    groups: Mapped[Any] = mapped_column(JsonText, default=lambda: ["default"])
    model_mapping: Mapped[Any] = mapped_column(JsonText, nullable=True)  # {"requested": "upstream"}
    config: Mapped[Any] = mapped_column(JsonText, nullable=True)  # per type, e.g. {"api_version": ...}
    priority: Mapped[int] = mapped_column(BigInteger, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="enabled")  # enabled | manual_disabled | auto_disabled
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # 0: the gateway default
    response_time_ms: Mapped[int] = mapped_column(Integer, default=0)
    used_quota: Mapped[int] = mapped_column(BigInteger, default=0)
    request_count: Mapped[int] = mapped_column(BigInteger, default=0)
    tested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GatewayAbility(GatewayBase):
    """Which channel serves which model for which group (OneAPI's ``abilities``), kept with the channel."""

    __tablename__ = "gateway_abilities"
    group_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(190), primary_key=True)
    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    priority: Mapped[int] = mapped_column(BigInteger, default=0)
    __table_args__ = (Index("ix_gateway_abilities_channel", "channel_id"),)


class GatewayLog(GatewayBase):
    __tablename__ = "gateway_logs"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(20), default="consume")  # consume | error | test | manage
    request_id: Mapped[str] = mapped_column(String(40), default="")
    endpoint: Mapped[str] = mapped_column(String(40), default="")
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    username: Mapped[str] = mapped_column(String(100), default="")
    token_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    token_name: Mapped[str] = mapped_column(String(100), default="")
    channel_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    channel_name: Mapped[str] = mapped_column(String(100), default="")
    model: Mapped[str] = mapped_column(String(190), default="", index=True)
    upstream_model: Mapped[str] = mapped_column(String(190), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    usage_source: Mapped[str] = mapped_column(String(20), default="upstream")  # upstream | counted
    quota: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    first_token_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    is_stream: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int] = mapped_column(Integer, default=200)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class GatewayOption(GatewayBase):
    __tablename__ = "gateway_options"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
