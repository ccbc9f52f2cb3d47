"""Content-addressed blob store on disk: ``files_dir/ab/abcdef…`` (sha256)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
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

    @staticmethod
    def id_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def write(self, data: bytes) -> str:
        """Store bytes and return their id. Atomic: a crash never leaves a partial blob under the id."""
        file_id = self.id_of(data)
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

    def trash(self, file_id: str) -> Path | None:
        """Move the blob aside (a ``.trash-`` name in its folder) and say where; None when it is not there.
        The caller unlinks it once its transaction commits, or puts it back with ``restore``."""
        path = self.path_for(file_id)
        aside = path.with_name(f".trash-{file_id}-{uuid.uuid4().hex}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return None
        return aside

    def restore(self, aside: Path, file_id: str) -> None:
        os.replace(aside, self.path_for(file_id))

    def read(self, file_id: str) -> bytes:
        try:
            return self.path_for(file_id).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"stored file {file_id} is missing from {self.root}", code="file_missing") from exc


async def register_file(session: AsyncSession, file_id: str, size: int) -> None:
    """Record the blob, holding its row's lock until the caller commits: a collection delete that would drop
    the same (unused) blob waits, or has finished and the row is written again (write the blob after this)."""
    statement = insert(StoredFile).values(id=file_id, size=size)
    await session.execute(statement.on_conflict_do_update(index_elements=[StoredFile.id],
                                                          set_={"size": statement.excluded.size}))
