"""Gateway options (OneAPI's ``options`` table): ratio tables and other runtime settings, as text."""

from __future__ import annotations

from sqlalchemy import select

from zhiku.errors import InvalidInput
from zhiku.gateway.relay.pricing import validate_ratio_option
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.tables import GatewayOption

# Known keys and what they hold; others are refused so a typo does not pass silently.
KNOWN_OPTIONS = {
    "ModelRatio": "JSON object: model → ratio (1 = US$0.002 per 1K prompt tokens)",
    "CompletionRatio": "JSON object: model → completion-token multiplier",
    "GroupRatio": "JSON object: user group → multiplier",
    "DefaultModelRatio": "ratio for models no table names (default 1)",
}


async def get_options(store: GatewayStore) -> dict[str, str]:
    async with store.sessions() as session:
        return {r.key: r.value for r in (await session.execute(select(GatewayOption))).scalars()}


async def set_options(store: GatewayStore, values: dict[str, str]) -> dict[str, str]:
    for key, value in values.items():
        if key not in KNOWN_OPTIONS:
            raise InvalidInput(f"unknown option {key!r}; known: {', '.join(sorted(KNOWN_OPTIONS))}",
                               code="unknown_option")
        problem = validate_ratio_option(key, value)
        if problem:
            raise InvalidInput(problem, code="invalid_option")
    async with store.sessions() as session:
        for key, value in values.items():
            row = await session.get(GatewayOption, key)
            if row is None:
                session.add(GatewayOption(key=key, value=value))
            else:
                row.value = value
        await session.commit()
    return await get_options(store)
