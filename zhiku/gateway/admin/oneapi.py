"""What a OneAPI row becomes in the gateway's tables: pure functions over OneAPI's column values.

OneAPI (``songquanpeng/one-api``) keeps its state in ``users``, ``tokens`` and ``channels``; this module
knows their columns and meanings, and turns one row into the values of one gateway row, or into a
reason to skip it. The import command (``zhiku.gateway.admin.oneapi_import``) reads and writes; nothing here
touches a database, so every mapping rule has a unit test.

Facts about OneAPI the mapping relies on:

* users: ``role`` 1 common, 10 admin, 100 root; ``status`` 1 enabled, 2 disabled, 3 deleted;
  ``password`` is a bcrypt hash; ``access_token`` (32 characters) opens its admin API.
* tokens: ``key`` is 48 characters (32 in early versions) stored without ``sk-``; clients send
  ``sk-<key>``. ``status`` 1 enabled, 2 disabled, 3 expired, 4 exhausted; ``expired_time`` is a Unix
  time, ``-1`` = never; ``models`` and ``subnet`` are comma-separated, empty = any.
* channels: ``type`` is a number (below); ``status`` 1 enabled, 2 manually disabled, 3 auto-disabled;
  ``models`` and ``group`` are comma-separated; ``model_mapping`` is a JSON object in text;
  requests go to ``base_url + /v1/…`` (the type's default host when empty); Azure takes its API version
  from ``config.api_version`` (older versions: ``other``) and strips dots from deployment names;
  ``weight`` exists but OneAPI ignores it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from zhiku.auth.secrets import hash_token
from zhiku.gateway.admin.tokens import TOKEN_PREFIX, key_prefix
from zhiku.gateway.domain import (
    AUTO_DISABLED,
    DEFAULT_GROUP,
    DISABLED,
    ENABLED,
    MANUAL_DISABLED,
    parse_model_list,
)
from zhiku.gateway.providers import channel_type_for_oneapi

ROLE_ADMIN = 10
ROLE_ROOT = 100
USER_DELETED = 3
TOKEN_DISABLED = 2
CHANNEL_ENABLED = 1
CHANNEL_MANUALLY_DISABLED = 2
CHANNEL_AUTO_DISABLED = 3
NEVER_EXPIRES = -1

# OneAPI types the openai provider serves (its wire format at ``base + /v1``): their names and default
# base URLs, for rows that have none.
OPENAI_COMPATIBLE: dict[int, tuple[str, str]] = {
    1: ("OpenAI", "https://api.openai.com"), 2: ("API2D", "https://oa.api2d.net"),
    4: ("CloseAI", "https://api.closeai-proxy.xyz"), 5: ("OpenAI-SB", "https://api.openai-sb.com"),
    6: ("OpenAIMax", "https://api.openaimax.com"), 7: ("OhMyGPT", "https://api.ohmygpt.com"),
    8: ("custom", ""), 9: ("Ails", "https://api.caipacity.com"), 10: ("AIProxy", "https://api.aiproxy.io"),
    12: ("API2GPT", "https://api.api2gpt.com"), 13: ("AIGC2D", "https://api.aigc2d.com"),
    20: ("OpenRouter", "https://openrouter.ai/api"), 25: ("Moonshot", "https://api.moonshot.cn"),
    28: ("Mistral", "https://api.mistral.ai"), 29: ("Groq", "https://api.groq.com/openai"),
    31: ("LingYiWanWu", "https://api.lingyiwanwu.com"), 32: ("StepFun", "https://api.stepfun.com"),
    36: ("DeepSeek", "https://api.deepseek.com"), 39: ("TogetherAI", "https://api.together.xyz"),
    44: ("SiliconFlow", "https://api.siliconflow.cn"), 45: ("xAI", "https://api.x.ai"),
    50: ("OpenAI-compatible", ""),
}
# Types whose wire API Zhiku does not speak: imported switched off, with this name in the reason.
OTHER_TYPES: dict[int, str] = {
    0: "unknown", 11: "PaLM", 15: "Baidu", 16: "Zhipu", 17: "Ali", 18: "Xunfei", 19: "360",
    21: "AIProxy library",
    22: "FastGPT", 23: "Tencent", 24: "Gemini", 26: "Baichuan", 27: "Minimax", 33: "AWS Claude", 34: "Coze",
    35: "Cohere", 37: "Cloudflare", 38: "DeepL", 40: "Doubao", 41: "Novita", 42: "Vertex AI", 43: "proxy",
    46: "Replicate", 47: "Baidu v2", 48: "Xunfei v2", 49: "Ali Bailian", 51: "Gemini (OpenAI-compatible)",
}
AZURE_DEFAULT_API_VERSION = "2024-10-21"


def user_ref(oneapi_id: int) -> str:
    return f"oneapi:user:{oneapi_id}"


def token_ref(oneapi_id: int) -> str:
    return f"oneapi:token:{oneapi_id}"


def channel_ref(oneapi_id: int) -> str:
    return f"oneapi:channel:{oneapi_id}"


@dataclass(frozen=True)
class Planned:
    """One OneAPI row's fate: gateway column values, or why it is skipped."""

    source_id: int
    ref: str
    values: dict[str, Any] = field(default_factory=dict)  # written on every run
    on_insert: dict[str, Any] = field(default_factory=dict)  # written only when the row is created
    skip: str | None = None
    warnings: tuple[str, ...] = ()
    owner: int | None = None  # tokens: the OneAPI user id


