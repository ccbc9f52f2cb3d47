"""Which files a dataset holds, by the path they were imported from: what ``zhiku import`` compares a folder
with, so that an unchanged file is not imported twice and a changed one replaces its earlier import.

A file imported by ``zhiku import`` records ``meta["source_path"]``: its path relative to the folder named
on the command line, under that folder's name (``docs/guide/setup.md``), or its bare name when the file itself
was named. Its content hash is the collection's ``file_id`` (the blob store is content-addressed by sha256).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import Collection
from zhiku.knowledge.datasets import load_dataset

SOURCE_PATH = "source_path"


@dataclass(frozen=True)
class ImportedFile:
    collection_id: int
    source_path: str
    sha256: str | None
    status: str
    error: str | None


async def imported_files(session: AsyncSession, principal: Principal,
                         dataset_id: int) -> dict[str, list[ImportedFile]]:
    """The dataset's imported files by source path, oldest first: more than one under a path means a
    re-import was interrupted before it removed the earlier import."""
    await load_dataset(session, principal, dataset_id)
    source = Collection.meta[SOURCE_PATH].as_string()
    rows = await session.execute(
        select(Collection.id, source, Collection.file_id, Collection.status, Collection.error)
        .where(Collection.dataset_id == dataset_id, Collection.type == "file", source.is_not(None))
        .order_by(Collection.id))
    found: dict[str, list[ImportedFile]] = {}
    for cid, path, file_id, status, error in rows:
        found.setdefault(path, []).append(ImportedFile(cid, path, file_id, status, error))
    return found
