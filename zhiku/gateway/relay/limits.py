"""Token admission: status, expiry, allowed models and subnets (pure checks), and RPM/TPM windows.

Times are passed in, so everything here is tested without clocks or I/O.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime

from zhiku.errors import Forbidden, RateLimited, Unauthorized
from zhiku.gateway.domain import ENABLED, TokenInfo, UserInfo

WINDOW_SECONDS = 60


def check_token(token: TokenInfo, user: UserInfo | None, now: datetime) -> None:
    """Raise when the token (or its owner) may not be used at all."""
    if token.status != ENABLED:
        raise Unauthorized(f"token {token.name!r} is disabled", code="token_disabled")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized(f"token {token.name!r} expired at {token.expires_at.isoformat()}",
                           code="token_expired")
    if user is None or user.status != ENABLED:
        raise Forbidden("the token's user is disabled", code="user_disabled")


def check_model(token: TokenInfo, model: str) -> None:
    if token.models is not None and model not in token.models:
        raise Forbidden(f"this token may not use model {model!r} (allowed: {', '.join(sorted(token.models))})",
                        code="model_not_allowed")


def check_client(token: TokenInfo, client_ip: str | None) -> None:
    if token.subnets is None:
        return
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        raise Forbidden("this token only accepts listed client subnets and the client address is unknown",
                        code="ip_not_allowed") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not any(address.version == net.version and address in net for net in token.subnets):
        raise Forbidden(f"client address {address} is not in this token's allowed subnets", code="ip_not_allowed")


class RateWindow:
    """Amounts added over the last 60 seconds, in one-second buckets (requests for RPM, tokens for TPM)."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}

    def _prune(self, second: int) -> None:
        if len(self._buckets) > WINDOW_SECONDS // 2 or any(s <= second - WINDOW_SECONDS for s in self._buckets):
            for s in [s for s in self._buckets if s <= second - WINDOW_SECONDS]:
                del self._buckets[s]

    def add(self, now: float, amount: int) -> None:
        second = int(now)
        self._prune(second)
        self._buckets[second] = self._buckets.get(second, 0) + amount

    def used(self, now: float) -> int:
        second = int(now)
        return sum(v for s, v in self._buckets.items() if s > second - WINDOW_SECONDS)

    def retry_after(self, now: float, limit: int, need: int) -> float:
        """Seconds until ``need`` more fits under ``limit`` (at least 1)."""
        second = int(now)
        live = sorted((s, v) for s, v in self._buckets.items() if s > second - WINDOW_SECONDS)
        total = sum(v for _, v in live)
        for s, v in live:
            total -= v
            if total + need <= limit:
                return max(1.0, s + WINDOW_SECONDS - now)
        return float(WINDOW_SECONDS)


class TokenLimiter:
    """Per-token RPM and TPM over sliding one-minute windows, in this process's memory."""

    def __init__(self) -> None:
        self._requests: dict[int, RateWindow] = {}
        self._tokens: dict[int, RateWindow] = {}

    def admit(self, token: TokenInfo, now: float, estimated_tokens: int) -> None:
        """Count one request of about ``estimated_tokens``, or raise 429 with ``Retry-After``."""
        if token.rpm_limit > 0:
            window = self._requests.setdefault(token.id, RateWindow())
            if window.used(now) + 1 > token.rpm_limit:
                self._refuse(f"token {token.name!r} is limited to {token.rpm_limit} requests per minute",
                             "rpm_limit_exceeded", window.retry_after(now, token.rpm_limit, 1))
        if token.tpm_limit > 0:
            tokens = self._tokens.setdefault(token.id, RateWindow())
            used = tokens.used(now)
            # One request larger than the whole limit still passes on an idle window.
            if used > 0 and used + estimated_tokens > token.tpm_limit:
                self._refuse(f"token {token.name!r} is limited to {token.tpm_limit} tokens per minute",
                             "tpm_limit_exceeded", tokens.retry_after(now, token.tpm_limit, estimated_tokens))
            tokens.add(now, estimated_tokens)
        if token.rpm_limit > 0:
            self._requests[token.id].add(now, 1)

    def settle(self, token: TokenInfo, now: float, estimated_tokens: int, actual_tokens: int) -> None:
        """Replace the admission estimate with the tokens the request really used."""
        if token.tpm_limit > 0 and actual_tokens != estimated_tokens:
            self._tokens.setdefault(token.id, RateWindow()).add(now, actual_tokens - estimated_tokens)

    @staticmethod
    def _refuse(message: str, code: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        raise RateLimited(message, code=code, headers={"Retry-After": str(seconds)},
                          detail={"retry_after": seconds})
