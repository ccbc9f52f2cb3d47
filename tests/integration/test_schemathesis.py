"""Schemathesis against the platform API and the gateway admin API mounted in it: no input reaches a 5xx.

Runs on a server of its own over a fresh database (generated DELETEs must not touch other tests' data),
with a bounded number of examples per operation and a fixed seed, on loopback only.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT_PASSWORD, make_settings
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 10


def test_no_generated_request_gets_a_server_error(fresh_db: str, tmp_path: Path, embedders) -> None:
    settings = make_settings(fresh_db, tmp_path / "data", worker_enabled=False)
    with ServerThread(settings, embedders) as server:
        r = httpx.post(server.base_url + "/api/auth/login", json={"username": "root", "password": ROOT_PASSWORD})
        assert r.status_code == 200, r.text
        st = Path(sys.executable).parent / "st"
        result = subprocess.run(
            [str(st), "run", server.base_url + "/api/openapi.json", "-H", f"Authorization: Bearer {r.json()['token']}",
             "--checks", "not_a_server_error", "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1",
             "--workers", "2", "--exclude-path", "/api/auth/logout", "--exclude-path", "/api/auth/login",
             "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its reports stay out of the tree
    summary = result.stdout[-6000:]
    # what went wrong is reported above the summary (its ERRORS / FAILURES sections): keep it in the message
    sections = [result.stdout.find(f"= {name} =") for name in ("ERRORS", "FAILURES")]
    found = min((i for i in sections if i >= 0), default=-1)
    problems = result.stdout[found:found + 6000] if found >= 0 else ""
    assert result.returncode == 0, problems + "\n…\n" + summary + result.stderr[-2000:]
    assert "generated" in summary and "Server error" not in summary, summary
