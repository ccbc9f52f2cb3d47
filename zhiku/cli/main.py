"""The ``zhiku`` command. Thin: every command calls the same services as the API.

Imports are kept light at the top: ``zhiku --help`` and the commands that load no model import only
what they use, inside the command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from zhiku.cli.embedding import embed_server
from zhiku.cli.gateway import app as gateway_cli
from zhiku.process.bootstrap import build_settings, configure_logging, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from zhiku.auth.service import Principal, RootBootstrap
    from zhiku.cli.importer import Walk
    from zhiku.config import Settings
    from zhiku.wiring import Platform

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


def _announce_root(root: RootBootstrap) -> None:
    if root.generated_password:
        err_console.print(f"Created user 'root' with password: {root.generated_password} (shown once)")


async def _with_platform(settings: Settings, fn: Callable[[Platform], Awaitable[T]]) -> T:
    """The whole platform (embedders, gateway, chat model) for a command that answers or imports."""
    from zhiku.wiring import open_platform

    platform = await open_platform(settings)
    _announce_root(platform.root)
    try:
        return await fn(platform)
    finally:
        await platform.close()


async def _with_database(settings: Settings, fn: Callable[[AsyncSession, Principal], Awaitable[T]]) -> T:
    """The database only, with a session as root: commands that load no model start in well under a second."""
    from zhiku.auth.service import root_principal
    from zhiku.wiring import open_database

    async with open_database(settings) as opened:
        _announce_root(opened.root)
        async with opened.db.sessions() as session:
            return await fn(session, await root_principal(session))


@app.command()
def serve(host: str | None = typer.Option(None, help="Address to bind (default 0.0.0.0)."),
          port: int | None = typer.Option(None, help="Port (default 3000)."),
          data_dir: Path | None = DataDirOption) -> None:
    """Run the whole platform: web API, worker, embedded database when none is configured."""
    from zhiku.process.serve import run_server

    settings = build_settings(host=host, port=port, data_dir=data_dir)
    configure_logging(settings)
    run(lambda: run_server(settings, announce=console.print), server=True)


@app.command()
def worker(data_dir: Path | None = DataDirOption) -> None:
    """Run only the job worker (import parsing, chunking, embedding)."""
    settings = build_settings(data_dir=data_dir)
    configure_logging(settings)

    async def main(platform: Platform) -> None:
        import asyncio

        console.print(f"worker running on {platform.db.display_url}")
        await platform.worker().run_forever(asyncio.Event())

    try:
        run(lambda: _with_platform(settings, main))
    except KeyboardInterrupt:
        pass


@app.command("import")
def import_(paths: list[Path] = typer.Argument(..., help="Files or folders to import (folders recursively)."),
            dataset: str = typer.Option(..., "--dataset", help="Dataset name; created if it does not exist."),
            chunk_size: int | None = typer.Option(None, "--chunk-size", min=100, max=20000),
            sync: bool = typer.Option(False, "--sync", help="Re-import files whose content changed since the "
                                                            "last import into this dataset."),
            delete: bool = typer.Option(False, "--delete", help="With --sync: also remove the imports of files "
                                                                "that no longer exist in the folders named."),
            data_dir: Path | None = DataDirOption) -> None:
    """Import files into a dataset and wait until they are indexed. Unchanged files are never imported twice."""
    from zhiku.cli.importer import walk
    from zhiku.knowledge.parsers import supported_extensions

    if delete and not sync:
        err_console.print("[red]error:[/red] --delete works with --sync only")
        raise typer.Exit(2)
    settings = build_settings(data_dir=data_dir)
    extensions = {e.lower() for e in supported_extensions()}
    try:
        walked = walk(paths, extensions, settings.upload_max_bytes)
    except FileNotFoundError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    for path, reason in walked.skipped:
        err_console.print(f"[yellow]skipped[/yellow] {path}: {reason}", highlight=False)
    if not walked.files and not delete:
        err_console.print("[red]error:[/red] no importable files (supported: " + ", ".join(sorted(extensions)) + ")")
        raise typer.Exit(1)
    failed = run(lambda: _with_platform(settings, lambda p: _import(p, walked, dataset, chunk_size, sync, delete)))
    if failed:
        raise typer.Exit(1)


async def _import(platform: Platform, walked: Walk, dataset_name: str, chunk_size: int | None, sync: bool,
                  delete: bool) -> int:
    from zhiku.auth.service import root_principal
    from zhiku.cli.importer import Importer, report, summary
    from zhiku.knowledge import datasets
    from zhiku.knowledge.schemas import DatasetCreate

    async with platform.db.sessions() as session:
        principal = await root_principal(session)
        ds = await datasets.find_dataset_by_name(session, principal, dataset_name)
        created_dataset = ds is None
        dataset_id = ds.id if ds else (await datasets.create_dataset(
            session, principal, platform.embedders, DatasetCreate(name=dataset_name),
            vector_store=platform.vector_store)).id
    importer = Importer(platform, principal, dataset_id, chunk_size=chunk_size, console=console,
                        err_console=err_console)
    outcomes = await importer.run(walked, sync=sync, delete=delete)
    report(outcomes, console, err_console)
    failed = sum(o.result == "failed" for o in outcomes)
    if created_dataset and not any(o.result == "ready" for o in outcomes):
        # nothing could be added: leave no empty dataset behind
        async with platform.db.sessions() as session:
            await datasets.delete_dataset(session, principal, dataset_id, vector_store=platform.vector_store)
        console.print(f"nothing imported; dataset {dataset_name!r} not created")
        return failed
    console.print(f"dataset {dataset_name!r} (id {dataset_id}): {summary(outcomes)}")
    return failed


@apps_cli.command("create")
def apps_create(name: str, dataset: list[str] = typer.Option(..., "--dataset", help="Dataset name (repeatable)."),
                model: str | None = typer.Option(None, "--model"),
                prompt: str | None = typer.Option(None, "--prompt", help="System prompt."),
                data_dir: Path | None = DataDirOption) -> None:
    """Create an app over one or more datasets."""
    from zhiku.apps import service
    from zhiku.apps.schemas import AppCreate, AppPublic
    from zhiku.errors import NotFound
    from zhiku.knowledge.datasets import find_dataset_by_name

    async def main(session: AsyncSession, principal: Principal) -> AppPublic:
        ids = []
        for ds_name in dataset:
            ds = await find_dataset_by_name(session, principal, ds_name)
            if ds is None:
                raise NotFound(f"dataset {ds_name!r} does not exist", code="dataset_not_found")
            ids.append(ds.id)
        return await service.create_app(session, principal, AppCreate(
            name=name, dataset_ids=ids, model=model, system_prompt=prompt or ""))

    created = run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    console.print(f"created app {created.name!r} (id {created.id}) over datasets {created.dataset_ids}")


@apps_cli.command("import")
def apps_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                            help="FastGPT app JSON: an export, a template or an app with modules."),
                name: str | None = typer.Option(None, "--name", help="App name (default: the file's name field, "
                                                                    "else the file name without .json)."),
                data_dir: Path | None = DataDirOption) -> None:
    """Import a FastGPT workflow app; node kinds Zhiku does not run are named and nothing is imported."""
    import json

    from zhiku.apps.schemas import AppPublic
    from zhiku.apps.workflow_apps import import_workflow_app

    try:
        raw = json.loads(file.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        err_console.print(f"[red]error:[/red] {file} is not JSON: {exc}", highlight=False)
        raise typer.Exit(1) from None
    file_name = raw.get("name") if isinstance(raw, dict) else None
    app_name = name or (file_name.strip() if isinstance(file_name, str) else "") or file.stem

    async def main(session: AsyncSession, principal: Principal) -> AppPublic:
        return await import_workflow_app(session, principal, raw, app_name)

    created = run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    console.print(f"imported app {created.name!r} (id {created.id}, {created.type})", highlight=False)


@apps_cli.command("export")
def apps_export(name: str, output: Path | None = typer.Option(None, "-o", "--output",
                                                               help="Write here instead of standard output."),
                data_dir: Path | None = DataDirOption) -> None:
    """Export an app as FastGPT's JSON (nodes, edges, chatConfig), without dataset ids or secrets."""
    import json

    from zhiku.apps.service import find_app_by_name
    from zhiku.apps.workflow_apps import export_app

    async def main(session: AsyncSession, principal: Principal) -> dict:
        return await export_app(session, principal, (await find_app_by_name(session, principal, name)).id)

    text = json.dumps(run(lambda: _with_database(build_settings(data_dir=data_dir), main)), ensure_ascii=False,
                      indent=2) + "\n"
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {output}", highlight=False)


