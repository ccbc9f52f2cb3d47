"""SIGTERM ends `zhiku serve` while it is busy with maximal questions, searches and wrong logins."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, login
from tests.integration.helpers import add_text, create_dataset
from zhiku.retrieval.settings import MAX_QUERY_CHARS
from zhiku.testing.server import free_port

pytestmark = pytest.mark.integration
HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天"


def test_sigterm_ends_a_server_under_load(fresh_db: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "zhiku", "serve", "--port", str(port)],
                            env=cli_env(fresh_db, tmp_path / "data"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    answers: list[int] = []
    try:
        _wait_healthy(base, proc)
        admin = login(base)
        try:
            dataset_id = create_dataset(admin, "load")
            add_text(admin, dataset_id, "tea.md", "# 茶\n\n绿茶用八十度的水泡两分钟。")
            app_id = admin.post("/api/apps", json={"name": "load", "datasetIds": [dataset_id]}).json()["id"]
            key = admin.post("/api/keys", json={"name": "load", "appId": app_id}).json()["key"]
        finally:
            admin.close()
        rng = random.Random(11)
        question = "".join(rng.choice(HANZI) for _ in range(MAX_QUERY_CHARS))

        def ask() -> None:
            while not stop.is_set():
                try:
                    r = httpx.post(base + "/api/v1/chat/completions", timeout=60,
                                   headers={"Authorization": f"Bearer {key}"},
                                   json={"messages": [{"role": "user", "content": question}]})
                    answers.append(r.status_code)
                except httpx.HTTPError:
                    return  # the server went away: expected once SIGTERM lands

        def guess() -> None:
            while not stop.is_set():
                try:
                    httpx.post(base + "/api/auth/login", json={"username": "root", "password": "wrong"}, timeout=60)
                except httpx.HTTPError:
                    return

        threads = [threading.Thread(target=ask) for _ in range(4)] + [threading.Thread(target=guess) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while not answers and time.monotonic() < deadline:  # the load is really being served
            time.sleep(0.2)
        assert answers, "no maximal question was answered within two minutes"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert set(answers) == {200}, answers


def _wait_healthy(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("zhiku serve did not become healthy")