# ---- users -----------------------------------------------------------------------------------

def plan_user(row: Mapping[str, Any]) -> Planned:
    """A gateway user from a OneAPI ``users`` row. Passwords are not carried: gateway users have none."""
    source_id = int(row["id"])
    ref = user_ref(source_id)
    username = _text(row.get("username"))
    if not username:
        return Planned(source_id, ref, skip=f"user {source_id} has no username")
    status = _int(row.get("status"), 1)
    if status == USER_DELETED:
        return Planned(source_id, ref, skip=f"user {username!r} is deleted in OneAPI")
    access_token = _text(row.get("access_token"))
    values = {"username": username[:100], "display_name": _text(row.get("display_name"))[:100],
              "role": "admin" if _int(row.get("role"), 1) >= ROLE_ADMIN else "user",
              "status": ENABLED if status == 1 else DISABLED,
              "group_name": (_text(row.get("group")) or DEFAULT_GROUP)[:32],
              "quota": _int(row.get("quota"), 0), "used_quota": _int(row.get("used_quota"), 0),
              "request_count": _int(row.get("request_count"), 0),
              "access_token_hash": hash_token(access_token) if access_token else None}
    return Planned(source_id, ref, values=values, on_insert={"external_ref": ref})


def is_root(row: Mapping[str, Any]) -> bool:
    return _int(row.get("role"), 1) >= ROLE_ROOT


# ---- tokens ----------------------------------------------------------------------------------

def client_key(oneapi_key: str) -> str:
    """The key clients of OneAPI send: ``sk-`` and the stored key."""
    return TOKEN_PREFIX + oneapi_key


def plan_token(row: Mapping[str, Any]) -> Planned:
    """A gateway token from a OneAPI ``tokens`` row, keyed so that ``sk-<key>`` keeps working.

    OneAPI's statuses 3 (expired) and 4 (exhausted) are its own records of the expiry and quota
    checks; the gateway makes those checks itself from the imported expiry and quota, so such a token
    imports enabled and is refused (or works again once an admin extends it) for the same reason.
    """
    source_id = int(row["id"])
    ref = token_ref(source_id)
    owner = _int(row.get("user_id"), 0)
    key = _text(row.get("key"))
    if not key:
        return Planned(source_id, ref, skip=f"token {source_id} has no key", owner=owner)
    warnings: list[str] = []
    subnets = parse_model_list(_text(row.get("subnet"))) or None
    for item in subnets or ():
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            warnings.append(f"token {source_id}: subnet {item!r} is not a CIDR; the token refuses every "
                            "client until it is fixed")
    expired = _int(row.get("expired_time"), NEVER_EXPIRES)
    full_key = client_key(key)
    name = _text(row.get("name")) or f"oneapi token {source_id}"
    values = {"name": name[:100], "key_hash": hash_token(full_key), "key_prefix": key_prefix(full_key),
              "status": DISABLED if _int(row.get("status"), 1) == TOKEN_DISABLED else ENABLED,
              "expires_at": None if expired == NEVER_EXPIRES else _time(expired),
              "remain_quota": _int(row.get("remain_quota"), 0),
              "unlimited_quota": bool(row.get("unlimited_quota")),
              "used_quota": _int(row.get("used_quota"), 0),
              "models": parse_model_list(_text(row.get("models"))) or None, "subnets": subnets}
    accessed = _int(row.get("accessed_time"), 0)
    if accessed > 0:
        values["accessed_at"] = _time(accessed)
    on_insert: dict[str, Any] = {"external_ref": ref, "request_count": 0, "rpm_limit": 0, "tpm_limit": 0,
                                 "internal": False}
    created = _int(row.get("created_time"), 0)
    if created > 0:
        on_insert["created_at"] = _time(created)
    return Planned(source_id, ref, values=values, on_insert=on_insert, warnings=tuple(warnings), owner=owner)


# ---- channels --------------------------------------------------------------------------------

