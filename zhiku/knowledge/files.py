"""Content-addressed blob store on disk: ``files_dir/ab/abcdef…`` (sha256)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.db.models import StoredFile
from zhiku.errors import NotFound


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, file_id: str) -> Path:
        return self.root / file_id[:2] / file_id

    def write(self, data: bytes) -> str:
        """Store bytes and return their id. Atomic: a crash never leaves a partial blob under the id."""
        file_id = hashlib.sha256(data).hexdigest()
        path = self.path_for(file_id)
        if path.exists():
            return file_id
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return file_id

    def read(self, file_id: str) -> bytes:
        try:
            return self.path_for(file_id).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"stored file {file_id} is missing from {self.root}", code="file_missing") from exc


async def register_file(session: AsyncSession, file_id: str, size: int) -> None:
    await session.execute(insert(StoredFile).values(id=file_id, size=size).on_conflict_do_nothing())
