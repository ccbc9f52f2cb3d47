"""A ceiling on request bodies, before any route reads them: a declared ``Content-Length`` over the limit
is answered 413 at once, and a chunked body is cut off (413) as soon as it passes the limit, so no
route parses a body bigger than the largest upload the platform takes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhiku.errors import PayloadTooLarge
from zhiku.web.errors import error_response, platform_style


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes (ZHIKU_UPLOAD_MAX_BYTES and the "
                           "room multipart needs)", code="request_too_large", detail={"limit": limit})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            error = too_large(limit)
            await error_response(error, platform_style(Request(scope)))(scope, receive, send)
            return
        received = 0
        exceeded = started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise too_large(limit)  # stops the route's body parsing, whatever it wraps this in
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the route's own answer to the cut-off body: ours goes instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await error_response(too_large(limit), platform_style(Request(scope)))(scope, receive, send)
