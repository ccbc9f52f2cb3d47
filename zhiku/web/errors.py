"""One place that turns errors into responses, in the wire shape of the route.

Every failure becomes a :class:`~zhiku.errors.ZhikuError` first (request validation, HTTP errors and
unexpected exceptions included); its body comes from ``zhiku.errors`` (``native_body`` or
``openai_body``) and its headers (``Retry-After``, ``WWW-Authenticate``) go with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhiku.db.availability import DatabaseUnavailable, is_database_unavailable
from zhiku.errors import ZhikuError, error_headers, native_body, openai_body
from zhiku.web import fastgpt_envelope

log = logging.getLogger(__name__)

# Routes that speak the OpenAI wire format, so OpenAI clients can read our errors.
OPENAI_STYLE_PREFIXES = ("/api/v1/chat/", "/api/v2/chat/", "/v1/")
# FastGPT-shaped routes answering in its envelope besides the dataset API (workflow apps, chat histories and
# records, share links, chat files).
FASTGPT_PREFIXES = (fastgpt_envelope.PATH_PREFIX, "/api/core/app/", "/api/core/chat/", "/api/support/outLink/",
                    "/api/common/file/")
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type"}

BodyFor = Callable[[Request], Callable[[ZhikuError], dict[str, Any]]]


def platform_style(request: Request) -> Callable[[ZhikuError], dict[str, Any]]:
    """The platform's routes answer in the native shape; its OpenAI-style routes in OpenAI's, and its
    FastGPT dataset API in FastGPT's envelope."""
    path = request.url.path
    if path.startswith(FASTGPT_PREFIXES):
        return fastgpt_envelope.error_body
    return openai_body if path.startswith(OPENAI_STYLE_PREFIXES) else native_body


def openai_style(request: Request) -> Callable[[ZhikuError], dict[str, Any]]:
    """The gateway's and the embedding server's routes all answer in OpenAI's shape."""
    return openai_body


def error_response(error: ZhikuError, body: Callable[[ZhikuError], dict[str, Any]]) -> JSONResponse:
    return JSONResponse(body(error), status_code=error.status, headers=error_headers(error))


def database_refusal(exc: Exception) -> ZhikuError | None:
    """A value the database refused (out of range, too long, null where required, a duplicate), as a
    client error with a plain message; None for anything else. No SQL and no value reaches the client."""
    if isinstance(exc, OverflowError):  # the driver could not even encode an integer
        return ZhikuError("a number is out of range for its field", status=400, code="invalid_value")
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    names = {cls.__name__ for cls in type(orig).__mro__} | {cls.__name__ for cls in type(orig.__cause__).__mro__}
    if state == "23505" or "UniqueViolationError" in names:
        return ZhikuError("that value is already taken", status=409, code="conflict")
    if state == "23502" or "NotNullViolationError" in names:
        return ZhikuError("a required value is missing (null)", status=400, code="invalid_value")
    if state == "23503" or "ForeignKeyViolationError" in names:
        return ZhikuError("a referenced item does not exist", status=400, code="invalid_reference")
    if isinstance(exc, (DataError, IntegrityError)) or state.startswith(("22", "23")) or "DataError" in names:
        return ZhikuError("a value is out of range, too long or not valid for its field", status=400,
                          code="invalid_value")
    return None


def as_domain_error(exc: Exception) -> ZhikuError:
    """Any exception a route raised, as the domain error its client is shown."""
    if isinstance(exc, ZhikuError):
        return exc
    if is_database_unavailable(exc):  # the connection was lost mid-request (a new one raises it already)
        return DatabaseUnavailable()
    refused = database_refusal(exc)
    if refused is not None:
        return refused
    if isinstance(exc, RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return ZhikuError("the request body is not valid JSON", status=400, code="invalid_json",
                              detail=[{"loc": e.get("loc"), "msg": e.get("msg")} for e in errors])
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return ZhikuError(f"{where}: {first['msg']}" if where else str(first["msg"]), status=422,
                          code="validation_error", detail=detail)
    if isinstance(exc, StarletteHTTPException):
        return ZhikuError(str(exc.detail), status=exc.status_code,
                          code=_HTTP_CODES.get(exc.status_code, "http_error"), headers=exc.headers)
    return ZhikuError("internal server error; see the server log", status=500, code="internal_error")


def install_error_handlers(app: FastAPI, style: BodyFor = platform_style) -> None:
    """Render every error of ``app`` through :func:`as_domain_error` in the shape ``style`` picks."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = as_domain_error(exc)
        if isinstance(error, DatabaseUnavailable):
            pass  # the database's availability says so in the log once, not once per request
        elif error.status >= 500 and not isinstance(exc, ZhikuError):
            log.exception("unhandled error on %s %s", request.method, request.url.path)
        elif isinstance(exc, (DBAPIError, OverflowError)):  # one line: the statement and values stay out
            log.warning("%s %s: the database refused the values (%s)", request.method, request.url.path,
                        type(getattr(exc, "orig", exc)).__name__)
        return error_response(error, style(request))

    for kind in (ZhikuError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, handle)
