"""Domain errors, and the two wire shapes they are rendered in.

Each error carries an HTTP status, a stable machine-readable code and, where a
client needs them, response headers (``Retry-After``). Services raise these; the
web layer renders them with :func:`native_body` (``{"code", "message", "detail"}``,
the platform's own API) or :func:`openai_body` (``{"error": {"message", "type",
"code"}}``: OpenAI-style routes, the gateway, the embedding server, errors inside
an event stream), and sends :func:`error_headers` with them. Those two functions
are the only places either body is built. The CLI turns an error into one line on
stderr and a non-zero exit.
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


def request_too_large(limit: int, setting: str) -> PayloadTooLarge:
    """The 413 for a request body over ``limit`` bytes; ``setting`` names what sets the limit."""
    return PayloadTooLarge(f"the request body is larger than {limit} bytes ({setting})", code="request_too_large",
                           detail={"limit": limit})


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


def native_body(error: ZhikuError) -> dict[str, Any]:
    """The platform API's error body: ``{"code", "message", "detail"}``."""
    return {"code": error.code, "message": error.message, "detail": error.detail}


def openai_body(error: ZhikuError, kind: str | None = None) -> dict[str, Any]:
    """The body OpenAI clients read: ``{"error": {"message", "type", "code"[, "detail"]}}``. ``type``
    follows the status unless ``kind`` names it (an upstream's own error type, passed on)."""
    body: dict[str, Any] = {"message": error.message, "type": kind or _openai_type(error.status),
                            "code": error.code}
    if error.detail is not None:
        body["detail"] = error.detail
    return {"error": body}


def error_headers(error: ZhikuError) -> dict[str, str]:
    """Headers that go with the error's response: its own (``Retry-After``), and on a 401 a
    ``WWW-Authenticate: Bearer`` challenge unless the error names its own."""
    headers = dict(error.headers or {})
    if error.status == 401 and not any(name.lower() == "www-authenticate" for name in headers):
        headers["WWW-Authenticate"] = "Bearer"
    return headers


_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 429: "rate_limit_error"}


def _openai_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
