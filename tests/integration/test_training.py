"""Training mode "qa": each chunk goes to the dataset's agent model through the gateway, with the fake
upstream scripted per test (pairs, an unparseable reply, a 429 with Retry-After, a permanent failure)."""

from __future__ import annotations

import io
import time

import httpx
import openpyxl
import pytest

from tests.conftest import unique
from tests.integration.helpers import create_dataset, push, sql_rows, wait_collection
from zhiku.knowledge.qa import QA_SYSTEM_PROMPT
from zhiku.testing.fake_upstream import FakeUpstream, message_text

pytestmark = pytest.mark.integration

PAIRS = """Here are the pairs.
Q1: How much does green tea cost?
A1: Green tea costs 30 yuan a tin.
Q2: Which tea is the cheapest?
A2: Jasmine tea, at 18 yuan a tin."""

TEA_TEXT = "# Tea shop\n\nGreen tea costs 30 yuan a tin. Jasmine tea is the cheapest at 18 yuan a tin."


def _xlsx() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Prices"
    for row in (["Tea", "Price per tin"], ["Green tea", "30 yuan"], ["Jasmine tea", "18 yuan"]):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _chat_requests(fake: FakeUpstream) -> list:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


def _chunks(client: httpx.Client, collection_id: int) -> list[dict]:
    return client.get(f"/api/collections/{collection_id}/chunks").json()["items"]


def _qa_text(client: httpx.Client, dataset_id: int, text: str = TEA_TEXT) -> int:
    r = client.post(f"/api/datasets/{dataset_id}/collections/text",
                    json={"name": "tea.md", "text": text, "trainingMode": "qa"})
    assert r.status_code == 201, r.text
    assert r.json()["training_mode"] == "qa"
    return r.json()["id"]


def test_qa_mode_asks_the_agent_model_and_keeps_the_chunks_metadata(client: httpx.Client,
                                                                     fake: FakeUpstream) -> None:
    r = client.post("/api/datasets", json={"name": unique("qa"), "agentModel": "qa-writer"})
    assert r.status_code == 201 and r.json()["agent_model"] == "qa-writer", r.text
    dataset_id = r.json()["id"]
    fake.reply(PAIRS)
    r = client.post(f"/api/datasets/{dataset_id}/collections/file", files={"file": ("prices.xlsx", _xlsx())},
                    data={"trainingMode": "qa"})
    assert r.status_code == 201, r.text
    collection = wait_collection(client, r.json()["id"])
    assert collection["status"] == "ready", collection

    # Jobs run at least once: on a starved machine a lease can lapse and a second worker ask again; the
    # chunks below show the answer was stored once.
    asked = _chat_requests(fake)
    assert asked and all(r.json["model"] == "qa-writer" for r in asked)
    system, user = asked[0].json["messages"]
    assert system["content"] == QA_SYSTEM_PROMPT
    assert "<Context>" in message_text(user["content"]) and "Jasmine tea" in message_text(user["content"])

    chunks = _chunks(client, collection["id"])
    assert [(c["q"], c["a"]) for c in chunks] == [
        ("How much does green tea cost?", "Green tea costs 30 yuan a tin."),
        ("Which tea is the cheapest?", "Jasmine tea, at 18 yuan a tin.")]
    assert all(c["metadata"] == {"sheet": "Prices"} and c["embedded"] for c in chunks)
    assert collection["chunk_count"] == collection["indexed_count"] == 2
    quotes = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "cheapest tea"}).json()["quotes"]
    assert quotes[0]["q"] == "Which tea is the cheapest?"


def test_an_unparseable_reply_keeps_the_text_as_a_plain_chunk(client: httpx.Client, fake: FakeUpstream) -> None:
    dataset_id = create_dataset(client, unique("qa"))
    fake.reply("I am sorry, I cannot write questions about this.")
    collection = wait_collection(client, _qa_text(client, dataset_id))
    assert collection["status"] == "ready", collection
    chunks = _chunks(client, collection["id"])
    assert len(chunks) == 1 and "Jasmine tea" in chunks[0]["q"] and chunks[0]["a"] == ""
    assert chunks[0]["embedded"] and chunks[0]["headings"] == ["# Tea shop"]
    quotes = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "jasmine tea price"}).json()["quotes"]
    assert quotes and quotes[0]["id"] == str(chunks[0]["id"])