@apps_cli.command("list")
def apps_list(data_dir: Path | None = DataDirOption) -> None:
    """List the apps with their type and datasets."""
    from rich.table import Table

    from zhiku.apps.service import list_apps

    found = run(lambda: _with_database(build_settings(data_dir=data_dir), list_apps))
    table = Table("id", "name", "type", "datasets", "updated")
    for item in found:
        table.add_row(str(item.id), item.name, item.type, ", ".join(map(str, item.dataset_ids)) or "-",
                      f"{item.updated_at:%Y-%m-%d %H:%M}")
    console.print(table)


@keys_cli.command("create")
def keys_create(name: str = typer.Option(..., "--name"),
                app_name: str | None = typer.Option(None, "--app", help="Bind the key to this app."),
                data_dir: Path | None = DataDirOption) -> None:
    """Create an API key; the key is printed alone on the last line, once."""
    from zhiku.apps.service import find_app_by_name
    from zhiku.auth.service import CreatedKey, create_api_key

    async def main(session: AsyncSession, principal: Principal) -> CreatedKey:
        app_id = (await find_app_by_name(session, principal, app_name)).id if app_name else None
        return await create_api_key(session, principal, name, app_id)

    created = run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    scope = f"app {app_name!r}" if app_name else "the whole team"
    err_console.print(f"API key {created.name!r} for {scope} (shown once):")
    print(created.key)


