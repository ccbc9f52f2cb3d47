"""``zhiku gateway import-oneapi``: copy a OneAPI database's users, tokens and channels into the gateway.

Reads OneAPI's own tables (MySQL/MariaDB, PostgreSQL or SQLite, any DSN spelling ``zhiku.gateway.store.dsn``
accepts), maps each row with :mod:`zhiku.gateway.admin.oneapi`, and writes all three tables in one
transaction. Every imported row remembers its origin in ``external_ref`` (``oneapi:token:17``), so the
command can run again: rows it made before are brought in line with OneAPI (OneAPI's values win —
run it again while OneAPI still takes traffic, not after), new ones are added, nothing is duplicated.
OneAPI's ``root`` becomes the gateway's root (its quota and group; the gateway keeps its own admin
token). Token keys are stored as hashes of ``sk-<key>``, so clients keep their keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from zhiku.errors import InvalidInput, StartupError
from zhiku.gateway.admin import oneapi
from zhiku.gateway.admin.channels import sync_abilities
from zhiku.gateway.admin.users import ROOT
from zhiku.gateway.store.dsn import gateway_database_url, redact_dsn
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.keybox import KeyBox, mask_key
from zhiku.gateway.store.tables import GatewayChannel, GatewayToken, GatewayUser

TABLES = ("users", "tokens", "channels")


@dataclass
class TableCount:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0


@dataclass
class ImportSummary:
    counts: dict[str, TableCount] = field(default_factory=lambda: {t: TableCount() for t in TABLES})
    skipped: list[str] = field(default_factory=list)  # why, one line per skipped row
    warnings: list[str] = field(default_factory=list)

    def skip(self, table: str, reason: str) -> None:
        self.counts[table].skipped += 1
        self.skipped.append(f"{table}: {reason}")


@dataclass(frozen=True)
class OneAPIRows:
    users: list[dict[str, Any]]
    tokens: list[dict[str, Any]]
    channels: list[dict[str, Any]]


async def read_oneapi(dsn: str) -> OneAPIRows:
    """Every row of OneAPI's ``users``, ``tokens`` and ``channels``, as column → value."""
    try:
        url = gateway_database_url(dsn)
    except StartupError as exc:
        raise InvalidInput(exc.message, code="invalid_dsn") from None
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            missing = [t for t in TABLES if t not in present]
            if missing:
                raise InvalidInput(f"{redact_dsn(dsn)} is not a OneAPI database: no table "
                                   f"{', '.join(missing)}", code="not_oneapi")
            # SELECT * reads whatever columns this OneAPI version has; absent ones map to defaults.
            rows = {}
            for table in TABLES:
                result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))
                rows[table] = [dict(r) for r in result.mappings()]
    except InvalidInput:
        raise
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc  # the driver's own message, without SQLAlchemy's footer
        raise InvalidInput(f"cannot read the OneAPI database at {redact_dsn(dsn)}: {type(reason).__name__}: "
                           f"{reason}", code="oneapi_unreadable") from exc
    finally:
        await engine.dispose()
    return OneAPIRows(users=rows["users"], tokens=rows["tokens"], channels=rows["channels"])


async def import_oneapi(store: GatewayStore, keybox: KeyBox, source: OneAPIRows) -> ImportSummary:
    """Write ``source`` into the gateway's tables, in one transaction; see the module docstring."""
    summary = ImportSummary()
    async with store.sessions() as session:
        user_ids = await _import_users(session, source.users, summary)
        await _import_tokens(session, source.tokens, user_ids, summary)
        await _import_channels(session, keybox, source.channels, summary)
        await session.commit()
    return summary


