"""``zhiku import`` as a user runs it: folders walked, per-file progress, a closing table, unchanged files
never imported twice, ``--sync`` re-importing what changed, ``--delete`` removing what is gone."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import cli_env

pytestmark = pytest.mark.integration

ZHIKU = [sys.executable, "-m", "zhiku"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(ZHIKU + args, env=env, capture_output=True, text=True, timeout=300)


def imports(db_url: str) -> dict[str, tuple[str, str]]:
    """source path -> (status, file_id) of every imported file; a path twice would be an assertion error."""
    async def query() -> list:
        engine = create_async_engine(db_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT metadata->>'source_path', status, file_id FROM collections "
                "WHERE metadata ? 'source_path' ORDER BY id"))).all()
        await engine.dispose()
        return list(rows)

    rows = asyncio.run(query())
    found = {path: (status, file_id) for path, status, file_id in rows}
    assert len(found) == len(rows), rows
    return found


def rows_of(stdout: str) -> dict[str, str]:
    """The closing table: file -> result (the table is drawn with box characters)."""
    table: dict[str, str] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")]
        if len(cells) >= 4 and cells[2] in ("ready", "failed", "unchanged", "changed", "deleted"):
            table[cells[1]] = cells[2]
    return table


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "guide").mkdir(parents=True)
    (folder / ".cache").mkdir()
    (folder / "chain.md").write_text("# Chain\n\nClean the chain every 300 kilometres.\n")
    (folder / "guide" / "tyres.txt").write_text("Road tyres hold 6 to 8 bar.\n")
    (folder / "guide" / "saddle.html").write_text(
        "<html><head><title>Saddle</title></head><body><p>Raise the saddle until the knee is almost "
        "straight.</p></body></html>")
    (folder / ".cache" / "notes.md").write_text("hidden")
    (folder / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    return folder


def test_a_folder_import_shows_progress_and_ends_with_a_table(fresh_db: str, docs: Path, tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data", COLUMNS="200")
    (docs / "guide" / "broken.txt").write_bytes(b"\x00\x01\x02\xff" * 100)
    result = run(["import", str(docs), "--dataset", "bikes"], env)
    assert result.returncode == 1, result.stderr  # one file failed
    assert rows_of(result.stdout) == {"docs/chain.md": "ready", "docs/guide/tyres.txt": "ready",
                                      "docs/guide/saddle.html": "ready", "docs/guide/broken.txt": "failed"}
    assert "chunks" in result.stdout  # per-file progress
    assert "binary" in result.stdout and f"failed {docs / 'guide' / 'broken.txt'}: " in result.stderr
    assert f"skipped {docs / '.cache' / 'notes.md'}: hidden" in result.stderr
    assert f"skipped {docs / 'clip.mp4'}: unsupported file type '.mp4'" in result.stderr
    assert "3 imported, 1 failed" in result.stdout
    assert set(imports(fresh_db)) == {"docs/chain.md", "docs/guide/tyres.txt", "docs/guide/saddle.html",
                                      "docs/guide/broken.txt"}


def test_importing_an_unchanged_folder_twice_adds_nothing_and_says_so(fresh_db: str, docs: Path,
                                                                       tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data", COLUMNS="200")
    first = run(["import", str(docs), "--dataset", "bikes"], env)
    assert first.returncode == 0, first.stderr
    before = imports(fresh_db)
    again = run(["import", str(docs), "--dataset", "bikes"], env)
    assert again.returncode == 0, again.stderr
    assert set(rows_of(again.stdout).values()) == {"unchanged"} and len(rows_of(again.stdout)) == 3
    assert "0 imported, 0 failed, 3 unchanged (already imported, skipped)" in again.stdout
    assert imports(fresh_db) == before
    # the same files named one by one are other sources (bare names): imported beside the folder's
    named = run(["import", str(docs / "chain.md"), "--dataset", "bikes"], env)
    assert named.returncode == 0 and rows_of(named.stdout) == {"chain.md": "ready"}
    assert rows_of(run(["import", str(docs / "chain.md"), "--dataset", "bikes"], env).stdout) == {
        "chain.md": "unchanged"}


def test_sync_reimports_what_changed_and_delete_removes_what_is_gone(fresh_db: str, docs: Path,
                                                                     tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data", COLUMNS="200")
    assert run(["import", str(docs), "--dataset", "bikes"], env).returncode == 0
    first = imports(fresh_db)
    (docs / "chain.md").write_text("# Chain\n\nClean the chain every 500 kilometres now.\n")
    (docs / "guide" / "tyres.txt").unlink()
    (docs / "brakes.md").write_text("# Brakes\n\nCheck the pads monthly.\n")

    plain = run(["import", str(docs), "--dataset", "bikes"], env)
    assert plain.returncode == 0, plain.stderr
    assert rows_of(plain.stdout) == {"docs/chain.md": "changed", "docs/guide/saddle.html": "unchanged",
                                     "docs/brakes.md": "ready"}
    assert "not re-imported without --sync" in plain.stdout
    assert imports(fresh_db)["docs/chain.md"] == first["docs/chain.md"]

    synced = run(["import", str(docs), "--dataset", "bikes", "--sync"], env)
    assert synced.returncode == 0, synced.stderr
    assert rows_of(synced.stdout) == {"docs/chain.md": "ready", "docs/guide/saddle.html": "unchanged",
                                      "docs/brakes.md": "unchanged"}
    after = imports(fresh_db)
    assert after["docs/chain.md"] == ("ready", sha(docs / "chain.md"))  # replaced, not added beside
    assert "docs/guide/tyres.txt" in after  # gone from disk, kept without --delete

    refused = run(["import", str(docs), "--dataset", "bikes", "--delete"], env)
    assert refused.returncode == 2 and "--sync" in refused.stderr
    deleted = run(["import", str(docs), "--dataset", "bikes", "--sync", "--delete"], env)
    assert deleted.returncode == 0, deleted.stderr
    assert rows_of(deleted.stdout)["docs/guide/tyres.txt"] == "deleted"
    assert "1 deleted" in deleted.stdout
    assert set(imports(fresh_db)) == {"docs/chain.md", "docs/guide/saddle.html", "docs/brakes.md"}


def test_a_failed_reimport_keeps_the_earlier_import(fresh_db: str, docs: Path, tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data", COLUMNS="200")
    assert run(["import", str(docs), "--dataset", "bikes"], env).returncode == 0
    before = imports(fresh_db)["docs/chain.md"]
    (docs / "chain.md").write_bytes(b"\x00\x01\x02\xff" * 100)
    result = run(["import", str(docs), "--dataset", "bikes", "--sync"], env)
    assert result.returncode == 1
    assert rows_of(result.stdout)["docs/chain.md"] == "failed"
    assert "the earlier import is kept" in result.stdout
    assert imports(fresh_db)["docs/chain.md"] == before
