"""The `zhiku` command as a user runs it: a real subprocess against a real database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env

pytestmark = pytest.mark.integration

ZHIKU = [sys.executable, "-m", "zhiku"]

DOC = """# Bicycle care

## Chain
Clean the chain every 300 kilometres and oil it lightly afterwards.

## Tyres
Road tyres hold 6 to 8 bar. Check the pressure weekly.
"""


def run(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(ZHIKU + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_import_apps_keys_ask(fresh_db: str, tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data")
    doc = tmp_path / "bike.md"
    doc.write_text(DOC)
    bad = tmp_path / "broken.txt"
    bad.write_bytes(b"\x00\x01\x02\xff" * 100)

    ok = run(["import", str(doc), "--dataset", "bikes"], env)
    assert ok.returncode == 0, ok.stderr
    assert "ready" in ok.stdout and "bike.md" in ok.stdout

    failed = run(["import", str(bad), "--dataset", "bikes"], env)
    assert failed.returncode == 1
    assert "broken.txt" in failed.stderr and "binary" in failed.stderr

    created = run(["apps", "create", "mechanic", "--dataset", "bikes", "--prompt", "Be brief."], env)
    assert created.returncode == 0, created.stderr

    missing = run(["apps", "create", "other", "--dataset", "no-such-dataset"], env)
    assert missing.returncode == 1 and "no-such-dataset" in missing.stderr

    key = run(["keys", "create", "--name", "ci", "--app", "mechanic"], env)
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip().splitlines()[-1].startswith("zk-")

    answer = run(["ask", "--app", "mechanic", "How often should I clean the chain?"], env)
    assert answer.returncode == 0, answer.stderr
    assert "300 kilometres" in answer.stdout and "Sources:" in answer.stdout and "bike.md" in answer.stdout

    reset = run(["users", "reset-password"], env)
    assert reset.returncode == 0 and len(reset.stdout.strip().splitlines()[-1]) >= 12



def test_import_of_a_folder_names_every_skipped_file_and_leaves_no_empty_dataset(fresh_db: str,
                                                                               tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data", ZHIKU_UPLOAD_MAX_BYTES="2000")
    folder = tmp_path / "docs"
    (folder / ".git").mkdir(parents=True)
    (folder / "bike.md").write_text(DOC)
    (folder / ".git" / "notes.md").write_text("hidden notes")
    (folder / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    (folder / "huge.txt").write_text("chain oil " * 500)
    result = run(["import", str(folder), "--dataset", "shop"], env)
    assert result.returncode == 0, result.stderr
    skipped = {line.split(":")[0].split()[-1]: line for line in result.stderr.splitlines() if "skipped" in line}
    assert set(skipped) == {str(folder / ".git" / "notes.md"), str(folder / "clip.mp4"), str(folder / "huge.txt")}
    assert "hidden" in skipped[str(folder / ".git" / "notes.md")]
    assert "unsupported file type '.mp4'" in skipped[str(folder / "clip.mp4")]
    assert "too large" in skipped[str(folder / "huge.txt")] and "ZHIKU_UPLOAD_MAX_BYTES" in result.stderr

    (tmp_path / "bad").mkdir()
    broken = tmp_path / "bad" / "broken.txt"
    broken.write_bytes(b"\x00\x01\x02\xff" * 100)
    nothing = run(["import", str(broken), "--dataset", "empty-one"], env)
    assert nothing.returncode == 1 and "broken.txt" in nothing.stderr
    assert "not created" in nothing.stdout
    missing = run(["apps", "create", "x", "--dataset", "empty-one"], env)
    assert missing.returncode == 1 and "empty-one" in missing.stderr  # no empty dataset was left behind

def test_unreachable_database_exits_with_one_line(tmp_path: Path) -> None:
    env = cli_env("postgresql://u:p@127.0.0.1:9/x", tmp_path)
    result = run(["keys", "create", "--name", "x"], env, timeout=60)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot connect to PostgreSQL" in lines[0], result.stderr


def _postgres_in(pg_dir: Path) -> list:
    """The postgres processes serving ``pg_dir`` (psutil processes)."""
    import psutil

    return [proc for proc in psutil.process_iter(attrs=["name", "cmdline"])
            if proc.info["name"] == "postgres" and str(pg_dir) in " ".join(proc.info["cmdline"] or [])]


def _postgres_running_in(pg_dir: Path) -> bool:
    return bool(_postgres_in(pg_dir))


def test_embedded_database_is_started_reused_and_stopped(tmp_path: Path) -> None:
    """No database URL: each command starts the embedded PostgreSQL in the data dir and stops it on exit."""
    data = tmp_path / "data"
    env = cli_env("", data)
    env.pop("ZHIKU_DATABASE_URL")
    doc = tmp_path / "bike.md"
    doc.write_text(DOC)
    first = run(["import", str(doc), "--dataset", "bikes"], env)
    assert first.returncode == 0, first.stderr
    assert (data / "pg" / "PG_VERSION").exists()
    assert not _postgres_running_in(data / "pg")
    # a second process finds the dataset the first one made
    second = run(["apps", "create", "mechanic", "--dataset", "bikes"], env)
    assert second.returncode == 0, second.stderr
    assert not _postgres_running_in(data / "pg")


@pytest.mark.parametrize("command", [["serve", "--port"], ["worker"], ["gateway", "serve", "--port"]])
def test_sigterm_ends_a_long_running_command_and_stops_its_embedded_database(
        tmp_path: Path, command: list[str]) -> None:
    """``docker stop`` / ``systemctl stop`` send SIGTERM: cleanup must run, not an instant death."""
    import signal
    import time

    from zhiku.testing.server import free_port

    if command[-1] == "--port":
        command = [*command, str(free_port())]

    data = tmp_path / "data"
    env = cli_env("", data)
    env.pop("ZHIKU_DATABASE_URL")
    proc = subprocess.Popen(ZHIKU + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _postgres_running_in(data / "pg"):  # started by this command
            assert proc.poll() is None, f"{command} exited early with {proc.returncode}"
            assert time.monotonic() < deadline, "the embedded PostgreSQL never started"
            time.sleep(0.2)
        time.sleep(3)  # past migrations and start-up, into the command's main loop
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        deadline = time.monotonic() + 30
        while _postgres_running_in(data / "pg") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _postgres_running_in(data / "pg")
    finally:
        _stop_postgres_in(data / "pg")  # when the assertion failed: leave no server behind


def _stop_postgres_in(pg_dir: Path) -> None:
    for proc in _postgres_in(pg_dir):
        proc.terminate()
