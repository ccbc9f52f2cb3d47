"""``zhiku gateway import-oneapi``: OneAPI's users, tokens and channels become the gateway's, and its keys work.

The mapping rules are unit-tested on plain rows; the command runs against a MariaDB database filled with
OneAPI-shaped tables and rows, twice (idempotent), and then the official openai client uses an imported
``sk-`` key through the gateway to a fake upstream.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pymysql
import pytest

from tests.conftest import cli_env
from tests.gateway import oneapi_schema as oa
from tests.gateway.conftest import Admin, GatewayThread, gateway_settings
from tests.gateway.mariadb import PASSWORD, USER, MariaDB
from zhiku.auth.secrets import hash_token
from zhiku.errors import InvalidInput
from zhiku.gateway.admin import oneapi, users
from zhiku.gateway.admin.oneapi_import import import_oneapi, read_oneapi
from zhiku.gateway.store.engine import migrate, open_store
from zhiku.gateway.store.keybox import KeyBox, fernet_key_from
from zhiku.testing.fake_upstream import FakeUpstream

SECRET = "oneapi import test secret"

# ---- the mapping, row by row -----------------------------------------------------------------


def test_tokens_keep_their_sk_key_expiry_quota_models_and_subnets() -> None:
    [alice, expired, disabled, _, subnet, exhausted] = [oneapi.plan_token(r) for r in oa.rows("http://h")["tokens"]]
    assert alice.values["key_hash"] == hash_token("sk-" + oa.KEY_ALICE)
    assert alice.values["key_prefix"] == "sk-" + oa.KEY_ALICE[:5]
    assert alice.values["expires_at"] is None and alice.values["status"] == "enabled"
    assert alice.values["remain_quota"] == 500_000 and alice.values["unlimited_quota"] is False
    assert alice.values["models"] == [oa.MODEL, "gpt-3.5-turbo"] and alice.values["subnets"] is None
    assert alice.owner == 2 and alice.on_insert["external_ref"] == "oneapi:token:1"
    assert expired.values["expires_at"] < datetime.now(UTC) and expired.values["status"] == "enabled"
    assert expired.values["unlimited_quota"] is True and expired.values["models"] is None
    assert disabled.values["status"] == "disabled" and disabled.values["models"] is None
    assert subnet.values["subnets"] == ["10.0.0.0/8", "192.168.1.0/24"] and not subnet.warnings
    assert exhausted.values["status"] == "enabled" and exhausted.values["remain_quota"] == 0

    assert oneapi.plan_token({"id": 9, "user_id": 1, "key": ""}).skip == "token 9 has no key"
    bad = oneapi.plan_token({"id": 9, "user_id": 1, "key": "k" * 48, "subnet": "10.0.0.0/8,office"})
    assert bad.values["subnets"] == ["10.0.0.0/8", "office"] and "refuses every client" in bad.warnings[0]
    assert oneapi.plan_token({"id": 9, "user_id": 1, "key": "k", "expired_time": 10**13}).values["expires_at"].year == 9999


def test_users_map_role_status_group_and_access_token() -> None:
    root, alice, bob, carol = [oneapi.plan_user(r) for r in oa.rows("http://h")["users"]]
    assert root.values["role"] == "admin" and oneapi.is_root(oa.rows("h")["users"][0])
    assert alice.values == {"username": "alice", "display_name": "Alice", "role": "user", "status": "enabled",
                            "group_name": "vip", "quota": 2_000_000, "used_quota": 50, "request_count": 3,
                            "access_token_hash": hash_token(oa.ACCESS_ALICE)}
    assert "password" not in str(alice.values) and oa.BCRYPT_123456 not in str(alice.values)
    assert bob.values["role"] == "admin" and bob.values["status"] == "disabled" and bob.values["access_token_hash"] is None
    assert carol.skip == "user 'carol' is deleted in OneAPI"


def test_channels_map_types_urls_statuses_and_azure_deployments() -> None:
    plans = {p.source_id: p for p in map(oneapi.plan_channel, oa.rows("http://up:9")["channels"])}
    main = plans[1].values
    assert main["type"] == "openai" and main["base_url"] == "http://up:9/v1"  # OneAPI appends /v1 itself
    assert main["groups"] == ["default", "vip"] and main["model_mapping"] == {"gpt-3.5-turbo": oa.MODEL}
    assert main["priority"] == 5 and main["weight"] == 1 and main["status"] == "enabled" and main["key"] == "sk-upstream-0"
    assert main["used_quota"] == 777 and main["response_time_ms"] == 420 and main["tested_at"] is not None
    azure = plans[2].values
    assert azure["type"] == "azure" and azure["config"] == {"api_version": "2024-02-01"} and azure["weight"] == 3
    assert azure["model_mapping"] == {"gpt-3.5-turbo": "gpt-35-turbo"}  # OneAPI's dot-stripped deployment
    assert azure["status"] == "manual_disabled" and azure["status_reason"] == "disabled in OneAPI"
    baidu = plans[3].values
    assert baidu["status"] == "manual_disabled" and "type 15 (Baidu) has no Zhiku provider" in baidu["status_reason"]
    m3e = plans[4].values
    assert m3e["base_url"] == "http://m3e:6008/v1" and m3e["status"] == "auto_disabled"
    assert any("system prompt" in w for w in plans[4].warnings)
    assert plans[5].values["type"] == "anthropic" and plans[6].values["type"] == "ollama"
    assert plans[6].values["base_url"] == "http://127.0.0.1:11434"

    deepseek = oneapi.plan_channel({"id": 7, "type": 36, "models": "deepseek-chat", "status": 1})
    assert deepseek.values["base_url"] == "https://api.deepseek.com/v1" and deepseek.values["status"] == "enabled"
    custom = oneapi.plan_channel({"id": 8, "type": 8, "models": "x", "status": 1, "base_url": ""})
    assert custom.values["status"] == "manual_disabled" and "needs a base URL" in custom.values["status_reason"]
    mapped = oneapi.plan_channel({"id": 9, "type": 1, "models": "a", "model_mapping": "not json", "status": 1})
    assert mapped.values["status"] == "manual_disabled" and "model_mapping" in mapped.values["status_reason"]
    newer_azure = oneapi.plan_channel({"id": 10, "type": 3, "models": "gpt-4o", "base_url": "https://x",
                                       "config": '{"api_version": "2025-01-01-preview"}', "other": "old"})
    assert newer_azure.values["config"] == {"api_version": "2025-01-01-preview"}


# ---- the command against MariaDB, then the relay -----------------------------------------------


def _fill_mariadb(server: MariaDB, dsn: str, upstream_host: str) -> pymysql.Connection:
    database = dsn.split(")/", 1)[1].split("?", 1)[0]
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD, database=database,
                           autocommit=True)
    with conn.cursor() as cursor:
        for statement in oa.MYSQL_TABLES:
            cursor.execute(statement)
        for statement, params in oa.insert_statements(oa.rows(upstream_host)):
            cursor.execute(statement, params)
    return conn


def _counts(output: str, table: str) -> list[int]:
    """imported, updated, unchanged, skipped from the summary table's row for ``table``."""
    line = next(line for line in output.splitlines() if re.search(rf"\b{table}\b", line) and re.search(r"\d", line))
    return [int(n) for n in re.findall(r"\b\d+\b", line)]