@app.command()
def ask(question: str, app_name: str = typer.Option(..., "--app"),
        data_dir: Path | None = DataDirOption) -> None:
    """Ask an app a question; prints the answer and its sources."""
    from zhiku.apps.chat import AnswerText, ChatRequest, QuotesFound, TurnFailed, run_chat_turn
    from zhiku.apps.service import find_app_by_name
    from zhiku.auth.service import root_principal
    from zhiku.retrieval.fusion import Candidate

    async def main(platform: Platform) -> tuple[str, list[Candidate]]:
        async with platform.db.sessions() as session:
            principal = await root_principal(session)
            app_row = await find_app_by_name(session, principal, app_name)
        answer: list[str] = []
        quotes: list[Candidate] = []
        request = ChatRequest(messages=[{"role": "user", "content": question}], app_id=app_row.id,
                              stream=False, source="cli")
        async for event in run_chat_turn(platform.chat_deps(), principal, request):
            if isinstance(event, QuotesFound):
                quotes = event.quotes
            elif isinstance(event, AnswerText):
                answer.append(event.text)
            elif isinstance(event, TurnFailed):
                raise event.error
        return "".join(answer), quotes

    answer, quotes = run(lambda: _with_platform(build_settings(data_dir=data_dir), main))
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

    async def main(session: AsyncSession, _principal: Principal) -> str:
        return await reset(session, username, password)

    new = run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    err_console.print(f"password of {username!r} changed; sessions ended")
    if not password:
        print(new)


class UserRole(str, Enum):
    admin = "admin"
    member = "member"  # the database's "user"


@users_cli.command("create")
def users_create(username: str,
                 password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                              confirmation_prompt=True, help="Asked for, hidden, if omitted."),
                 role: UserRole = typer.Option(UserRole.member, "--role",
                                               help="admin: manages users; member: a plain user."),
                 data_dir: Path | None = DataDirOption) -> None:
    """Create a user in root's team."""
    from zhiku.auth.users import UserCreate, UserPublic, create_user

    async def main(session: AsyncSession, principal: Principal) -> UserPublic:
        return await create_user(session, principal, UserCreate(username=username, password=password,
                                                                role=role.value))

    created = run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    console.print(f"created {created.role} {created.username!r} (id {created.id})", highlight=False)


@users_cli.command("list")
def users_list(data_dir: Path | None = DataDirOption) -> None:
    """List the users with their role and status."""
    from rich.table import Table

    from zhiku.auth.users import list_users

    found = run(lambda: _with_database(build_settings(data_dir=data_dir), list_users))
    table = Table("id", "username", "role", "status", "created")
    for user in found:
        table.add_row(str(user.id), user.username, user.role, user.status, f"{user.created_at:%Y-%m-%d %H:%M}")
    console.print(table)


def _set_status(username: str, data_dir: Path | None, *, active: bool) -> None:
    from zhiku.auth.users import UserPublic, find_user_id, set_user_status

    async def main(session: AsyncSession, principal: Principal) -> UserPublic:
        return await set_user_status(session, principal, await find_user_id(session, principal, username),
                                     active=active)

    changed = run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    console.print(f"{changed.username!r} is {changed.status}"
                  + ("" if active else "; their sessions ended and their API keys are refused"), highlight=False)


@users_cli.command("disable")
def users_disable(username: str, data_dir: Path | None = DataDirOption) -> None:
    """Disable a user: their sessions end and their API keys stop working at once."""
    _set_status(username, data_dir, active=False)


@users_cli.command("enable")
def users_enable(username: str, data_dir: Path | None = DataDirOption) -> None:
    """Enable a disabled user again (their API keys work again; they log in anew)."""
    _set_status(username, data_dir, active=True)


@users_cli.command("delete")
def users_delete(username: str, data_dir: Path | None = DataDirOption) -> None:
    """Delete a user with their sessions and the API keys they made."""
    from zhiku.auth.users import delete_user, find_user_id

    async def main(session: AsyncSession, principal: Principal) -> None:
        await delete_user(session, principal, await find_user_id(session, principal, username))

    run(lambda: _with_database(build_settings(data_dir=data_dir), main))
    console.print(f"deleted {username!r} and their API keys", highlight=False)
