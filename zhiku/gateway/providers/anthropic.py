"""Anthropic's Messages API (``POST /v1/messages``), translated to and from OpenAI's chat format.

System messages become the top-level ``system``; ``max_tokens`` is required there (the channel's
``config.max_tokens``, else 4096). The stream is named SSE events — ``message_start`` (input tokens),
``content_block_delta`` (text), ``message_delta`` (stop reason, output tokens), ``message_stop``,
``ping``, ``error`` — turned into OpenAI chunks. Errors are ``{"type": "error", "error": {"type", "message"}}``
(401 ``authentication_error``, 429 ``rate_limit_error``, 529 ``overloaded_error`` …).
Base URL: ``https://api.anthropic.com`` (``/v1/messages`` is appended unless the URL ends in ``/v1``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from zhiku import sse
from zhiku.chat_model import Usage
from zhiku.errors import UpstreamError, openai_body
from zhiku.gateway.domain import ENDPOINT_CHAT
from zhiku.gateway.providers.base import (
    ChannelFields,
    ConfigField,
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
)
from zhiku.gateway.providers.failures import UpstreamFailure, bad_response

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
         "pause_turn": "stop", "refusal": "content_filter"}


# ---- OpenAI → Anthropic -------------------------------------------------------------------------


def _content(content: Any) -> Any:
    if not isinstance(content, list):
        return content if isinstance(content, str) else ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            elif isinstance(url, str) and url:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def messages_request(body: dict[str, Any], stream: bool, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
            continue
        if role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                     "content": _text_of(message.get("content"))}
            messages.append({"role": "user", "content": [block]})
            continue
        content = _content(message.get("content"))
        if role == "assistant" and message.get("tool_calls"):
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else (
                content if isinstance(content, list) else [])
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
                               "input": arguments})
            content = blocks
        messages.append({"role": "assistant" if role == "assistant" else "user", "content": content})
    request: dict[str, Any] = {"model": body.get("model"), "messages": messages,
                               "max_tokens": body.get("max_tokens") or body.get("max_completion_tokens")
                               or default_max_tokens}
    if system:
        request["system"] = "\n\n".join(s for s in system if s)
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            request[key] = body[key]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        request["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                             "input_schema": t["function"].get("parameters") or {"type": "object"}}
                            for t in body["tools"] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    if stream:
        request["stream"] = True
    return request


# ---- Anthropic → OpenAI -------------------------------------------------------------------------


def usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("input_tokens") or 0) + int(raw.get("cache_read_input_tokens") or 0) \
        + int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=int(raw.get("output_tokens") or 0))


def chat_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in data.get("content") or [] if isinstance(b, dict) and b.get("type") == "text")
    message: dict[str, Any] = {"role": "assistant", "content": text}
    calls = [{"id": b.get("id"), "type": "function",
              "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
             for b in data.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_use"]
    if calls:
        message["tool_calls"] = calls
    result: dict[str, Any] = {"id": data.get("id") or "", "object": "chat.completion", "created": int(time.time()),
                              "model": data.get("model") or model,
                              "choices": [{"index": 0, "message": message,
                                           "finish_reason": _STOP.get(str(data.get("stop_reason")), "stop")}]}
    usage = usage_from(data.get("usage"))
    if usage is not None:
        result["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.total_tokens}
    return result


class EventTranslator:
    """Anthropic stream events in, OpenAI chunks out."""

    def __init__(self, model: str) -> None:
        self.head: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()),
                                     "model": model}
        self._splitter = sse.EventSplitter()
        self._prompt_tokens = 0
        self._tool_index = -1

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse.encode({**self.head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def feed(self, chunk: bytes) -> list[bytes]:
        return [e for block in self._splitter.feed(chunk) for e in self.event(block)]

    def finish(self) -> list[bytes]:
        rest = self._splitter.rest()
        return self.event(rest) if rest else []

    def event(self, block: bytes) -> list[bytes]:
        data = sse.event_data(block)
        if data is None:
            return []
        try:
            event = json.loads(data)
        except ValueError:
            bad = UpstreamError(f"Anthropic sent an event that is not JSON: {data[:200]!r}",
                                code="upstream_bad_response")
            return [sse.encode(openai_body(bad, kind="upstream_error"))]
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start":
            message = event.get("message") or {}
            self.head["id"] = message.get("id", "")
            self.head["model"] = message.get("model") or self.head["model"]
            self._prompt_tokens = (usage_from(message.get("usage")) or Usage()).prompt_tokens
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block_data = event.get("content_block") or {}
            if block_data.get("type") == "tool_use":
                self._tool_index += 1
                return [self._chunk({"tool_calls": [{"index": self._tool_index, "id": block_data.get("id"),
                                                     "type": "function", "function": {"name": block_data.get("name"),
                                                                                      "arguments": ""}}]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                return [self._chunk({"tool_calls": [{"index": self._tool_index,
                                                     "function": {"arguments": delta.get("partial_json", "")}}]})]
            return []
        if kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason")
            out = usage_from(event.get("usage")) or Usage()
            usage = {"prompt_tokens": self._prompt_tokens, "completion_tokens": out.completion_tokens,
                     "total_tokens": self._prompt_tokens + out.completion_tokens}
            return [self._chunk({}, _STOP.get(str(stop), "stop")),
                    sse.encode({**self.head, "choices": [], "usage": usage})]
        if kind == "message_stop":
            return [sse.DONE_EVENT]
        if kind == "error":
            error = event.get("error") or {}
            return [sse.encode(openai_body(UpstreamError(str(error.get("message", "error"))),
                                           kind=str(error.get("type") or "upstream_error")))]
        return []  # ping, content_block_stop, unknown future events


# ---- the provider -------------------------------------------------------------------------------


def messages_url(base_url: str) -> str:
    base = (base_url or "https://api.anthropic.com").rstrip("/")
    return base + ("/messages" if base.endswith("/v1") else "/v1/messages")


class AnthropicProvider:
    type = "anthropic"
    oneapi_types = frozenset({14})  # OneAPI's Anthropic Claude
    endpoints = frozenset({ENDPOINT_CHAT})
    channel_fields = ChannelFields(base_url_default="https://api.anthropic.com",
                                   config=(ConfigField("api_version", API_VERSION),
                                           ConfigField("max_tokens", str(DEFAULT_MAX_TOKENS), integer=True)))

    def __init__(self, context: ProviderContext) -> None:
        self.http = context.http

    def _headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version":
                   str(request.channel.config.get("api_version") or API_VERSION)}
        if request.channel.key:
            headers["x-api-key"] = request.channel.key
        return headers

    def _body(self, request: UpstreamRequest, stream: bool) -> bytes:
        default = int(request.channel.config.get("max_tokens") or DEFAULT_MAX_TOKENS)
        return dumps(messages_request(request.body, stream, default))

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        where = f"channel {request.channel.name!r} (anthropic)"
        response = await post(self.http, messages_url(request.channel.base_url), self._body(request, False),
                              self._headers(request), request.timeout, where, stream=False)
        data = parse_json_object(await read_body(response, where, request.timeout), where)
        if data.get("type") == "error" or not isinstance(data.get("content"), list):
            raise UpstreamFailure(bad_response(f"{where} answered without message content"))
        return UpstreamReply(body=dumps(chat_response(data, str(request.body.get("model")))),
                             usage=usage_from(data.get("usage")))

    async def open_stream(self, request: UpstreamRequest) -> UpstreamStream:
        where = f"channel {request.channel.name!r} (anthropic)"
        response = await post(self.http, messages_url(request.channel.base_url), self._body(request, True),
                              self._headers(request), request.timeout, where, stream=True)
        translator = EventTranslator(str(request.body.get("model")))

        async def events() -> AsyncIterator[bytes]:
            async for chunk in stream_chunks(response, where, request.timeout):
                for event in translator.feed(chunk):
                    yield event
            for event in translator.finish():
                yield event

        return UpstreamStream(events(), closer(response))
