"""Zhiku's own embedding engine, in process: ``/v1/embeddings`` and a similarity ``/v1/rerank``.

The channel's upstream model names an embedder in the platform's ``EmbedderRegistry``; no HTTP, the
work runs in a thread so the event loop stays free. Usage is always reported (counted with the
model's own tokenizer), unlike OneAPI's m3e channels that bill embeddings as zero.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import TYPE_CHECKING, Any

from zhiku.chat_model import Usage
from zhiku.errors import ZhikuError
from zhiku.gateway.domain import ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK
from zhiku.gateway.providers.base import (
    ChannelFields,
    ProviderContext,
    UpstreamReply,
    UpstreamRequest,
    UpstreamStream,
    dumps,
)
from zhiku.gateway.providers.failures import Failure, UpstreamFailure

if TYPE_CHECKING:
    import numpy as np

    from zhiku.embedding.base import Embedder


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UpstreamFailure(Failure(status=400, code="invalid_input",
                                  message="the local embedder takes a string or a list of strings as input"))


def embeddings_response(vectors: np.ndarray, model: str, tokens: int, as_base64: bool,
                        dimensions: int | None) -> dict[str, Any]:
    import numpy as np  # here: a CLI that lists channel types loads no numpy

    data = []
    for index, vector in enumerate(vectors):
        if dimensions and 0 < dimensions < vector.shape[0]:  # Matryoshka-style cut, renormalised
            vector = vector[:dimensions]
            vector = vector / (np.linalg.norm(vector) or 1.0)
        vector = np.asarray(vector, dtype="<f4")
        value: Any = base64.b64encode(vector.tobytes()).decode() if as_base64 else vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def rerank_response(scores: list[float], documents: list[str], model: str, top_n: int | None,
                    return_documents: bool, tokens: int) -> dict[str, Any]:
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    if top_n:
        order = order[:top_n]
    results = []
    for index in order:
        item: dict[str, Any] = {"index": index, "relevance_score": round(float(scores[index]), 6)}
        if return_documents:
            item["document"] = {"text": documents[index]}
        results.append(item)
    return {"id": f"rerank-{int(time.time() * 1000)}", "model": model, "results": results,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class LocalProvider:
    type = "local"
    oneapi_types = frozenset[int]()  # Zhiku's own: no OneAPI type
    endpoints = frozenset({ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK})
    channel_fields = ChannelFields(uses_key=False)  # models are the names of the configured embedders

    def __init__(self, context: ProviderContext) -> None:
        self._registry = context.embedders

    def _embedder(self, model: str) -> Embedder:
        try:
            return self._registry().get(model)
        except ZhikuError as exc:
            raise UpstreamFailure(Failure(status=404, code="model_not_found", message=exc.message)) from None

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        model = str(request.body.get("model"))
        embedder = self._embedder(model)
        if request.endpoint == ENDPOINT_RERANK:
            query = str(request.body.get("query") or "")
            documents = [d.get("text", "") if isinstance(d, dict) else str(d)
                         for d in request.body.get("documents") or []]

            def work_rerank() -> tuple[list[float], int]:
                q = embedder.embed([query], kind="query")
                import numpy as np

                d = embedder.embed(documents, kind="passage") if documents else np.zeros((0, embedder.dim))
                tokens = sum(embedder.count_tokens(t) for t in [query, *documents])
                return [float(s) for s in (d @ q[0])], tokens

            scores, tokens = await asyncio.to_thread(work_rerank)
            result = rerank_response(scores, documents, model, request.body.get("top_n"),
                                     bool(request.body.get("return_documents")), tokens)
            return UpstreamReply(body=dumps(result), usage=Usage(prompt_tokens=tokens))
        texts = _texts(request.body.get("input"))
        kind = "query" if request.body.get("input_type") == "query" else "passage"

        from zhiku.embedding.service import embed_texts

        vectors, tokens = await asyncio.to_thread(embed_texts, embedder, texts, kind)
        result = embeddings_response(vectors, model, tokens, request.body.get("encoding_format") == "base64",
                                     request.body.get("dimensions"))
        return UpstreamReply(body=dumps(result), usage=Usage(prompt_tokens=tokens))

    async def open_stream(self, request: UpstreamRequest) -> UpstreamStream:
        raise UpstreamFailure(Failure(status=400, code="stream_not_supported",
                                      message="the local embedder does not stream"))
