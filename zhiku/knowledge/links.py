"""Link and website collections: web pages fetched by a worker, stored as blobs, parsed by the parse job.

- A **link** collection (``type="link"``) is one URL, in ``meta["url"]``. Creating one writes the row and a
  ``link_fetch`` job in one transaction; the job fetches the page (:mod:`zhiku.knowledge.fetch`), stores the
  body as a blob (its ``file_id`` is the body's sha256), names the collection after the page's ``<title>``
  and hands it to the ordinary ``parse`` job. ``meta["filename"]`` (made from the URL and the content type)
  picks the parser, so a linked PDF or text file is read like an upload of it.
- A **website** collection (``type="website"``) is the root of a crawl: ``meta["url"]``, ``maxPages``,
  ``maxDepth``. Its ``website_crawl`` job crawls breadth-first from the start URL, within its host, honouring
  robots.txt, and makes each page a link collection with ``meta["website"]`` = the root's id and
  ``meta["depth"]``. The root holds no chunks itself: it is ``crawling``, then ``ready`` with the crawl's
  outcome in ``meta["crawl"]`` (pages, changed, unchanged, failed, disallowed), or ``error`` when the start
  page or robots.txt could not be read.
- **Sync** runs the same job again. A page whose body hashes to the stored ``file_id`` is left as it is
  (``meta["sync"]["state"] == "unchanged"``): no re-chunking, no re-embedding. A changed page is parsed,
  chunked and embedded again (``"changed"``). A failed re-fetch of a page that has content keeps its chunks
  and says why in ``meta["sync"]``. A website sync crawls again: new pages are added, known ones compared.
- **Schedule**: ``meta["syncIntervalHours"]``. Each sync job, as it starts, replaces the collection's queued
  scheduled job with one due that many hours later (``meta["nextSyncAt"]``), holding the collection's row
  lock: one schedule per collection however many workers run, and the queue's lease lets one worker run it.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Annotated, Any

import httpx
import trafilatura
from protego import Protego
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.config import Settings
from zhiku.db.models import Collection, Dataset, Job
from zhiku.errors import Forbidden, InvalidInput, UnsupportedFile, ZhikuError
from zhiku.knowledge.collections import PARSE_JOB, load_collection, qa_meta
from zhiku.knowledge.datasets import load_dataset
from zhiku.knowledge.fetch import MAX_URL_CHARS, FetchedPage, FetchPolicy, address_refusal, fetch, parse_url
from zhiku.knowledge.files import BlobStore, register_file
from zhiku.knowledge.parsers import supported_extensions
from zhiku.knowledge.parsers.html import declare_charset, decode_html, title_of
from zhiku.knowledge.schemas import MAX_TAGS, CollectionPublic, Tag, TrainingMode
from zhiku.safetext import StoredText
from zhiku.worker import queue
from zhiku.worker.queue import ClaimedJob
from zhiku.worker.runner import JobContext, JobHandler

LINK_FETCH_JOB = "link_fetch"
WEBSITE_CRAWL_JOB = "website_crawl"
MAX_URLS_PER_REQUEST = 100
MAX_CRAWL_DEPTH = 5
MAX_LINKS_PER_PAGE = 1000
MAX_ROBOTS_BYTES = 512 * 1024  # what Google reads of a robots.txt
MAX_CRAWL_DELAY_SECONDS = 10.0  # a robots.txt Crawl-delay is honoured up to this
MAX_REPORTED_FAILURES = 50
ROBOTS_AGENT = "Zhiku"
_NAME_CHARS = 500  # the collections.name column
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_EXTENSIONS = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt",
               "text/markdown": ".md", "text/x-markdown": ".md"}
# Links a crawl follows: pages (no extension, or a page-like one) and files a parser reads.
_PAGE_SUFFIXES = {"", ".html", ".htm", ".xhtml", ".shtml", ".php", ".asp", ".aspx", ".jsp"}

FailureHandler = Callable[[JobContext, ClaimedJob, str, str], Awaitable[None]]
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]


class LinkCollectionCreate(BaseModel):
    urls: list[Url] = Field(min_length=1, max_length=MAX_URLS_PER_REQUEST)
    chunk_size: int | None = Field(None, ge=100, le=20000, alias="chunkSize")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    sync_interval_hours: float | None = Field(None, ge=1, le=24 * 365, alias="syncIntervalHours")
    training_mode: TrainingMode = Field("chunk", alias="trainingMode")
    qa_prompt: StoredText | None = Field(None, max_length=10_000, alias="qaPrompt")
    model_config = ConfigDict(populate_by_name=True)


class WebsiteCollectionCreate(BaseModel):
    url: Url
    max_pages: int = Field(50, ge=1, alias="maxPages")  # capped to ZHIKU_CRAWL_MAX_PAGES
    max_depth: int = Field(2, ge=0, le=MAX_CRAWL_DEPTH, alias="maxDepth")
    chunk_size: int | None = Field(None, ge=100, le=20000, alias="chunkSize")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    sync_interval_hours: float | None = Field(None, ge=1, le=24 * 365, alias="syncIntervalHours")
    model_config = ConfigDict(populate_by_name=True)


# --- creating and syncing (request side) --------------------------------------------------------------

def checked_url(url: str, *, allow_private: bool) -> str:
    """The URL, normalised (no fragment), or ``url_invalid``; a literal private IP is refused at once
    (host names are resolved and checked when the page is fetched)."""
    return _normal(parse_url(url), allow_private=allow_private)


def _normal(url: httpx.URL, *, allow_private: bool = True) -> str:
    """One spelling per page: no fragment, ``/`` for an empty path."""
    url = url.copy_with(fragment=None, path=url.path or "/")
    if not allow_private:
        reason = address_refusal(url.host)
        if reason and not reason.endswith("is not an IP address"):
            raise Forbidden(f"{url.host} may not be fetched: {reason} (set ZHIKU_ALLOW_PRIVATE_URLS=1 to allow "
                            "private addresses)", code="url_private_address")
    return str(url)


async def create_link_collection(session: AsyncSession, principal: Principal, dataset_id: int, url: str, *,
                                 chunk_size: int | None = None, tags: list[str] | None = None,
                                 sync_interval_hours: float | None = None, allow_private: bool = False,
                                 training_mode: TrainingMode = "chunk", qa_prompt: str | None = None,
                                 max_attempts: int = 5) -> CollectionPublic:
    """One link collection, fetched by a worker; returned as it is now (``pending``)."""
    dataset = await load_dataset(session, principal, dataset_id)
    collection = await _add_link(session, dataset, checked_url(url, allow_private=allow_private),
                                 chunk_size=chunk_size, tags=tags or [], sync_interval_hours=sync_interval_hours,
                                 training_mode=training_mode, qa_prompt=qa_prompt, max_attempts=max_attempts)
    await session.commit()
    await session.refresh(collection)
    return CollectionPublic.model_validate(collection)


async def create_link_collections(session: AsyncSession, principal: Principal, dataset_id: int,
                                  data: LinkCollectionCreate, *, allow_private: bool = False,
                                  max_attempts: int = 5) -> list[CollectionPublic]:
    """One collection per URL, all or none: every URL is checked before any is added."""
    dataset = await load_dataset(session, principal, dataset_id)
    urls = [checked_url(url, allow_private=allow_private) for url in data.urls]
    added = [await _add_link(session, dataset, url, chunk_size=data.chunk_size, tags=data.tags,
                             sync_interval_hours=data.sync_interval_hours, training_mode=data.training_mode,
                             qa_prompt=data.qa_prompt, max_attempts=max_attempts)
             for url in urls]
    await session.commit()
    for collection in added:
        await session.refresh(collection)
    return [CollectionPublic.model_validate(c) for c in added]


async def create_website_collection(session: AsyncSession, principal: Principal, dataset_id: int,
                                    data: WebsiteCollectionCreate, *, settings: Settings) -> CollectionPublic:
    dataset = await load_dataset(session, principal, dataset_id)
    url = checked_url(data.url, allow_private=settings.allow_private_urls)
    meta = {"url": url, "maxPages": min(data.max_pages, settings.crawl_max_pages), "maxDepth": data.max_depth,
            **_interval(data.sync_interval_hours)}
    root = Collection(dataset_id=dataset.id, name=url[:_NAME_CHARS], type="website", status="pending",
                      chunk_size=data.chunk_size or dataset.chunk_size, meta=meta,
                      tags=list(dict.fromkeys(data.tags)))
    session.add(root)
    await session.flush()
    await queue.enqueue(session, WEBSITE_CRAWL_JOB, collection_id=root.id, max_attempts=settings.job_max_attempts)
    await session.commit()
    await session.refresh(root)
    return CollectionPublic.model_validate(root)


async def request_sync(session: AsyncSession, principal: Principal, collection_id: int, *,
                       max_attempts: int = 5) -> CollectionPublic:
    """Queue a re-fetch of a link, or a new crawl of a website; one queued at a time."""
    collection = await load_collection(session, principal, collection_id)
    kinds = {"link": LINK_FETCH_JOB, "website": WEBSITE_CRAWL_JOB}
    if collection.type not in kinds:
        raise InvalidInput(f"a {collection.type} collection has no source to sync; only link and website "
                           "collections do", code="not_syncable")
    kind = kinds[collection.type]
    pending = (await session.execute(select(Job.id).where(
        Job.collection_id == collection.id, Job.kind == kind, Job.status == "queued",
        Job.payload["scheduled"].as_boolean().is_not(True)).limit(1))).first()
    if pending is None:
        await queue.enqueue(session, kind, collection_id=collection.id, max_attempts=max_attempts)
    _set_sync(collection, "queued")
    await session.commit()
    await session.refresh(collection)
    return CollectionPublic.model_validate(collection)


async def _add_link(session: AsyncSession, dataset: Dataset, url: str, *, chunk_size: int | None,
                    tags: list[str], sync_interval_hours: float | None, max_attempts: int,
                    training_mode: TrainingMode = "chunk", qa_prompt: str | None = None) -> Collection:
    collection = Collection(dataset_id=dataset.id, name=url[:_NAME_CHARS], type="link", status="pending",
                            chunk_size=chunk_size or dataset.chunk_size, tags=list(dict.fromkeys(tags)),
                            training_mode=training_mode,
                            meta={"url": url, **_interval(sync_interval_hours), **qa_meta(training_mode, qa_prompt)})
    session.add(collection)
    await session.flush()
    await queue.enqueue(session, LINK_FETCH_JOB, collection_id=collection.id, max_attempts=max_attempts)
    return collection


def _interval(hours: float | None) -> dict[str, float]:
    return {"syncIntervalHours": hours} if hours else {}


# --- the jobs -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Page:
    """A fetched page, ready to store: the body as it will be stored, the file name that picks its parser."""

    url: str
    final_url: str
    content_type: str
    filename: str
    body: bytes
    title: str | None

    @property
    def is_html(self) -> bool:
        return self.filename.endswith(".html")


def _prepare(page: FetchedPage) -> _Page:
    """Refuses (``UnsupportedFile``) a body no parser reads, before anything is stored."""
    if not page.body.strip():
        raise UnsupportedFile(f"{page.final_url} returned an empty page", code="empty_file")
    filename = _filename(page)
    body, title = page.body, None
    if filename.endswith(".html"):
        body = declare_charset(page.body, page.charset)
        title = title_of(body)
    return _Page(url=page.url, final_url=page.final_url, content_type=page.content_type, filename=filename,
                 body=body, title=title)


def _filename(page: FetchedPage) -> str:
    """A file name whose extension picks the parser: from the content type, else the URL's path."""
    path = PurePosixPath(httpx.URL(page.final_url).path)
    readable = set(supported_extensions())
    generic = page.content_type in ("", "application/octet-stream")
    by_type = None if generic else _EXTENSIONS.get(page.content_type) or mimetypes.guess_extension(page.content_type)
    for extension in (by_type, path.suffix.lower() if generic else None):
        if extension in readable:
            return f"{(path.stem or 'index')[:100]}{extension}"
    raise UnsupportedFile(f"{page.final_url} is {page.content_type or 'of no stated type'}, which cannot be "
                          f"imported; supported file types: {', '.join(sorted(readable))}",
                          code="unsupported_file_type", detail={"contentType": page.content_type})


