"""The embedded PostgreSQL killed under running `zhiku` processes: real processes, a real server, kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

from tests.conftest import cli_env, login
from tests.integration.helpers import add_text, create_dataset
from zhiku.db.embedded import process_start
from zhiku.testing.server import free_port

pytestmark = pytest.mark.integration

ZHIKU = [sys.executable, "-m", "zhiku"]
# Long enough that the outage is seen for certain before the server comes back.
RESTART_BACKOFF_SECONDS = 15
T = TypeVar("T")


def _until(check: Callable[[], T | None], what: str, timeout: float = 120) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        assert time.monotonic() < deadline, f"{time.strftime('%H:%M:%S')}: timed out waiting for {what}"
        time.sleep(0.2)


def _get(url: str, **kwargs: object) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError:
        return None


def _postgres_in(pg_dir: Path) -> list[psutil.Process]:
    """The postgres processes serving ``pg_dir``."""
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline", "status"]):
        if (proc.info["name"] == "postgres" and proc.info["status"] != psutil.STATUS_ZOMBIE
                and str(pg_dir) in " ".join(proc.info["cmdline"] or [])):
            found.append(proc)
    return found


def _postmaster_pid(pg_dir: Path) -> int:
    return int((pg_dir / "postmaster.pid").read_text().split()[0])


@contextmanager
def _zhiku(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A `zhiku` process whose output goes to ``log``; killed if the test leaves it running."""
    with log.open("w") as out:
        proc = subprocess.Popen(ZHIKU + args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()
        answer = _get(base + "/api/health")
        return answer is not None and answer.status_code == 200

    _until(healthy, "zhiku serve to answer its health check")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 128 + signal.SIGTERM


def _assert_postgres_stopped(pg_dir: Path) -> None:
    try:
        _until(lambda: not _postgres_in(pg_dir), "the embedded PostgreSQL to stop", timeout=30)
        assert not (pg_dir / "postmaster.pid").exists()
    finally:
        for proc in _postgres_in(pg_dir):  # when an assertion failed: leave no server behind
            proc.terminate()


def _embedded_env(data: Path, **extra: str) -> dict[str, str]:
    env = cli_env("", data, PYTHONUNBUFFERED="1", **extra)  # each line in the log file as it is written
    env.pop("ZHIKU_DATABASE_URL")
    return env


@pytest.fixture
def data() -> Iterator[Path]:
    """A data directory outside pytest's own temporary root: a pytest session starting meanwhile (they share
    the machine) makes that root private again, and the server's own user could no longer reach it."""
    path = Path(tempfile.mkdtemp(prefix="zkrec-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def test_a_killed_embedded_postgres_answers_503_then_comes_back_with_its_data(tmp_path: Path, data: Path) -> None:
    """`zhiku serve` started the server; a `zhiku worker` joined it. kill -9 of the postmaster: requests
    answer 503 database_unavailable (native and OpenAI bodies, health too), the log says so once, serve
    starts the server again, the worker waits for it and reconnects, and nothing written before is lost."""
    pg_dir = data / "pg"
    # serve does no jobs here: every job after the outage is the joined worker's, which proves it reconnected
    env = _embedded_env(data, ZHIKU_DB_RESTART_BACKOFF_SECONDS=str(RESTART_BACKOFF_SECONDS),
                        ZHIKU_WORKER_ENABLED="false")
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with _zhiku(["serve", "--port", str(port)], env, serve_log) as serve:
            _wait_healthy(base, serve, serve_log)
            with _zhiku(["worker"], {**env, "ZHIKU_WORKER_ENABLED": "true"}, worker_log) as worker:
                _until(lambda: "worker running on" in worker_log.read_text(), "the worker to join the server")
                admin = login(base)
                dataset_id = create_dataset(admin, "before the outage")
                add_text(admin, dataset_id, "tea.md", "# Tea\n\nGreen tea steeps two minutes at eighty degrees.")
                app_id = admin.post("/api/apps", json={"name": "tea", "datasetIds": [dataset_id]}).json()["id"]
                key = admin.post("/api/keys", json={"name": "tea", "appId": app_id}).json()["key"]
                killed = _postmaster_pid(pg_dir)

                os.kill(killed, signal.SIGKILL)

                def refused() -> httpx.Response | None:
                    answer = admin.get(f"/api/datasets/{dataset_id}")
                    return answer if answer.status_code != 200 else None

                down = _until(refused, "requests to fail once the postmaster is killed", timeout=30)
                assert down.status_code == 503, down.text
                assert down.json()["code"] == "database_unavailable", down.text
                health = httpx.get(base + "/api/health", timeout=10)
                assert health.status_code == 503, health.text
                assert health.json()["code"] == "database_unavailable"
                assert health.json()["detail"]["database"] == "unavailable"
                chat = httpx.post(base + "/api/v1/chat/completions", timeout=10,
                                  headers={"Authorization": f"Bearer {key}"},
                                  json={"messages": [{"role": "user", "content": "How long does green tea steep?"}]})
                assert chat.status_code == 503, chat.text
                assert chat.json()["error"]["code"] == "database_unavailable", chat.text

                _until(lambda: (_get(base + "/api/health") or httpx.Response(0)).status_code == 200,
                       "the embedded PostgreSQL to be started again")
                assert _postmaster_pid(pg_dir) != killed
                assert admin.get(f"/api/datasets/{dataset_id}").json()["name"] == "before the outage"
                assert admin.get("/api/channel/").status_code == 200  # the gateway's store shares the engine
                assert add_text(admin, dataset_id, "after.md", "# After\n\nThe worker came back.")["status"] == "ready"
                chat = httpx.post(base + "/api/v1/chat/completions", timeout=60,
                                  headers={"Authorization": f"Bearer {key}"},
                                  json={"messages": [{"role": "user", "content": "How long does green tea steep?"}]})
                assert chat.status_code == 200, chat.text
                admin.close()
                _stop(worker)
            _stop(serve)
    finally:
        _assert_postgres_stopped(pg_dir)

    served, joined = serve_log.read_text(), worker_log.read_text()
    assert served.count("database unavailable:") == 1, served
    assert served.count("started again") == 1, served
    assert "worker loop error" not in served and "unhandled error" not in served, served
    # the worker waited for serve to bring the server back: it started none itself
    assert joined.count("database unavailable:") == 1, joined
    assert "started again" not in joined and "worker loop error" not in joined, joined


@pytest.mark.parametrize("killed", ["joined", "starter"])
def test_the_last_live_process_stops_postgres_after_another_was_killed(tmp_path: Path, data: Path,
                                                                        killed: str) -> None:
    """kill -9 of one of two `zhiku` processes leaves its record behind; the other's clean shutdown
    still stops PostgreSQL. A record whose pid now belongs to another program counts as dead too."""
    pg_dir = data / "pg"
    env = _embedded_env(data)
    port = free_port()
    serve_log = tmp_path / "serve.log"
    try:
        with _zhiku(["serve", "--port", str(port)], env, serve_log) as serve:
            _wait_healthy(f"http://127.0.0.1:{port}", serve, serve_log)  # serve started the server
            with _zhiku(["worker"], env, tmp_path / "worker.log") as worker:
                _until(lambda: worker.pid in json.loads((pg_dir / ".handle_pids.json").read_text()),
                       "the worker to join the server")
                victim, survivor = (worker, serve) if killed == "joined" else (serve, worker)
                victim.kill()
                victim.wait()
                # The record of a Zhiku process killed long ago whose pid a `sleep` has now: same pid,
                # another start time.
                with subprocess.Popen(["sleep", "120"]) as other:
                    try:
                        started = process_start(other.pid)
                        assert started is not None
                        _add_holder_record(pg_dir, other.pid, started=started - 1000)
                        _stop(survivor)
                        _assert_postgres_stopped(pg_dir)
                    finally:
                        other.kill()
    finally:
        _assert_postgres_stopped(pg_dir)


def _add_holder_record(pg_dir: Path, pid: int, *, started: float) -> None:
    holders = json.loads((pg_dir / ".handle_pids.json").read_text())
    (pg_dir / ".handle_pids.json").write_text(json.dumps([*holders, pid]))
    starts = json.loads((pg_dir / ".holder_starts.json").read_text())
    (pg_dir / ".holder_starts.json").write_text(json.dumps({**starts, str(pid): started}))


def test_a_process_start_is_stable_while_it_runs_and_gone_once_it_exits() -> None:
    """What a holder record is checked against: a killed process not yet reaped (a zombie, as a killed
    postmaster stays until its parent reaps it) no longer runs."""
    with subprocess.Popen(["sleep", "120"]) as other:
        started = process_start(other.pid)
        assert started is not None
        assert process_start(other.pid) == started  # the same on every read: a record compares it later
        other.kill()
        _until(lambda: process_start(other.pid) is None, "the killed process to stop running", timeout=30)
        assert psutil.Process(other.pid).status() == psutil.STATUS_ZOMBIE  # not reaped yet
