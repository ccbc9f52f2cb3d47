"""Domain errors. Each carries an HTTP status and a stable machine-readable code.

Services raise these; one handler in ``zhiku.web.errors`` renders them, as
``{"code", "message", "detail"}`` on the native API and as
``{"error": {"message", "type", "code"}}`` on OpenAI-style routes. The CLI turns
them into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import Any


class ZhikuError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, detail: Any = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.detail = detail
        self.headers = headers  # extra response headers, e.g. Retry-After

    def __str__(self) -> str:
        return self.message


class InvalidInput(ZhikuError):
    status = 400
    code = "invalid_input"


class Unauthorized(ZhikuError):
    status = 401
    code = "unauthorized"


class Forbidden(ZhikuError):
    status = 403
    code = "forbidden"


class NotFound(ZhikuError):
    status = 404
    code = "not_found"


class Conflict(ZhikuError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ZhikuError):
    status = 413
    code = "file_too_large"


class UnsupportedFile(ZhikuError):
    """The bytes cannot be turned into text: wrong format, binary, undecodable, empty."""

    status = 422
    code = "unsupported_file"


class RateLimited(ZhikuError):
    status = 429
    code = "rate_limited"


class QuotaExhausted(ZhikuError):
    """A gateway token or user has no quota left for the request."""

    status = 403
    code = "insufficient_quota"


class UpstreamError(ZhikuError):
    """A model upstream answered with an error; ``status`` keeps the upstream's."""

    status = 502
    code = "upstream_error"


class UpstreamUnavailable(ZhikuError):
    """A model upstream could not be reached at all (connection refused, DNS, timeout)."""

    status = 502
    code = "upstream_unreachable"


class ServiceUnavailable(ZhikuError):
    status = 503
    code = "service_unavailable"


class StartupError(ZhikuError):
    """A problem that stops the process from starting; the message says how to fix it."""

    code = "startup_error"