async def _locked(session: AsyncSession, collection_id: int | None) -> Collection | None:
    return (await session.execute(
        select(Collection).where(Collection.id == collection_id).with_for_update())).scalar_one_or_none()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _set_sync(collection: Collection, state: str, **extra: Any) -> None:
    # A new dict: SQLAlchemy notices a replaced JSONB value, not one changed in place.
    collection.meta = {**collection.meta, "sync": {"state": state, "at": _now(), **extra}}


async def _start_sync(session: AsyncSession, collection: Collection, kind: str, max_attempts: int) -> None:
    """Mark the sync running and, for a scheduled collection, replace its next scheduled job (row lock held)."""
    _set_sync(collection, "running")
    hours = collection.meta.get("syncIntervalHours")
    if not hours:
        return
    await session.execute(delete(Job).where(
        Job.collection_id == collection.id, Job.kind == kind, Job.status == "queued",
        Job.payload["scheduled"].as_boolean().is_(True)))
    await queue.enqueue(session, kind, {"scheduled": True}, collection_id=collection.id, max_attempts=max_attempts,
                        delay_seconds=float(hours) * 3600)
    next_at = (datetime.now(UTC) + timedelta(hours=float(hours))).isoformat(timespec="seconds")
    collection.meta = {**collection.meta, "nextSyncAt": next_at}


