"""Link and website collections against real pages served on 127.0.0.1: fetch, title, main text, errors,
robots.txt, crawl limits, re-sync of changed pages only, the sync schedule; and the refusal of private
addresses with ZHIKU_ALLOW_PRIVATE_URLS off.

Each Zhiku server here has a database of its own, so a worker with the flag on never takes a job of the
server with it off (and the reverse)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import login, make_settings, new_database
from tests.integration.helpers import create_dataset, upload, wait_collection
from zhiku.db.engine import open_database
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.errors import ZhikuError
from zhiku.knowledge.fetch import FetchPolicy, fetch
from zhiku.knowledge.links import run_link_fetch
from zhiku.testing.server import ServerThread
from zhiku.worker.queue import ClaimedJob
from zhiku.worker.runner import JobContext

pytestmark = pytest.mark.integration


# --- a small web site on 127.0.0.1 --------------------------------------------------------------------

class Site:
    """Pages served from a dict the test changes as it goes; every request is recorded."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        self.trickling = threading.Event()
        self.stopping = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                site.hits.append(self.path)
                if self.path == "/trickle":
                    return site._trickle(self)
                status, headers, body = site.pages.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def html(self, path: str, title: str, body: str, *, charset: str = "utf-8", declare: bool = True) -> None:
        meta = f'<meta charset="{charset}">' if declare else ""
        page = (f"<html><head>{meta}<title>{title}</title></head><body><nav><a href='/'>Home</a> "
                f"<a href='/about'>About</a></nav><main><article>{body}</article></main>"
                "<footer>Footer text of every page</footer></body></html>")
        self.pages[path] = (200, {"Content-Type": f"text/html; charset={charset}"}, page.encode(charset))

    def redirect(self, path: str, location: str) -> None:
        self.pages[path] = (302, {"Location": location}, b"")

    def _trickle(self, handler: BaseHTTPRequestHandler) -> None:
        """A page that never finishes: headers, then a byte now and then, for as long as the client stays."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.end_headers()
        self.trickling.set()
        try:
            while not self.stopping.is_set():
                handler.wfile.write(b"<p>x</p>")
                handler.wfile.flush()
                self.stopping.wait(0.2)
        except OSError:
            pass  # the fetcher gave up

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def article(topic: str, sentences: int = 6) -> str:
    return f"<h1>{topic}</h1>" + "".join(
        f"<p>{topic} paragraph {i}: clean the chain every 300 kilometres and check tyre pressure weekly.</p>"
        for i in range(sentences))


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


# --- Zhiku servers, each on a database of its own -----------------------------------------------------

@pytest.fixture(scope="module")
def open_server(pg_url: str, data_dir: Path, embedders: EmbedderRegistry) -> Iterator[ServerThread]:
    """Private addresses allowed (the pages are on 127.0.0.1); a small fetch limit and deadline; no retries."""
    with new_database(pg_url) as url:
        settings = make_settings(url, data_dir, allow_private_urls=True, fetch_max_bytes=64 * 1024,
                                 fetch_timeout_seconds=5.0, fetch_deadline_seconds=3.0, job_max_attempts=1,
                                 crawl_max_pages=5)
        with ServerThread(settings, embedders) as running:
            yield running


@pytest.fixture(scope="module")
def guarded_server(pg_url: str, data_dir: Path, embedders: EmbedderRegistry) -> Iterator[ServerThread]:
    """ZHIKU_ALLOW_PRIVATE_URLS off, as deployed."""
    with new_database(pg_url) as url:
        with ServerThread(make_settings(url, data_dir, job_max_attempts=1), embedders) as running:
            yield running


@pytest.fixture
def api(open_server: ServerThread) -> Iterator[httpx.Client]:
    client = login(open_server.base_url)
    yield client
    client.close()


@pytest.fixture
def guarded_api(guarded_server: ServerThread) -> Iterator[httpx.Client]:
    client = login(guarded_server.base_url)
    yield client
    client.close()


def add_links(client: httpx.Client, dataset_id: int, *urls: str, **extra: object) -> list[dict]:
    r = client.post(f"/api/datasets/{dataset_id}/collections/link", json={"urls": list(urls), **extra})
    assert r.status_code == 201, r.text
    return r.json()


def chunks_of(client: httpx.Client, collection_id: int) -> list[dict]:
    r = client.get(f"/api/collections/{collection_id}/chunks")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def wait_sync(client: httpx.Client, collection_id: int, timeout: float = 120) -> dict:
    """Poll until the queued or running sync has finished; the collection as it is then."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/collections/{collection_id}").json()
        if body["metadata"].get("sync", {}).get("state") not in ("queued", "running"):
            return body
        assert time.monotonic() < deadline, f"sync of {collection_id} still running: {body}"
        time.sleep(0.2)


