"""The standalone gateway's app (``zhiku gateway serve``): the gateway's routes, the one error renderer,
a public status route, and the web UI's gateway console with its own login for the gateway's admins."""

from __future__ import annotations

from fastapi import FastAPI

from zhiku import __version__
from zhiku.gateway.http.app import install_gateway
from zhiku.gateway.runtime import Gateway
from zhiku.web.body_limit import RELAY_ROUTES, BodySizeLimit
from zhiku.web.errors import install_error_handlers
from zhiku.web.security_headers import SecurityHeaders
from zhiku.web.ui.gateway_console import install_gateway_console


def create_gateway_app(gateway: Gateway) -> FastAPI:
    # /api/docs is the UI's page from vendored Swagger UI (FastAPI's own loads its scripts from a CDN)
    app = FastAPI(title="Zhiku gateway", version=__version__, docs_url=None,
                  openapi_url="/api/openapi.json", redoc_url=None)
    # Admin bodies get the request limit; the relay's own, larger limit is also checked by the relay.
    app.add_middleware(BodySizeLimit, max_bytes=gateway.settings.max_request_bytes,
                       limits=[(RELAY_ROUTES, gateway.settings.gateway_max_request_bytes)])
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    install_gateway(app, gateway)
    install_gateway_console(app)

    @app.get("/api/status", tags=["health"])
    async def status() -> dict:
        """Public, like OneAPI's: for load balancers and health checks."""
        return {"status": "ok", "version": __version__, "channels": len(gateway.snapshot.channels)}

    return app
