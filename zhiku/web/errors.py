"""One place that renders errors: native ``{code, message, detail}``, OpenAI-style ``{error: {...}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhiku.errors import ZhikuError

log = logging.getLogger(__name__)

# Routes that speak the OpenAI wire format, so OpenAI clients can read our errors.
OPENAI_STYLE_PREFIXES = ("/api/v1/chat/", "/v1/")
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type"}


def _openai_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status < 500:
        return "invalid_request_error"
    return "api_error"


def openai_error(status: int, code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The body OpenAI clients read: ``{"error": {"message", "type", "code"[, "detail"]}}``."""
    error: dict[str, Any] = {"message": message, "type": _openai_type(status), "code": code}
    if detail is not None:
        error["detail"] = detail
    return {"error": error}


def render(request: Request, status: int, code: str, message: str, detail: Any = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    if request.url.path.startswith(OPENAI_STYLE_PREFIXES):
        body = openai_error(status, code, message, detail)
    else:
        body = {"code": code, "message": message, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZhikuError)
    async def domain_error(request: Request, exc: ZhikuError) -> JSONResponse:
        headers = None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return render(request, exc.status, exc.code, exc.message, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return render(request, 400, "invalid_json", "the request body is not valid JSON",
                          [{"loc": e.get("loc"), "msg": e.get("msg")} for e in errors])
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return render(request, 422, "validation_error", f"{where}: {first['msg']}" if where else str(first["msg"]),
                      detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return render(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, 500, "internal_error", "internal server error; see the server log")
