"""``zhiku gateway …``: run the gateway alone, and script channels, tokens and logs.

The commands work on the same database as a running gateway (which picks up their writes on its next
refresh, at once for a new token).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from zhiku.gateway.providers import channel_types
from zhiku.process.bootstrap import build_settings, configure_logging, run

if TYPE_CHECKING:
    from zhiku.config import Settings
    from zhiku.gateway.store.engine import GatewayStore
    from zhiku.gateway.store.keybox import KeyBox

app = typer.Typer(help="The model gateway (OneAPI's role): relay, channels, tokens, logs.", no_args_is_help=True)
channels_cli = typer.Typer(help="Manage upstream channels.", no_args_is_help=True)
tokens_cli = typer.Typer(help="Manage gateway tokens (sk-…).", no_args_is_help=True)
app.add_typer(channels_cli, name="channels")
app.add_typer(tokens_cli, name="tokens")

# Piped output keeps whole table rows on one line (scripts grep them); a terminal gets its own width.
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
DataDirOption = typer.Option(None, "--data-dir", help="Data directory (default: ZHIKU_DATA_DIR or ./data).")


async def _with_store(settings: Settings, fn: Callable[[GatewayStore, KeyBox, int], Awaitable[T]]) -> T:
    """The gateway's store (migrated) and key box, without starting a gateway."""
    from zhiku.gateway.admin import users
    from zhiku.gateway.runtime import resolve_store
    from zhiku.gateway.store.engine import migrate
    from zhiku.gateway.store.keybox import open_keybox

    store = resolve_store(settings)
    try:
        await migrate(store)
        root_id = await users.ensure_root(store)
        return await fn(store, open_keybox(settings), root_id)
    finally:
        await store.dispose()


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command()
def serve(port: int | None = typer.Option(None, help="Port (default 3001, or ZHIKU_GATEWAY_PORT)."),
          host: str | None = typer.Option(None, help="Address to bind (default 0.0.0.0)."),
          data_dir: Path | None = DataDirOption) -> None:
    """Run only the gateway: /v1 relay and the admin API."""
    from zhiku.process.serve import run_gateway_server, tune_gc_for_serving

    settings = build_settings(host=host, data_dir=data_dir)
    configure_logging(settings)
    try:
        run(lambda: run_gateway_server(settings, port=port, announce=console.print,
                                       on_ready=lambda _gateway, _server: tune_gc_for_serving()), server=True)
    except KeyboardInterrupt:
        pass