def sync(client: httpx.Client, collection_id: int) -> dict:
    r = client.post(f"/api/collections/{collection_id}/sync")
    assert r.status_code == 202, r.text
    assert r.json()["metadata"]["sync"]["state"] == "queued"
    return wait_sync(client, collection_id)


# --- links -----------------------------------------------------------------------------------------------

def test_links_are_fetched_by_the_worker_named_by_title_and_hold_the_main_text(api: httpx.Client,
                                                                              site: Site) -> None:
    site.html("/chain.html", "Chain care", article("Chain"))
    site.pages["/notes.txt"] = (200, {"Content-Type": "text/plain"}, "Tyres: 6 to 8 bar.\n".encode())
    site.html("/gbk.html", "自行车保养", "<p>自行车的链条要每三百公里清洁一次，之后轻轻上油。</p>", charset="gbk")
    big5 = "<html><head><title>單車</title></head><body><p>自行車的鏈條要每三百公里清潔一次。</p></body></html>"
    site.pages["/big5.html"] = (200, {"Content-Type": "text/html; charset=big5"}, big5.encode("big5"))
    dataset = create_dataset(api, "links-basic")
    created = add_links(api, dataset, site.url("/chain.html#part"), site.url("/notes.txt"), site.url("/gbk.html"),
                        site.url("/big5.html"), tags=["web"])
    assert [c["type"] for c in created] == ["link"] * 4 and all(c["status"] == "pending" for c in created)
    assert created[0]["metadata"]["url"] == site.url("/chain.html")  # no fragment
    chain, notes, gbk, big5_page = (wait_collection(api, c["id"]) for c in created)
    assert chain["status"] == "ready", chain
    assert chain["name"] == "Chain care" and chain["metadata"]["contentType"] == "text/html"
    text = "\n".join(c["q"] for c in chunks_of(api, chain["id"]))
    assert "# Chain" in text and "300 kilometres" in text
    assert "Footer text" not in text and "About" not in text
    assert notes["status"] == "ready" and notes["name"] == site.url("/notes.txt")
    assert "6 to 8 bar" in chunks_of(api, notes["id"])[0]["q"]
    assert gbk["name"] == "自行车保养" and "自行车的链条" in chunks_of(api, gbk["id"])[0]["q"]
    # no declaration on the page: the HTTP header's charset
    assert big5_page["name"] == "單車" and "自行車的鏈條" in chunks_of(api, big5_page["id"])[0]["q"]


def test_an_uploaded_html_file_is_parsed_like_a_page(api: httpx.Client) -> None:
    dataset = create_dataset(api, "links-upload")
    page = ("<html><head><title>Saddle</title><script>alert(1)</script></head><body>"
            "<p onclick='alert(2)'>Raise the saddle until the knee is almost straight at the bottom.</p>"
            "<p>&lt;b&gt;literal&lt;/b&gt;</p></body></html>")
    r = upload(api, dataset, "saddle.html", page.encode())
    assert r.status_code == 201, r.text
    done = wait_collection(api, r.json()["id"])
    assert done["status"] == "ready" and done["metadata"]["title"] == "Saddle"
    text = chunks_of(api, done["id"])[0]["q"]
    assert "knee is almost straight" in text and "\\<b>literal" in text
    assert "alert" not in text and "onclick" not in text


