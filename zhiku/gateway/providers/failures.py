"""What an upstream failure means for the request and the channel. Pure functions.

* retried on another channel: 429, any 5xx, a timeout, a connection error, a malformed answer;
* never retried: 400, 401, 403, 404 and other 4xx (the request, not the channel, is at fault — or the
  key is, and another channel would hide that);
* the channel is auto-disabled: 401, and errors whose type, code or message says the key is invalid or
  the account is out of quota / billing (OneAPI's rule, made configurable);
* ``Retry-After`` (seconds or an HTTP date) puts the channel in a cooldown.
"""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass
from typing import Any

from zhiku.errors import UpstreamError, UpstreamUnavailable, ZhikuError

_DISABLE_TYPES = {"insufficient_quota", "authentication_error", "permission_error", "billing_error",
                  "invalid_api_key", "account_deactivated", "billing_not_active", "access_terminated",
                  "organization_disabled", "permission_denied", "unauthenticated"}
_DISABLE_PHRASES = ("insufficient_quota", "exceeded your current quota", "invalid api key", "incorrect api key",
                    "api key not valid", "invalid x-api-key", "credit balance is too low", "billing",
                    "account has been deactivated", "organization has been disabled", "余额不足", "quota exceeded")
MAX_COOLDOWN_SECONDS = 3600.0


@dataclass(frozen=True)
class Failure:
    status: int  # the upstream's status; 502/504 when there was no HTTP answer
    code: str
    message: str
    body: Any = None
    retry_after: float | None = None  # seconds
    transport: bool = False  # no (usable) HTTP answer: connection error, timeout, malformed body

    @property
    def retryable(self) -> bool:
        return self.transport or self.status == 429 or self.status >= 500

    def disable_reason(self) -> str | None:
        """Why this failure should switch the channel off, or ``None``."""
        if self.transport:
            return None
        if self.status == 401:
            return f"upstream answered 401: {self.message}"
        words = _error_words(self.body)
        text = " ".join(words).lower() + " " + self.message.lower()
        if any(w in _DISABLE_TYPES for w in words) or any(p in text for p in _DISABLE_PHRASES):
            return f"upstream answered {self.status}: {self.message}"
        return None

    def to_error(self) -> ZhikuError:
        """The error the client sees when no channel is left to try: the upstream's status and body."""
        if self.transport and self.status in (502, 504) and self.code in ("upstream_unreachable",
                                                                          "upstream_timeout"):
            return UpstreamUnavailable(self.message, code=self.code, status=self.status)
        headers = {"Retry-After": str(int(self.retry_after))} if self.retry_after else None
        return UpstreamError(self.message, status=self.status, code=self.code,
                             detail={"body": self.body} if self.body is not None else None, headers=headers)


def _error_words(body: Any) -> list[str]:
    """The type / code / status strings of an error body, whatever the provider's shape."""
    if not isinstance(body, dict):
        return []
    error = body.get("error", body)
    if isinstance(error, str):
        return [error]
    if not isinstance(error, dict):
        return []
    return [str(error[k]) for k in ("type", "code", "status") if error.get(k) not in (None, "")]


def error_message(body: Any, fallback: str) -> str:
    """The human message of an error body (OpenAI, Anthropic, Ollama or plain text shapes)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        if body.get("message"):
            return str(body["message"])
        return json.dumps(body, ensure_ascii=False)[:500]
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback


def error_code(body: Any, status: int) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            for key in ("code", "type"):
                if error.get(key) not in (None, ""):
                    return str(error[key])
    return {400: "upstream_bad_request", 401: "upstream_unauthorized", 403: "upstream_forbidden",
            404: "upstream_not_found", 429: "upstream_rate_limited"}.get(status, "upstream_error")


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped at an hour."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now_epoch
    if seconds != seconds or seconds <= 0:  # NaN or past
        return None
    return min(seconds, MAX_COOLDOWN_SECONDS)


def http_failure(status: int, raw: bytes, retry_after: str | None, now_epoch: float, where: str) -> Failure:
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw[:2000].decode("utf-8", "replace")
    message = error_message(body, f"HTTP {status}")
    return Failure(status=status, code=error_code(body, status), message=f"{where} answered {status}: {message}",
                   body=body, retry_after=parse_retry_after(retry_after, now_epoch))


def transport_failure(message: str, *, timeout: bool = False) -> Failure:
    return Failure(status=504 if timeout else 502, code="upstream_timeout" if timeout else "upstream_unreachable",
                   message=message, transport=True)


def bad_response(message: str) -> Failure:
    return Failure(status=502, code="upstream_bad_response", message=message, transport=True)


class UpstreamFailure(Exception):
    """Raised by providers; carries the classified failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