@pytest.mark.integration
def test_import_from_a_mariadb_oneapi_then_relay(tmp_path: Path, mariadb: MariaDB,
                                                  fakes: list[FakeUpstream]) -> None:
    dsn = mariadb.fresh_database()
    upstream_host = fakes[0].base_url.removesuffix("/v1")
    source = _fill_mariadb(mariadb, dsn, upstream_host)
    target = f"sqlite:///{tmp_path / 'gw.db'}"
    env = cli_env("postgresql://unused", tmp_path / "data", SQL_DSN=target, ZHIKU_SECRET_KEY=SECRET)

    def run_import() -> str:
        done = subprocess.run([sys.executable, "-m", "zhiku", "gateway", "import-oneapi", "--dsn", dsn], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert PASSWORD not in done.stdout + done.stderr
        return done.stdout

    first = run_import()
    assert _counts(first, "users") == [2, 1, 0, 1]  # root is the gateway's root; carol is deleted
    assert _counts(first, "tokens") == [5, 0, 0, 1]  # carol's token has no user
    assert _counts(first, "channels") == [6, 0, 0, 0]
    assert "skipped users: user 'carol' is deleted in OneAPI" in first
    assert "type 15 (Baidu) has no Zhiku provider" in first and "Passwords are not imported" in first

    again = run_import()
    assert _counts(again, "users") == [0, 0, 3, 1]
    assert _counts(again, "tokens") == [0, 0, 5, 1]
    assert _counts(again, "channels") == [0, 0, 6, 0]

    with source.cursor() as cursor:
        cursor.execute("UPDATE tokens SET remain_quota = 400000 WHERE id = 1")
        cursor.execute("UPDATE channels SET priority = 7 WHERE id = 1")
        cursor.execute("INSERT INTO tokens (user_id, `key`, status, name, expired_time, remain_quota, unlimited_quota) "
                       "VALUES (2, %s, 1, 'new one', -1, 0, 1)", ("N" * 48,))
    source.close()
    changed = run_import()
    assert _counts(changed, "tokens") == [1, 1, 4, 1]
    assert _counts(changed, "channels") == [0, 1, 5, 0]

    running = GatewayThread(gateway_settings(tmp_path / "data", target, secret_key=SECRET)).start()
    admin = Admin(running.base_url)
    try:
        channels = {c["name"]: c for c in admin.http.get("/api/channel/").json()["items"]}
        main = channels["openai main"]
        assert main["base_url"] == fakes[0].base_url and main["priority"] == 7 and main["status"] == "enabled"
        assert main["key"] != "sk-upstream-0" and main["used_quota"] == 777
        assert channels["azure east"]["model_mapping"] == {"gpt-3.5-turbo": "gpt-35-turbo"}
        assert channels["baidu"]["status"] == "manual_disabled" and channels["m3e"]["status"] == "auto_disabled"
        people = {u["username"]: u for u in admin.http.get("/api/user/").json()["items"]}
        assert people["root"]["role"] == "root" and people["root"]["quota"] == 500_000_000
        assert people["alice"]["group"] == "vip" and people["bob"]["status"] == "disabled" and "carol" not in people
        keys = {t["name"]: t for t in admin.http.get("/api/token/").json()["items"]}
        assert keys["alice laptop"]["remain_quota"] == 400_000 and keys["alice laptop"]["key_prefix"] == "sk-aB3dE"
        # The gateway's admin token still opens the admin API; alice's OneAPI access token is known, not an admin's.
        as_alice = httpx.get(running.base_url + "/api/token/", headers={"Authorization": f"Bearer {oa.ACCESS_ALICE}"})
        assert as_alice.status_code == 403 and as_alice.json()["code"] == "admin_required"

        client = openai.OpenAI(base_url=running.base_url + "/v1", api_key="sk-" + oa.KEY_ALICE, max_retries=0)
        fakes[0].reply("the imported key works")
        done = client.chat.completions.create(model=oa.MODEL, messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "the imported key works"
        assert fakes[0].last_request.headers["authorization"] == "Bearer sk-upstream-0"
        fakes[0].reply("mapped and streamed")
        stream = client.chat.completions.create(model="gpt-3.5-turbo", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "mapped and streamed"
        assert fakes[0].last_request.json["model"] == oa.MODEL
        bare = openai.OpenAI(base_url=running.base_url + "/v1", api_key=oa.KEY_ALICE, max_retries=0)
        assert bare.chat.completions.create(model=oa.MODEL, messages=[{"role": "user", "content": "x"}]).choices

        def refused(key: str, model: str = oa.MODEL) -> openai.APIStatusError:
            with pytest.raises(openai.APIStatusError) as err:
                openai.OpenAI(base_url=running.base_url + "/v1", api_key=key, max_retries=0).chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "x"}])
            return err.value

        assert refused("sk-" + oa.KEY_ROOT_EXPIRED).body["code"] == "token_expired"
        assert refused("sk-" + oa.KEY_DISABLED).body["code"] == "token_disabled"
        assert refused("sk-" + oa.KEY_DELETED_USER).body["code"] == "invalid_api_key"
        assert refused("sk-" + oa.KEY_SUBNET).body["code"] == "ip_not_allowed"
        assert refused("sk-" + oa.KEY_EXHAUSTED).status_code == 403
        assert refused("sk-" + oa.KEY_ALICE, "claude-3-5-haiku-latest").body["code"] == "model_not_allowed"

        running.call(running.gateway.flush())
        rows = admin.logs(token_name="alice laptop")
        assert len(rows) == 3 and {r["username"] for r in rows} == {"alice"} and all(r["status"] == 200 for r in rows)
    finally:
        admin.close()
        running.stop()


