"""Channel choice: the highest enabled priority tier that serves the model, then weighted random.

Pure functions; the caller passes the random draw (``random.random()`` in production, fixed values in
tests), the channels that already failed for this request and the cooldowns in force.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from zhiku.gateway.domain import WILDCARD_MODEL, ChannelInfo


def serving(channels: Iterable[ChannelInfo], model: str, group: str) -> list[ChannelInfo]:
    """Enabled channels of ``group`` that name ``model``; if none does, those that serve any model (``*``)."""
    named: list[ChannelInfo] = []
    wildcard: list[ChannelInfo] = []
    for channel in channels:
        if not channel.enabled or group not in channel.groups:
            continue
        if model in channel.models:
            named.append(channel)
        elif WILDCARD_MODEL in channel.models:
            wildcard.append(channel)
    return named or wildcard


def eligible(candidates: Iterable[ChannelInfo], exclude: Collection[int], cooling_until: Mapping[int, float],
             now: float) -> list[ChannelInfo]:
    return [c for c in candidates if c.id not in exclude and cooling_until.get(c.id, 0.0) <= now]


def choose_channel(candidates: Sequence[ChannelInfo], draw: float, *, exclude: Collection[int] = (),
                   cooling_until: Mapping[int, float] | None = None, now: float = 0.0) -> ChannelInfo | None:
    """One channel, or ``None`` when every candidate failed already or is cooling down.

    ``draw`` is uniform in [0, 1). Within the top tier each channel's chance is its weight over the
    tier's total weight; a weight of 0 is never picked unless the whole tier weighs 0 (then uniform).
    """
    if len(candidates) == 1 and not exclude and not cooling_until:  # the usual case: one channel, no failures
        return candidates[0]
    pool = eligible(candidates, exclude, cooling_until or {}, now)
    if not pool:
        return None
    top = max(c.priority for c in pool)
    tier = [c for c in pool if c.priority == top]
    weights = [max(c.weight, 0) for c in tier]
    total = sum(weights)
    if total == 0:
        weights, total = [1] * len(tier), len(tier)
    target = min(max(draw, 0.0), 0.999999999) * total
    running = 0.0
    for channel, weight in zip(tier, weights, strict=True):
        running += weight
        if target < running:
            return channel
    return tier[-1]  # float rounding at the very top of the range


def cooldown_left(candidates: Iterable[ChannelInfo], exclude: Collection[int], cooling_until: Mapping[int, float],
                  now: float) -> float | None:
    """When nothing is eligible only because of cooldowns: seconds until the first one ends."""
    waits = [cooling_until.get(c.id, 0.0) - now for c in candidates if c.id not in exclude]
    waits = [w for w in waits if w > 0]
    return min(waits) if waits and len(waits) == len([c for c in candidates if c.id not in exclude]) else None
