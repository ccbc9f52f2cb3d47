"""What a collection's ``type`` (``collections.type``) says about its source document.

The one place that decides which collections have a document to open: the download route
(:mod:`zhiku.knowledge.sources`), the quotes a search returns (``sourceKind``, :mod:`zhiku.retrieval.search`)
and the pages that offer an "Open the source" link all ask :func:`source_kind`. It lives at the storage layer,
beside the column it reads, so that retrieval (which may not import the knowledge services) can use it too.
"""

from __future__ import annotations

from typing import Literal

SourceKind = Literal["file", "url"]

# A stored blob, served as a download: an upload, or a Q&A table's uploaded CSV/XLSX.
FILE_TYPES = frozenset({"file", "qa_table"})
# A URL, opened as it is: a link, or a website crawl's start.
LINK_TYPES = frozenset({"link", "website"})


def source_kind(collection_type: str | None) -> SourceKind | None:
    """How a collection of this type opens its document: ``"file"`` (downloads), ``"url"`` (a web page), or
    ``None``: pasted text, pushed data and hand-made collections have nothing apart from their chunks."""
    if collection_type in FILE_TYPES:
        return "file"
    if collection_type in LINK_TYPES:
        return "url"
    return None


def has_source(collection_type: str | None) -> bool:
    """Whether collections of this type have a document to open."""
    return source_kind(collection_type) is not None
