"""The platform's chat models, on the gateway's machinery: one upstream client for every model call.

:class:`GatewayChatModel` goes through the in-process relay (the internal token, no key, no HTTP hop):
channel choice, failover, quota and logs as for any client. :class:`ChannelChatModel` calls one
upstream through its provider adapter directly, for a platform run without its gateway
(``ZHIKU_GATEWAY_ENABLED=false``). Both return typed deltas; neither encodes SSE for itself.

Errors have one meaning for both: the upstream's status and code when it refused (``Retry-After``
kept in the error's headers, its body in ``detail``), ``upstream_unreachable`` / ``upstream_timeout``
when it could not be reached, ``upstream_bad_response`` for an answer that is not a completion, and
``upstream_stream_cut`` raised after the deltas already received when a stream stops short.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from zhiku.chat_model import ChatDelta, ChatMessage, ChatParams, ChatResult, openai_chat_body, tool_calls_of
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.errors import UpstreamError
from zhiku.gateway.domain import ENDPOINT_CHAT, ChannelInfo
from zhiku.gateway.providers.base import (
    Provider,
    ProviderContext,
    UpstreamRequest,
    aclose_events,
    new_http_session,
    usage_of,
)
from zhiku.gateway.providers.failures import UpstreamFailure, bad_response
from zhiku.gateway.providers.openai import OpenAIProvider
from zhiku.gateway.providers.upstream_http import UpstreamClient
from zhiku.gateway.relay.meter import StreamMeter
from zhiku.gateway.runtime import Gateway


class GatewayChatModel:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def complete(self, messages: Sequence[ChatMessage], params: ChatParams) -> ChatResult:
        result = await self.gateway.relay_internal(ENDPOINT_CHAT, openai_chat_body(messages, params, stream=False))
        return completion_result(json.loads(result.body or b"{}"), params, "the gateway")

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[ChatDelta]:
        result = await self.gateway.relay_internal(ENDPOINT_CHAT, openai_chat_body(messages, params, stream=True))
        assert result.deltas is not None
        try:
            async for delta in result.deltas:
                yield delta
        finally:
            await aclose_events(result.deltas)


class ChannelChatModel:
    """One OpenAI-compatible upstream (``OPENAI_BASE_URL``), called through its provider adapter."""

    def __init__(self, provider: Provider, channel: ChannelInfo, http: UpstreamClient | None = None,
                 where: str | None = None) -> None:
        self.provider = provider
        self.channel = channel
        self.where = where or f"channel {channel.name!r}"  # how messages name the upstream
        self._http = http  # closed by aclose() when this model made it

    @classmethod
    def for_base_url(cls, base_url: str, api_key: str = "", *, timeout: float = 120.0) -> ChannelChatModel:
        """``base_url`` is the API root, ``/v1`` included (FastGPT's ``OPENAI_BASE_URL``)."""
        http = new_http_session()
        provider = _BaseUrlProvider(ProviderContext(http=http, embedders=_no_embedders))
        channel = ChannelInfo(id=0, type=OpenAIProvider.type, name=base_url.rstrip("/"),
                              base_url=base_url.rstrip("/"), models=("*",), key=api_key,
                              timeout_seconds=timeout)
        return cls(provider, channel, http, where=f"model upstream {channel.base_url}")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def __aenter__(self) -> ChannelChatModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _request(self, messages: Sequence[ChatMessage], params: ChatParams, *,
                 stream: bool) -> UpstreamRequest:
        return UpstreamRequest(endpoint=ENDPOINT_CHAT, body=openai_chat_body(messages, params, stream=stream),
                               stream=stream, channel=self.channel, timeout=self.channel.timeout_seconds)

    async def complete(self, messages: Sequence[ChatMessage], params: ChatParams) -> ChatResult:
        try:
            reply = await self.provider.send(self._request(messages, params, stream=False))
        except UpstreamFailure as exc:
            raise exc.failure.to_error() from None
        return completion_result(json.loads(reply.body), params, self.where)

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[ChatDelta]:
        try:
            upstream = await self.provider.open_stream(self._request(messages, params, stream=True))
        except UpstreamFailure as exc:
            raise exc.failure.to_error() from None
        meter = StreamMeter(strip_usage_chunk=True, typed=True)
        where = self.where
        try:
            try:
                async for chunk in upstream:
                    for delta in meter.feed(chunk):
                        yield delta
                    if meter.done or meter.broken:
                        break
                for delta in meter.finish():
                    yield delta
            except UpstreamFailure as exc:
                if not meter.finished:  # a drop after the finish reason loses nothing
                    raise _cut(f"{exc.failure.message} after {meter.forwarded} chunks") from None
            if meter.broken:
                what = (meter.error.get("message") if meter.error
                        else f"an event that is not JSON: {meter.malformed!r}")
                raise bad_response(f"{where} sent {what}").to_error()
            if not meter.complete:
                raise _cut(f"{where} ended the stream after {meter.forwarded} chunks without [DONE]")
            yield ChatDelta(finish_reason=meter.finish_reason or "stop", usage=meter.usage)
        finally:
            await upstream.aclose(finished=meter.complete)


def completion_result(data: Any, params: ChatParams, where: str) -> ChatResult:
    """A whole chat completion, checked: ``upstream_bad_response`` when it is not one."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
        raise bad_response(f"{where} returned JSON without choices[0].message").to_error()
    choice = choices[0]
    return ChatResult(content=choice["message"].get("content") or "", model=data.get("model") or params.model,
                      finish_reason=choice.get("finish_reason") or "stop", usage=usage_of(data.get("usage")),
                      tool_calls=tool_calls_of(choice["message"].get("tool_calls")))


class _BaseUrlProvider(OpenAIProvider):
    """Names the upstream by its URL in messages (there is no channel to name), as the model does."""

    def where(self, request: UpstreamRequest) -> str:
        return f"model upstream {request.channel.base_url}"


def _no_embedders() -> EmbedderRegistry:
    raise AssertionError("a chat channel embeds nothing")


def _cut(what: str) -> UpstreamError:
    return UpstreamError(f"the upstream stream was cut short: {what}", status=502, code="upstream_stream_cut")
