"""The running gateway: store, in-memory snapshot, ledger, providers, relay and background tasks.

Built once per process (``open_gateway``) and passed in: inside ``zhiku serve`` it shares the
platform's engine and embedders; ``zhiku gateway serve`` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from zhiku.auth.secrets import hash_token
from zhiku.config import Settings
from zhiku.db.availability import is_database_unavailable
from zhiku.errors import Unauthorized
from zhiku.gateway.admin import channels, tokens, users
from zhiku.gateway.admin.channel_probe import probe_channel
from zhiku.gateway.admin.schemas import ChannelCreate, ChannelTestResult, TokenCreate
from zhiku.gateway.domain import AUTO_DISABLED, ENABLED, ChannelInfo, TokenInfo
from zhiku.gateway.providers import build_providers
from zhiku.gateway.providers.base import ProviderContext, new_http_session
from zhiku.gateway.providers.failures import Failure
from zhiku.gateway.relay.handler import Relay, RelayCall, RelayResult
from zhiku.gateway.relay.ledger import Ledger
from zhiku.gateway.relay.limits import TokenLimiter
from zhiku.gateway.relay.snapshot import Snapshot, load_snapshot, token_exists
from zhiku.gateway.store.engine import GatewayStore, migrate, open_store, store_on
from zhiku.gateway.store.keybox import KeyBox, open_keybox

if TYPE_CHECKING:  # loaded on first use: the CLI's gateway commands open the store without numpy
    from zhiku.embedding.registry import EmbedderRegistry

log = logging.getLogger(__name__)
_UNKNOWN_KEY_TTL = 10.0  # seconds a key found nowhere is not looked up again
_UNKNOWN_KEYS_MAX = 10_000


class Gateway:
    def __init__(self, settings: Settings, store: GatewayStore, keybox: KeyBox, *,
                 embedders: EmbedderRegistry | None = None) -> None:
        self.settings = settings
        self.store = store
        self.keybox = keybox
        self.http = new_http_session()
        self._embedders = embedders
        self.providers = build_providers(ProviderContext(http=self.http, embedders=self.embedder_registry))
        self.snapshot = Snapshot()
        self.ledger = Ledger()
        self.limiter = TokenLimiter()
        self.cooling: dict[int, float] = {}
        self.retry_count = settings.gateway_retry_count
        self.default_timeout = settings.gateway_timeout_seconds
        self.relay = Relay(self)
        self.root_id: int | None = None
        self.internal_token_id: int | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._unknown_keys: dict[str, float] = {}

    def embedder_registry(self) -> EmbedderRegistry:
        """The platform's embedders, or (standalone, for ``local`` channels) the configured ones, loaded
        on first use."""
        if self._embedders is None:
            from zhiku.embedding.registry import build_embedders

            self._embedders = build_embedders(self.settings)
        return self._embedders

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, background: bool = True) -> None:
        await migrate(self.store)
        self.root_id = await users.ensure_root(self.store, self.settings.gateway_admin_token)
        if self.settings.initial_root_token:
            await tokens.ensure_token(self.store, self.root_id, "initial_root_token",
                                      TokenCreate(name="initial root token"), key=self.settings.initial_root_token)
        self.internal_token_id = await tokens.ensure_token(
            self.store, self.root_id, tokens.INTERNAL_REF, TokenCreate(name="zhiku-internal"), internal=True)
        if self.settings.chat_model_configured:
            await self._bootstrap_channel()
        await self.reload()
        if background:
            self._tasks = [asyncio.create_task(self._every(self.settings.gateway_flush_interval_seconds, self.flush)),
                           asyncio.create_task(self._every(self.settings.gateway_refresh_seconds, self.reload))]
            if self.settings.gateway_channel_test_seconds > 0:
                self._tasks.append(asyncio.create_task(
                    self._every(self.settings.gateway_channel_test_seconds, self.test_disabled_channels)))

    async def _bootstrap_channel(self) -> None:
        """A channel from ``OPENAI_BASE_URL``/``CHAT_API_KEY``, one per default chat model, kept up to date."""
        model = self.settings.chat_model
        data = ChannelCreate(type="openai", name=f"OPENAI_BASE_URL ({model})"[:100],
                             base_url=self.settings.openai_base_url, key=self.settings.chat_api_key,
                             models=[model, "*"], timeout_seconds=self.settings.chat_timeout_seconds)
        await channels.upsert_by_ref(self.store, self.keybox, f"bootstrap:{model}"[:100], data)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.flush()
        await self.http.close()
        await self.store.dispose()

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(max(0.05, seconds))
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_database_unavailable(exc):
                    continue  # said once by the database's availability; the next round tries again
                log.exception("gateway background job %s failed", getattr(job, "__name__", job))

    async def flush(self) -> None:
        async with self._lock:
            await self.ledger.flush(self.store)

    async def reload(self) -> None:
        """Write what is pending, then load a fresh snapshot (after admin writes, and periodically)."""
        async with self._lock:
            try:
                await self.ledger.flush(self.store)
            except Exception:  # logged by the ledger; the counters stay pending
                pass
            snapshot = await load_snapshot(self.store, self.keybox)
            self.snapshot = snapshot
            self.ledger.snapshot_loaded()

    # ---- the hot path ------------------------------------------------------------------------

    async def token_for_key(self, key: str) -> TokenInfo:
        digest = hash_token(key)
        token = self.snapshot.tokens_by_hash.get(digest)
        if token is not None:
            return token
        if not key.startswith(tokens.TOKEN_PREFIX):
            # OneAPI accepts its keys with or without "sk-"; imported tokens are stored with it.
            token = self.snapshot.tokens_by_hash.get(hash_token(tokens.TOKEN_PREFIX + key))
            if token is not None:
                return token
        now = time.monotonic()
        if self._unknown_keys.get(digest, 0.0) > now:
            raise Unauthorized("invalid gateway token", code="invalid_api_key")
        if await token_exists(self.store, digest):  # made by another process since the last load
            await self.reload()
            token = self.snapshot.tokens_by_hash.get(digest)
            if token is not None:
                return token
        if len(self._unknown_keys) >= _UNKNOWN_KEYS_MAX:
            self._unknown_keys = {k: t for k, t in self._unknown_keys.items() if t > now}
        self._unknown_keys[digest] = now + _UNKNOWN_KEY_TTL
        raise Unauthorized("invalid gateway token", code="invalid_api_key")

    async def handle(self, call: RelayCall) -> RelayResult:
        return await self.relay.handle(call)

    async def relay_internal(self, endpoint: str, body: dict[str, Any]) -> RelayResult:
        """The platform's own model calls: the internal token, no key, no HTTP hop; a stream comes back as
        typed deltas (``RelayResult.deltas``)."""
        token = self.snapshot.tokens.get(self.internal_token_id or -1)
        if token is None:
            await self.reload()
            token = self.snapshot.tokens[self.internal_token_id or -1]
        return await self.relay.handle(RelayCall(endpoint=endpoint, body=body, raw=None, token=token,
                                                 typed=True))

    def channel_failed(self, channel: ChannelInfo, failure: Failure) -> None:
        if failure.retry_after:
            self.cooling[channel.id] = time.monotonic() + failure.retry_after
        reason = failure.disable_reason() if self.settings.gateway_auto_disable else None
        if reason is None:
            return
        current = self.snapshot.channels.get(channel.id)
        if current is None or current.status != ENABLED:
            return
        log.warning("gateway: auto-disabling channel %s (%s): %s", channel.id, channel.name, reason)
        self.snapshot = self.snapshot.with_channel(replace(current, status=AUTO_DISABLED))
        self._background(channels.set_status(self.store, channel.id, AUTO_DISABLED, reason[:2000]))

    async def settle_writes(self) -> None:
        """Wait for status changes found on the hot path (auto-disable) to reach the database."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _background(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    # ---- channel tests -----------------------------------------------------------------------

    async def test_channel(self, channel_id: int) -> ChannelTestResult:
        channel = self.snapshot.channels.get(channel_id)
        if channel is None:
            await self.reload()
            channel = self.snapshot.channels.get(channel_id)
        if channel is None:
            from zhiku.errors import NotFound

            raise NotFound(f"channel {channel_id} does not exist", code="channel_not_found")
        provider = self.providers[channel.type]
        result, failure = await probe_channel(channel, provider, self.settings.chat_model,
                                         channel.timeout_seconds or self.default_timeout)
        if failure is None:
            await channels.record_test(self.store, channel.id, result.latency_ms)
            if channel.status == AUTO_DISABLED:
                await channels.set_status(self.store, channel.id, ENABLED, None)
                self.cooling.pop(channel.id, None)
                log.info("gateway: channel %s (%s) passed its test and is enabled again", channel.id, channel.name)
            await self.reload()
        return result

    async def test_disabled_channels(self) -> None:
        for channel_id in await channels.channel_ids_with_status(self.store, AUTO_DISABLED):
            await self.test_channel(channel_id)


def resolve_store(settings: Settings, engine: AsyncEngine | None = None) -> GatewayStore:
    """The gateway's own database when configured, else the platform's engine, else the platform's URL."""
    if settings.gateway_database_url:
        return open_store(settings.gateway_database_url, pool_size=settings.db_pool_size)
    if engine is not None:
        return store_on(engine)
    if settings.database_url:
        return open_store(settings.database_url, pool_size=settings.db_pool_size)
    from zhiku.db.embedded import start_embedded

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(start_embedded(settings.pg_data_dir), pool_size=settings.db_pool_size)


async def open_gateway(settings: Settings, *, engine: AsyncEngine | None = None,
                       embedders: EmbedderRegistry | None = None,
                       background: bool = True) -> Gateway:
    store = resolve_store(settings, engine)
    try:
        gateway = Gateway(settings, store, open_keybox(settings), embedders=embedders)
    except BaseException:
        await store.dispose()
        raise
    try:
        await gateway.start(background=background)
    except BaseException:
        await gateway.close()
        raise
    return gateway
