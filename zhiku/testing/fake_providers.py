"""Fake Ollama and Anthropic servers, speaking each provider's real wire format, errors included.

Built on :class:`~zhiku.testing.fake_upstream.FakeUpstream`: the same lifecycle, scripting
(``reply``, ``fail``, ``hang``, ``malformed``, ``cut_stream``, ``omit_usage`` …) and request recording;
only the routes and the shapes of answers differ::

    with FakeOllama() as ollama:            # POST /api/chat (NDJSON stream), POST /api/embed, GET /api/tags
        ollama.reply("Hi.")
    with FakeAnthropic(api_key="k") as claude:  # POST /v1/messages (named SSE events)
        claude.fail(529)                     # {"type": "error", "error": {"type": "overloaded_error", …}}
    with FakeAzure(api_key="k") as azure:   # /openai/deployments/{d}/chat/completions?api-version=…
        azure.reply("Hi.")                   # OpenAI-shaped answers, Azure's URL, header and error codes
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from zhiku.testing.fake_upstream import (
    FakeUpstream,
    Script,
    count_tokens,
    default_answer,
    fake_embedding,
    message_text,
)

_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                          500: "api_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str | None = None) -> dict[str, Any]:
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message or f"fake anthropic error {status}"}}


def ollama_error(status: int, message: str | None = None) -> dict[str, Any]:
    return {"error": message or f"fake ollama error {status}"}


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i: i + size] for i in range(0, len(text), size)]


class _RawStreamer:
    """Sends prepared body pieces by hand, so a scripted cut can leave the response unfinished."""

    async def send_pieces(self, pieces: list[bytes], script: Script, send: Send, content_type: bytes) -> None:
        cut = script.cut_after_chunks is not None
        if cut:
            pieces = pieces[: 1 + (script.cut_after_chunks or 0)]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")]})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            if script.chunk_delay_s > 0:
                await asyncio.sleep(script.chunk_delay_s)
        if not (cut and script.drop_connection):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class FakeOllama(FakeUpstream, _RawStreamer):
    """Ollama's native API: ``/api/chat``, ``/api/embed``, ``/api/tags``; errors ``{"error": "…"}``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _respond(self, method: str, path: str, headers: Any, payload: Any, body: bytes,
                       send: Send) -> Response | None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(ollama_error(401, "unauthorized"), status_code=401)
        if method == "GET" and path == "/api/tags":
            return JSONResponse({"models": [{"name": m, "model": m} for m in self.models]})
        if path not in ("/api/chat", "/api/embed"):
            return Response("404 page not found", status_code=404, media_type="text/plain")
        if not isinstance(payload, dict) or not payload.get("model"):
            return JSONResponse(ollama_error(400, "model is required"), status_code=400)
        script = self._next_script()
        refused = await self._scripted_refusal(script, ollama_error, hung=(504, "fake ollama hung"))
        if refused is not None:
            return refused
        if path == "/api/embed":
            return self._embed(payload, script)
        return await self._chat(payload, script, send)

    def _embed(self, payload: dict[str, Any], script: Script) -> Response:
        if script.malformed:
            return Response('{"embeddings": [', media_type="application/json")
        inputs = payload.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        result: dict[str, Any] = {"model": payload["model"],
                                  "embeddings": [fake_embedding(t, self.embedding_dim) for t in texts],
                                  "total_duration": 1000, "load_duration": 10}
        if not script.omit_usage:
            result["prompt_eval_count"] = sum(count_tokens(t) for t in texts)
        return JSONResponse(result)

    async def _chat(self, payload: dict[str, Any], script: Script, send: Send) -> Response | None:
        messages = payload.get("messages") or []
        prompt = "".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
        text = default_answer(messages) if script.content is None else script.content
        created = "2025-01-01T00:00:00.000000Z"
        final: dict[str, Any] = {"model": payload["model"], "created_at": created,
                                 "message": {"role": "assistant", "content": ""}, "done": True,
                                 "done_reason": "length" if script.finish_reason == "length" else "stop",
                                 "total_duration": 1000}
        if not script.omit_usage:
            final["prompt_eval_count"] = count_tokens(prompt)
            final["eval_count"] = count_tokens(text)
        if payload.get("stream", True):  # Ollama streams unless told not to
            lines = [{"model": payload["model"], "created_at": created,
                      "message": {"role": "assistant", "content": piece}, "done": False}
                     for piece in _pieces(text, script.chunk_size)]
            pieces = [json.dumps(line).encode() + b"\n" for line in lines + [final]]
            if script.malformed:
                pieces.insert(1, b'{"message": {"content": \n')
            await self.send_pieces(pieces, script, send, b"application/x-ndjson")
            return None
        if script.malformed:
            return Response('{"model": "x", "message": {', media_type="application/json")
        final["message"] = {"role": "assistant", "content": text}
        return JSONResponse(final)