def _apply(row: Any, values: Mapping[str, Any]) -> bool:
    """Set ``values`` on ``row``; whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


async def _import_users(session: AsyncSession, rows: list[dict[str, Any]],
                        summary: ImportSummary) -> dict[int, int]:
    """Users; returns OneAPI user id → gateway user id."""
    existing = list((await session.execute(select(GatewayUser))).scalars())
    by_ref = {u.external_ref: u for u in existing if u.external_ref}
    by_name = {u.username: u for u in existing}
    by_access = {u.access_token_hash: u for u in existing if u.access_token_hash}
    ids: dict[int, int] = {}
    for source in rows:
        plan = oneapi.plan_user(source)
        counts = summary.counts["users"]
        if plan.skip:
            summary.skip("users", plan.skip)
            continue
        values = dict(plan.values)
        username = values["username"]
        row = by_ref.get(plan.ref)
        if row is None and username in by_name and by_name[username].external_ref in (None, plan.ref):
            row = by_name[username]  # the gateway's own root, or a user made by hand before the import
        if row is None and username in by_name:
            summary.skip("users", f"user {username!r}: the name belongs to gateway user "
                                  f"{by_name[username].id}, imported from elsewhere")
            continue
        if row is not None and row.username != username and username in by_name:
            summary.skip("users", f"user {username!r} (renamed in OneAPI): the name is taken by gateway user "
                                  f"{by_name[username].id}")
            continue
        if row is not None and row.username == ROOT or username == ROOT:
            # Root stays root and enabled, and keeps the admin token the gateway was started with.
            values.pop("role"), values.pop("status"), values.pop("access_token_hash")
        elif oneapi.is_root(source):
            summary.warnings.append(f"user {username!r} is a OneAPI root: imported as an admin")
        access = values.get("access_token_hash")
        if access and by_access.get(access, row) is not row:
            values["access_token_hash"] = None
            summary.warnings.append(f"user {username!r}: access token already used by another gateway user; "
                                    "not imported")
        if row is None:
            row = GatewayUser(**values, **plan.on_insert)
            session.add(row)
            counts.imported += 1
        else:
            changed = _apply(row, values)
            if row.external_ref is None:
                row.external_ref = plan.ref
                changed = True
            counts.updated += changed
            counts.unchanged += not changed
        by_ref[plan.ref] = by_name[row.username] = row
        if row.access_token_hash:
            by_access[row.access_token_hash] = row
    await session.flush()
    for source in rows:
        found = by_ref.get(oneapi.user_ref(int(source["id"])))
        if found is not None:
            ids[int(source["id"])] = found.id
    return ids


async def _import_tokens(session: AsyncSession, rows: list[dict[str, Any]], user_ids: dict[int, int],
                         summary: ImportSummary) -> None:
    existing = list((await session.execute(select(GatewayToken))).scalars())
    by_ref = {t.external_ref: t for t in existing if t.external_ref}
    by_hash = {t.key_hash: t for t in existing}
    counts = summary.counts["tokens"]
    for source in rows:
        plan = oneapi.plan_token(source)
        if plan.skip:
            summary.skip("tokens", plan.skip)
            continue
        user_id = user_ids.get(plan.owner or 0)
        if user_id is None:
            summary.skip("tokens", f"token {plan.values['name']!r} (id {plan.source_id}): its user "
                                   f"(OneAPI id {plan.owner}) was not imported")
            continue
        summary.warnings.extend(plan.warnings)
        values = {**plan.values, "user_id": user_id}
        row = by_ref.get(plan.ref)
        holder = by_hash.get(values["key_hash"])
        if holder is not None and holder is not row:
            summary.skip("tokens", f"token {values['name']!r} (id {plan.source_id}): its key is already "
                                   f"gateway token {holder.id} ({holder.name!r})")
            continue
        if row is None:
            row = GatewayToken(**values, **plan.on_insert)
            session.add(row)
            counts.imported += 1
        else:
            if row.key_hash != values["key_hash"]:
                by_hash.pop(row.key_hash, None)
            changed = _apply(row, values)
            counts.updated += changed
            counts.unchanged += not changed
        by_ref[plan.ref] = by_hash[row.key_hash] = row


async def _import_channels(session: AsyncSession, keybox: KeyBox, rows: list[dict[str, Any]],
                           summary: ImportSummary) -> None:
    imported = select(GatewayChannel).where(GatewayChannel.external_ref.is_not(None))
    existing = list((await session.execute(imported)).scalars())
    by_ref = {c.external_ref: c for c in existing}
    counts = summary.counts["channels"]
    for source in rows:
        plan = oneapi.plan_channel(source)
        if plan.skip:
            summary.skip("channels", plan.skip)
            continue
        summary.warnings.extend(plan.warnings)
        values = dict(plan.values)
        key = values.pop("key")
        row = by_ref.get(plan.ref)
        if row is None:
            row = GatewayChannel(**values, **plan.on_insert, key_encrypted=keybox.encrypt(key) if key else "",
                                 key_hint=mask_key(key) if key else "")
            session.add(row)
            await session.flush()
            counts.imported += 1
        else:
            changed = _apply(row, values)
            stored = keybox.decrypt(row.key_encrypted) if row.key_encrypted else ""
            if stored != key:
                row.key_encrypted, row.key_hint = (keybox.encrypt(key), mask_key(key)) if key else ("", "")
                changed = True
            counts.updated += changed
            counts.unchanged += not changed
            if not changed:
                continue
        await sync_abilities(session, row)
        by_ref[plan.ref] = row
