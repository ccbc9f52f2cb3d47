"""The platform's ChatModel, served by the gateway in process: the internal token, no key, no HTTP hop.

Errors keep the meaning ``OpenAIChatModel`` gives them (``zhiku.apps.openai_chat``): the upstream's
status and code when it refused, ``upstream_unreachable`` when it could not be reached, and
``upstream_stream_cut`` raised after the deltas already received when a stream stops short.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from zhiku.chat_model import ChatDelta, ChatMessage, ChatParams, ChatResult, Usage, openai_chat_body
from zhiku.errors import UpstreamError
from zhiku.gateway.domain import ENDPOINT_CHAT
from zhiku.gateway.providers import sse
from zhiku.gateway.providers.base import usage_of
from zhiku.gateway.runtime import Gateway


class GatewayChatModel:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def complete(self, messages: Sequence[ChatMessage], params: ChatParams) -> ChatResult:
        result = await self.gateway.relay_internal(ENDPOINT_CHAT, openai_chat_body(messages, params, stream=False))
        data = json.loads(result.body or b"{}")
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        return ChatResult(content=message.get("content") or "", model=data.get("model") or params.model,
                          finish_reason=choice.get("finish_reason") or "stop", usage=usage_of(data.get("usage")))

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[ChatDelta]:
        result = await self.gateway.relay_internal(ENDPOINT_CHAT, openai_chat_body(messages, params, stream=True))
        assert result.stream is not None
        events = result.stream
        splitter = sse.EventSplitter()
        finish: str | None = None
        usage: Usage | None = None
        try:
            async for chunk in events:
                for block in splitter.feed(chunk):
                    data = sse.event_data(block)
                    if data is None or data.strip() == sse.DONE:
                        continue
                    event = json.loads(data)
                    if isinstance(event.get("error"), dict):
                        error = event["error"]
                        raise UpstreamError(str(error.get("message")), status=502,
                                            code=str(error.get("code") or "upstream_error"))
                    usage = usage_of(event.get("usage")) or usage
                    for choice in event.get("choices") or []:
                        if choice.get("index", 0) != 0:
                            continue
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield ChatDelta(content=content)
                        finish = choice.get("finish_reason") or finish
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        yield ChatDelta(finish_reason=finish or "stop", usage=usage)

    async def aclose(self) -> None:
        """The gateway belongs to the platform, which closes it."""