async def _store(session: AsyncSession, blobs: BlobStore, collection: Collection, page: _Page,
                 max_attempts: int) -> bool:
    """Give the collection this page's content; False when it already had exactly this content (ready)."""
    file_id = hashlib.sha256(page.body).hexdigest()
    if collection.file_id == file_id and collection.status == "ready":
        _set_sync(collection, "unchanged")
        return False
    had_content = collection.file_id is not None
    # The file's row first, as every import writes it: a delete dropping the same blob waits for this commit.
    await register_file(session, file_id, len(page.body))
    await asyncio.to_thread(blobs.write, page.body)
    collection.file_id = file_id
    collection.name = page.title or page.url[:_NAME_CHARS]
    collection.status = "pending"
    collection.error = collection.error_code = None
    collection.meta = {**collection.meta, "filename": page.filename, "finalUrl": page.final_url,
                       "contentType": page.content_type, "size": len(page.body), "fetchedAt": _now()}
    _set_sync(collection, "changed" if had_content else "fetched")
    await queue.enqueue(session, PARSE_JOB, collection_id=collection.id, max_attempts=max_attempts)
    return True


async def run_link_fetch(ctx: JobContext, job: ClaimedJob) -> None:
    settings = ctx.settings
    async with ctx.db.sessions() as session:
        collection = await _locked(session, job.collection_id)
        if collection is None or collection.type != "link":
            return  # deleted since
        url = collection.meta["url"]
        had_content = collection.file_id is not None
        await _start_sync(session, collection, LINK_FETCH_JOB, settings.job_max_attempts)
        await session.commit()
    try:
        page = _prepare(await fetch(url, FetchPolicy.from_settings(settings)))
    except ZhikuError as exc:
        await _record_sync_error(ctx, job.collection_id, exc)
        if not had_content:
            raise  # the job queue retries or fails the collection with this error
        return  # the chunks it has stay; the error is in meta["sync"]
    async with ctx.db.sessions() as session:
        collection = await _locked(session, job.collection_id)
        if collection is None:
            return
        await _store(session, BlobStore(settings.files_dir), collection, page, settings.job_max_attempts)
        await session.commit()