def test_a_page_that_fails_ends_as_that_collections_error(api: httpx.Client, site: Site) -> None:
    site.html("/fine.html", "Fine", article("Fine"))
    site.pages["/huge.html"] = (200, {"Content-Type": "text/html"}, b"<p>" + b"x" * 100_000 + b"</p>")
    site.pages["/clip.mp4"] = (200, {"Content-Type": "video/mp4"}, b"\0\0\0\x18ftypmp42" + b"\0" * 100)
    for i in range(7):
        site.redirect(f"/hop{i}", f"/hop{i + 1}")
    site.redirect("/moved", "/fine.html")
    dataset = create_dataset(api, "links-errors")
    paths = ["/missing.html", "/huge.html", "/clip.mp4", "/hop0", "/trickle", "/moved"]
    results = {path: wait_collection(api, c["id"])
               for path, c in zip(paths, add_links(api, dataset, *(site.url(p) for p in paths)))}
    codes = {path: body["error_code"] for path, body in results.items()}
    assert codes == {"/missing.html": "url_http_error", "/huge.html": "url_too_large",
                     "/clip.mp4": "unsupported_file_type", "/hop0": "url_too_many_redirects",
                     "/trickle": "url_timeout", "/moved": None}, results
    assert site.trickling.is_set()
    moved = results["/moved"]
    assert moved["status"] == "ready" and moved["name"] == "Fine"
    assert moved["metadata"]["finalUrl"] == site.url("/fine.html")
    assert "404" in results["/missing.html"]["error"]


def test_a_link_may_be_trained_as_qa(api: httpx.Client, site: Site) -> None:
    dataset = create_dataset(api, "links-qa")
    [created] = add_links(api, dataset, site.url("/qa-page"), trainingMode="qa", qaPrompt="Ask about prices.")
    assert created["training_mode"] == "qa" and created["metadata"]["qa_prompt"] == "Ask about prices."
    r = api.post(f"/api/datasets/{dataset}/collections/link", json={"urls": [site.url("/x")], "trainingMode": "auto"})
    assert r.status_code == 422, r.text


def test_bad_link_requests_add_nothing(api: httpx.Client, site: Site) -> None:
    dataset = create_dataset(api, "links-bad")
    for body, code in [({"urls": [site.url("/a"), "ftp://example.com/x"]}, "url_invalid"),
                       ({"urls": ["javascript:alert(1)"]}, "url_invalid"),
                       ({"urls": ["not a url"]}, "url_invalid")]:
        r = api.post(f"/api/datasets/{dataset}/collections/link", json=body)
        assert r.status_code == 400 and r.json()["code"] == code, r.text
    for body in ({"urls": []}, {"urls": ["http://x/" + "a" * 3000]}, {"urls": [site.url("/a")] * 101}):
        assert api.post(f"/api/datasets/{dataset}/collections/link", json=body).status_code in (400, 422)
    assert api.get(f"/api/datasets/{dataset}/collections").json()["total"] == 0
    anonymous = httpx.post(f"{api.base_url}/api/datasets/{dataset}/collections/link", json={"urls": [site.url("/")]})
    assert anonymous.status_code == 401
    text = api.post(f"/api/datasets/{dataset}/collections/text", json={"name": "t", "text": "plain text"}).json()
    refused = api.post(f"/api/collections/{text['id']}/sync")
    assert refused.status_code == 400 and refused.json()["code"] == "not_syncable"


