"""Security headers on every response of an app: no MIME sniffing, no referrer sent to other sites, and
no framing.

API responses (anything that is not HTML) keep the strict ``frame-ancestors 'none'`` policy. HTML pages
(the web UI, ``/api/docs``) get the UI's policy: scripts, styles, fonts and connections only from this
origin, no inline script and no ``eval``, so text a user uploaded can never run as code in a page even
where escaping failed. Paths under ``frameable_prefixes`` (the share-link chat pages, meant to be
embedded in other sites) may be framed by any site.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SHARE_PAGE_PREFIXES = ("/chat/share/",)

_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"strict-origin-when-cross-origin")]
_NO_FRAMING = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'")]
_PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                "frame-ancestors ")


def _page_headers(frame_ancestors: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", (_PAGE_POLICY + frame_ancestors).encode())]


_PAGE = _ALWAYS + [(b"x-frame-options", b"DENY")] + _page_headers("'none'")
_FRAMEABLE_PAGE = _ALWAYS + _page_headers("*")


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers)


class SecurityHeaders:
    """Pure ASGI middleware (it does not buffer or wrap streamed bodies); a header the app set wins."""

    def __init__(self, app: ASGIApp, *, frameable_prefixes: Sequence[str] = SHARE_PAGE_PREFIXES) -> None:
        self.app = app
        self.frameable_prefixes = tuple(frameable_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        frameable = bool(self.frameable_prefixes) and scope["path"].startswith(self.frameable_prefixes)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if _is_html(headers):
                    extra = _FRAMEABLE_PAGE if frameable else _PAGE
                else:
                    extra = _ALWAYS if frameable else _ALWAYS + _NO_FRAMING
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
