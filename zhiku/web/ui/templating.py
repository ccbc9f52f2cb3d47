"""Rendering pages: one Jinja environment (autoescape on for every template) and :func:`render`.

Every template sees ``t`` (the translator of the request's language), ``lang``, ``user`` (a
:class:`~zhiku.web.ui.deps.UiUser`, or None on pages without a login), ``csrf_token``, ``static(path)``
(a URL under ``/static`` that changes with the release, so browsers never keep a stale file),
``path`` (the page's own path and query, for ``next=`` links), ``languages``, ``invalid(name)`` (marks
an input the page's ``form_error`` refused; see :mod:`zhiku.web.ui.forms`) and ``source_kind(type)``
(whether and how a collection's document opens: :mod:`zhiku.db.collection_types`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from zhiku import __version__
from zhiku.db.collection_types import source_kind
from zhiku.web.ui.forms import invalid
from zhiku.web.ui.i18n import LANG_COOKIE, LANGUAGE_NAMES, Translator, pick_language

_env = Environment(loader=PackageLoader("zhiku.web.ui", "templates"), autoescape=True, trim_blocks=True,
                   lstrip_blocks=True)


def static(path: str) -> str:
    return f"/static/{path}?v={__version__}"


_env.globals.update(static=static, languages=LANGUAGE_NAMES, invalid=invalid, source_kind=source_kind)


def request_language(request: Request) -> str:
    return pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def translator(request: Request) -> Translator:
    return Translator(request_language(request))


def page_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def render(request: Request, template: str, *, status_code: int = 200,
           headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """The template rendered for this request, as an HTML response."""
    user = getattr(request.state, "ui_user", None)
    lang = request_language(request)
    html = _env.get_template(template).render(
        request=request, t=Translator(lang), lang=lang, user=user,
        csrf_token=user.csrf_token if user is not None else "", path=page_path(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=headers)
