"""The front door (``/``) and the language switch."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from zhiku.web.deps import SessionDep
from zhiku.web.ui.deps import logged_in
from zhiku.web.ui.i18n import LANG_COOKIE, LANGUAGES
from zhiku.web.ui.pages.auth import HOME, safe_next

router = APIRouter(include_in_schema=False)

_YEAR = 365 * 24 * 3600


@router.get("/")
async def home(request: Request, session: SessionDep) -> Response:
    return RedirectResponse(HOME if await logged_in(request, session) else "/login", status_code=303)


@router.get("/lang/{lang}")
async def switch_language(lang: str = Path(max_length=10), next: str = "/") -> Response:
    """A preference, not an action on anyone's data: a plain link sets it, no CSRF token needed."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=_YEAR, samesite="lax")
    return response