class FakeAnthropic(FakeUpstream, _RawStreamer):
    """Anthropic's Messages API: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _respond(self, method: str, path: str, headers: Any, payload: Any, body: bytes,
                       send: Send) -> Response | None:
        if self.api_key is not None and headers.get("x-api-key") != self.api_key:
            return JSONResponse(anthropic_error(401, "invalid x-api-key"), status_code=401)
        if path != "/v1/messages" or method != "POST":
            return JSONResponse(anthropic_error(404, f"no route {method} {path}"), status_code=404)
        if not headers.get("anthropic-version"):
            return JSONResponse(anthropic_error(400, "anthropic-version header is required"), status_code=400)
        if not isinstance(payload, dict) or not payload.get("model") or not payload.get("max_tokens"):
            return JSONResponse(anthropic_error(400, "model and max_tokens are required"), status_code=400)
        if any(m.get("role") not in ("user", "assistant") for m in payload.get("messages") or []):
            return JSONResponse(anthropic_error(400, "messages: roles must be user or assistant"), status_code=400)
        script = self._next_script()
        refused = await self._scripted_refusal(script, anthropic_error, hung=(500, "fake anthropic hung"))
        if refused is not None:
            return refused
        messages = payload.get("messages") or []
        prompt = str(payload.get("system") or "") + "".join(message_text(m.get("content")) for m in messages)
        text = default_answer(messages) if script.content is None else script.content
        stop = "max_tokens" if script.finish_reason == "length" else "end_turn"
        message_id = f"msg_fake_{next(self._ids)}"
        usage = {"input_tokens": count_tokens(prompt), "output_tokens": count_tokens(text)}
        if payload.get("stream"):
            return await self._stream_events(payload, script, send, message_id, text, stop, usage)
        if script.malformed:
            return Response('{"id": "msg_broken", "content": [', media_type="application/json")
        return JSONResponse({"id": message_id, "type": "message", "role": "assistant", "model": payload["model"],
                             "content": [{"type": "text", "text": text}], "stop_reason": stop,
                             "stop_sequence": None, "usage": usage})

    async def _stream_events(self, payload: dict[str, Any], script: Script, send: Send, message_id: str,
                             text: str, stop: str, usage: dict[str, int]) -> None:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        start_usage = {"input_tokens": usage["input_tokens"] if not script.omit_usage else 0, "output_tokens": 1}
        pieces = [event("message_start", {"type": "message_start", "message": {
                      "id": message_id, "type": "message", "role": "assistant", "model": payload["model"],
                      "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
                  event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}}),
                  event("ping", {"type": "ping"})]
        pieces += [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": piece}})
                   for piece in _pieces(text, script.chunk_size)]
        end_usage = {"output_tokens": usage["output_tokens"]} if not script.omit_usage else {}
        pieces += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": end_usage}),
                   event("message_stop", {"type": "message_stop"})]
        if script.malformed:
            pieces.insert(3, b"event: content_block_delta\ndata: {\"type\": \n\n")
        if script.cut_after_chunks is not None:
            # Count content deltas the way the OpenAI fake counts chunks: the preamble is always sent.
            script = dataclasses.replace(script, cut_after_chunks=script.cut_after_chunks + 2)
        await self.send_pieces(pieces, script, send, b"text/event-stream; charset=utf-8")



_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")
_azure_query: contextvars.ContextVar[dict[str, list[str]] | None] = contextvars.ContextVar("azure_query",
                                                                                  default=None)


def azure_error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": str(status), "message": message}}


class FakeAzure(FakeUpstream):
    """Azure OpenAI: the deployment in the path, ``api-version`` required, the key in ``api-key``."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _azure_query.set(parse_qs(scope.get("query_string", b"").decode()))
        await super().__call__(scope, receive, send)

    async def _respond(self, method: str, path: str, headers: Any, payload: Any, body: bytes,
                       send: Send) -> Response | None:
        match = _AZURE_PATH.match(path)
        if match is None or "api-version" not in (_azure_query.get() or {}):
            return JSONResponse(azure_error(404, "Resource not found"), status_code=404)
        if self.api_key is not None and headers.get("api-key") != self.api_key:
            return JSONResponse(azure_error(401, "Access denied due to invalid subscription key or wrong API "
                                                 "endpoint. Make sure to provide a valid key for an active "
                                                 "subscription and use a correct regional API endpoint for "
                                                 "your resource."), status_code=401)
        if isinstance(payload, dict):
            payload = {**payload, "model": match.group(1)}  # Azure answers with the deployment's model
        auth = {"authorization": f"Bearer {self.api_key}"} if self.api_key is not None else {}
        return await super()._respond(method, f"/v1/{match.group(2)}", auth, payload, body, send)
