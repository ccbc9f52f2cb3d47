"""Security headers on every response of an app: no MIME sniffing, no referrer sent to other sites, and
no framing (share-link pages, when they exist, are the one place meant to be embedded: they opt out
with ``frameable_prefixes``)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"strict-origin-when-cross-origin")]
_NO_FRAMING = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'")]


class SecurityHeaders:
    """Pure ASGI middleware (it does not buffer or wrap streamed bodies); a header the app set wins."""

    def __init__(self, app: ASGIApp, *, frameable_prefixes: Sequence[str] = ()) -> None:
        self.app = app
        self.frameable_prefixes = tuple(frameable_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        frameable = bool(self.frameable_prefixes) and scope["path"].startswith(self.frameable_prefixes)
        extra = _ALWAYS if frameable else _ALWAYS + _NO_FRAMING

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
