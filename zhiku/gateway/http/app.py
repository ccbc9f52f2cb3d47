"""Mounting the gateway's routes into an app: the platform's (``zhiku serve``) or its own
(``zhiku.web.gateway_app``, for ``zhiku gateway serve``)."""

from __future__ import annotations

from fastapi import FastAPI

from zhiku.gateway.http.admin_routes import PlatformAdminCheck
from zhiku.gateway.http.admin_routes import router as admin_router
from zhiku.gateway.http.relay_routes import install_relay
from zhiku.gateway.runtime import Gateway


def install_gateway(app: FastAPI, gateway: Gateway,
                    platform_admin_check: PlatformAdminCheck | None = None) -> None:
    """The relay under ``/v1/…`` and the admin API under ``/api/{channel,token,user,log,option}/``;
    ``platform_admin_check`` lets the platform's admins in with their own login."""
    app.state.gateway = gateway
    app.state.platform_admin_check = platform_admin_check
    install_relay(app)
    app.include_router(admin_router)
