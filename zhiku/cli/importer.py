"""``zhiku import``: walk folders, import what changed, show each file's progress, end with a table.

A file is known by the path it was imported from (``zhiku.knowledge.imported``) and its content hash. An
unchanged file is never imported twice. A changed one is re-imported with ``--sync``: the new import is made
beside the old one, which is removed once the new one is ready (a failed re-import keeps the old one).
``--delete`` (with ``--sync``) also removes imports of files that no longer exist under the folders named.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from zhiku.auth.service import Principal
    from zhiku.knowledge.imported import ImportedFile
    from zhiku.knowledge.schemas import CollectionPublic
    from zhiku.wiring import Platform


@dataclass(frozen=True)
class Found:
    """A file to import: where it is, and the path it is recorded under."""

    path: Path
    source: str


@dataclass(frozen=True)
class Outcome:
    """One row of the closing table."""

    found: Found
    result: str  # ready | failed | unchanged | changed | deleted
    reason: str = ""
    chunks: int | None = None


@dataclass
class Walk:
    files: list[Found]
    skipped: list[tuple[Path, str]]
    folders: dict[str, Path]  # the source-path prefix of each folder named -> the folder


def walk(paths: list[Path], extensions: set[str], max_bytes: int) -> Walk:
    """The files to import under ``paths``; a named file is always tried, a file found in a folder is
    skipped (with the reason) when it is hidden, of an unsupported type or too large."""
    result = Walk(files=[], skipped=[], folders={})
    for path in paths:
        if path.is_dir():
            root = path.resolve().name or "root"
            result.folders[f"{root}/"] = path
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                relative = found.relative_to(path)
                reason = skip_reason(relative, found, extensions, max_bytes)
                if reason:
                    result.skipped.append((found, reason))
                else:
                    result.files.append(Found(found, f"{root}/{relative.as_posix()}"))
        elif path.is_file():
            result.files.append(Found(path, path.name))  # named on purpose: tried, a refusal is a failure
        else:
            raise FileNotFoundError(f"{path} does not exist")
    return result


def skip_reason(relative: Path, path: Path, extensions: set[str], max_bytes: int) -> str | None:
    """Why a file found in a folder is not imported, or None."""
    if any(part.startswith(".") for part in relative.parts):
        return "hidden"
    if path.suffix.lower() not in extensions:
        return f"unsupported file type {path.suffix or '(none)'!r}"
    size = path.stat().st_size
    if size > max_bytes:
        return f"too large ({size} bytes; the limit is {max_bytes}, ZHIKU_UPLOAD_MAX_BYTES)"
    return None


class Importer:
    def __init__(self, platform: Platform, principal: Principal, dataset_id: int, *, chunk_size: int | None,
                 console: Console, err_console: Console) -> None:
        self.platform = platform
        self.principal = principal
        self.dataset_id = dataset_id
        self.chunk_size = chunk_size
        self.console = console
        self.err_console = err_console

    async def run(self, walked: Walk, *, sync: bool, delete: bool) -> list[Outcome]:
        from zhiku.knowledge.imported import imported_files

        async with self.platform.db.sessions() as session:
            earlier = await imported_files(session, self.principal, self.dataset_id)
        outcomes: list[Outcome] = []
        started: list[tuple[Found, int, list[ImportedFile]]] = []  # the new import, what it replaces
        stale: list[ImportedFile] = []
        for found in walked.files:
            before = earlier.get(found.source, [])
            data = found.path.read_bytes()
            if before and before[-1].sha256 == hashlib.sha256(data).hexdigest():
                outcomes.append(Outcome(found, "unchanged", _unchanged_reason(before[-1])))
                stale += before[:-1] if sync else []  # left by an interrupted re-import
            elif before and not sync:
                outcomes.append(Outcome(found, "changed", "changed since the last import; not re-imported "
                                                          "without --sync"))
            else:
                outcome = await self._start(found, data)
                if isinstance(outcome, Outcome):
                    outcomes.append(outcome)
                else:
                    started.append((found, outcome, before))
        if delete:
            outcomes += await self._delete_missing(earlier, walked)
        await self._delete(stale)
        outcomes += await self._finish(started)
        return outcomes

    async def _start(self, found: Found, data: bytes) -> Outcome | int:
        from zhiku.errors import ZhikuError
        from zhiku.knowledge import collections
        from zhiku.knowledge.imported import SOURCE_PATH

        settings = self.platform.settings
        async with self.platform.db.sessions() as session:
            try:
                created = await collections.create_file_collection(
                    session, self.principal, self.platform.blobs, self.dataset_id, found.path.name, data,
                    max_bytes=settings.upload_max_bytes, chunk_size=self.chunk_size,
                    max_attempts=settings.job_max_attempts, source={SOURCE_PATH: found.source})
            except ZhikuError as exc:
                return Outcome(found, "failed", exc.message)
        return created.id

    async def _delete_missing(self, earlier: dict[str, list[ImportedFile]], walked: Walk) -> list[Outcome]:
        """Imports of files, under the folders named, that are gone from disk."""
        outcomes: list[Outcome] = []
        for source, imports in earlier.items():
            prefix = next((p for p in walked.folders if source.startswith(p)), None)
            if prefix is None or (walked.folders[prefix] / source[len(prefix):]).exists():
                continue
            await self._delete(imports)
            outcomes.append(Outcome(Found(walked.folders[prefix] / source[len(prefix):], source), "deleted",
                                    "the file no longer exists"))
        return outcomes

    async def _delete(self, imports: list[ImportedFile]) -> None:
        from zhiku.errors import NotFound
        from zhiku.knowledge import collections

        for imported in imports:
            async with self.platform.db.sessions() as session:
                try:
                    await collections.delete_collection(session, self.principal, imported.collection_id,
                                                        vector_store=self.platform.vector_store,
                                                        blobs=self.platform.blobs)
                except NotFound:
                    pass  # gone already

    async def _finish(self, started: list[tuple[Found, int, list[ImportedFile]]]) -> list[Outcome]:
        """Work the queue until every new import is ready or failed, showing each file's progress."""
        if not started:
            return []
        final = await self._watch(started)
        outcomes: list[Outcome] = []
        for (found, _cid, before), collection in zip(started, final):
            if collection.status == "ready":
                await self._delete(before)  # replaced
                outcomes.append(Outcome(found, "ready", "re-imported" if before else "", collection.chunk_count))
            elif before:  # a failed re-import: the earlier import stays
                await self._delete([_as_imported(collection, found)])
                outcomes.append(Outcome(found, "failed", f"{collection.error} (the earlier import is kept)"))
            else:
                outcomes.append(Outcome(found, "failed", collection.error or collection.status))
        return outcomes

    async def _watch(self, started: list[tuple[Found, int, list[ImportedFile]]]) -> list[CollectionPublic]:
        from zhiku.knowledge import collections

        # The queue is worked here too, so the import finishes whether or not a server is running.
        stop = asyncio.Event()
        worker = asyncio.create_task(self.platform.worker().run_forever(stop))
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[chunks]}"),
                          TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console) as bar:
                tasks = [bar.add_task(found.source, total=None, chunks="", status="pending")
                         for found, _, _ in started]
                while True:
                    async with self.platform.db.sessions() as session:
                        states = [await collections.get_collection(session, self.principal, cid)
                                  for _, cid, _ in started]
                    for task, state in zip(tasks, states):
                        total = state.chunk_count or None
                        bar.update(task, total=total, completed=state.indexed_count, status=state.status,
                                   chunks=f"{state.indexed_count}/{total} chunks" if total else "")
                    if all(s.status in ("ready", "error") for s in states):
                        return states
                    await asyncio.sleep(0.5)
        finally:
            stop.set()
            await worker


