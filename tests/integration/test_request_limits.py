"""Big inputs are bounded before any work starts, and one maximal question does not stall the others."""

from __future__ import annotations

import random
import statistics
import threading
import time

import httpx
import pytest

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset
from zhiku.retrieval import search
from zhiku.retrieval.settings import MAX_QUERY_CHARS

pytestmark = pytest.mark.integration
HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天"


@pytest.fixture
def app_key(client: httpx.Client) -> str:
    dataset_id = create_dataset(client, unique("limits"))
    add_text(client, dataset_id, "tea.md", "# Tea\n\n绿茶用八十度的水泡两分钟。Green tea wants water at 80 °C for two minutes.")
    r = client.post("/api/apps", json={"name": unique("limits"), "datasetIds": [dataset_id]})
    assert r.status_code == 201, r.text
    r = client.post("/api/keys", json={"name": "limits", "appId": r.json()["id"]})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def test_a_question_over_the_limit_is_refused_before_any_work(server, fake, client, app_key) -> None:
    too_long = "茶" * (MAX_QUERY_CHARS + 1)
    started = time.perf_counter()
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {app_key}"},
                   json={"messages": [{"role": "user", "content": too_long}]}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "query_too_long"
    assert fake.requests == []  # no model call
    dataset_id = create_dataset(client, unique("limits"))
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": too_long})
    assert r.status_code == 413 and r.json()["code"] == "query_too_long"
    assert time.perf_counter() - started < 10


def test_health_answers_promptly_while_maximal_questions_are_answered(server, fake, app_key) -> None:
    """Four maximal questions one after another (each takes well under a second since a long question
    is embedded by its leading tokens, too short alone to sample): health checks keep answering."""
    rng = random.Random(7)
    questions = ["".join(rng.choice(HANZI) for _ in range(MAX_QUERY_CHARS)) for _ in range(4)]
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        baseline = statistics.median(_timed(lambda: http.get("/api/health")) for _ in range(5))
        done = threading.Event()
        answered: list[int] = []

        def ask() -> None:
            for question in questions:
                fake.reply("答")
                r = httpx.post(server.base_url + "/api/v1/chat/completions", timeout=120,
                               headers={"Authorization": f"Bearer {app_key}"},
                               json={"messages": [{"role": "user", "content": question}]})
                answered.append(r.status_code)
            done.set()

        big = threading.Thread(target=ask)
        started = time.perf_counter()
        big.start()
        health: list[float] = []
        while not done.is_set():
            health.append(_timed(lambda: http.get("/api/health")))
            time.sleep(0.02)
        big_seconds = time.perf_counter() - started
        big.join()
    assert answered == [200] * len(questions)
    assert len(health) >= 3, f"the maximal questions took only {big_seconds:.2f}s: nothing was measured"
    # On the event loop, the question's segmentation and embedding would hold every health check for
    # their whole duration; off it, a check waits at most a few thread switches.
    assert max(health) < max(1.0, 20 * baseline), (max(health), baseline, big_seconds)


def test_a_burst_of_long_questions_beyond_the_lane_queue_is_refused_at_once(server, fake, app_key,
                                                                            monkeypatch) -> None:
    """Long questions embed one at a time; past the queue's bound one more gets a prompt 503 with
    Retry-After instead of waiting behind a queue that grows faster than it drains."""
    monkeypatch.setattr(search, "LONG_QUERY_QUEUE", 1)
    cut = search.leading_tokens

    def slow_cut(text: str, tokens: int) -> str:  # runs in the lane's thread: the lane stays busy a second
        time.sleep(1.0)
        return cut(text, tokens)

    monkeypatch.setattr(search, "leading_tokens", slow_cut)
    rng = random.Random(11)
    questions = ["".join(rng.choice(HANZI) for _ in range(3000)) for _ in range(8)]
    fake.reply("答")
    results: list[tuple[int, str, str | None, float]] = []
    barrier = threading.Barrier(len(questions))

    def ask(question: str) -> None:
        barrier.wait()
        started = time.perf_counter()
        r = httpx.post(server.base_url + "/api/v1/chat/completions", timeout=120,
                       headers={"Authorization": f"Bearer {app_key}"},
                       json={"messages": [{"role": "user", "content": question}]})
        code = r.json()["error"]["code"] if r.status_code != 200 else ""
        results.append((r.status_code, code, r.headers.get("retry-after"), time.perf_counter() - started))

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, *_ in results)
    refused = [r for r in results if r[0] == 503]
    assert set(statuses) == {200, 503}, results
    assert all(code == "long_questions_busy" and retry == str(search.LONG_QUERY_RETRY_AFTER_SECONDS)
               for _, code, retry, _ in refused), refused
    answered = [took for status, _, _, took in results if status == 200]
    # A refusal does not wait for the lane: it comes back before the slowest answer.
    assert max(took for *_, took in refused) < max(answered), results