@pytest.mark.integration
async def test_import_from_a_sqlite_oneapi_and_refusals(tmp_path: Path) -> None:
    source_path = tmp_path / "one-api.db"
    with sqlite3.connect(source_path) as conn:
        for statement in oa.SQLITE_TABLES:
            conn.execute(statement)
        for statement, params in oa.insert_statements(oa.rows("http://127.0.0.1:9"), placeholder="?"):
            conn.execute(statement, params)
    store = open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    keybox = KeyBox(fernet_key_from(SECRET))
    try:
        await migrate(store)
        await users.ensure_root(store)
        summary = await import_oneapi(store, keybox, await read_oneapi(f"sqlite:///{source_path}"))
        assert [summary.counts[t].imported for t in ("users", "tokens", "channels")] == [2, 5, 6]
        summary = await import_oneapi(store, keybox, await read_oneapi(f"sqlite:///{source_path}"))
        assert [summary.counts[t].unchanged for t in ("users", "tokens", "channels")] == [3, 5, 6]

        empty = tmp_path / "empty.db"
        sqlite3.connect(empty).close()
        with pytest.raises(InvalidInput, match="is not a OneAPI database: no table users, tokens, channels"):
            await read_oneapi(f"sqlite:///{empty}")
        with pytest.raises(InvalidInput, match="cannot read the OneAPI database"):
            await read_oneapi("nobody:secret@tcp(127.0.0.1:1)/oneapi")
    finally:
        await store.dispose()