def plan_channel(row: Mapping[str, Any]) -> Planned:
    """A gateway channel from a OneAPI ``channels`` row; the key is in ``values["key"]``, in clear.

    A type Zhiku cannot speak, or a channel whose settings cannot be read, still imports — switched
    off with the reason — so nothing an operator configured silently disappears.
    """
    source_id = int(row["id"])
    ref = channel_ref(source_id)
    oneapi_type = _int(row.get("type"), 0)
    name = (_text(row.get("name")) or f"oneapi channel {source_id}")[:100]
    base_url = _text(row.get("base_url")).rstrip("/")
    models = parse_model_list(_text(row.get("models")))
    warnings: list[str] = []
    problems: list[str] = []
    config: dict[str, Any] | None = None

    mapping_text = _text(row.get("model_mapping"))
    mapping: dict[str, str] = {}
    if mapping_text:
        try:
            parsed = json.loads(mapping_text)
            if not isinstance(parsed, dict):
                raise ValueError
            mapping = {str(k): str(v) for k, v in parsed.items() if isinstance(v, str) and v}
        except ValueError:
            problems.append("its model_mapping is not a JSON object")

    kind = channel_type_for_oneapi(oneapi_type)  # the provider registry decides who serves the type
    if kind == "openai":
        kind_name, default_base = OPENAI_COMPATIBLE.get(oneapi_type, ("OpenAI-compatible", ""))
        base = base_url or default_base
        if not base:
            problems.append(f"a {kind_name} channel needs a base URL")
        # OneAPI appends /v1/<endpoint> to the stored URL; Zhiku appends <endpoint> to a URL with a path.
        base_url = base if not base or base.endswith("/v1") else base + "/v1"
    elif kind == "azure":
        if not base_url:
            problems.append("an Azure channel needs its resource URL")
        config = {"api_version": _azure_api_version(row)}
        # OneAPI strips dots from the model name to form the deployment name (gpt-3.5-turbo → gpt-35-turbo).
        for model in models:
            target = mapping.get(model, model)
            if "." in target:
                mapping[model] = target.replace(".", "")
    elif kind == "ollama":
        base_url = base_url or "http://localhost:11434"
    elif kind is None:
        kind = "openai"  # a placeholder: the channel stays off
        kind_name = OTHER_TYPES.get(oneapi_type, "unknown")
        problems.append(f"OneAPI channel type {oneapi_type} ({kind_name}) has no Zhiku provider")
    if not models:
        problems.append("it lists no models")
    if _text(row.get("system_prompt")):
        warnings.append(f"channel {name!r}: OneAPI's per-channel system prompt is not supported and was not "
                        "kept")

    status_code = _int(row.get("status"), CHANNEL_ENABLED)
    status, reason = ENABLED, None
    if problems:
        status, reason = MANUAL_DISABLED, "imported from OneAPI switched off: " + "; ".join(problems)
    elif status_code == CHANNEL_AUTO_DISABLED:
        status, reason = AUTO_DISABLED, "auto-disabled in OneAPI"
    elif status_code != CHANNEL_ENABLED:
        status, reason = MANUAL_DISABLED, "disabled in OneAPI"
    weight = _int(row.get("weight"), 0)
    test_time = _int(row.get("test_time"), 0)
    values = {"type": kind, "name": name, "base_url": base_url, "key": _text(row.get("key")).strip(),
              "models": models, "groups": parse_model_list(_text(row.get("group"))) or [DEFAULT_GROUP],
              "model_mapping": mapping or None, "config": config,
              "priority": _int(row.get("priority"), 0),
              # OneAPI picks uniformly within a priority tier whatever the weight says, and 0 is its
              # default: 0 becomes 1 (the same chance as its peers); a weight set on purpose is kept.
              "weight": weight if weight > 0 else 1,
              "status": status, "status_reason": reason,
              "response_time_ms": _int(row.get("response_time"), 0),
              "used_quota": _int(row.get("used_quota"), 0),
              "tested_at": _time(test_time) if test_time > 0 else None}
    on_insert: dict[str, Any] = {"external_ref": ref, "request_count": 0, "timeout_seconds": 0.0}
    created = _int(row.get("created_time"), 0)
    if created > 0:
        on_insert["created_at"] = _time(created)
    if problems:
        warnings.append(f"channel {name!r}: {reason}")
    return Planned(source_id, ref, values=values, on_insert=on_insert, warnings=tuple(warnings))


def _azure_api_version(row: Mapping[str, Any]) -> str:
    config_text = _text(row.get("config"))
    if config_text:
        try:
            config = json.loads(config_text)
            version = config.get("api_version") if isinstance(config, dict) else None
            if isinstance(version, str) and version:
                return version
        except ValueError:
            pass
    return _text(row.get("other")) or AZURE_DEFAULT_API_VERSION


# ---- column values ---------------------------------------------------------------------------

def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace").strip()
    return str(value).strip()


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


_LAST_TIME = 253402300799  # 9999-12-31 23:59:59 UTC, the last second a datetime holds


def _time(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(min(max(unix_seconds, 0), _LAST_TIME), UTC)
