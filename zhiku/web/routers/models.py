"""``GET /v1/models`` for OpenAI-style front ends (Open WebUI and the like): the caller's apps.

Inside ``zhiku serve`` the gateway's relay answers the same path for gateway tokens. One route serves
both, by credential: an app key, a team key or a platform login lists apps (each as ``{"id": "<app
id>", "name": …}``; an app key sees its own app); any other bearer goes to the gateway's handler, which
lists its models or refuses the token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from zhiku.apps.service import list_apps
from zhiku.auth.service import authenticate
from zhiku.errors import Unauthorized, ZhikuError, openai_body
from zhiku.web.deps import credential_of, get_platform

PATH = "/v1/models"
Endpoint = Callable[[Request], Awaitable[Response]]


def install_models(app: FastAPI) -> None:
    """Serve ``/v1/models``; a route already there (the gateway's) becomes the fallback for credentials
    the platform does not know."""
    fallback: Endpoint | None = None
    for route in list(app.router.routes):
        if isinstance(route, Route) and route.path == PATH:
            fallback = route.endpoint  # type: ignore[assignment]
            app.router.routes.remove(route)

    async def list_models(request: Request) -> Response:
        platform = get_platform(request)
        try:
            async with platform.db.sessions() as session:
                principal = await authenticate(session, credential_of(request))
                apps = await list_apps(session, principal)
        except Unauthorized as exc:
            if fallback is not None and request.headers.get("authorization"):
                return await fallback(request)
            return JSONResponse(openai_body(exc), status_code=exc.status)
        except ZhikuError as exc:
            return JSONResponse(openai_body(exc), status_code=exc.status)
        if principal.app_id is not None:
            apps = [a for a in apps if a.id == principal.app_id]
        return JSONResponse({"object": "list", "data": [
            {"id": str(a.id), "object": "model", "created": int(a.created_at.timestamp()), "owned_by": "zhiku",
             "name": a.name, "type": a.type} for a in apps]})

    app.add_route(PATH, list_models, methods=["GET"])
