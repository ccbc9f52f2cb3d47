"""Files uploaded for chat messages (FastGPT's ``chat`` bucket: ``POST /api/common/file/upload``).

The bytes are kept as the knowledge import keeps files (the content-addressed blob store and its ``files``
row); a ``chat_files`` row names the upload with a random key, its team, the app it was uploaded for and
its name. The upload's URL (``/api/common/file/read/<name>?token=<key>``) goes in a message's ``file_url``
part; the readFiles node reads such a file straight from storage, and only for a run the file is visible
to: the same team, and the same app when the upload named one (a share visitor: only files of its app).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.service import load_app
from zhiku.auth.service import Principal
from zhiku.db.models import ChatFile
from zhiku.errors import InvalidInput, NotFound, PayloadTooLarge
from zhiku.knowledge.files import BlobStore, register_file
from zhiku.safetext import check_name

READ_PATH = "/api/common/file/read/"
MAX_NAME = 500


@dataclass(frozen=True)
class ChatFilePublic:
    file_key: str
    name: str
    size: int
    content_type: str

    @property
    def url(self) -> str:
        return f"{READ_PATH}{quote(self.name)}?token={self.file_key}"


@dataclass(frozen=True)
class ChatFileUrl:
    """A chat-file URL taken apart: the key, and whether it named no host (then it can only be ours)."""

    file_key: str
    relative: bool


def parse_url(url: str) -> ChatFileUrl | None:
    """The chat file a URL names (``…/api/common/file/read/<name>?token=<key>``), else None."""
    parts = urlsplit(url.strip())
    tokens = parse_qs(parts.query).get("token") or []
    if not unquote(parts.path).startswith(READ_PATH) or not tokens or not tokens[0]:
        return None
    return ChatFileUrl(file_key=tokens[0], relative=not parts.scheme and not parts.netloc)


def _public(row: ChatFile) -> ChatFilePublic:
    return ChatFilePublic(file_key=row.file_key, name=row.name, size=row.size, content_type=row.content_type)


async def upload(session: AsyncSession, principal: Principal, blobs: BlobStore, *, name: str, data: bytes,
                 content_type: str, app_id: int | None, max_bytes: int) -> ChatFilePublic:
    """Keep an uploaded chat file; ``app_id`` (an app key's own app when it names none) limits who reads it."""
    try:
        name = check_name(name)[:MAX_NAME]
    except ValueError as exc:
        raise InvalidInput(f"file name: {exc}", code="invalid_file_name") from None
    if not data:
        raise InvalidInput(f"{name} is empty", code="empty_file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name} is over the upload limit of {max_bytes} bytes", detail={"limit": max_bytes})
    app_id = app_id if app_id is not None else principal.app_id
    if app_id is not None:
        await load_app(session, principal, app_id)  # the caller's app, or 404
    blob_id = blobs.id_of(data)
    await register_file(session, blob_id, len(data))
    blobs.write(data)
    row = ChatFile(file_key=secrets.token_hex(16), team_id=principal.team_id, app_id=app_id, blob_id=blob_id,
                   name=name, content_type=(content_type or "application/octet-stream")[:200], size=len(data),
                   created_by=principal.user_id)
    session.add(row)
    await session.commit()
    return _public(row)


def _visible(row: ChatFile, principal: Principal, app_id: int | None) -> bool:
    if row.team_id != principal.team_id:
        return False
    app_id = app_id if app_id is not None else principal.app_id  # outside a run: the caller's own app, if bound
    if row.app_id is None:  # uploaded for no app: the team's logins and team-wide keys
        return principal.app_id is None and principal.share is None
    return app_id is None or row.app_id == app_id


async def _row(session: AsyncSession, principal: Principal, file_key: str, app_id: int | None) -> ChatFile:
    row = (await session.execute(select(ChatFile).where(ChatFile.file_key == file_key))).scalar_one_or_none()
    if row is None or not _visible(row, principal, app_id):
        raise NotFound("no such chat file (or it belongs to another team or app)", code="chat_file_not_found")
    return row


async def read(session: AsyncSession, principal: Principal, blobs: BlobStore, file_key: str, *,
               app_id: int | None) -> tuple[ChatFilePublic, bytes]:
    """A chat file's bytes, when the caller may read it during a run of ``app_id`` (None: outside a run)."""
    row = await _row(session, principal, file_key, app_id)
    return _public(row), blobs.read(row.blob_id)