def test_a_rate_limit_waits_for_retry_after_then_succeeds(client: httpx.Client, fake: FakeUpstream,
                                                          server) -> None:
    dataset_id = create_dataset(client, unique("qa"))
    fake.fail(429, headers={"Retry-After": "3"})
    fake.reply(PAIRS)
    collection_id = _qa_text(client, dataset_id)

    # The failed attempt goes back to the queue due when the upstream asked, not at the default backoff.
    waits: list[dict] = []
    deadline = time.monotonic() + 60
    while not waits and time.monotonic() < deadline:
        waits = sql_rows(server.settings.database_url,
                         "SELECT status, attempts, last_error, extract(epoch FROM run_after - updated_at) AS wait "
                         "FROM jobs WHERE collection_id = :c AND kind = 'qa' AND status = 'queued' "
                         "AND last_error IS NOT NULL", c=collection_id)
        time.sleep(0.05)
    assert waits, "never saw the rate-limited job waiting in the queue"
    assert float(waits[0]["wait"]) == 3.0 and "429" in waits[0]["last_error"], waits

    collection = wait_collection(client, collection_id)
    assert collection["status"] == "ready", collection
    assert len(_chat_requests(fake)) == 2
    assert [c["q"] for c in _chunks(client, collection_id)] == [
        "How much does green tea cost?", "Which tea is the cheapest?"]


def test_a_permanent_model_failure_is_a_collection_error_and_retry_runs_qa_again(
        client: httpx.Client, fake: FakeUpstream, server) -> None:
    dataset_id = create_dataset(client, unique("qa"))
    fake.fail(400, body={"error": {"message": "the model refuses this prompt", "type": "invalid_request_error",
                                   "code": "prompt_refused"}})
    collection = wait_collection(client, _qa_text(client, dataset_id))
    assert collection["status"] == "error", collection
    assert "the model refuses this prompt" in collection["error"]
    failed = sql_rows(server.settings.database_url,
                      "SELECT kind, status FROM jobs WHERE collection_id = :c", c=collection["id"])
    assert failed == [{"kind": "qa", "status": "failed"}]
    assert not client.post(f"/api/datasets/{dataset_id}/search", json={"text": "green tea"}).json()["quotes"]

    fake.reply(PAIRS)
    r = client.post(f"/api/collections/{collection['id']}/retry")
    assert r.status_code == 202 and r.json()["status"] == "indexing" and r.json()["error"] is None, r.text
    collection = wait_collection(client, collection["id"])
    assert collection["status"] == "ready", collection
    assert len(_chat_requests(fake)) == 2  # the model step ran again; parsing did not need to
    assert len(_chunks(client, collection["id"])) == 2
    r = client.post(f"/api/collections/{collection['id']}/retry")
    assert r.status_code == 409 and r.json()["code"] == "collection_not_failed"


def test_pushed_data_in_qa_mode_goes_through_the_model(client: httpx.Client, fake: FakeUpstream) -> None:
    dataset_id = create_dataset(client, unique("qa"))
    r = client.post(f"/api/datasets/{dataset_id}/collections/text", json={"name": "seed", "text": "Seed."})
    collection_id = r.json()["id"]
    wait_collection(client, collection_id)
    fake.reply(PAIRS)
    r = push(client, collection_id, [{"q": TEA_TEXT}], trainingType="qa", prompt="Ask only about prices.")
    assert r.status_code == 201 and r.json()["insertLen"] == 1, r.text
    assert wait_collection(client, collection_id)["status"] == "ready"
    chunks = _chunks(client, collection_id)
    assert [c["q"] for c in chunks] == ["Seed.", "How much does green tea cost?", "Which tea is the cheapest?"]
    [asked] = _chat_requests(fake)
    assert asked.json["messages"][0]["content"].startswith("Ask only about prices.")
