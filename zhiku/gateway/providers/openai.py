"""OpenAI and any OpenAI-compatible upstream (vLLM, OneAPI, DeepSeek, m3e servers, Jina rerank …).

Bytes pass through: the request as the client sent it (re-serialised only when the model was mapped
or stream options added), the answer as the upstream sent it. Base URL: a bare host
(``https://api.openai.com``, as OneAPI stores it) gets ``/v1``; a URL with a path
(``http://host:8000/v1``, FastGPT's ``OPENAI_BASE_URL`` form) is used as it is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from zhiku import sse
from zhiku.gateway.domain import ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK
from zhiku.gateway.providers.base import (
    ChannelFields,
    ProviderContext,
    UpstreamReply,
    UpstreamRequest,
    UpstreamStream,
    closer,
    parse_json_object,
    post,
    read_body,
    stream_chunks,
    url_join,
    usage_of,
)
from zhiku.gateway.providers.failures import UpstreamFailure, bad_response

# What a successful answer must contain, per endpoint, to be passed on.
_REQUIRED_FIELD = {ENDPOINT_CHAT: "choices", ENDPOINT_COMPLETIONS: "choices", ENDPOINT_EMBEDDINGS: "data",
                   ENDPOINT_RERANK: "results"}


def api_root(base_url: str) -> str:
    base = base_url.strip().rstrip("/") or "https://api.openai.com"
    return base + "/v1" if urlsplit(base).path in ("", "/") else base


class OpenAIProvider:
    type = "openai"
    # OneAPI's OpenAI and the OpenAI-compatible services (API2D, OpenRouter, Moonshot, DeepSeek, …)
    oneapi_types = frozenset({1, 2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 20, 25, 28, 29, 31, 32, 36, 39, 44, 45, 50})
    endpoints = frozenset({ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ENDPOINT_EMBEDDINGS, ENDPOINT_RERANK})
    channel_fields = ChannelFields(base_url_default="https://api.openai.com")

    def __init__(self, context: ProviderContext) -> None:
        self.http = context.http

    # ---- hooks Azure overrides --------------------------------------------------------------

    def url(self, request: UpstreamRequest) -> str:
        return url_join(api_root(request.channel.base_url), request.endpoint)

    def headers(self, request: UpstreamRequest) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if request.stream else "application/json"}
        if request.channel.key:
            headers["Authorization"] = f"Bearer {request.channel.key}"
        return headers

    def where(self, request: UpstreamRequest) -> str:
        return f"channel {request.channel.name!r} ({self.type})"

    # ---- the protocol -----------------------------------------------------------------------

    async def send(self, request: UpstreamRequest) -> UpstreamReply:
        where = self.where(request)
        response = await post(self.http, self.url(request), request.json_bytes(), self.headers(request),
                              request.timeout, where, stream=False)
        raw = await read_body(response, where, request.timeout)
        data = parse_json_object(raw, where)
        check_answer(data, request.endpoint, where)
        return UpstreamReply(body=raw, usage=usage_of(data.get("usage")))

    async def open_stream(self, request: UpstreamRequest) -> UpstreamStream:
        where = self.where(request)
        response = await post(self.http, self.url(request), request.json_bytes(), self.headers(request),
                              request.timeout, where, stream=True)
        if "text/event-stream" not in response.headers.get("content-type", ""):
            # Some upstreams ignore "stream" and answer one JSON body: turn it into events.
            data = parse_json_object(await read_body(response, where, request.timeout), where)
            check_answer(data, request.endpoint, where)
            return UpstreamStream(_aiter(completion_as_events(data)), _noop)
        return UpstreamStream(stream_chunks(response, where, request.timeout), closer(response))


def check_answer(data: dict[str, Any], endpoint: str, where: str) -> None:
    if isinstance(data.get("error"), dict):
        raise UpstreamFailure(bad_response(f"{where} answered 200 with an error: {data['error'].get('message')}"))
    field = _REQUIRED_FIELD.get(endpoint)
    if field and not isinstance(data.get(field), list):
        raise UpstreamFailure(bad_response(f"{where} answered JSON without {field!r}"))


def completion_as_events(data: dict[str, Any]) -> list[bytes]:
    """A whole chat (or text) completion as the events a stream would have carried."""
    head = {k: data.get(k) for k in ("id", "created", "model")}
    events: list[bytes] = []
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", 0)
        if "message" in choice:
            message = choice.get("message") or {}
            delta = {"role": message.get("role", "assistant"), "content": message.get("content") or ""}
            if message.get("tool_calls"):
                delta["tool_calls"] = message["tool_calls"]
            events.append(sse.encode({**head, "object": "chat.completion.chunk", "choices": [
                {"index": index, "delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}]}))
        else:
            events.append(sse.encode({**head, "object": "text_completion", "choices": [
                {"index": index, "text": choice.get("text") or "", "finish_reason": choice.get("finish_reason")}]}))
    if isinstance(data.get("usage"), dict):
        events.append(sse.encode({**head, "object": "chat.completion.chunk", "choices": [], "usage": data["usage"]}))
    events.append(sse.DONE_EVENT)
    return events


async def _aiter(items: list[bytes]):
    for item in items:
        yield item


async def _noop(finished: bool) -> None:
    return None

