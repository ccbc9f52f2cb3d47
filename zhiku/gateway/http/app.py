"""Mounting the gateway: into the platform's app (``zhiku serve``) or as its own app (``zhiku gateway serve``)."""

from __future__ import annotations

from fastapi import FastAPI

from zhiku import __version__
from zhiku.gateway.http.admin_routes import router as admin_router
from zhiku.gateway.http.relay_routes import install_relay
from zhiku.gateway.runtime import Gateway
from zhiku.web.errors import install_error_handlers


def install_gateway(app: FastAPI, gateway: Gateway) -> None:
    """The relay under ``/v1/…`` and the admin API under ``/api/{channel,token,user,log,option}/``."""
    app.state.gateway = gateway
    install_relay(app)
    app.include_router(admin_router)


def create_gateway_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="Zhiku gateway", version=__version__, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    install_error_handlers(app)
    install_gateway(app, gateway)

    @app.get("/api/status", tags=["health"])
    async def status() -> dict:
        """Public, like OneAPI's: for load balancers and health checks."""
        return {"status": "ok", "version": __version__, "channels": len(gateway.snapshot.channels)}

    return app
