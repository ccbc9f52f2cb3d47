"""``/api/docs``: Swagger UI from the vendored files, so the API reference works offline and under the
pages' Content-Security-Policy (FastAPI's own page loads its scripts from a CDN and starts them inline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/api/docs")
async def api_docs(request: Request) -> Response:
    return render(request, "api/docs.html", openapi_url=request.app.openapi_url)