def test_resync_reindexes_only_a_changed_page(api: httpx.Client, site: Site) -> None:
    site.html("/brakes.html", "Brakes", article("Brakes"))
    site.html("/gears.html", "Gears", article("Gears"))
    dataset = create_dataset(api, "links-sync")
    brakes, gears = (wait_collection(api, c["id"]) for c in
                     add_links(api, dataset, site.url("/brakes.html"), site.url("/gears.html")))
    before = {c["id"] for c in chunks_of(api, brakes["id"])}

    unchanged = sync(api, brakes["id"])
    assert unchanged["metadata"]["sync"]["state"] == "unchanged" and unchanged["status"] == "ready"
    assert {c["id"] for c in chunks_of(api, brakes["id"])} == before  # not chunked or embedded again

    site.html("/brakes.html", "Brakes, revised", article("Disc brakes"))
    changed = sync(api, brakes["id"])
    assert changed["metadata"]["sync"]["state"] == "changed"
    changed = wait_collection(api, brakes["id"])
    assert changed["status"] == "ready" and changed["name"] == "Brakes, revised"
    after = chunks_of(api, brakes["id"])
    assert before.isdisjoint(c["id"] for c in after) and "Disc brakes" in after[0]["q"]
    assert all(c["embedded"] for c in after)

    # a page that fails on re-sync keeps its chunks and says why
    del site.pages["/gears.html"]
    failed = sync(api, gears["id"])
    assert failed["status"] == "ready" and failed["metadata"]["sync"]["code"] == "url_http_error"
    assert chunks_of(api, gears["id"])


# --- websites ----------------------------------------------------------------------------------------

def build_site(site: Site, prefix: str) -> None:
    links = "".join(f"<a href='{prefix}/{name}'>{name}</a> " for name in ("a", "b", "private/secret", "clip.mp4"))
    site.html(f"{prefix}/", "Home", article("Home") + links
              + f"<a href='{site.url(prefix + '/a', host='localhost')}'>other host</a><a href='#top'>top</a>")
    site.html(f"{prefix}/a", "Page A", article("Alpha") + f"<a href='{prefix}/a/deep'>deeper</a>"
              + f"<a href='{prefix}/'>home again</a>")
    site.html(f"{prefix}/b", "Page B", article("Beta"))
    site.html(f"{prefix}/a/deep", "Deep", article("Deep"))
    site.html(f"{prefix}/private/secret", "Secret", article("Secret"))


def pages_of(client: httpx.Client, dataset_id: int, root_id: int) -> dict[str, dict]:
    items = client.get(f"/api/datasets/{dataset_id}/collections").json()["items"]
    return {c["metadata"]["url"]: c for c in items if c["metadata"].get("website") == root_id}


def crawl(client: httpx.Client, dataset_id: int, url: str, **extra: object) -> dict:
    r = client.post(f"/api/datasets/{dataset_id}/collections/website", json={"url": url, **extra})
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "website"
    return wait_collection(client, r.json()["id"])


def test_a_website_crawl_stays_on_its_host_honours_robots_and_the_depth(api: httpx.Client, site: Site) -> None:
    site.pages["/robots.txt"] = (200, {"Content-Type": "text/plain"},
                                 b"User-agent: *\nDisallow: /w1/private/\n")
    build_site(site, "/w1")
    dataset = create_dataset(api, "website")
    root = crawl(api, dataset, site.url("/w1/"), maxDepth=1)
    assert root["status"] == "ready", root
    pages = pages_of(api, dataset, root["id"])
    assert set(pages) == {site.url("/w1/"), site.url("/w1/a"), site.url("/w1/b")}
    assert root["metadata"]["crawl"]["pages"] == 3 and root["metadata"]["crawl"]["disallowed"] == 1
    assert "/w1/private/secret" not in site.hits and "/w1/a/deep" not in site.hits  # robots; depth 1
    assert "/w1/clip.mp4" not in site.hits  # not a page, not a readable file
    done = {url: wait_collection(api, page["id"]) for url, page in pages.items()}
    assert {p["name"] for p in done.values()} == {"Home", "Page A", "Page B"}
    assert all(p["status"] == "ready" and p["metadata"]["depth"] in (0, 1) for p in done.values())

    # maxPages is capped by ZHIKU_CRAWL_MAX_PAGES (5 here), and a crawl stops there
    deep = crawl(api, dataset, site.url("/w1/"), maxDepth=3, maxPages=500)
    assert deep["metadata"]["maxPages"] == 5
    assert deep["metadata"]["crawl"]["pages"] == 4  # home, a, b, a/deep: secret is disallowed
    small = crawl(api, dataset, site.url("/w1/"), maxPages=2)
    assert len(pages_of(api, dataset, small["id"])) == 2

    # Deleting a website deletes its pages (and nothing of the other crawls)
    assert api.delete(f"/api/collections/{deep['id']}").status_code == 204
    assert pages_of(api, dataset, deep["id"]) == {}
    assert len(pages_of(api, dataset, small["id"])) == 2 and len(pages_of(api, dataset, root["id"])) == 3


