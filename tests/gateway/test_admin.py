"""The admin API (root/admin only), the CLI, and the gateway inside `zhiku serve`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import cli_env, login
from tests.gateway.conftest import Admin, GatewayThread, unique
from zhiku.testing.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration


def test_admin_api_requires_an_admin(gateway_server: GatewayThread, admin: Admin) -> None:
    url = gateway_server.base_url
    assert httpx.get(url + "/api/channel/").status_code == 401
    assert httpx.get(url + "/api/channel/", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = admin.http.post("/api/user/", params={"access_token": True}, json={"username": unique("bob")})
    assert r.status_code == 201, r.text
    user_token = r.json()["access_token"]
    r = httpx.get(url + "/api/token/", headers={"Authorization": f"Bearer {user_token}"})
    assert r.status_code == 403 and r.json()["code"] == "admin_required"
    r = admin.http.post("/api/user/", params={"access_token": True},
                        json={"username": unique("ann"), "role": "admin"})
    assert httpx.get(url + "/api/token/", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
                     ).status_code == 200
    assert httpx.get(url + "/api/status").json()["status"] == "ok"


def test_admin_bodies_have_the_request_limit(gateway_server: GatewayThread, admin: Admin) -> None:
    limit = gateway_server.settings.max_request_bytes
    r = admin.http.post("/api/channel/", content=b'{"name": "' + b"a" * limit + b'"}',
                        headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "request_too_large", r.text
    assert admin.http.get("/api/channel/").status_code == 200


def test_channel_token_user_crud_and_options(gateway_server: GatewayThread, admin: Admin,
                                             fakes: list[FakeUpstream]) -> None:
    model = unique("m")
    r = admin.http.post("/api/channel/", json={"type": "nope", "name": "x", "models": ["m"]})
    assert r.status_code == 422
    channel = admin.add_channel(fakes[0], [model], key="sk-upstream-0")
    assert channel["key"] == "sk-…am-0" and "sk-upstream-0" not in str(admin.http.get("/api/channel/").json())
    r = admin.http.put(f"/api/channel/{channel['id']}", json={"status": "manual_disabled"})
    assert r.status_code == 200 and r.json()["status"] == "manual_disabled"
    key = admin.add_token()
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404  # the only channel is off, and the change applied at once
    admin.http.put(f"/api/channel/{channel['id']}", json={"status": "enabled", "models": [model, "extra"]})
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": "extra", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and fakes[0].last_request.headers["authorization"] == "Bearer sk-upstream-0"

    user = admin.http.post("/api/user/", json={"username": unique("carol"), "quota": 10, "group": "vip"}).json()
    assert admin.http.post("/api/user/", json={"username": user["username"]}).status_code == 409
    r = admin.http.post("/api/token/", json={"name": "for carol", "user_id": user["id"], "unlimited_quota": True})
    carol_key = r.json()["key"]
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {carol_key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and "vip" in r.json()["error"]["message"]  # carol's group has no channel
    admin.http.put(f"/api/user/{user['id']}", json={"group": "default"})
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {carol_key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "a longer question " * 20}]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "user_quota_exhausted"
    assert admin.http.put(f"/api/user/{user['id']}", json={"add_quota": 100000}).json()["quota"] == 100010
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {carol_key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200

    tokens = admin.http.get("/api/token/", params={"user_id": user["id"]}).json()
    assert tokens["total"] == 1 and "key" not in tokens["items"][0]
    token_id = tokens["items"][0]["id"]
    assert admin.http.put(f"/api/token/{token_id}", json={"status": "disabled"}).json()["status"] == "disabled"
    r = httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {carol_key}"},
                   json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_disabled"
    assert admin.http.delete(f"/api/user/{user['id']}").status_code == 204
    assert admin.http.get(f"/api/token/{token_id}").status_code == 404
    root = admin.http.get("/api/user/").json()["items"][0]
    assert root["username"] == "root" and admin.http.delete(f"/api/user/{root['id']}").status_code == 403

    r = admin.http.put("/api/option/", json={"values": {"ModelRatio": "not json"}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_option"
    r = admin.http.put("/api/option/", json={"values": {"ModelRatio": f'{{"{model}": 0}}'}})
    assert r.status_code == 200 and model in r.json()["values"]["ModelRatio"]
    httpx.post(gateway_server.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
               json={"model": model, "messages": [{"role": "user", "content": "free now"}]})
    rows = admin.logs(model=model)
    assert rows[0]["quota"] == 0 and rows[0]["prompt_tokens"] > 0  # ratio 0: free, still logged
    assert admin.http.delete(f"/api/channel/{channel['id']}").status_code == 204


def test_an_update_with_nulls_changes_only_what_may_be_empty(gateway_server: GatewayThread, admin: Admin,
                                                             fakes: list[FakeUpstream]) -> None:
    """Clients that send whole objects send nulls: a null clears what may be empty (a token's expiry, models
    and subnets; a channel's model mapping) and leaves the rest as it was (was a 500: NOT NULL)."""
    model = unique("m")
    channel = admin.add_channel(fakes[0], [model], model_mapping={model: "upstream"})
    r = admin.http.put(f"/api/channel/{channel['id']}", json={
        "type": None, "name": None, "models": None, "status": None, "priority": None, "model_mapping": None})
    assert r.status_code == 200, r.text
    after = r.json()
    assert (after["type"], after["name"], after["models"], after["status"]) == (
        channel["type"], channel["name"], channel["models"], channel["status"])
    assert not after["model_mapping"]
    admin.add_token(name=unique("nulls"), models=[model], expires_at="2099-01-01T00:00:00+00:00")
    token = admin.http.get("/api/token/").json()["items"][0]
    r = admin.http.put(f"/api/token/{token['id']}", json={
        "name": None, "unlimited_quota": None, "remain_quota": None, "status": None, "expires_at": None,
        "models": None})
    assert r.status_code == 200, r.text
    after = r.json()
    assert (after["name"], after["unlimited_quota"], after["status"]) == (
        token["name"], token["unlimited_quota"], token["status"])
    assert after["expires_at"] is None and after["models"] is None
    user = admin.http.get("/api/user/").json()["items"][0]
    r = admin.http.put(f"/api/user/{user['id']}", json={"display_name": None, "quota": None, "group": None})
    assert r.status_code == 200 and r.json()["group"] == user["group"], r.text


def test_logs_paging_filters_and_stats(gateway_server: GatewayThread, admin: Admin, fakes: list[FakeUpstream]) -> None:
    model = unique("m")
    channel = admin.add_channel(fakes[0], [model])
    key = admin.add_token()
    oa = openai.OpenAI(base_url=gateway_server.base_url + "/v1", api_key=key, max_retries=0)
    for _ in range(3):
        oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    fakes[0].fail(500)
    with pytest.raises(openai.InternalServerError):
        oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    r = admin.http.get("/api/log/", params={"model": model, "size": 2, "page": 2})
    assert r.json()["total"] == 4 and len(r.json()["items"]) == 2
    errors = admin.http.get("/api/log/", params={"model": model, "type": "error"}).json()["items"]
    assert len(errors) == 1 and errors[0]["status"] == 500
    stats = admin.http.get("/api/log/stat", params={"group_by": "model", "model": model}).json()
    assert stats[0]["model"] == model and stats[0]["requests"] == 4 and stats[0]["errors"] == 1
    per_channel = admin.http.get("/api/log/stat", params={"group_by": "channel", "channel_id": channel["id"]}).json()
    assert per_channel[0]["channel"] == channel["id"] and per_channel[0]["quota"] > 0
    assert admin.http.get("/api/log/stat", params={"group_by": "week"}).status_code == 400


ZHIKU = [sys.executable, "-m", "zhiku"]


def test_cli_channels_tokens_logs(tmp_path: Path, fakes: list[FakeUpstream]) -> None:
    env = cli_env("postgresql://unused", tmp_path / "data", SQL_DSN=f"sqlite:///{tmp_path / 'gw.db'}",
                  ZHIKU_SECRET_KEY="cli test secret")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(ZHIKU + ["gateway", *args], env=env, capture_output=True, text=True, timeout=120)

    added = run("channels", "add", "--type", "openai", "--name", "main", "--base-url", fakes[0].base_url,
                "--key", "sk-upstream-0", "--models", "gpt-x,gpt-y", "--priority", "3", "--weight", "2",
                "--model-mapping", '{"gpt-x": "real-x"}')
    assert added.returncode == 0, added.stderr
    assert "id 1" in added.stdout
    bad = run("channels", "add", "--type", "openai", "--name", "b", "--models", "m", "--model-mapping", "[1]")
    assert bad.returncode == 1 and "JSON object" in bad.stderr
    listed = run("channels", "list")
    assert listed.returncode == 0 and "main" in listed.stdout and "sk-upstream-0" not in listed.stdout
    created = run("tokens", "create", "--name", "ci", "--models", "gpt-x", "--quota", "5000", "--rpm", "10")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-") and len(key) == 51

    # A gateway on the same database serves the CLI's channel and token.
    from tests.gateway.conftest import gateway_settings

    with_cli_db = gateway_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'gw.db'}",
                                   secret_key="cli test secret")
    running = GatewayThread(with_cli_db).start()
    try:
        oa = openai.OpenAI(base_url=running.base_url + "/v1", api_key=key, max_retries=0)
        oa.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "via cli"}])
        assert fakes[0].last_request.json["model"] == "real-x"
        # The log row is settled just after the answer is sent: flush until it is in the database.
        for _ in range(100):
            running.call(running.gateway.flush())
            with sqlite3.connect(tmp_path / "gw.db") as db:
                if db.execute("SELECT count(*) FROM gateway_logs").fetchone()[0]:
                    break
            time.sleep(0.05)
    finally:
        running.stop()
    logs = run("logs", "--limit", "5")
    assert logs.returncode == 0 and "gpt-x → real-x" in logs.stdout and "1 of 1 log rows" in logs.stdout