async def _record_sync_error(ctx: JobContext, collection_id: int | None, exc: ZhikuError, *,
                             status: str | None = None) -> None:
    async with ctx.db.sessions() as session:
        collection = await _locked(session, collection_id)
        if collection is not None:
            _set_sync(collection, "error", code=exc.code, error=exc.message)
            collection.status = status or collection.status
            await session.commit()


@dataclass
class _CrawlReport:
    pages: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    disallowed: int = 0

    def as_meta(self) -> dict[str, Any]:
        return {"pages": self.pages, "changed": self.changed, "unchanged": self.unchanged,
                "failed": self.failed, "disallowed": self.disallowed, "at": _now()}


async def run_website_crawl(ctx: JobContext, job: ClaimedJob) -> None:
    settings = ctx.settings
    async with ctx.db.sessions() as session:
        root = await _locked(session, job.collection_id)
        if root is None or root.type != "website":
            return
        start, max_pages, max_depth = root.meta["url"], int(root.meta["maxPages"]), int(root.meta["maxDepth"])
        root.status = "crawling"
        await _start_sync(session, root, WEBSITE_CRAWL_JOB, settings.job_max_attempts)
        await session.commit()
        known = await _website_pages(session, root.id)
    try:
        report = await _crawl(ctx, job.collection_id, start, max_pages, max_depth, known)
    except ZhikuError as exc:
        # A website whose pages were crawled before keeps them, and stays ready; the error is in meta["sync"].
        await _record_sync_error(ctx, job.collection_id, exc, status="ready" if known else None)
        if not known:
            raise  # the job queue retries or fails the website with this error
        return
    if report is None:
        return  # the website was deleted meanwhile
    async with ctx.db.sessions() as session:
        root = await _locked(session, job.collection_id)
        if root is not None:
            root.status = "ready"
            root.error = root.error_code = None
            root.meta = {**root.meta, "crawl": report.as_meta()}
            _set_sync(root, "done", pages=report.pages, changed=report.changed, unchanged=report.unchanged)
            await session.commit()


