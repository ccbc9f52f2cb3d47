"""``zhiku embed-server``: an OpenAI-compatible embedding (and rerank) server, the m3e container's role.

Routes are thin: read the body, call ``EmbeddingService``, return its answer.
Every error, on every route (``/rerank`` too, which Jina/Cohere clients call
without ``/v1``), is rendered in the OpenAI shape ``{"error": {"message",
"type", "code"}}`` so the clients that talk to this server can all read it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from zhiku.config import DEFAULT_EMBED_API_KEY, Settings
from zhiku.embedding.base import Reranker
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.embedding.service import EmbeddingService, ServiceLimits
from zhiku.embedding.wire import decode_json_body, parse_embeddings, parse_rerank
from zhiku.errors import StartupError, Unauthorized
from zhiku.web.errors import install_error_handlers, openai_style

log = logging.getLogger(__name__)


async def _authorized(request: Request) -> None:
    api_key: str = request.app.state.api_key
    if not api_key:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
    if not hmac.compare_digest(given.strip().encode(), api_key.encode()):
        raise Unauthorized("incorrect API key", code="invalid_api_key")


async def _json_body(request: Request) -> dict[str, Any]:
    return decode_json_body(await request.body())


# module level, so FastAPI can resolve the (postponed) annotations
Authorized = Depends(_authorized)
JsonBody = Annotated[dict[str, Any], Depends(_json_body)]


def check_embed_settings(settings: Settings) -> None:
    """The seed's well-known key is fine on a dev box, not in production."""
    if settings.profile == "prod" and settings.embed_api_key == DEFAULT_EMBED_API_KEY:
        raise StartupError("ZHIKU_EMBED_API_KEY is the seed's well-known m3e key; set your own key "
                           "when ZHIKU_PROFILE=prod")


def create_embed_app(settings: Settings, registry: EmbedderRegistry,
                     rerankers: dict[str, Reranker] | None = None) -> FastAPI:
    service = EmbeddingService(
        registry, aliases=settings.embed_alias_names, rerankers=rerankers,
        limits=ServiceLimits(max_batch_tokens=settings.embed_max_batch_tokens,
                             max_inputs=settings.embed_max_inputs, truncate=settings.embed_truncate))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.close()

    app = FastAPI(title="Zhiku embedding server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service
    app.state.api_key = settings.embed_api_key
    install_error_handlers(app, openai_style)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": service.model_names(), "rerank_models": sorted(service.rerankers)}

    @app.get("/v1/models", dependencies=[Authorized])
    async def models() -> dict[str, Any]:
        return service.models_body()

    @app.post("/v1/embeddings", dependencies=[Authorized])
    async def embeddings(body: JsonBody) -> JSONResponse:
        # JSONResponse directly: FastAPI's encoder would walk every float of every vector
        return JSONResponse(await service.embed(parse_embeddings(body, settings.embed_max_inputs)))

    @app.post("/v1/rerank", dependencies=[Authorized])
    @app.post("/rerank", dependencies=[Authorized])
    async def rerank(body: JsonBody) -> JSONResponse:
        return JSONResponse(await service.rerank(parse_rerank(body, settings.embed_max_inputs)))

    return app
