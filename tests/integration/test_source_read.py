"""Opening the document a quote came from, against a real server: the native download route
(``GET /api/collections/{id}/source``), FastGPT's ``POST /api/core/dataset/collection/read`` and its
short-lived source links, and share links with and without ``showRawSource``."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.conftest import login, unique
from tests.integration.helpers import add_text, create_dataset, upload, wait_collection
from zhiku.gateway.store.keybox import open_keybox
from zhiku.knowledge.sources import CollectionSource, source_link

pytestmark = pytest.mark.integration

READ = "/api/core/dataset/collection/read"
HTML = b"<html><body><h1>Kettle</h1><p>Descale monthly.</p><script>document.title='pwned'</script></body></html>"
REPORT_NAME = "报告 2024 final.md"
REPORT = "# 年度报告\n\n水壶每月除垢一次。\n".encode()
NOTE = "# Note\n\nPasted text has no document of its own.\n"
LINK = "https://docs.example.com/kettle/manual"


def refused(r: httpx.Response, status: int, code: str) -> dict:
    """A native error ``{code, message, detail}`` or FastGPT's envelope (``statusText``: the code)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body.get("code") == code or body.get("statusText") == code, body
    return body


def envelope(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200 and body["statusText"] == "" and body["message"] == "", body
    return body["data"]


@pytest.fixture(scope="module")
def kb(server) -> dict[str, int]:
    """One dataset with an HTML file, a file with a non-ASCII name, pasted text and a link; a second dataset
    with one file (no app below searches it)."""
    client = login(server.base_url)
    try:
        dataset_id = create_dataset(client, unique("sources"))
        html = upload(client, dataset_id, "page.html", HTML)
        assert html.status_code == 201, html.text
        report = upload(client, dataset_id, REPORT_NAME, REPORT)
        assert report.status_code == 201, report.text
        text = add_text(client, dataset_id, "note.md", NOTE)
        r = client.post(f"/api/datasets/{dataset_id}/collections/link", json={"urls": [LINK]})
        assert r.status_code == 201, r.text
        other_dataset = create_dataset(client, unique("sources-other"))
        other = upload(client, other_dataset, "other.md", b"# Other\n\nNot in the app.\n")
        assert other.status_code == 201, other.text
        for created in (html, report, other):
            assert wait_collection(client, created.json()["id"])["status"] == "ready"
        return {"dataset": dataset_id, "html": html.json()["id"], "report": report.json()["id"], "text": text["id"],
                "link": r.json()[0]["id"], "other_dataset": other_dataset, "other": other.json()["id"]}
    finally:
        client.close()


def anonymous(server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=60)


# ---- the native route ----------------------------------------------------------------------------

def test_html_file_is_an_attachment_that_runs_nothing(client, kb) -> None:
    r = client.get(f"/api/collections/{kb['html']}/source")
    assert r.status_code == 200, r.text
    assert r.content == HTML
    assert r.headers["content-disposition"].startswith("attachment;")
    assert 'filename="page.html"' in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"
    policy = [p.strip() for p in r.headers["content-security-policy"].split(";")]
    assert "sandbox" in policy and "default-src 'none'" in policy
    # the UI's page policy (which would allow this origin's scripts) is not added on top of it
    assert "script-src 'self'" not in r.headers["content-security-policy"]


def test_non_ascii_file_name_goes_in_filename_star(client, kb) -> None:
    r = client.get(f"/api/collections/{kb['report']}/source")
    assert r.status_code == 200, r.text
    assert r.content == REPORT
    disposition = r.headers["content-disposition"]
    assert disposition.isascii()
    assert f"filename*=UTF-8''{quote(REPORT_NAME, safe='')}" in disposition
    fallback = re.search(r'filename="([^"]*)"', disposition)
    assert fallback and fallback.group(1) == "__ 2024 final.md", disposition


def test_link_collection_redirects_to_its_url(client, kb) -> None:
    r = client.get(f"/api/collections/{kb['link']}/source", follow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == LINK


def test_text_collection_has_no_source(client, kb) -> None:
    body = refused(client.get(f"/api/collections/{kb['text']}/source"), 404, "no_source_file")
    assert body["message"] and body["detail"] == {"type": "text"}


def test_a_quote_says_what_its_source_route_answers(client, kb) -> None:
    """Each quote carries its collection's type and ``sourceKind``, and the route agrees with it: a file
    quote's source downloads, a text quote's is 404 ``no_source_file``."""
    r = client.post(f"/api/datasets/{kb['dataset']}/search", json={"text": "Kettle descale 水壶 除垢 pasted text",
                                                                     "searchMode": "fullText", "limit": 5000})
    assert r.status_code == 200, r.text
    by_collection = {int(q["collectionId"]): q for q in r.json()["quotes"]}
    expected = {kb["html"]: ("file", "file"), kb["report"]: ("file", "file"), kb["text"]: ("text", None)}
    assert {c: (by_collection[c]["collectionType"], by_collection[c]["sourceKind"]) for c in expected} == expected
    for collection_id, (_, kind) in expected.items():
        answer = client.get(f"/api/collections/{collection_id}/source")
        assert answer.status_code == (200 if kind == "file" else 404), answer.text


def test_other_team_and_no_credentials_are_refused(server, other_team, kb) -> None:
    refused(other_team.get(f"/api/collections/{kb['html']}/source"), 404, "collection_not_found")
    with anonymous(server) as nobody:
        refused(nobody.get(f"/api/collections/{kb['html']}/source"), 401, "unauthorized")
    refused(other_team.get("/api/collections/999999999999/source"), 404, "collection_not_found")


def test_team_api_key_reads_the_source(server, client, kb) -> None:
    key = client.post("/api/keys", json={"name": unique("sources")}).json()["key"]
    with httpx.Client(base_url=server.base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        r = http.get(f"/api/collections/{kb['report']}/source")
    assert r.status_code == 200 and r.content == REPORT


# ---- FastGPT's read and its source links ---------------------------------------------------------

def test_fastgpt_read_answers_a_source_link_that_opens_the_file(server, client, kb) -> None:
    data = envelope(client.post(READ, json={"collectionId": str(kb["report"])}))
    assert set(data) == {"type", "value"} and data["type"] == "url"
    url = data["value"]
    assert url.startswith(f"/api/collections/{kb['report']}/source?token=")
    with anonymous(server) as browser:  # no credentials: the link alone opens the file
        r = browser.get(url)
        assert r.status_code == 200, r.text
        assert r.content == REPORT
        assert r.headers["content-disposition"].startswith("attachment;")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in r.headers["content-security-policy"]
        # the same link opens it again until it expires; FastGPT's ids as numbers are taken too
        assert browser.get(url).status_code == 200
    assert envelope(client.post(READ, json={"collectionId": kb["report"]}))["type"] == "url"


def test_source_link_fails_when_altered_foreign_or_expired(server, client, kb) -> None:
    url = envelope(client.post(READ, json={"collectionId": kb["report"]}))["value"]
    token = parse_qs(urlsplit(url).query)["token"][0]
    with anonymous(server) as browser:
        altered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        refused(browser.get(f"/api/collections/{kb['report']}/source", params={"token": altered}), 403,
                "source_link_invalid")
        refused(browser.get(f"/api/collections/{kb['html']}/source", params={"token": token}), 403,
                "source_link_invalid")  # a link opens only the collection it was made for
        refused(browser.get(f"/api/collections/{kb['report']}/source", params={"token": "x" * 600}), 422,
                "validation_error")
        sealer = open_keybox(server.settings)  # the server's secret: the data dir's secret.key
        source = CollectionSource(collection_id=kb["report"], kind="file", name=REPORT_NAME,
                                  file_id=_file_id(server, kb["report"]))
        fresh = source_link(sealer, source, seconds=60)
        assert browser.get(fresh).status_code == 200  # made here with the same secret: the check is real
        expired = source_link(sealer, source, seconds=60, now=0)
        refused(browser.get(expired), 403, "source_link_expired")


def _file_id(server, collection_id: int) -> str:
    from tests.integration.helpers import sql_rows

    return sql_rows(server.settings.database_url, "SELECT file_id FROM collections WHERE id = :id",
                    id=collection_id)[0]["file_id"]


def test_fastgpt_read_of_link_text_foreign_and_anonymous(server, client, other_team, kb) -> None:
    assert envelope(client.post(READ, json={"collectionId": kb["link"]})) == {"type": "url", "value": LINK}
    refused(client.post(READ, json={"collectionId": kb["text"]}), 404, "no_source_file")
    refused(other_team.post(READ, json={"collectionId": kb["report"]}), 404, "collection_not_found")
    refused(client.post(READ, json={"collectionId": "65f0c0ffee0000000000abcd"}), 404, "collection_not_found")
    refused(client.post(READ, json={"collectionId": "1" * 100}), 422, "validation_error")
    with anonymous(server) as nobody:
        refused(nobody.post(READ, json={"collectionId": kb["report"]}), 401, "unauthorized")


# ---- share links ---------------------------------------------------------------------------------

def _app_with_link(client: httpx.Client, dataset_id: int, **link: object) -> tuple[str, str]:
    """(app id, shareId) of a new app over the dataset with a share link of these settings."""
    r = client.post("/api/apps", json={"name": unique("sources-app"), "datasetIds": [dataset_id]})
    assert r.status_code == 201, r.text
    app_id = str(r.json()["id"])
    return app_id, envelope(client.post("/api/support/outLink/create",
                                         json={"appId": app_id, "type": "share", "name": unique("link"), **link}))


def test_share_link_without_show_raw_source_is_refused(server, client, kb) -> None:
    _, share_id = _app_with_link(client, kb["dataset"], responseDetail=True)
    with anonymous(server) as visitor:
        refused(visitor.post(READ, json={"collectionId": kb["report"], "shareId": share_id,
                                         "outLinkUid": "visitor-1"}), 403, "share_link_raw_source_off")


def test_share_link_with_show_raw_source_opens_only_the_apps_datasets(server, client, kb) -> None:
    app_id, share_id = _app_with_link(client, kb["dataset"], responseDetail=True, showRawSource=True)
    visitor_body = {"shareId": share_id, "outLinkUid": "visitor-2", "appId": "ignored", "chatId": "c1",
                    "chatItemDataId": "d1"}
    with anonymous(server) as visitor:
        url = envelope(visitor.post(READ, json={"collectionId": kb["report"], **visitor_body}))["value"]
        r = visitor.get(url)
        assert r.status_code == 200 and r.content == REPORT
        assert envelope(visitor.post(READ, json={"collectionId": kb["link"], **visitor_body}))["value"] == LINK
        # a collection of the same team the app does not search, and one of no dataset at all
        refused(visitor.post(READ, json={"collectionId": kb["other"], **visitor_body}), 404, "collection_not_found")
        refused(visitor.post(READ, json={"collectionId": kb["text"], **visitor_body}), 404, "no_source_file")
        refused(visitor.post(READ, json={"collectionId": kb["report"], "shareId": "no-such-link",
                                         "outLinkUid": "visitor-2"}), 401, "share_link_invalid")
        # the native route takes no share link: a visitor opens files only through source links
        refused(visitor.get(f"/api/collections/{kb['report']}/source"), 401, "unauthorized")
    # turned off: refused at once
    links = envelope(client.get("/api/support/outLink/list", params={"appId": app_id}))
    link_id = next(link["_id"] for link in links if link["shareId"] == share_id)
    envelope(client.put("/api/support/outLink/update", json={"_id": link_id, "showRawSource": False}))
    with anonymous(server) as visitor:
        refused(visitor.post(READ, json={"collectionId": kb["report"], **visitor_body}), 403,
                "share_link_raw_source_off")


def test_workflow_apps_datasets_are_the_ones_its_search_nodes_read(server, client, kb) -> None:
    """A workflow app's searched datasets come from its dataset-search nodes, not the simple-app table."""
    r = client.post("/api/apps", json={"name": unique("sources-flow"), "datasetIds": [kb["dataset"]]})
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    graph = client.get(f"/api/apps/{app_id}/workflow").json()
    search = next(n for n in graph["nodes"] if n["flowNodeType"] == "datasetSearchNode")
    next(i for i in search["inputs"] if i["key"] == "datasets")["value"] = [{"datasetId": str(kb["other_dataset"])}]
    r = client.put(f"/api/apps/{app_id}/workflow", json={k: graph[k] for k in ("nodes", "edges", "chatConfig")})
    assert r.status_code == 200, r.text
    share_id = envelope(client.post("/api/support/outLink/create", json={
        "appId": str(app_id), "type": "share", "name": unique("link"), "showRawSource": True}))
    body = {"shareId": share_id, "outLinkUid": "visitor-3"}
    with anonymous(server) as visitor:
        assert envelope(visitor.post(READ, json={"collectionId": kb["other"], **body}))["type"] == "url"
        refused(visitor.post(READ, json={"collectionId": kb["report"], **body}), 404, "collection_not_found")
