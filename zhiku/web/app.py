"""The FastAPI app factory. The platform is opened by the caller (CLI or test) and passed in."""

from __future__ import annotations

from fastapi import FastAPI

from zhiku import __version__
from zhiku.auth.service import authenticate
from zhiku.web.body_limit import DOCUMENT_ROUTES, RELAY_ROUTES, BodySizeLimit
from zhiku.web.errors import install_error_handlers
from zhiku.web.routers import (apps, auth, chat, chat_files, chunks, collection_sources, collections, datasets,
                                fastgpt_chat, fastgpt_dataset, health, keys, users, workflow_apps)
from zhiku.web.routers.collections import MULTIPART_OVERHEAD
from zhiku.web.routers.models import install_models
from zhiku.web.security_headers import SecurityHeaders
from zhiku.web.ui import install_ui
from zhiku.wiring import Platform


def create_app(platform: Platform) -> FastAPI:
    # /api/docs is the web UI's page (vendored Swagger UI): FastAPI's own loads its scripts from a CDN
    app = FastAPI(title="Zhiku", version=__version__, docs_url=None, openapi_url="/api/openapi.json",
                  redoc_url=None)
    app.state.platform = platform
    settings = platform.settings
    limits = [(DOCUMENT_ROUTES, settings.upload_max_bytes + MULTIPART_OVERHEAD)]
    if platform.gateway is not None:  # relay bodies have their own limit, checked by the relay too
        limits.append((RELAY_ROUTES, settings.gateway_max_request_bytes))
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes, limits=limits)
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    for module in (health, auth, keys, users, datasets, collections, collection_sources, chunks, apps, chat,
                   chat_files, fastgpt_dataset, workflow_apps, fastgpt_chat):
        app.include_router(module.router)
    if platform.gateway is not None:
        from zhiku.gateway.http.app import install_gateway

        async def is_platform_admin(credential: str) -> bool:
            async with platform.db.sessions() as session:
                principal = await authenticate(session, credential)  # an unknown credential: 401
            return principal.is_admin and principal.app_id is None

        install_gateway(app, platform.gateway, is_platform_admin)
    install_models(app)  # after the gateway: its /v1/models answers gateway tokens
    install_ui(app, platform)
    return app