@pytest.mark.parametrize("text", [
    "Does vitamin D supplementation reduce the risk of respiratory infections in elderly adults? " * 8,
    "绿茶用八十度的水泡两分钟，红茶要用沸水。" * 12,
    "Zhiku 知库 imports PDF, Word 和 Excel 文件 and answers with citations. " * 10,
])
def test_the_lane_s_token_estimate_is_near_the_model_s_own_count(embedders, text: str) -> None:
    """Which lane a question takes is decided without the tokenizer; the estimate stays within a factor
    of two of the bundled model's count for English, Chinese and mixed text."""
    real = embedders.get().count_tokens(text)
    assert real / 2 <= search.estimated_tokens(text) <= real * 2, (search.estimated_tokens(text), real)
    lead = search.leading_tokens(text, search.LONG_QUERY_TOKENS)
    assert text.startswith(lead) and len(lead) < len(text)
    assert search.LONG_QUERY_TOKENS - 4 <= search.estimated_tokens(lead) <= search.LONG_QUERY_TOKENS


def _timed(call) -> float:
    started = time.perf_counter()
    response = call()
    assert response.status_code == 200
    return time.perf_counter() - started


def test_responses_carry_security_headers(server, client) -> None:
    for r in (httpx.get(server.base_url + "/api/health"), client.get("/api/datasets"),
              httpx.post(server.base_url + "/v1/chat/completions", json={})):  # the gateway's relay, mounted
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_the_upload_limit_holds_for_pasted_text_and_every_body(pg_url, data_dir, embedders, client) -> None:
    from tests.conftest import make_settings
    from zhiku.testing.server import ServerThread

    dataset_id = create_dataset(client, unique("limit"))
    settings = make_settings(pg_url, data_dir, upload_max_bytes=1024 * 1024, max_request_bytes=256 * 1024,
                             worker_enabled=False, gateway_enabled=False)
    with ServerThread(settings, embedders) as small:
        with httpx.Client(base_url=small.base_url, timeout=60,
                          headers={"Authorization": client.headers["Authorization"]}) as http:
            pasted = {"name": "big.md", "text": "茶" * (400 * 1024)}  # 1.2 MB of UTF-8 in a small body limit
            r = http.post(f"/api/datasets/{dataset_id}/collections/text", json=pasted)
            assert r.status_code == 413, r.text
            huge = b'{"name": "x.md", "text": "' + b"a" * (3 * 1024 * 1024) + b'"}'
            r = http.post(f"/api/datasets/{dataset_id}/collections/text", content=huge,
                          headers={"content-type": "application/json"})
            assert r.status_code == 413 and r.json()["code"] == "request_too_large", r.text

            def chunked():  # no Content-Length: cut off once past the limit
                yield b'{"name": "x.md", "text": "'
                for _ in range(300):
                    yield b"a" * 10_000
                yield b'"}'

            r = http.post(f"/api/datasets/{dataset_id}/collections/text", content=chunked(),
                          headers={"content-type": "application/json"})
            assert r.status_code == 413 and r.json()["code"] == "request_too_large", r.text
            # Documents may be as big as an upload; every other body has the (smaller) request limit.
            r = http.post(f"/api/datasets/{dataset_id}/collections/text", json={"name": "ok.md", "text": "a" * 300_000})
            assert r.status_code == 201, r.text
            r = http.post("/api/apps", json={"name": unique("big"), "systemPrompt": "a" * 300_000})
            assert r.status_code == 413 and r.json()["code"] == "request_too_large", r.text
            r = http.post("/api/v1/chat/completions", json={"messages": [{"role": "user", "content": "a" * 300_000}]})
            assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large", r.text
            r = http.get("/api/health")
            assert r.status_code == 200