def test_a_website_resync_reindexes_only_changed_pages(api: httpx.Client, site: Site) -> None:
    build_site(site, "/w2")
    dataset = create_dataset(api, "website-sync")
    root = crawl(api, dataset, site.url("/w2/"), maxDepth=1)
    pages = {url: wait_collection(api, p["id"]) for url, p in pages_of(api, dataset, root["id"]).items()}
    before = {url: {c["id"] for c in chunks_of(api, p["id"])} for url, p in pages.items()}

    site.html("/w2/b", "Page B", article("Beta, second edition"))
    synced = sync(api, root["id"])
    assert synced["status"] == "ready"
    report = synced["metadata"]["crawl"]
    assert (report["changed"], report["unchanged"]) == (1, len(pages) - 1)
    after = pages_of(api, dataset, root["id"])
    assert set(after) == set(pages)  # no page twice
    b = wait_collection(api, after[site.url("/w2/b")]["id"])
    assert "second edition" in chunks_of(api, b["id"])[0]["q"]
    assert before[site.url("/w2/b")].isdisjoint(c["id"] for c in chunks_of(api, b["id"]))
    for url in (site.url("/w2/"), site.url("/w2/a")):
        assert after[url]["metadata"]["sync"]["state"] == "unchanged"
        assert {c["id"] for c in chunks_of(api, after[url]["id"])} == before[url]

    # a re-crawl that cannot start keeps the pages it has, and says why
    del site.pages["/w2/"]
    failed = sync(api, root["id"])
    assert failed["status"] == "ready" and failed["metadata"]["sync"]["code"] == "url_http_error"
    assert set(pages_of(api, dataset, root["id"])) == set(pages)


def test_a_website_whose_start_page_fails_is_an_error(api: httpx.Client, site: Site) -> None:
    dataset = create_dataset(api, "website-missing")
    root = crawl(api, dataset, site.url("/nothing-here/"))
    assert root["status"] == "error" and root["error_code"] == "url_http_error"


# --- the schedule ------------------------------------------------------------------------------------

async def scheduled_jobs(db_url: str, collection_id: int) -> list[dict]:
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT id, status, run_after > now() + interval '59 minutes' AS later FROM jobs "
            "WHERE collection_id = :id AND kind = 'link_fetch' AND (payload->>'scheduled')::boolean"),
            {"id": collection_id})).mappings().all()
    await engine.dispose()
    return [dict(r) for r in rows]


async def make_due(db_url: str, job_id: int) -> None:
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE jobs SET run_after = now() WHERE id = :id"), {"id": job_id})
    await engine.dispose()


