"""A ceiling on request bodies, before any route reads them: a declared ``Content-Length`` over the limit
is answered 413 at once, and a chunked body is cut off (413) as soon as it passes the limit, so no
route parses a body bigger than it takes.

Routes that take documents (uploads, pasted text) allow the upload limit; the gateway's relay allows its own;
every other body (JSON for settings, chat messages, chunk edits, pushed data) has the smaller request limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhiku.errors import PayloadTooLarge, request_too_large
from zhiku.web.errors import error_response, platform_style

# The routes whose bodies are documents, held to ZHIKU_UPLOAD_MAX_BYTES rather than the request limit.
DOCUMENT_ROUTES = re.compile(r"^/api/datasets/[^/]+/collections/(?:file|text|qa-table)$"
                             r"|^/api/core/dataset/collection/create/(?:localFile|text)$"
                             r"|^/api/common/file/upload$")
# The gateway's OpenAI-compatible relay: ZHIKU_GATEWAY_MAX_REQUEST_BYTES.
RELAY_ROUTES = re.compile(r"^/v1/")


def too_large(limit: int) -> PayloadTooLarge:
    return request_too_large(limit, "ZHIKU_MAX_REQUEST_BYTES; documents: ZHIKU_UPLOAD_MAX_BYTES and the room "
                                    "multipart needs")


class BodySizeLimit:
    """``limits``: (path pattern, limit) pairs tried in order; a path that matches none gets ``max_bytes``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, limits: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = tuple(limits)

    def limit_for(self, path: str) -> int:
        return next((limit for pattern, limit in self.limits if pattern.search(path)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
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
