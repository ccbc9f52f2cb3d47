"""Quota pricing as OneAPI does it: tokens × model ratio × group ratio, completions × completion ratio.

Units: 500,000 quota = US$1; a model ratio of 1 means US$0.002 per 1K prompt tokens. Operators override
the tables with the options ``ModelRatio``, ``CompletionRatio`` and ``GroupRatio`` (JSON objects, the
same names and shapes as OneAPI's) and ``DefaultModelRatio`` for models no table names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

QUOTA_PER_UNIT = 500_000

# US$ per 1M input tokens ÷ 2 (so 1.0 = $0.002 / 1K).
DEFAULT_MODEL_RATIO: dict[str, float] = {
    "gpt-3.5-turbo": 0.25, "gpt-4": 15.0, "gpt-4-turbo": 5.0, "gpt-4o": 1.25, "gpt-4o-mini": 0.075,
    "gpt-4.1": 1.0, "gpt-4.1-mini": 0.2, "gpt-4.1-nano": 0.05, "o1": 7.5, "o3-mini": 0.55, "o4-mini": 0.55,
    "text-embedding-ada-002": 0.05, "text-embedding-3-small": 0.01, "text-embedding-3-large": 0.065,
    "claude-3-5-haiku-latest": 0.4, "claude-3-5-sonnet-latest": 1.5, "claude-sonnet-4-0": 1.5,
    "claude-opus-4-0": 7.5, "m3e": 0.01, "multilingual-e5-small": 0.01,
}
DEFAULT_COMPLETION_RATIO: dict[str, float] = {
    "gpt-3.5-turbo": 3.0, "gpt-4": 2.0, "gpt-4-turbo": 3.0, "gpt-4o": 4.0, "gpt-4o-mini": 4.0, "gpt-4.1": 4.0,
    "gpt-4.1-mini": 4.0, "gpt-4.1-nano": 4.0, "o1": 4.0, "o3-mini": 4.0, "o4-mini": 4.0,
    "claude-3-5-haiku-latest": 5.0, "claude-3-5-sonnet-latest": 5.0, "claude-sonnet-4-0": 5.0,
    "claude-opus-4-0": 5.0,
}
DEFAULT_GROUP_RATIO: dict[str, float] = {"default": 1.0, "vip": 1.0, "svip": 1.0}


@dataclass(frozen=True)
class Prices:
    model_ratio: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MODEL_RATIO))
    completion_ratio: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_COMPLETION_RATIO))
    group_ratio: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_GROUP_RATIO))
    default_model_ratio: float = 1.0

    def model(self, name: str) -> float:
        return self.model_ratio.get(name, self.default_model_ratio)

    def completion(self, name: str) -> float:
        return self.completion_ratio.get(name, 1.0)

    def group(self, name: str) -> float:
        return self.group_ratio.get(name, 1.0)


def quota_for(prices: Prices, model: str, group: str, prompt_tokens: int, completion_tokens: int) -> int:
    """The quota a request costs. Any paid request costs at least 1."""
    ratio = prices.model(model) * prices.group(group)
    if ratio <= 0:
        return 0
    cost = (prompt_tokens + completion_tokens * prices.completion(model)) * ratio
    return max(1, math.ceil(cost)) if prompt_tokens + completion_tokens > 0 else 0


def prices_from_options(options: Mapping[str, str]) -> Prices:
    """Prices with the option tables laid over the defaults; a malformed option is ignored (logged by caller)."""
    return Prices(model_ratio={**DEFAULT_MODEL_RATIO, **_ratio_table(options.get("ModelRatio"))},
                  completion_ratio={**DEFAULT_COMPLETION_RATIO, **_ratio_table(options.get("CompletionRatio"))},
                  group_ratio={**DEFAULT_GROUP_RATIO, **_ratio_table(options.get("GroupRatio"))},
                  default_model_ratio=_number(options.get("DefaultModelRatio"), 1.0))


def _ratio_table(raw: str | None) -> dict[str, float]:
    if not raw:
        return {}
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _number(raw: str | None, default: float) -> float:
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        return default


def validate_ratio_option(key: str, value: str) -> str | None:
    """Why ``value`` is not a valid ratio table for option ``key``, or ``None`` when it is."""
    if key == "DefaultModelRatio":
        try:
            float(value)
        except ValueError:
            return "DefaultModelRatio must be a number"
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return f"{key} must be a JSON object of model (or group) name → number"
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in data.values()):
        return f"{key} must be a JSON object of model (or group) name → number"
    return None


def estimate_prompt_tokens(body_size: int) -> int:
    """A cheap upper-ish estimate from the request size (bytes / 3 covers CJK at ~3 bytes a token)."""
    return max(1, body_size // 3)
