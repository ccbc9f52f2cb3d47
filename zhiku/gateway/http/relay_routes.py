"""The OpenAI-compatible relay routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/rerank`` and ``GET /v1/models``.

One request is served by :func:`relay_answer`: the body is read as bytes and only ``model`` and
``stream`` are looked at, so a large request is never validated field by field, and the bytes go
upstream as they came whenever nothing needs to change. :class:`RelayEndpoint` wraps it as a bare
ASGI app: inside ``zhiku serve`` the relay routes are ordinary routes of the platform's app, and in
the standalone gateway :class:`RelayFirst` puts them in front of its app, so a relay request skips
FastAPI's routing and middleware.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from zhiku.errors import (InvalidInput, PayloadTooLarge, Unauthorized, ZhikuError, error_headers, openai_body,
                          request_too_large)
from zhiku.gateway.domain import ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK, ENDPOINTS, TokenInfo
from zhiku.gateway.http.event_stream import SSE_HEADERS, EventStreamResponse, StreamGate
from zhiku.gateway.providers.base import json_loads
from zhiku.gateway.relay.handler import RelayCall
from zhiku.gateway.runtime import Gateway

log = logging.getLogger(__name__)
_KEY_HEADERS = (b"authorization", b"x-api-key", b"api-key")
_JSON = (b"content-type", b"application/json")


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


def bearer_key(request: Request) -> str:
    return _key_from(request.scope["headers"])


def _key_from(headers: list[tuple[bytes, bytes]]) -> str:
    """``Authorization: Bearer …``, else ``x-api-key`` / ``api-key`` (Anthropic and Azure clients)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _KEY_HEADERS:
            found.setdefault(name, value)
    scheme, _, credential = found.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    return (found.get(b"x-api-key", b"").decode("latin-1").strip()
            or found.get(b"api-key", b"").decode("latin-1").strip())


async def _token(request: Request, gateway: Gateway) -> TokenInfo:
    key = bearer_key(request)
    if not key:
        raise Unauthorized("missing gateway token: send 'Authorization: Bearer sk-…'", code="missing_api_key")
    return await gateway.token_for_key(key)


def _parse(raw: bytes, endpoint: str) -> dict[str, Any]:
    try:
        body = json_loads(raw)
    except ValueError:
        raise InvalidInput("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", code="invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("'model' is required", code="model_required")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidInput("'stream' must be true or false", code="invalid_stream")
    if stream and endpoint in (ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK):
        raise InvalidInput(f"/v1/{endpoint} does not stream", code="invalid_stream")
    return body


@dataclass
class Answer:
    """A relay route's answer: a whole body or a stream of SSE events."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None  # SSE events; ``headers`` then omit the length
    watch_disconnect: bool = True  # False: every event is already in hand (see EventStreamResponse)


def error_answer(exc: ZhikuError) -> Answer:
    """The OpenAI-style error answer, with the error's headers (``Retry-After``, ``WWW-Authenticate``)."""
    headers = [_JSON, *((k.lower().encode("latin-1"), str(v).encode("latin-1"))
                        for k, v in error_headers(exc).items())]
    body = json.dumps(openai_body(exc), ensure_ascii=False, separators=(",", ":")).encode()
    return Answer(exc.status, headers, body)


async def relay_answer(gateway: Gateway, endpoint: str, headers: list[tuple[bytes, bytes]], raw: bytes,
                       client_ip: str | None) -> Answer:
    """Serve one relay request: the key, the body, the relay; errors become OpenAI-style answers."""
    try:
        key = _key_from(headers)
        if not key:
            raise Unauthorized("missing gateway token: send 'Authorization: Bearer sk-…'", code="missing_api_key")
        token = await gateway.token_for_key(key)
        body = _parse(raw, endpoint)
        result = await gateway.handle(RelayCall(endpoint=endpoint, body=body, raw=raw, token=token,
                                                client_ip=client_ip))
    except ZhikuError as exc:
        return error_answer(exc)
    except Exception:
        log.exception("gateway: unhandled error on /v1/%s", endpoint)
        return error_answer(ZhikuError("internal server error; see the server log"))
    if result.stream is not None:
        return Answer(200, SSE_HEADERS, stream=result.stream, watch_disconnect=not result.stream_complete)
    return Answer(200, [_JSON], result.body or b"")


class _ClientGone(Exception):
    """The client hung up before its request body arrived: nobody to answer."""


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or a 413 once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise request_too_large(limit, "ZHIKU_GATEWAY_MAX_REQUEST_BYTES")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class RelayEndpoint:
    """One relay route (``POST /v1/<endpoint>``) as a bare ASGI app; its streams wait at ``gate``
    after their first event (the app's one gate, shared by its relay routes)."""

    def __init__(self, endpoint: str, gate: StreamGate, gateway: Gateway | None = None) -> None:
        self.endpoint = endpoint
        self.gate = gate
        self.gateway = gateway  # None: the app's ``state.gateway`` (a route inside a Starlette app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = self.gateway or scope["app"].state.gateway
        try:
            raw = await _read_body(receive, gateway.settings.gateway_max_request_bytes)
        except _ClientGone:
            return
        except PayloadTooLarge as exc:
            answer = error_answer(exc)
            # The rest of the body is not read: the connection cannot carry another request.
            answer.headers.append((b"connection", b"close"))
        else:
            client = scope.get("client")
            answer = await relay_answer(gateway, self.endpoint, scope["headers"], raw,
                                        client[0] if client else None)
        if answer.stream is not None:
            await EventStreamResponse(answer.stream, watch_disconnect=answer.watch_disconnect,
                                      gate=self.gate)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": [*answer.headers, (b"content-length", str(len(answer.body)).encode())]})
        await send({"type": "http.response.body", "body": answer.body})


class RelayFirst:
    """The standalone gateway's outermost app: relay POSTs go straight to their endpoint, the rest to
    ``app``."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        gate = StreamGate()
        self.routes = {f"/v1/{endpoint}": RelayEndpoint(endpoint, gate, gateway) for endpoint in ENDPOINTS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def list_models(request: Request) -> Response:
    gateway = gateway_of(request)
    try:
        token = await _token(request, gateway)
        snapshot = gateway.snapshot
        user = snapshot.users.get(token.user_id)
        names = snapshot.models_for(user.group) if user else []
    except ZhikuError as exc:
        answer = error_answer(exc)
        return Response(answer.body, status_code=answer.status,
                        headers={name.decode("latin-1"): value.decode("latin-1") for name, value in answer.headers})
    if token.models is not None:
        names = [n for n in names if n in token.models]
    owners = {m: c.type for c in snapshot.channels.values() for m in c.models}
    return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                     "owned_by": owners.get(n, "zhiku")} for n in names]})


def install_relay(app: Starlette) -> None:
    """Add the relay routes to ``app`` (which must carry the gateway in ``app.state.gateway``)."""
    gate = StreamGate()
    for endpoint in ENDPOINTS:
        app.add_route(f"/v1/{endpoint}", RelayEndpoint(endpoint, gate), methods=["POST"])  # type: ignore[arg-type]
    app.add_route("/v1/models", list_models, methods=["GET"])
