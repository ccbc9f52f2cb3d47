"""A collection's source: the document a quote came from, for whoever may open it (FastGPT's "read source").

- A **file** (``file``; ``qa_table``: the uploaded CSV/XLSX) is its stored blob, served as a download under
  the name it was uploaded with.
- A **link** (``link``; ``website``: the crawl's start) is its URL, as the user gave it.
- Pasted text and hand-made collections (``text``, ``virtual``) have no document apart from their chunks:
  404 ``no_source_file``.

Which types have a document is :func:`zhiku.db.collection_types.source_kind`, the function every quote's
``sourceKind`` comes from too.

A browser that cannot send credentials (a share-link visitor, a FastGPT client opening a URL) gets a
**source link**: the native source route with a ``token`` that names the collection and its file and
expires after a few minutes. The token is sealed by the server's secret (the :class:`Sealer` seam; the
gateway's key box, Fernet: encrypted, authenticated, dated), so it cannot be forged or altered, and it
holds no credential: it opens that one file until it expires, nothing else.
"""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.collection_types import SourceKind, source_kind
from zhiku.db.models import Collection
from zhiku.errors import Forbidden, NotFound
from zhiku.knowledge.collections import load_collection
from zhiku.knowledge.files import BlobStore

# How long a source link opens its file: a share-link visitor's (FastGPT: 5 minutes) and a team member's.
VISITOR_LINK_SECONDS = 5 * 60
MEMBER_LINK_SECONDS = 30 * 60
MAX_TOKEN_CHARS = 512
_TOKEN_LABEL = "zhiku-source-v1"  # keeps a source token apart from anything else the same secret seals
_CLOCK_SKEW_SECONDS = 60


class Sealer(Protocol):
    """Seals text with the server's secret and opens what it sealed (``zhiku.gateway.store.keybox.KeyBox``)."""

    def encrypt(self, plain: str) -> str: ...

    def decrypt_recent(self, token: str, max_age_seconds: int) -> str | None: ...


@dataclass(frozen=True)
class CollectionSource:
    """Where a collection's document is: a stored file (``file_id``) or a URL."""

    collection_id: int
    kind: SourceKind
    name: str
    file_id: str | None = None
    url: str | None = None

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"


def source_of(collection: Collection) -> CollectionSource:
    kind = source_kind(collection.type)
    url = (collection.meta or {}).get("url")
    if kind == "url" and isinstance(url, str) and url:
        return CollectionSource(collection_id=collection.id, kind="url", name=collection.name, url=url)
    if kind == "file" and collection.file_id:
        name = (collection.meta or {}).get("filename") or collection.name
        return CollectionSource(collection_id=collection.id, kind="file", name=str(name), file_id=collection.file_id)
    raise NotFound(f"collection {collection.id} ({collection.type}) has no source document to open: its text is "
                   "all there is", code="no_source_file", detail={"type": collection.type})


async def team_source(session: AsyncSession, principal: Principal, collection_id: int) -> CollectionSource:
    """The source of one of the caller's team's collections (another team's: 404 as everywhere)."""
    return source_of(await load_collection(session, principal, collection_id))


def file_path(blobs: BlobStore, source: CollectionSource) -> Path:
    """Where the source's bytes are on disk; 404 ``file_missing`` when the blob is gone."""
    assert source.file_id is not None
    path = blobs.path_for(source.file_id)
    if not path.is_file():
        raise NotFound(f"the stored file of collection {source.collection_id} is missing", code="file_missing")
    return path


# ---- source links --------------------------------------------------------------------------------

def source_link(sealer: Sealer, source: CollectionSource, *, seconds: int, now: float | None = None) -> str:
    """The URL a browser opens without credentials: the file for ``seconds``; a link's URL as it is."""
    if source.kind == "url":
        assert source.url is not None
        return source.url
    expires = int((time.time() if now is None else now) + seconds)
    token = sealer.encrypt(f"{_TOKEN_LABEL}:{source.collection_id}:{source.file_id}:{expires}")
    return f"/api/collections/{source.collection_id}/source?token={quote(token, safe='')}"


def token_claims(sealer: Sealer, token: str, collection_id: int) -> tuple[str, int]:
    """The file id and expiry a token of this collection names; 403 ``source_link_invalid`` otherwise."""
    plain = sealer.decrypt_recent(token, MEMBER_LINK_SECONDS + _CLOCK_SKEW_SECONDS) \
        if 0 < len(token) <= MAX_TOKEN_CHARS else None
    parts = plain.split(":") if plain else []
    if len(parts) != 4 or parts[0] != _TOKEN_LABEL or parts[1] != str(collection_id) or not parts[3].isdigit():
        raise Forbidden("this source link is not valid (altered, for another document, or too old)",
                        code="source_link_invalid")
    return parts[2], int(parts[3])


async def linked_source(session: AsyncSession, sealer: Sealer, collection_id: int, token: str, *,
                        now: float | None = None) -> CollectionSource:
    """The file a source link opens, while it is valid (403 ``source_link_expired`` after), and only while the
    collection still holds that file (else 404, as a deleted collection)."""
    file_id, expires = token_claims(sealer, token, collection_id)
    if expires < (time.time() if now is None else now):
        raise Forbidden("this source link has expired; open the source again from its quote",
                        code="source_link_expired")
    collection = await session.get(Collection, collection_id)
    if collection is None or collection.file_id != file_id:
        raise NotFound(f"collection {collection_id} does not exist", code="collection_not_found")
    source = source_of(collection)
    if source.kind != "file":
        raise NotFound(f"collection {collection_id} does not exist", code="collection_not_found")
    return source