@channels_cli.command("add")
def channels_add(type_: str = typer.Option(..., "--type", help=" | ".join(channel_types())),
                 name: str = typer.Option(..., "--name"),
                 base_url: str = typer.Option("", "--base-url"),
                 key: str = typer.Option("", "--key"),
                 models: str = typer.Option(..., "--models", help="Comma-separated model names."),
                 priority: int = typer.Option(0, "--priority"),
                 weight: int = typer.Option(1, "--weight"),
                 model_mapping: str | None = typer.Option(None, "--model-mapping",
                                                             help='JSON: {"requested": "upstream"}'),
                 data_dir: Path | None = DataDirOption) -> None:
    """Add a channel; prints its id."""
    from pydantic import ValidationError

    from zhiku.gateway.admin import channels
    from zhiku.gateway.admin.schemas import ChannelCreate

    try:
        mapping = json.loads(model_mapping) if model_mapping else None
        if mapping is not None and not isinstance(mapping, dict):
            raise ValueError
    except ValueError:
        err_console.print('[red]error:[/red] --model-mapping must be a JSON object, e.g. {"gpt-4": "gpt-4o"}')
        raise typer.Exit(1) from None
    try:
        data = ChannelCreate(type=type_, name=name, base_url=base_url, key=key, models=_csv(models) or [],
                             priority=priority, weight=weight, model_mapping=mapping)
    except ValidationError as exc:
        first = exc.errors()[0]
        err_console.print(f"[red]error:[/red] {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        raise typer.Exit(1) from None

    created = run(lambda: _with_store(build_settings(data_dir=data_dir),
                                       lambda store, keybox, _: channels.create_channel(store, keybox, data)))
    console.print(f"added channel {created.name!r} (id {created.id}, {created.type}) serving "
                  f"{', '.join(created.models)}")


@channels_cli.command("list")
def channels_list(data_dir: Path | None = DataDirOption) -> None:
    """List channels (keys masked)."""
    from zhiku.gateway.admin import channels

    items, _ = run(lambda: _with_store(build_settings(data_dir=data_dir),
                                        lambda store, keybox, _: channels.list_channels(store, size=1000)))
    table = Table("id", "type", "name", "base URL", "models", "priority", "weight", "status", "key")
    for c in items:
        status = c.status + (f" ({c.status_reason})" if c.status_reason else "")
        table.add_row(str(c.id), c.type, c.name, c.base_url, ",".join(c.models), str(c.priority), str(c.weight),
                      status, c.key)
    console.print(table)


@tokens_cli.command("create")
def tokens_create(name: str = typer.Option(..., "--name"),
                  models: str | None = typer.Option(None, "--models", help="Comma-separated; default: any."),
                  quota: int | None = typer.Option(None, "--quota", help="Quota units; default: unlimited."),
                  rpm: int = typer.Option(0, "--rpm", help="Requests per minute; 0: no limit."),
                  data_dir: Path | None = DataDirOption) -> None:
    """Create a token for root; the key is printed alone on the last line, once."""
    from zhiku.gateway.admin import tokens
    from zhiku.gateway.admin.schemas import TokenCreate

    if quota is not None and quota < 0:
        err_console.print("[red]error:[/red] --quota must be 0 or more")
        raise typer.Exit(1)
    data = TokenCreate(name=name, models=_csv(models), remain_quota=quota or 0, unlimited_quota=quota is None,
                       rpm_limit=rpm)
    created = run(lambda: _with_store(build_settings(data_dir=data_dir),
                                       lambda store, _, root_id: tokens.create_token(store, root_id, data)))
    limits = [f"models {', '.join(created.models)}" if created.models else "any model",
              "unlimited quota" if created.unlimited_quota else f"quota {created.remain_quota}"]
    if created.rpm_limit:
        limits.append(f"{created.rpm_limit} requests/minute")
    err_console.print(f"token {created.name!r} (id {created.id}; {'; '.join(limits)}), shown once:")
    print(created.key)


@app.command("import-oneapi")
def import_oneapi(dsn: str = typer.Option(..., "--dsn", help="The OneAPI database: user:pass@tcp(host:3306)/oneapi, "
                                                             "mysql://…, postgresql://… or sqlite:///path"),
                  data_dir: Path | None = DataDirOption) -> None:
    """Import a OneAPI database's users, tokens and channels (safe to run again)."""
    from zhiku.gateway.admin.oneapi_import import TABLES, read_oneapi
    from zhiku.gateway.admin.oneapi_import import import_oneapi as run_import

    async def work() -> Any:
        source = await read_oneapi(dsn)
        return await _with_store(build_settings(data_dir=data_dir),
                                 lambda store, keybox, _: run_import(store, keybox, source))

    summary = run(work)
    table = Table("table", "imported", "updated", "unchanged", "skipped")
    for name in TABLES:
        c = summary.counts[name]
        table.add_row(name, str(c.imported), str(c.updated), str(c.unchanged), str(c.skipped))
    console.print(table)
    for line in summary.skipped:
        console.print(f"skipped {line}", highlight=False)
    for line in summary.warnings:
        console.print(f"warning: {line}", highlight=False)
    console.print("OneAPI keys keep working as sk-<key>. Passwords are not imported (gateway users have none; "
                  "admins use access tokens).", highlight=False)


@app.command("logs")
def logs_(limit: int = typer.Option(20, "--limit", min=1, max=1000),
          data_dir: Path | None = DataDirOption) -> None:
    """The latest request logs, newest first."""
    from zhiku.gateway.admin import logs

    items, total = run(lambda: _with_store(build_settings(data_dir=data_dir),
                                            lambda store, _k, _r: logs.list_logs(store, logs.LogFilter(), size=limit)))
    table = Table("time", "token", "channel", "model → upstream", "tokens (p+c)", "quota", "ms", "ttft", "stream",
                  "status", "error")
    for row in items:
        models = row.model if row.model == row.upstream_model or not row.upstream_model else \
            f"{row.model} → {row.upstream_model}"
        table.add_row(row.created_at.strftime("%Y-%m-%d %H:%M:%S"), row.token_name, row.channel_name or "-", models,
                      f"{row.prompt_tokens}+{row.completion_tokens}", str(row.quota), str(row.latency_ms),
                      str(row.first_token_ms) if row.first_token_ms is not None else "-",
                      "yes" if row.is_stream else "no", str(row.status), (row.error or "")[:60])
    console.print(table)
    console.print(f"{len(items)} of {total} log rows")


