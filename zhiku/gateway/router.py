"""The OpenAI-compatible relay routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
``/v1/rerank`` and ``GET /v1/models``.

Plain Starlette routes rather than FastAPI ones: the body is read as bytes and only ``model`` and
``stream`` are looked at, so a large request is never validated field by field, and the bytes go
upstream as they came whenever nothing needs to change.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zhiku.errors import InvalidInput, Unauthorized, ZhikuError
from zhiku.gateway.domain import ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK
from zhiku.gateway.relay import RelayCall
from zhiku.gateway.runtime import Gateway
from zhiku.gateway.streaming import EventStreamResponse
from zhiku.web.errors import render


def gateway_of(request: Request) -> Gateway:
    return request.app.state.gateway


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or request.headers.get("api-key", "").strip()


async def _token(request: Request, gateway: Gateway) -> Any:
    key = bearer_key(request)
    if not key:
        raise Unauthorized("missing gateway token: send 'Authorization: Bearer sk-…'", code="missing_api_key")
    return await gateway.token_for_key(key)


def _parse(raw: bytes, endpoint: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
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


def _error(request: Request, exc: ZhikuError) -> Response:
    headers = dict(exc.headers or {})
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return render(request, exc.status, exc.code, exc.message, exc.detail, headers or None)


def _relay_endpoint(endpoint: str) -> Any:
    async def relay(request: Request) -> Response:
        gateway = gateway_of(request)
        try:
            token = await _token(request, gateway)
            raw = await request.body()
            body = _parse(raw, endpoint)
            call = RelayCall(endpoint=endpoint, body=body, raw=raw, token=token,
                             client_ip=request.client.host if request.client else None)
            result = await gateway.handle(call)
        except ZhikuError as exc:
            return _error(request, exc)
        if result.stream is not None:
            return EventStreamResponse(result.stream)  # type: ignore[return-value]
        return Response(result.body, media_type="application/json")

    relay.__name__ = f"relay_{endpoint.replace('/', '_')}"
    return relay


async def list_models(request: Request) -> Response:
    gateway = gateway_of(request)
    try:
        token = await _token(request, gateway)
        snapshot = gateway.snapshot
        user = snapshot.users.get(token.user_id)
        names = snapshot.models_for(user.group) if user else []
    except ZhikuError as exc:
        return _error(request, exc)
    if token.models is not None:
        names = [n for n in names if n in token.models]
    owners = {m: c.type for c in snapshot.channels.values() for m in c.models}
    return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": 0,
                                                     "owned_by": owners.get(n, "zhiku")} for n in names]})


def install_relay(app: Starlette) -> None:
    """Add the relay routes to ``app`` (which must carry the gateway in ``app.state.gateway``)."""
    for endpoint in (ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK):
        app.add_route(f"/v1/{endpoint}", _relay_endpoint(endpoint), methods=["POST"])
    app.add_route("/v1/models", list_models, methods=["GET"])
