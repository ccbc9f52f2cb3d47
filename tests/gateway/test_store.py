"""The gateway's store on PostgreSQL, SQLite and MariaDB: migrations, services, batched writes, stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from zhiku.gateway.admin import channels, logs, options, tokens, users
from zhiku.gateway.admin.schemas import ChannelCreate, ChannelUpdate, TokenCreate, UserCreate, UserUpdate
from zhiku.gateway.domain import AUTO_DISABLED, ENABLED
from zhiku.gateway.relay.ledger import LOG_CHUNK, Ledger
from zhiku.gateway.relay.snapshot import load_snapshot, token_exists
from zhiku.gateway.store.engine import migrate, open_store
from zhiku.gateway.store.keybox import KeyBox, fernet_key_from
from zhiku.gateway.store.tables import GatewayAbility, GatewayBase, GatewayChannel

pytestmark = pytest.mark.integration

KEYBOX = KeyBox(fernet_key_from("a test secret"))


def _log_row(**fields: object) -> dict[str, object]:
    row: dict[str, object] = dict(created_at=datetime.now(UTC), type="consume", request_id="r", endpoint="chat/completions",
               user_id=None, username="root", token_id=None, token_name="t", channel_id=None, channel_name="c",
               model="m", upstream_model="m", prompt_tokens=1, completion_tokens=1, usage_source="upstream",
               quota=1, latency_ms=10, first_token_ms=None, is_stream=False, status=200, attempts=1, error=None)
    row.update(fields)
    return row


async def test_migrations_build_the_models_on_every_backend(gateway_dsn: str) -> None:
    store = open_store(gateway_dsn)
    try:
        await migrate(store)
        await migrate(store)  # a second start changes nothing

        def diff(sync_conn):
            ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True,
                                                              "version_table": "gateway_alembic_version"})
            names = set(inspect(sync_conn).get_table_names())
            return compare_metadata(ctx, GatewayBase.metadata), names

        async with store.engine.connect() as conn:
            changes, names = await conn.run_sync(diff)
            version = (await conn.execute(text("SELECT version_num FROM gateway_alembic_version"))).scalar_one()
        # Tables of other chains (the platform's, on a shared PostgreSQL) are not the gateway's business.
        changes = [c for c in changes if not (c[0] == "remove_table" and not c[1].name.startswith("gateway_"))]
        assert changes == [], changes
        assert version == "g0001"
        assert {"gateway_users", "gateway_tokens", "gateway_channels", "gateway_abilities", "gateway_logs",
                "gateway_options"} <= names
        assert "alembic_version" not in names or store.dialect == "postgresql"
    finally:
        await store.dispose()


async def test_services_and_snapshot_round_trip(gateway_dsn: str) -> None:
    store = open_store(gateway_dsn)
    try:
        await migrate(store)
        root_id = await users.ensure_root(store, "admin-secret")
        assert await users.ensure_root(store) == root_id
        assert (await users.user_by_access_token(store, "admin-secret")).role == "root"
        alice = await users.create_user(store, UserCreate(username="alice", group="vip", quota=1000),
                                        with_access_token=True)
        assert alice.access_token and alice.access_token.startswith("gat-")
        alice_pub = await users.update_user(store, alice.id, UserUpdate(add_quota=500))
        assert alice_pub.quota == 1500

        channel = await channels.create_channel(store, KEYBOX, ChannelCreate(
            type="azure", name="东京 azure", base_url="https://x.openai.azure.com", key="sk-very-secret-key-1234",
            models=["gpt-4o", "gpt-4o-mini"], groups=["default", "vip"], model_mapping={"gpt-4o": "prod-4o"},
            config={"api_version": "2024-10-21"}, priority=5, weight=3))
        assert channel.key == "sk-…1234" and "secret" not in channel.model_dump_json()
        async with store.sessions() as session:
            raw = (await session.execute(select(GatewayChannel.key_encrypted))).scalar_one()
            abilities = (await session.execute(select(GatewayAbility))).scalars().all()
        assert "sk-very" not in raw and KEYBOX.decrypt(raw) == "sk-very-secret-key-1234"
        assert len(abilities) == 4

        expires = datetime.now(UTC) + timedelta(days=1)
        created = await tokens.create_token(store, alice.id, TokenCreate(
            name="ci", expires_at=expires, remain_quota=700, unlimited_quota=False, models=["gpt-4o"],
            subnets=["10.0.0.0/8", "::1"], rpm_limit=60, tpm_limit=1000))
        assert created.key.startswith("sk-") and len(created.key) == 51
        assert await token_exists(store, __import__("hashlib").sha256(created.key.encode()).hexdigest())

        snapshot = await load_snapshot(store, KEYBOX)
        info = snapshot.tokens[created.id]
        assert info.models == frozenset({"gpt-4o"}) and info.rpm_limit == 60 and info.remain_quota == 700
        assert abs((info.expires_at - expires).total_seconds()) < 1 and info.expires_at.tzinfo is not None
        assert [str(n) for n in info.subnets] == ["10.0.0.0/8", "::1/128"]
        loaded = snapshot.channels[channel.id]
        assert loaded.key == "sk-very-secret-key-1234" and loaded.upstream_model("gpt-4o") == "prod-4o"
        assert loaded.config == {"api_version": "2024-10-21"} and loaded.groups == ("default", "vip")
        assert [c.id for c in snapshot.serving("gpt-4o-mini", "vip")] == [channel.id]
        assert snapshot.users[alice.id].group == "vip"

        # Spend goes to memory first, then to the database in one batch; the balance stays right throughout.
        ledger = Ledger()
        reservation = ledger.reserve(info, snapshot.users[alice.id], 100)
        assert ledger.token_remaining(info) == 600
        ledger.settle(reservation, 40, channel.id, 123)
        ledger.add_log(_log_row(user_id=alice.id, token_id=created.id, channel_id=channel.id, model="gpt-4o",
                                upstream_model="prod-4o", quota=40, prompt_tokens=30, completion_tokens=10))
        ledger.add_log(_log_row(user_id=alice.id, token_id=created.id, channel_id=channel.id, model="gpt-4o-mini",
                                type="error", status=502, error="cut", quota=0))
        assert ledger.token_remaining(info) == 660
        assert await ledger.flush(store) == 2
        assert ledger.token_remaining(info) == 660  # flushed, snapshot not yet reloaded
        snapshot = await load_snapshot(store, KEYBOX)
        ledger.snapshot_loaded()
        assert snapshot.tokens[created.id].remain_quota == 660
        assert ledger.token_remaining(snapshot.tokens[created.id]) == 660
        assert snapshot.users[alice.id].quota == 1460
        stored = await tokens.get_token(store, created.id)
        assert stored.used_quota == 40 and stored.request_count == 1 and stored.accessed_at is not None
        ch = await channels.get_channel(store, channel.id)
        assert ch.used_quota == 40 and ch.response_time_ms == 123 and ch.request_count == 1

        page, total = await logs.list_logs(store, logs.LogFilter(token_id=created.id), size=1)
        assert total == 2 and len(page) == 1 and page[0].model == "gpt-4o-mini"
        by_model = {r["model"]: r for r in await logs.usage_stats(store, "model", logs.LogFilter())}
        assert by_model["gpt-4o"]["quota"] == 40 and by_model["gpt-4o-mini"]["errors"] == 1
        by_day = await logs.usage_stats(store, "day", logs.LogFilter())
        assert by_day[0]["requests"] == 2 and by_day[0]["day"] == datetime.now(UTC).date().isoformat()
        by_channel = await logs.usage_stats(store, "channel", logs.LogFilter())
        assert by_channel[0]["channel"] == channel.id and by_channel[0]["name"] == "c"
        assert (await logs.usage_stats(store, "token", logs.LogFilter()))[0]["token"] == created.id

        await channels.set_status(store, channel.id, AUTO_DISABLED, "upstream answered 401")
        ch = await channels.update_channel(store, KEYBOX, channel.id, ChannelUpdate(weight=9))
        assert ch.status == AUTO_DISABLED and ch.status_reason == "upstream answered 401" and ch.weight == 9
        ch = await channels.update_channel(store, KEYBOX, channel.id, ChannelUpdate(status=ENABLED))
        assert ch.status_reason is None
        assert (await options.set_options(store, {"GroupRatio": '{"vip": 0.5}'}))["GroupRatio"] == '{"vip": 0.5}'
        assert (await load_snapshot(store, KEYBOX)).prices.group("vip") == 0.5

        await users.delete_user(store, alice.id)
        assert (await tokens.list_tokens(store, owner_id=alice.id))[1] == 0
        await channels.delete_channel(store, channel.id)
        assert (await channels.list_channels(store))[1] == 0
    finally:
        await store.dispose()


async def test_a_large_flush_writes_every_log_row_in_chunks(gateway_dsn: str) -> None:
    store = open_store(gateway_dsn)
    try:
        await migrate(store)
        ledger = Ledger()
        written_at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
        count = 2 * LOG_CHUNK + 1
        for i in range(count):
            ledger.add_log(_log_row(request_id=f"chunk-{i}", created_at=written_at, is_stream=i % 2 == 0,
                                    first_token_ms=i, error="cut" if i == count - 1 else None))
        assert await ledger.flush(store) == count
        page, total = await logs.list_logs(store, logs.LogFilter(), size=2)
        assert total == count
        last, before = page
        assert last.request_id == f"chunk-{count - 1}" and last.is_stream is True and last.error == "cut"
        assert last.first_token_ms == count - 1 and last.created_at == written_at.replace(
            microsecond=last.created_at.microsecond)  # MySQL DATETIME keeps whole seconds
        assert before.is_stream is False and before.error is None
    finally:
        await store.dispose()


async def test_idempotent_bootstrap_rows(gateway_dsn: str, tmp_path: Path) -> None:
    store = open_store(gateway_dsn)
    try:
        await migrate(store)
        root_id = await users.ensure_root(store)
        data = ChannelCreate(type="openai", name="boot", base_url="http://a/v1", key="k1", models=["m", "*"])
        first = await channels.upsert_by_ref(store, KEYBOX, "bootstrap:m", data)
        again = await channels.upsert_by_ref(store, KEYBOX, "bootstrap:m", data.model_copy(
            update={"base_url": "http://b/v1", "key": "k2"}))
        assert first == again
        snapshot = await load_snapshot(store, KEYBOX)
        assert snapshot.channels[first].base_url == "http://b/v1" and snapshot.channels[first].key == "k2"
        one = await tokens.ensure_token(store, root_id, "internal:platform", TokenCreate(name="i"), internal=True)
        assert await tokens.ensure_token(store, root_id, "internal:platform", TokenCreate(name="i")) == one
        assert (await load_snapshot(store, KEYBOX)).tokens[one].internal
    finally:
        await store.dispose()