def _unchanged_reason(imported: ImportedFile) -> str:
    if imported.status == "error":
        return f"unchanged since the last import, which failed: {imported.error}"
    return "unchanged since the last import"


def _as_imported(collection: CollectionPublic, found: Found) -> ImportedFile:
    from zhiku.knowledge.imported import ImportedFile

    return ImportedFile(collection.id, found.source, None, collection.status, collection.error)


RESULT_STYLES = {"ready": "green", "failed": "red", "unchanged": "dim", "changed": "yellow", "deleted": "magenta"}


def report(outcomes: list[Outcome], console: Console, err_console: Console) -> None:
    """The closing table on stdout; each failure also as one line on stderr."""
    if not outcomes:
        return
    table = Table(title="zhiku import", show_lines=False)
    for column in ("file", "result", "chunks", "reason"):
        table.add_column(column, overflow="fold")
    order = {"failed": 0, "ready": 1, "changed": 2, "deleted": 3, "unchanged": 4}
    for outcome in sorted(outcomes, key=lambda o: (order[o.result], o.found.source)):
        style = RESULT_STYLES[outcome.result]
        table.add_row(outcome.found.source, f"[{style}]{outcome.result}[/{style}]",
                      "" if outcome.chunks is None else str(outcome.chunks), outcome.reason)
    console.print(table)
    for outcome in outcomes:
        if outcome.result == "failed":
            err_console.print(f"[red]failed[/red] {outcome.found.path}: {outcome.reason}", highlight=False)


def summary(outcomes: list[Outcome]) -> str:
    counts = {result: sum(o.result == result for o in outcomes) for result in RESULT_STYLES}
    parts = [f"{counts['ready']} imported", f"{counts['failed']} failed"]
    if counts["unchanged"]:
        parts.append(f"{counts['unchanged']} unchanged (already imported, skipped)")
    if counts["changed"]:
        parts.append(f"{counts['changed']} changed but not re-imported (use --sync)")
    if counts["deleted"]:
        parts.append(f"{counts['deleted']} deleted")
    return ", ".join(parts)
