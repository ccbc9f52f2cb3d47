"""User management over HTTP and the CLI: disabling a user stops their sessions and keys at once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, login, unique
from tests.integration.test_cli import run
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration

PASSWORD = "a-member-password"


def _create(client: httpx.Client, username: str, role: str = "member") -> dict:
    r = client.post("/api/users", json={"username": username, "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


def test_disabling_a_user_ends_their_session_and_keys_at_once(server: ServerThread, client: httpx.Client) -> None:
    name = unique("alice")
    created = _create(client, name)
    assert created["role"] == "member" and created["status"] == "active" and "password_hash" not in created
    listed = client.get("/api/users").json()
    assert any(u["username"] == name for u in listed) and not any("password_hash" in u for u in listed)

    alice = login(server.base_url, name, PASSWORD)
    key = alice.post("/api/keys", json={"name": "ci"}).json()["key"]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as by_key:
        assert by_key.get("/api/datasets").status_code == 200
        assert alice.get("/api/auth/me").status_code == 200

        r = client.post(f"/api/users/{created['id']}/disable")
        assert r.status_code == 200 and r.json()["status"] == "disabled"
        assert alice.get("/api/auth/me").status_code == 401
        r = by_key.get("/api/datasets")
        assert r.status_code == 401 and r.json()["code"] == "api_key_owner_disabled"
        refused = httpx.post(f"{server.base_url}/api/auth/login", json={"username": name, "password": PASSWORD})
        assert refused.status_code == 401

        r = client.post(f"/api/users/{created['id']}/enable")
        assert r.status_code == 200 and r.json()["status"] == "active"
        assert alice.get("/api/auth/me").status_code == 401  # disabling ended the session for good
        assert by_key.get("/api/datasets").status_code == 200
        again = login(server.base_url, name, PASSWORD)
        assert again.get("/api/auth/me").status_code == 200

        r = client.delete(f"/api/users/{created['id']}")
        assert r.status_code == 204
        assert again.get("/api/auth/me").status_code == 401
        assert by_key.get("/api/datasets").status_code == 401  # their keys went with them
    alice.close()
    again.close()


def test_only_logged_in_admins_manage_users(server: ServerThread, client: httpx.Client) -> None:
    member_name, admin_name = unique("bob"), unique("carol")
    _create(client, member_name)
    admin = _create(client, admin_name, role="admin")
    assert admin["role"] == "admin"

    member = login(server.base_url, member_name, PASSWORD)
    for r in (member.get("/api/users"),
              member.post("/api/users", json={"username": unique("x"), "password": PASSWORD}),
              member.post(f"/api/users/{admin['id']}/disable")):
        assert r.status_code == 403 and r.json()["code"] == "admin_required", r.text
    team_key = client.post("/api/keys", json={"name": "team"}).json()["key"]
    r = httpx.get(f"{server.base_url}/api/users", headers={"Authorization": f"Bearer {team_key}"})
    assert r.status_code == 403 and r.json()["code"] == "admin_required"

    carol = login(server.base_url, admin_name, PASSWORD)
    made = carol.post("/api/users", json={"username": unique("dave"), "password": PASSWORD})
    assert made.status_code == 201, made.text
    root_id = next(u["id"] for u in carol.get("/api/users").json() if u["username"] == "root")
    r = carol.post(f"/api/users/{root_id}/disable")
    assert r.status_code == 403 and r.json()["code"] == "root_cannot_be_disabled"
    r = carol.post(f"/api/users/{admin['id']}/disable")
    assert r.status_code == 400 and r.json()["code"] == "cannot_disable_self"
    assert carol.post("/api/users/999999999/disable").status_code == 404
    assert carol.post(f"/api/users/{2**63}/disable").status_code in (404, 422)
    member.close()
    carol.close()


def test_create_user_refuses_taken_names_and_bad_input(client: httpx.Client) -> None:
    name = unique("erin")
    _create(client, name)
    r = client.post("/api/users", json={"username": name, "password": PASSWORD})
    assert r.status_code == 409 and r.json()["code"] == "username_taken"
    for body, code in (({"username": "x" * 101, "password": PASSWORD}, "invalid_username"),
                       ({"username": "  ", "password": PASSWORD}, "invalid_username"),
                       ({"username": "a\x00b", "password": PASSWORD}, "invalid_username"),
                       ({"username": unique("f"), "password": "short"}, "invalid_password"),
                       ({"username": unique("f"), "password": "p" * 1001}, "invalid_password")):
        r = client.post("/api/users", json=body)
        assert r.status_code == 400 and r.json()["code"] == code, (body, r.text)
    r = client.post("/api/users", json={"username": unique("f"), "password": PASSWORD, "role": "user"})
    assert r.status_code == 422  # the API's roles are admin and member


def test_users_cli(fresh_db: str, tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data")
    created = run(["users", "create", "grace", "--password", PASSWORD, "--role", "admin"], env)
    assert created.returncode == 0, created.stderr
    assert run(["users", "create", "heidi", "--password", PASSWORD], env).returncode == 0

    taken = run(["users", "create", "grace", "--password", PASSWORD], env)
    assert taken.returncode == 1 and "taken" in taken.stderr
    short = run(["users", "create", "ivan", "--password", "short"], env)
    assert short.returncode == 1 and "password" in short.stderr

    disabled = run(["users", "disable", "heidi"], env)
    assert disabled.returncode == 0 and "disabled" in disabled.stdout, disabled.stderr
    listed = run(["users", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows: dict[str, list[str]] = {}
    for line in listed.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").replace("┃", "│").split("│")]
        if len(cells) >= 4 and cells[1] in ("root", "grace", "heidi"):
            rows[cells[1]] = cells
    assert rows["root"][2:4] == ["root", "active"]
    assert rows["grace"][2:4] == ["admin", "active"]
    assert rows["heidi"][2:4] == ["member", "disabled"]

    enabled = run(["users", "enable", "heidi"], env)
    assert enabled.returncode == 0 and "active" in enabled.stdout
    assert "root cannot be disabled" in run(["users", "disable", "root"], env).stderr
    missing = run(["users", "disable", "nobody"], env)
    assert missing.returncode == 1 and "nobody" in missing.stderr