async def test_a_scheduled_sync_runs_when_due_and_stays_single(api: httpx.Client, site: Site,
                                                              open_server: ServerThread) -> None:
    site.html("/daily.html", "Daily", article("Daily"))
    dataset = create_dataset(api, "links-schedule")
    created = add_links(api, dataset, site.url("/daily.html"), syncIntervalHours=1)[0]
    first = await asyncio.to_thread(wait_collection, api, created["id"])
    assert first["status"] == "ready" and first["metadata"]["syncIntervalHours"] == 1
    db_url = open_server.settings.database_url
    [job] = await scheduled_jobs(db_url, created["id"])
    assert job["status"] == "queued" and job["later"]  # due in an hour

    site.html("/daily.html", "Daily", article("Daily, updated"))
    await make_due(db_url, job["id"])
    synced, deadline = first, time.monotonic() + 120
    while synced["metadata"]["sync"]["state"] != "changed":
        assert time.monotonic() < deadline, f"the due sync never ran: {synced}"
        await asyncio.sleep(0.2)
        synced = api.get(f"/api/collections/{created['id']}").json()
    await asyncio.to_thread(wait_collection, api, created["id"])
    assert "updated" in chunks_of(api, created["id"])[0]["q"]
    [next_job] = await scheduled_jobs(db_url, created["id"])  # the next one, and only one
    assert next_job["id"] != job["id"] and next_job["later"]

    # two workers running the collection's sync at once still leave one scheduled job
    db = open_database(open_server.settings)
    try:
        ctx = JobContext(db=db, settings=open_server.settings, embedders=open_server.platform.embedders)
        claimed = ClaimedJob(id=0, kind="link_fetch", payload={}, collection_id=created["id"], attempts=1,
                             max_attempts=1, last_error=None)
        await asyncio.gather(run_link_fetch(ctx, claimed), run_link_fetch(ctx, claimed))
    finally:
        await db.dispose()
    assert len(await scheduled_jobs(db_url, created["id"])) == 1


# --- the fetcher against a real server ---------------------------------------------------------------

async def test_a_page_that_never_finishes_loading_ends_at_the_deadline(site: Site) -> None:
    policy = FetchPolicy(allow_private=True, timeout_seconds=5, deadline_seconds=1)
    with pytest.raises(ZhikuError) as caught:
        await fetch(site.url("/trickle"), policy)
    assert caught.value.code == "url_timeout" and "did not finish loading" in caught.value.message


class IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


async def test_an_ipv6_loopback_page_is_fetched_by_its_checked_address() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = self.headers["Host"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = IPv6Server(("::1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        page = await fetch(f"http://[::1]:{port}/", FetchPolicy(allow_private=True))
        assert page.body == f"[::1]:{port}".encode()
        with pytest.raises(ZhikuError) as caught:
            await fetch(f"http://[::1]:{port}/", FetchPolicy())
        assert caught.value.code == "url_private_address"
    finally:
        server.shutdown()
        server.server_close()


# --- ZHIKU_ALLOW_PRIVATE_URLS off --------------------------------------------------------------------

def test_private_addresses_are_refused_with_the_flag_off(guarded_api: httpx.Client, site: Site) -> None:
    site.html("/inside.html", "Inside", article("Inside"))
    dataset = create_dataset(guarded_api, "guarded")
    for url in (site.url("/inside.html"), "http://10.1.2.3/", f"http://[::1]:{site.port}/",
                "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/"):
        r = guarded_api.post(f"/api/datasets/{dataset}/collections/link", json={"urls": [url]})
        assert r.status_code == 403 and r.json()["code"] == "url_private_address", (url, r.text)
        assert "ZHIKU_ALLOW_PRIVATE_URLS" in r.json()["message"]
    hits = len(site.hits)
    # a name that resolves to loopback passes the request and is refused after DNS, by the worker
    [by_name] = add_links(guarded_api, dataset, site.url("/inside.html", host="localhost"))
    failed = wait_collection(guarded_api, by_name["id"])
    assert failed["status"] == "error" and failed["error_code"] == "url_private_address", failed
    website = guarded_api.post(f"/api/datasets/{dataset}/collections/website",
                               json={"url": site.url("/w1/", host="localhost")}).json()
    assert wait_collection(guarded_api, website["id"])["error_code"] == "url_private_address"
    assert len(site.hits) == hits  # nothing reached the site
