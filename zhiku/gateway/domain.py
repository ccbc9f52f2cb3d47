"""What the hot path knows about channels, tokens and users: frozen snapshots of their rows.

Built from the tables when the in-memory cache loads; requests never read the database.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ENABLED = "enabled"
DISABLED = "disabled"
MANUAL_DISABLED = "manual_disabled"
AUTO_DISABLED = "auto_disabled"
CHANNEL_STATUSES = (ENABLED, MANUAL_DISABLED, AUTO_DISABLED)
WILDCARD_MODEL = "*"
DEFAULT_GROUP = "default"

ENDPOINT_CHAT = "chat/completions"
ENDPOINT_COMPLETIONS = "completions"
ENDPOINT_EMBEDDINGS = "embeddings"
ENDPOINT_RERANK = "rerank"
ENDPOINTS = (ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK)


@dataclass(frozen=True)
class ChannelInfo:
    id: int
    type: str
    name: str
    base_url: str
    models: tuple[str, ...]
    groups: tuple[str, ...] = (DEFAULT_GROUP,)
    model_mapping: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0
    weight: int = 1
    status: str = ENABLED
    timeout_seconds: float = 0.0
    key: str = ""  # decrypted, in memory only

    @property
    def enabled(self) -> bool:
        return self.status == ENABLED

    def upstream_model(self, requested: str) -> str:
        return self.model_mapping.get(requested, requested)


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str = "user"
    status: str = ENABLED
    group: str = DEFAULT_GROUP
    quota: int = 0  # remaining, as last loaded

    @property
    def is_admin(self) -> bool:
        return self.role in ("root", "admin")


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user_id: int
    name: str
    status: str = ENABLED
    expires_at: datetime | None = None
    remain_quota: int = 0  # as last loaded
    unlimited_quota: bool = False
    models: frozenset[str] | None = None  # None: any model
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None
    rpm_limit: int = 0
    tpm_limit: int = 0
    internal: bool = False


def parse_subnets(values: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """CIDRs (or single addresses) from a list or a comma-separated string; ``None`` when there are none."""
    if values in (None, "", []):
        return None
    items = values.split(",") if isinstance(values, str) else list(values)
    return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip())


def parse_model_list(values: Any) -> list[str]:
    """Model names from a list or a comma-separated string (OneAPI stores them comma-separated)."""
    if values in (None, ""):
        return []
    items = values.split(",") if isinstance(values, str) else list(values)
    seen: dict[str, None] = {}
    for item in items:
        name = str(item).strip()
        if name:
            seen[name] = None
    return list(seen)
