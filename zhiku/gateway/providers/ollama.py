"""Ollama's native API (``/api/chat``, ``/api/embed``), translated to and from OpenAI's format.

Ollama streams newline-delimited JSON objects (``{"message": {"content": …}, "done": false}`` … then a
last one with ``done: true``, ``done_reason`` and the token counts ``prompt_eval_count`` /
``eval_count``); errors are ``{"error": "…"}`` with an HTTP status, or such a line mid-stream.
Base URL: the server root, e.g. ``http://localhost:11434``.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from zhiku import sse
from zhiku.chat_model import Usage
from zhiku.errors import UpstreamError, openai_body
from zhiku.gateway.domain import ENDPOINT_CHAT, ENDPOINT_EMBEDDINGS
from zhiku.gateway.providers.base import (
    ChannelFields,
    ProviderContext,
    UpstreamReply,
    UpstreamRequest,
    UpstreamStream,
    closer,
    dumps,
    parse_json_object,
    post,
    read_body,
    stream_chunks,
    url_join,
)
from zhiku.gateway.providers.failures import UpstreamFailure, bad_response

# OpenAI sampling parameters and their Ollama ``options`` names.
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "num_predict",
            "max_completion_tokens": "num_predict", "seed": "seed", "frequency_penalty": "frequency_penalty",
            "presence_penalty": "presence_penalty", "stop": "stop"}
_FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


# ---- OpenAI → Ollama ----------------------------------------------------------------------------


def chat_request(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    messages = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        out: dict[str, Any] = {"role": message.get("role", "user")}
        content = message.get("content")
        if isinstance(content, list):
            texts, images = [], []
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    if isinstance(url, str) and url.startswith("data:") and "," in url:
                        images.append(url.split(",", 1)[1])  # Ollama takes bare base64
            out["content"] = "".join(texts)
            if images:
                out["images"] = images
        else:
            out["content"] = content or ""
        if message.get("tool_calls"):
            out["tool_calls"] = [{"function": {"name": c.get("function", {}).get("name"),
                                               "arguments": _json_or_text(c.get("function", {}).get("arguments"))}}
                                 for c in message["tool_calls"] if isinstance(c, dict)]
        messages.append(out)
    request: dict[str, Any] = {"model": body.get("model"), "messages": messages, "stream": stream}
    options = {_OPTIONS[k]: v for k, v in body.items() if k in _OPTIONS and v is not None}
    if options:
        request["options"] = options
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            request["format"] = "json"
        elif response_format.get("type") == "json_schema":
            request["format"] = (response_format.get("json_schema") or {}).get("schema", "json")
    if body.get("tools"):
        request["tools"] = body["tools"]
    return request


def embed_request(body: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"model": body.get("model"), "input": body.get("input")}
    if body.get("dimensions"):
        request["dimensions"] = body["dimensions"]
    return request


# ---- Ollama → OpenAI ----------------------------------------------------------------------------


def usage_from(data: dict[str, Any]) -> Usage | None:
    if "prompt_eval_count" not in data and "eval_count" not in data:
        return None
    return Usage(prompt_tokens=int(data.get("prompt_eval_count") or 0),
                 completion_tokens=int(data.get("eval_count") or 0))


def _usage_dict(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    calls = message.get("tool_calls")
    if not calls:
        return None
    return [{"id": f"call_{i}", "type": "function",
             "function": {"name": (c.get("function") or {}).get("name"),
                          "arguments": json.dumps((c.get("function") or {}).get("arguments") or {})}}
            for i, c in enumerate(calls) if isinstance(c, dict)]


def chat_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    out_message: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    calls = _tool_calls(message)
    if calls:
        out_message["tool_calls"] = calls
    finish = "tool_calls" if calls else _FINISH.get(str(data.get("done_reason") or "stop"), "stop")
    result: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
                              "created": int(time.time()), "model": data.get("model") or model,
                              "choices": [{"index": 0, "message": out_message, "finish_reason": finish}]}
    usage = _usage_dict(usage_from(data))
    if usage:
        result["usage"] = usage
    return result


class ChunkTranslator:
    """Ollama NDJSON lines in, OpenAI ``chat.completion.chunk`` events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.head = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model}
        self._buffer = b""
        self._started = False
        self.done = False

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        return sse.encode({**self.head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()
        return [event for line in lines if line.strip() for event in self.line(line)]

    def finish(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return self.line(rest) if rest.strip() else []

    def line(self, line: bytes) -> list[bytes]:
        try:
            data = json.loads(line)
        except ValueError:
            bad = UpstreamError(f"Ollama sent a line that is not JSON: {line[:200]!r}",
                                code="upstream_bad_response")
            return [sse.encode(openai_body(bad, kind="upstream_error"))]
        if not isinstance(data, dict):
            return []
        if data.get("error"):
            return [sse.encode(openai_body(UpstreamError(str(data["error"])), kind="upstream_error"))]
        events: list[bytes] = []
        if not self._started:
            self._started = True
            events.append(self._chunk({"role": "assistant", "content": ""}, None))
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        if message.get("content"):
            events.append(self._chunk({"content": message["content"]}, None))
        calls = _tool_calls(message)
        if calls:
            events.append(self._chunk({"tool_calls": [{**c, "index": i} for i, c in enumerate(calls)]}, None))
        if data.get("done"):
            self.done = True
            finish = "tool_calls" if calls else _FINISH.get(str(data.get("done_reason") or "stop"), "stop")
            events.append(self._chunk({}, finish))
            usage = _usage_dict(usage_from(data))
            if usage:
                events.append(sse.encode({**self.head, "choices": [], "usage": usage}))
            events.append(sse.DONE_EVENT)
        return events


def embeddings_response(data: dict[str, Any], model: str, as_base64: bool) -> dict[str, Any]:
    vectors = data.get("embeddings")
    if not isinstance(vectors, list):
        raise UpstreamFailure(bad_response("Ollama answered /api/embed without 'embeddings'"))
    items = []
    for index, vector in enumerate(vectors):
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        items.append({"object": "embedding", "index": index, "embedding": value})
    tokens = int(data.get("prompt_eval_count") or 0)
    return {"object": "list", "data": items, "model": data.get("model") or model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _json_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# ---- the provider -------------------------------------------------------------------------------


class OllamaProvider:
    type = "ollama"
    oneapi_types = frozenset({30})  # OneAPI's Ollama
    endpoints = frozenset({ENDPOINT_CHAT, ENDPOINT_EMBEDDINGS})
    channel_fields = ChannelFields(base_url_default="http://localhost:11434")

    def __init__(self, context: ProviderContext) -> None:
        self.http = context.http

    def _headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if request.channel.key:  # Ollama behind a proxy that checks a bearer key
            headers["Authorization"] = f"Bearer {request.channel.key}"
        return headers

    def _base(self, request: UpstreamRequest) -> str:
        return request.channel.base_url or "http://localhost:11434"

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        where = f"channel {request.channel.name!r} (ollama)"
        model = str(request.body.get("model"))
        if request.endpoint == ENDPOINT_EMBEDDINGS:
            response = await post(self.http, url_join(self._base(request), "/api/embed"),
                                  dumps(embed_request(request.body)), self._headers(request), request.timeout,
                                  where, stream=False)
            data = parse_json_object(await read_body(response, where, request.timeout), where)
            result = embeddings_response(data, model, request.body.get("encoding_format") == "base64")
            return UpstreamReply(body=dumps(result), usage=usage_from(data))
        response = await post(self.http, url_join(self._base(request), "/api/chat"),
                              dumps(chat_request(request.body, False)), self._headers(request), request.timeout,
                              where, stream=False)
        data = parse_json_object(await read_body(response, where, request.timeout), where)
        if data.get("error"):
            raise UpstreamFailure(bad_response(f"{where} answered 200 with an error: {data['error']}"))
        if not isinstance(data.get("message"), dict):
            raise UpstreamFailure(bad_response(f"{where} answered JSON without 'message'"))
        return UpstreamReply(body=dumps(chat_response(data, model)), usage=usage_from(data))

    async def open_stream(self, request: UpstreamRequest) -> UpstreamStream:
        where = f"channel {request.channel.name!r} (ollama)"
        response = await post(self.http, url_join(self._base(request), "/api/chat"),
                              dumps(chat_request(request.body, True)), self._headers(request), request.timeout,
                              where, stream=True)
        translator = ChunkTranslator(str(request.body.get("model")))

        async def events() -> AsyncIterator[bytes]:
            async for chunk in stream_chunks(response, where, request.timeout):
                for event in translator.feed(chunk):
                    yield event
            for event in translator.finish():
                yield event

        return UpstreamStream(events(), closer(response))