async def _crawl(ctx: JobContext, root_id: int | None, start: str, max_pages: int, max_depth: int,
                 known: dict[str, int]) -> _CrawlReport | None:
    """Breadth-first from ``start`` within its host; each page stored as it is fetched. None: root deleted."""
    policy = FetchPolicy.from_settings(ctx.settings)
    robots = await _robots(start, policy)
    delay = min(robots.crawl_delay(ROBOTS_AGENT) or 0.0, MAX_CRAWL_DELAY_SECONDS)
    host = httpx.URL(start).host
    report = _CrawlReport()
    pending: deque[tuple[str, int]] = deque([(start, 0)])
    seen = {start}
    stored_final: set[str] = set()
    while pending and report.pages < max_pages:
        url, depth = pending.popleft()
        if not robots.can_fetch(url, ROBOTS_AGENT):
            report.disallowed += 1
            continue
        if report.pages and delay:
            await asyncio.sleep(delay)
        try:
            page = _prepare(await fetch(url, policy))
        except ZhikuError as exc:
            if url == start:
                raise  # nothing to crawl
            if len(report.failed) < MAX_REPORTED_FAILURES:
                report.failed.append({"url": url, "code": exc.code, "error": exc.message})
            continue
        if httpx.URL(page.final_url).host != host or page.final_url in stored_final:
            continue  # redirected off the site, or to a page already stored
        stored_final.add(page.final_url)
        report.pages += 1
        changed = await _store_website_page(ctx, root_id, known, page, depth)
        if changed is None:
            return None
        report.changed += changed
        report.unchanged += not changed
        if page.is_html and depth < max_depth:
            for link in _same_host_links(page, host):
                if link not in seen:
                    seen.add(link)
                    pending.append((link, depth + 1))
    return report


