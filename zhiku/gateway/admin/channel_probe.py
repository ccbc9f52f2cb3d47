"""Channel tests: one tiny real request through the channel's provider, timed.

On success the latency is recorded and an auto-disabled channel is switched back on; a manually
disabled one stays off. The scheduled test runs over auto-disabled channels only, so it costs nothing
while all is well.
"""

from __future__ import annotations

import time

from zhiku.gateway.admin.schemas import ChannelTestResult
from zhiku.gateway.domain import (
    AUTO_DISABLED,
    ENABLED,
    ENDPOINT_CHAT,
    ENDPOINT_EMBEDDINGS,
    WILDCARD_MODEL,
    ChannelInfo,
)
from zhiku.gateway.providers.base import Provider, UpstreamRequest
from zhiku.gateway.providers.failures import UpstreamFailure


def probe_model(channel: ChannelInfo, fallback: str) -> str:
    configured = channel.config.get("test_model")
    if isinstance(configured, str) and configured:
        return configured
    named = [m for m in channel.models if m != WILDCARD_MODEL]
    return named[0] if named else fallback


def probe_request(channel: ChannelInfo, provider: Provider, model: str, timeout: float) -> UpstreamRequest:
    upstream_model = channel.upstream_model(model)
    if ENDPOINT_CHAT in provider.endpoints:
        body = {"model": upstream_model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        return UpstreamRequest(endpoint=ENDPOINT_CHAT, body=body, stream=False, channel=channel, timeout=timeout)
    return UpstreamRequest(endpoint=ENDPOINT_EMBEDDINGS, body={"model": upstream_model, "input": ["hi"]},
                           stream=False, channel=channel, timeout=timeout)


async def probe_channel(channel: ChannelInfo, provider: Provider, fallback_model: str,
                   timeout: float) -> tuple[ChannelTestResult, UpstreamFailure | None]:
    # Test whatever the stored status is: a disabled channel must be testable to be re-enabled.
    probe = ChannelInfo(**{**channel.__dict__, "status": ENABLED})
    request = probe_request(probe, provider, probe_model(channel, fallback_model), timeout)
    started = time.perf_counter()
    try:
        await provider.send(request)
    except UpstreamFailure as exc:
        latency = int((time.perf_counter() - started) * 1000)
        return ChannelTestResult(id=channel.id, ok=False, latency_ms=latency, status=channel.status,
                                 message=exc.failure.message), exc
    latency = int((time.perf_counter() - started) * 1000)
    status = ENABLED if channel.status == AUTO_DISABLED else channel.status
    return ChannelTestResult(id=channel.id, ok=True, latency_ms=latency, status=status, message="ok"), None
