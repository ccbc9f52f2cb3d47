"""The relay: admission, channel choice with failover, the upstream call, billing and the log row.

Nothing here touches the database: tokens, users and channels come from the in-memory snapshot, quota
and counters go to the ledger, which writes in batches. A request that fails on a channel with a 429,
a 5xx, a timeout, a connection error or a malformed answer moves to another channel — never one that
already failed for it — until the retry count is spent; once a byte was streamed to the client it
stays on its channel.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from datetime import UTC, datetime
from typing import Any, Protocol

from zhiku import sse
from zhiku.chat_model import ChatDelta, Usage
from zhiku.errors import NotFound, RateLimited, UpstreamError, openai_body
from zhiku.gateway.domain import ENDPOINT_CHAT, ENDPOINT_COMPLETIONS, ChannelInfo, TokenInfo, UserInfo
from zhiku.gateway.providers.base import Provider, UpstreamRequest, UpstreamStream
from zhiku.gateway.providers.failures import Failure, UpstreamFailure, bad_response
from zhiku.gateway.relay.choice import choose_channel, cooldown_left
from zhiku.gateway.relay.ledger import Ledger, Reservation
from zhiku.gateway.relay.limits import TokenLimiter, check_client, check_model, check_token
from zhiku.gateway.relay.meter import StreamMeter
from zhiku.gateway.relay.pricing import estimate_prompt_tokens, quota_for
from zhiku.gateway.relay.snapshot import Snapshot
from zhiku.gateway.relay.usage_count import completion_text, counted_usage

log = logging.getLogger(__name__)
# Request ids: random per process, then a counter (unique without a system call per request).
_ID_PREFIX = uuid.uuid4().hex[:12]
_ID_COUNTER = itertools.count(1)


class RelayHost(Protocol):
    """What the relay needs from the running gateway."""

    snapshot: Snapshot
    ledger: Ledger
    limiter: TokenLimiter
    providers: dict[str, Provider]
    cooling: dict[int, float]
    retry_count: int
    default_timeout: float

    def channel_failed(self, channel: ChannelInfo, failure: Failure) -> None: ...


@dataclass
class RelayCall:
    endpoint: str
    body: dict[str, Any]
    raw: bytes | None  # the client's bytes, sent on unchanged when the body needs no change
    token: TokenInfo
    client_ip: str | None = None
    typed: bool = False  # an in-process caller: a stream comes back as ChatDelta objects, not SSE bytes
    request_id: str = field(default_factory=lambda: f"{_ID_PREFIX}{next(_ID_COUNTER):012x}")
    started: float = field(default_factory=time.perf_counter)
    # From the body, read once (the relay asks for them a dozen times per request).
    model: str = field(init=False)
    stream: bool = field(init=False)

    def __post_init__(self) -> None:
        self.model = str(self.body.get("model") or "")
        self.stream = self.body.get("stream") is True


@dataclass
class RelayResult:
    body: bytes | None = None  # a whole JSON answer
    stream: AsyncIterator[bytes] | None = None  # OpenAI SSE events, ending with [DONE]
    # For a typed call: choice 0's text as it comes, then one delta with the finish reason and usage;
    # a stream cut short raises UpstreamError ``upstream_stream_cut`` after the text received.
    deltas: AsyncIterator[ChatDelta] | None = None
    channel: ChannelInfo | None = None
    # The upstream already sent its whole stream ([DONE] included): nothing is left to wait for, so
    # there is no upstream request for a client disconnect to cancel.
    stream_complete: bool = False


@dataclass
class _Attempt:
    """The state of one request across its attempts, for billing and the log row."""

    call: RelayCall
    user: UserInfo
    reservation: Reservation
    estimate: int
    attempts: int = 0
    quota: int = 0
    errors: list[str] = field(default_factory=list)
    channel: ChannelInfo | None = None  # the last channel tried: a failed request's log row names it


class Relay:
    def __init__(self, host: RelayHost, *, draw: Callable[[], float] = random.random) -> None:
        self.host = host
        self.draw = draw

    async def handle(self, call: RelayCall) -> RelayResult:
        host = self.host
        snapshot = host.snapshot
        token = call.token
        user = snapshot.users.get(token.user_id)
        check_token(token, user, datetime.now(UTC))
        assert user is not None  # check_token refuses a token without a user
        model = call.model
        check_model(token, model)
        check_client(token, call.client_ip)
        candidates = [c for c in snapshot.serving(model, user.group)
                      if c.type in host.providers and call.endpoint in host.providers[c.type].endpoints]
        if not candidates:
            raise NotFound(f"no enabled channel serves model {model!r} on /v1/{call.endpoint} "
                           f"for group {user.group!r}", code="model_not_found")
        max_tokens = _int(call.body.get("max_tokens")) or _int(call.body.get("max_completion_tokens"))
        estimate = estimate_prompt_tokens(len(call.raw) if call.raw is not None else 256) + max_tokens
        reservation = host.ledger.reserve(token, user, quota_for(snapshot.prices, model, user.group, estimate, 0))
        try:
            host.limiter.admit(token, time.monotonic(), estimate)
        except BaseException:
            host.ledger.refund(reservation)
            raise
        state = _Attempt(call=call, user=user, reservation=reservation, estimate=estimate)
        try:
            return await self._attempts(state, candidates)
        except BaseException as exc:
            host.ledger.refund(reservation)
            host.limiter.settle(token, time.monotonic(), estimate, 0)
            if not isinstance(exc, asyncio.CancelledError):
                state.quota = 0  # refunded above
                self._log(state, state.channel, None, status=getattr(exc, "status", 500),
                          error=None if state.errors else str(exc))
            raise

    async def _attempts(self, state: _Attempt, candidates: list[ChannelInfo]) -> RelayResult:
        host = self.host
        exclude: set[int] = set()
        last: Failure | None = None
        for _ in range(max(0, host.retry_count) + 1):
            now = time.monotonic()
            channel = choose_channel(candidates, self.draw(), exclude=exclude, cooling_until=host.cooling, now=now)
            if channel is None:
                break
            state.attempts += 1
            state.channel = channel
            request = self._upstream_request(state.call, channel)
            provider = host.providers[channel.type]
            try:
                if state.call.stream:
                    return await self._open_stream(state, channel, provider, request)
                return await self._complete(state, channel, provider, request)
            except UpstreamFailure as exc:
                last = exc.failure
                state.errors.append(f"channel {channel.id}: {last.message}")
                exclude.add(channel.id)
                host.channel_failed(channel, last)
                log.info("gateway %s: channel %s (%s) failed: %s", state.call.request_id, channel.id, channel.name,
                         last.message)
                if not last.retryable:
                    break
        if last is not None:
            error = last.to_error()
            if state.attempts > 1:
                error.message += f" (tried {state.attempts} channels)"
            raise error
        wait = cooldown_left(candidates, exclude, host.cooling, time.monotonic())
        seconds = max(1, int(wait + 0.999)) if wait else 1
        raise RateLimited(f"every channel for model {state.call.model!r} is cooling down after upstream rate "
                          f"limits; retry in {seconds}s", code="channels_cooling_down",
                          headers={"Retry-After": str(seconds)})

    def _upstream_request(self, call: RelayCall, channel: ChannelInfo) -> UpstreamRequest:
        body, raw = call.body, call.raw
        upstream_model = channel.upstream_model(call.model)
        if upstream_model != call.model:
            body, raw = {**body, "model": upstream_model}, None
        if call.stream and call.endpoint in (ENDPOINT_CHAT, ENDPOINT_COMPLETIONS) and not _asks_usage(body):
            if "stream_options" not in body and raw is not None and raw[:1] == b"{":
                # The usual case: the client's bytes with the option put in front, not a re-encoding.
                body, raw = {**body, "stream_options": {"include_usage": True}}, _WITH_USAGE_OPTION + raw[1:]
            else:
                options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
                body, raw = {**body, "stream_options": {**options, "include_usage": True}}, None
        return UpstreamRequest(endpoint=call.endpoint, body=body, stream=call.stream, channel=channel,
                               timeout=channel.timeout_seconds or self.host.default_timeout, raw=raw)

    # ---- whole answers ----------------------------------------------------------------------

    async def _complete(self, state: _Attempt, channel: ChannelInfo, provider: Provider,
                        request: UpstreamRequest) -> RelayResult:
        reply = await provider.send(request)
        latency = _ms(state.call.started)
        self._account(state, channel, request, reply.usage,
                      lambda: completion_text(state.call.endpoint, reply.body), latency_ms=latency)
        return RelayResult(body=reply.body, channel=channel)

    # ---- streams ----------------------------------------------------------------------------

    async def _open_stream(self, state: _Attempt, channel: ChannelInfo, provider: Provider,
                           request: UpstreamRequest) -> RelayResult:
        upstream = await provider.open_stream(request)
        meter = StreamMeter(strip_usage_chunk=not _asks_usage(state.call.body), typed=state.call.typed)
        chunks = upstream.__aiter__()
        first: list[Any] = []
        try:
            # Until one event is ready nothing was sent to the client, so a failure here still fails over.
            # Only the first event is checked here: it leaves before the rest of its read is looked at.
            while not first:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    first.extend(meter.finish())
                    if not first and not meter.complete:
                        raise UpstreamFailure(bad_response(f"channel {channel.name!r} ended the stream "
                                                           "before sending anything")) from None
                    break
                meter.push(chunk)
                first.extend(meter.drain(1))
                if meter.broken and not first:
                    raise UpstreamFailure(_stream_failure(channel, meter))
                if meter.complete:
                    break
        except BaseException:
            await upstream.aclose()
            raise
        pump = self._pump(state, channel, request, upstream, chunks, meter, first)
        if meter.typed:
            return RelayResult(deltas=pump, channel=channel, stream_complete=meter.received_done)
        return RelayResult(stream=pump, channel=channel, stream_complete=meter.received_done)

    async def _pump(self, state: _Attempt, channel: ChannelInfo, request: UpstreamRequest,
                    upstream: UpstreamStream, chunks: AsyncIterator[bytes], meter: StreamMeter,
                    first: list[Any]) -> AsyncIterator[Any]:
        """The rest of the stream: SSE bytes, or for a typed call ChatDelta objects (see RelayResult)."""
        first_token_ms = _ms(state.call.started)
        status, error = 200, None
        typed = meter.typed
        try:
            if first:
                if typed:
                    for delta in first:
                        yield delta
                else:
                    yield first[0] if len(first) == 1 else b"".join(first)
            # Events that arrived together leave together (one write to the client, not one per event),
            # and the end of the stream leaves with the last of them.
            pending = meter.drain()
            try:
                while not (meter.done or meter.broken):
                    if pending:
                        if typed:
                            for delta in pending:
                                yield delta
                        else:
                            yield pending[0] if len(pending) == 1 else b"".join(pending)
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        pending = meter.finish()
                        break
                    pending = meter.feed(chunk)
            except UpstreamFailure as exc:
                pending = []
                if not meter.finished:  # a drop after the finish reason loses nothing
                    error = exc.failure.message
            if meter.broken:
                error = _stream_failure(channel, meter).message
            elif error is None and not meter.complete:
                error = f"channel {channel.name!r} ended the stream without [DONE] or a finish reason"
            cut = None
            if error is not None:
                status, error = 502, f"the upstream stream was cut short: {error}"
                cut = UpstreamError(error, code="upstream_stream_cut")
            if typed:
                for delta in pending:
                    yield delta
                if cut is not None:
                    raise cut
                yield ChatDelta(finish_reason=meter.finish_reason or "stop", usage=meter.usage)
                return
            if cut is not None:
                pending.append(sse.encode(openai_body(cut)))
            pending.append(sse.DONE_EVENT)
            yield b"".join(pending)
        except (asyncio.CancelledError, GeneratorExit):
            status, error = 499, "the client disconnected"
            raise
        finally:
            await upstream.aclose(finished=status == 200)
            usage = meter.usage
            if usage is not None and status != 200 and usage.completion_tokens == 0:
                usage = None  # a cut stream's usage chunk never came: count what was streamed
            self._account(state, channel, request, usage, meter.completion_text,
                          latency_ms=_ms(state.call.started), first_token_ms=first_token_ms, status=status,
                          error=error)

    # ---- billing and logs -------------------------------------------------------------------

    def _account(self, state: _Attempt, channel: ChannelInfo, request: UpstreamRequest, usage: Usage | None,
                 text: Callable[[], str], *, latency_ms: int, first_token_ms: int | None = None,
                 status: int = 200, error: str | None = None) -> None:
        """Settle the quota and write the log row. Without usage from the upstream, the tokens are
        counted locally from ``text()``; a failure refunds the reservation instead of leaving it held."""
        finish = partial(self._settle_and_log, state, channel, latency_ms=latency_ms,
                         first_token_ms=first_token_ms, status=status, error=error)
        if usage is not None:
            finish(usage, "upstream")
            return
        try:
            completion = text()
            count = partial(counted_usage, state.call.endpoint, request.body, request.body["model"], completion)
            if _cheap_to_count(state.call, completion):
                usage = count()
            else:
                # Counting a big prompt takes seconds (about 2.5 s per million Chinese characters): never
                # on the event loop. The reservation stays held until the count is in.
                counting = asyncio.get_running_loop().run_in_executor(None, count)
                counting.add_done_callback(partial(self._counted, state, finish))
                return
        except Exception:  # never leave the reservation held
            log.exception("gateway %s: counting the request's tokens failed; its reservation is refunded",
                          state.call.request_id)
            self.host.ledger.refund(state.reservation)
            return
        finish(usage, "counted")

    def _counted(self, state: _Attempt, finish: Callable[[Usage, str], None], counting: asyncio.Future) -> None:
        if counting.cancelled() or counting.exception() is not None:
            log.error("gateway %s: counting the request's tokens failed; its reservation is refunded",
                      state.call.request_id)
            self.host.ledger.refund(state.reservation)
            return
        finish(counting.result(), "counted")

    def _settle_and_log(self, state: _Attempt, channel: ChannelInfo, usage: Usage, source: str, *,
                        latency_ms: int, first_token_ms: int | None, status: int, error: str | None) -> None:
        try:
            self._settle(state, channel, usage, first_token_ms if first_token_ms is not None else latency_ms)
        except Exception:  # never leave the reservation held
            log.exception("gateway %s: settling the request failed; its reservation is refunded",
                          state.call.request_id)
            self.host.ledger.refund(state.reservation)
            return
        self._log(state, channel, usage, status=status, usage_source=source, latency_ms=latency_ms,
                  first_token_ms=first_token_ms, error=error)

    def _settle(self, state: _Attempt, channel: ChannelInfo, usage: Usage, latency_ms: int) -> int:
        host = self.host
        quota = quota_for(host.snapshot.prices, state.call.model, state.user.group, usage.prompt_tokens,
                          usage.completion_tokens)
        host.ledger.settle(state.reservation, quota, channel.id, latency_ms)
        host.limiter.settle(state.call.token, time.monotonic(), state.estimate, usage.total_tokens)
        state.quota = quota
        return quota

    def _log(self, state: _Attempt, channel: ChannelInfo | None, usage: Usage | None, *, status: int,
             usage_source: str = "upstream", latency_ms: int | None = None, first_token_ms: int | None = None,
             error: str | None = None) -> None:
        call, user = state.call, state.user
        errors = state.errors + ([error] if error else [])
        self.host.ledger.add_log({
            "created_at": datetime.now(UTC), "type": "consume" if status == 200 else "error",
            "request_id": call.request_id, "endpoint": call.endpoint[:40], "user_id": user.id,
            "username": user.username[:100], "token_id": call.token.id, "token_name": call.token.name[:100],
            "channel_id": channel.id if channel else None, "channel_name": channel.name[:100] if channel else "",
            "model": call.model[:190], "upstream_model": (channel.upstream_model(call.model) if channel else "")[:190],
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0, "usage_source": usage_source,
            "quota": state.quota if channel else 0,
            "latency_ms": latency_ms if latency_ms is not None else _ms(call.started),
            "first_token_ms": first_token_ms, "is_stream": call.stream, "status": status,
            "attempts": state.attempts, "error": "; ".join(errors)[:4000] or None,
        })


def _stream_failure(channel: ChannelInfo, meter: StreamMeter) -> Failure:
    if meter.error is not None:
        message = meter.error.get("message") or meter.error
        return bad_response(f"channel {channel.name!r} sent an error in the stream: {message}")
    return bad_response(f"channel {channel.name!r} sent a stream event that is not JSON: {meter.malformed!r}")


_WITH_USAGE_OPTION = b'{"stream_options":{"include_usage":true},'


def _asks_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# Up to this many characters of prompt and answer, a local token count takes well under a millisecond.
_INLINE_COUNT_CHARS = 32 * 1024


def _cheap_to_count(call: RelayCall, completion: str) -> bool:
    if call.raw is not None:
        size = len(call.raw)
    else:
        messages = call.body.get("messages")
        size = sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict)) \
            if isinstance(messages, list) else len(str(call.body.get("prompt") or call.body.get("input") or ""))
    return size + len(completion) <= _INLINE_COUNT_CHARS


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