def test_inside_zhiku_serve(server, fake) -> None:
    """The platform's chat goes through the in-process gateway; its admin API takes the platform login."""
    gateway = server.platform.gateway
    assert gateway is not None and server.platform.chat_model.__class__.__name__ == "GatewayChatModel"
    client = login(server.base_url)
    try:
        r = client.get("/api/channel/")
        assert r.status_code == 200, r.text
        boot = [c for c in r.json()["items"] if c["name"].startswith("OPENAI_BASE_URL")]
        assert boot and boot[0]["base_url"] == fake.base_url and "*" in boot[0]["models"]
        key = client.post("/api/token/", json={"name": unique("web")}).json()["key"]
        oa = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
        fake.reply("relayed on port 3000")
        done = oa.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "relayed on port 3000"
        assert fake.last_request.headers["authorization"] == "Bearer sk-fake-upstream"

        # An app chat uses the internal token: logged under it, no key copied anywhere.
        ds = client.post("/api/datasets", json={"name": unique("gwds")}).json()["id"]
        app_id = client.post("/api/apps", json={"name": unique("gwapp"), "datasetIds": [ds]}).json()["id"]
        app_key = client.post("/api/keys", json={"name": "k", "appId": app_id}).json()["key"]
        fake.reply("answered by the app")
        r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {app_key}"},
                       json={"messages": [{"role": "user", "content": "question"}]}, timeout=60)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "answered by the app"
        rows = client.get("/api/log/", params={"token_name": "zhiku-internal", "size": 5}).json()["items"]
        assert rows and rows[0]["model"] == "fake-chat" and rows[0]["status"] == 200
        app_only = httpx.get(server.base_url + "/api/channel/", headers={"Authorization": f"Bearer {app_key}"})
        assert app_only.status_code == 403
    finally:
        client.close()