async def _website_pages(session: AsyncSession, root_id: int) -> dict[str, int]:
    rows = await session.execute(select(Collection.id, Collection.meta["url"].as_string()).where(
        Collection.type == "link", Collection.meta["website"].as_integer() == root_id))
    return {url: cid for cid, url in rows}


async def _store_website_page(ctx: JobContext, root_id: int | None, known: dict[str, int], page: _Page,
                              depth: int) -> bool | None:
    """Store a crawled page in its link collection (made on first sight); None when the root is gone."""
    async with ctx.db.sessions() as session:
        root = await _locked(session, root_id)
        if root is None:
            return None
        collection = await _locked(session, known[page.url]) if page.url in known else None
        if collection is None:
            collection = Collection(dataset_id=root.dataset_id, name=page.url[:_NAME_CHARS], type="link",
                                    status="pending", chunk_size=root.chunk_size, tags=list(root.tags or []),
                                    meta={"url": page.url, "website": root.id, "depth": depth})
            session.add(collection)
            await session.flush()
            known[page.url] = collection.id
        changed = await _store(session, BlobStore(ctx.settings.files_dir), collection, page,
                               ctx.settings.job_max_attempts)
        await session.commit()
        return changed


async def _robots(start: str, policy: FetchPolicy) -> Protego:
    """The site's robots.txt rules. None there (4xx): everything allowed. Unreachable (5xx, timeout): an
    error, retried by the queue, since RFC 9309 says to assume everything disallowed meanwhile."""
    url = str(httpx.URL(start).copy_with(path="/robots.txt", query=None, fragment=None))
    try:
        page = await fetch(url, replace(policy, max_bytes=MAX_ROBOTS_BYTES))
    except ZhikuError as exc:
        status = (exc.detail or {}).get("status") if isinstance(exc.detail, dict) else None
        if exc.code == "url_http_error" and status and 400 <= status < 500 and status != 429:
            return Protego.parse("")
        if exc.code in ("url_private_address", "url_invalid"):
            raise
        raise ZhikuError(f"robots.txt of {start} could not be read ({exc.message}); nothing is crawled until "
                         "it can be", code="robots_unavailable", status=502) from None
    return Protego.parse(page.body.decode("utf-8", errors="replace"))


def _same_host_links(page: _Page, host: str) -> list[str]:
    """Links on the page to pages of the same host, absolute, without fragments, in page order."""
    tree = trafilatura.load_html(decode_html(page.body).text)
    if tree is None:
        return []
    base = httpx.URL(page.final_url)
    for href in tree.xpath("//base/@href")[:1]:
        try:
            base = base.join(str(href).strip())
        except (httpx.InvalidURL, ValueError):
            pass
    readable = set(supported_extensions()) | _PAGE_SUFFIXES
    links: list[str] = []
    for href in tree.xpath("//a/@href")[:MAX_LINKS_PER_PAGE]:
        try:
            link = base.join(str(href).strip())
        except (httpx.InvalidURL, ValueError):
            continue
        if link.scheme in ("http", "https") and link.host == host and \
                PurePosixPath(link.path).suffix.lower() in readable and len(str(link)) <= MAX_URL_CHARS:
            links.append(_normal(link))
    return links


def link_handlers(*, on_final_failure: FailureHandler) -> dict[str, JobHandler]:
    """The link and website jobs; ``on_final_failure`` marks the collection failed (the import jobs' own)."""
    return {
        LINK_FETCH_JOB: JobHandler(run=run_link_fetch, on_final_failure=on_final_failure),
        WEBSITE_CRAWL_JOB: JobHandler(run=run_website_crawl, on_final_failure=on_final_failure),
    }
