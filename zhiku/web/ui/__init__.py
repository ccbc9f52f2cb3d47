"""The web UI: server-rendered pages (Jinja2 + htmx) over the same services as the HTTP API.

:func:`install_ui` mounts ``/static`` and includes the ``router`` of every module in
:mod:`zhiku.web.ui.pages`, so a new page area is a new module there and edits no shared file. Errors
raised by a page render as an HTML page (or, for an htmx request, an error fragment swapped in where
the result would have gone); the API's routes keep their JSON errors.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhiku.errors import ZhikuError, error_headers
from zhiku.web.errors import as_domain_error
from zhiku.web.ui import pages
from zhiku.web.ui.deps import LoginRequired
from zhiku.web.ui.forms import FormInvalid
from zhiku.web.ui.templating import page_path, render
from zhiku.wiring import Platform

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_NOT_PAGES = ("/api/", "/v1/", "/static/")


def install_ui(app: FastAPI, platform: Platform) -> None:
    """The whole UI on the platform's app (the platform reaches pages through ``app.state.platform``)."""
    install_pages(app)


def install_pages(app: FastAPI, prefix: str = "") -> None:
    """``/static``, the error pages and the routers of the page modules whose names start with ``prefix``
    (all of them by default; the standalone gateway takes only its console's)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in pkgutil.iter_modules(pages.__path__):
        if module.name.startswith(prefix):
            app.include_router(importlib.import_module(f"{pages.__name__}.{module.name}").router)
    _install_error_pages(app)


def is_page_request(request: Request) -> bool:
    """A request the UI answers: a route of this package's, or an unknown path a browser asked for."""
    endpoint = request.scope.get("endpoint")
    if endpoint is not None:
        return getattr(endpoint, "__module__", "").startswith(__name__ + ".")
    path = request.url.path
    return not path.startswith(_NOT_PAGES) and "text/html" in request.headers.get("accept", "")


def login_redirect(request: Request) -> Response:
    target = "/login?next=" + quote(page_path(request), safe="")
    if request.headers.get("hx-request"):  # htmx would swap the login page into a fragment
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def error_page(request: Request, exc: Exception) -> Response:
    error = as_domain_error(exc)
    if error.status >= 500 and not isinstance(exc, ZhikuError):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
    template = "errors/fragment.html" if request.headers.get("hx-request") else "errors/error.html"
    return render(request, template, status_code=error.status, headers=error_headers(error), error=error,
                  form_error=exc.form_error if isinstance(exc, FormInvalid) else None)


def _install_error_pages(app: FastAPI) -> None:
    """Page requests get HTML errors; every other request still goes to the API's handler."""
    for kind in (ZhikuError, RequestValidationError, StarletteHTTPException, Exception):
        api_handler = app.exception_handlers[kind]

        async def handle(request: Request, exc: Exception, api_handler=api_handler) -> Response:
            if is_page_request(request):
                return error_page(request, exc)
            return await api_handler(request, exc)

        app.add_exception_handler(kind, handle)

    async def to_login(request: Request, exc: Exception) -> Response:
        return login_redirect(request)

    app.add_exception_handler(LoginRequired, to_login)
