"""readFiles: the text of the documents attached to the chat message (FastGPT's ``file_url`` parts).

``fileUrlList`` (usually workflowStart's ``userFiles``) names the files by URL. A file uploaded to Zhiku for
the chat (``/api/common/file/read/<name>?token=<key>``, :mod:`zhiku.apps.chat_files`) is read straight from
storage, and only when the run may see it (its team, and its app when it was uploaded for one). Any other
URL (and a full URL of that shape that names no file here: another server's) is fetched through the
platform's one safe fetcher (private addresses refused unless ``ZHIKU_ALLOW_PRIVATE_URLS``, at most
``ZHIKU_FETCH_MAX_BYTES``) and parsed by the import's parsers (:mod:`zhiku.knowledge.parsers`), chosen by the
URL's file name or else the response's media type. At most ``MAX_FILES`` files and ``MAX_TEXT_CHARS``
characters of text in all. ``system_text`` is FastGPT's layout: per file ``File: <name>`` and its text in
``<Content>``, files separated by ``******``; a file that cannot be read says why in its place.
"""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from zhiku.apps import chat_files
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text
from zhiku.errors import NotFound, ZhikuError

MAX_FILES = 20
MAX_TEXT_CHARS = 200_000
_TYPES = {"text/plain": ".txt", "text/markdown": ".md", "text/html": ".html", "application/pdf": ".pdf",
          "application/json": ".json", "text/csv": ".csv"}


def file_name(url: str, media_type: str = "") -> str:
    """A name for the file with an extension the parsers know: the URL's last path segment, given the
    media type's extension when it has none."""
    return with_extension(unquote(PurePosixPath(urlsplit(url).path).name) or "file", media_type)


def with_extension(name: str, media_type: str = "") -> str:
    from zhiku.knowledge.parsers import extension_of  # the parsers load with the first file, not the registry

    if not extension_of(name):
        name += _TYPES.get(media_type) or mimetypes.guess_extension(media_type or "") or ".txt"
    return name


def layout(files: list[tuple[str, str]]) -> str:
    return "\n******\n".join(f"File: {name}\n<Content>\n{text}\n</Content>" for name, text in files)


async def _uploaded(ctx: NodeContext, url: str) -> tuple[str, bytes] | None:
    """An uploaded chat file's name and bytes; None when the URL is not one (a full URL that names no
    file here is another server's)."""
    named = chat_files.parse_url(url)
    blobs = ctx.env.deps.blobs
    if named is None or blobs is None:
        return None
    try:
        async with ctx.env.deps.sessions() as session:
            found, data = await chat_files.read(session, ctx.env.principal, blobs, named.file_key,
                                                app_id=ctx.env.app_id)
    except NotFound:
        if named.relative:
            raise
        return None
    return with_extension(found.name, found.content_type), data


async def read_one(ctx: NodeContext, url: str) -> tuple[str, str]:
    from zhiku.knowledge.fetch import fetch  # loaded with the first file, not the node registry
    from zhiku.knowledge.parsers import parser_for

    try:
        uploaded = await _uploaded(ctx, url)
        if uploaded is not None:
            name, body = uploaded
        else:
            page = await fetch(url, ctx.env.deps.fetch_policy)
            name, body = file_name(page.final_url, page.content_type), page.body
        document = await asyncio.to_thread(parser_for(name).parse, body, name)
        return name, document.text
    except ZhikuError as exc:
        return file_name(url), f"(this file could not be read: {exc.message} [{exc.code}])"


async def run(ctx: NodeContext) -> NodeResult:
    value = ctx.get("fileUrlList")
    urls = [to_text(u).strip() for u in (value if isinstance(value, list) else [value]) if to_text(u).strip()]
    urls = list(dict.fromkeys(urls))[:MAX_FILES]
    files = list(await asyncio.gather(*(read_one(ctx, url) for url in urls)))
    text = layout(files)
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + "\n(cut: the files' text is longer than the read limit)"
    listed: list[dict[str, Any]] = [{"name": name, "url": url} for (name, _), url in zip(files, urls, strict=True)]
    return NodeResult(outputs={"system_text": text},
                      response={"readFiles": listed, "readFilesResult": text[:2000]})


SPEC = NodeSpec(kind="readFiles", run=run, description="read attached files")
