"""Rerank: a tiny random XLM-R cross-encoder, in process and over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from safetensors.numpy import load_file

from tests.embedding.conftest import API_KEY, RunningServer
from tests.embedding.tiny_models import reference_hidden
from zhiku.embedding.base import Reranker
from zhiku.embedding.rerank import CrossEncoder

QUERY = "the cat sat"
DOCS = ["a cat sat on the mat", "money in the river bank", "猫 狗", "big green tree", "the dog flew over the house"]


def _reference_scores(path: Path, reranker: CrossEncoder) -> list[float]:
    t = load_file(str(path / "model.safetensors"))
    scores = []
    for ids, types in reranker.encoder.encode([(QUERY, d) for d in DOCS]):
        first = reference_hidden(t, ids, types, prefix="roberta.", position_offset=2, eps=1e-5)[0]
        hidden = np.tanh(first @ t["classifier.dense.weight"].T + t["classifier.dense.bias"])
        logit = (hidden @ t["classifier.out_proj.weight"].T + t["classifier.out_proj.bias"])[0]
        scores.append(1 / (1 + np.exp(-logit)))
    return scores


def test_scores_match_a_reference_forward_pass(tiny_dir: Path, reranker: CrossEncoder) -> None:
    assert isinstance(reranker, Reranker)
    got = reranker.rerank(QUERY, DOCS)
    want = _reference_scores(tiny_dir / "tiny-reranker", reranker)
    assert np.abs(np.array(got) - np.array(want)).max() < 1e-5
    assert reranker.rerank(QUERY, DOCS) == got  # deterministic
    assert len(set(np.round(got, 4))) == len(DOCS)  # the ordering below is meaningful


def test_rerank_over_http_orders_by_score(rerank_server: RunningServer, tiny_dir: Path,
                                          reranker: CrossEncoder) -> None:
    want = _reference_scores(tiny_dir / "tiny-reranker", reranker)
    order = sorted(range(len(DOCS)), key=lambda i: want[i], reverse=True)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for path in ("/v1/rerank", "/rerank"):
        body = httpx.post(rerank_server.base_url + path, headers=headers, json={
            "model": "tiny-reranker", "query": QUERY, "documents": [*DOCS[:2], *({"text": d} for d in DOCS[2:])],
            "top_n": 3, "return_documents": True}).json()
        assert "results" in body, body
        assert [r["index"] for r in body["results"]] == order[:3], body
        for result in body["results"]:
            assert abs(result["relevance_score"] - want[result["index"]]) < 1e-5
            assert result["document"] == {"text": DOCS[result["index"]]}
        assert body["usage"]["total_tokens"] == sum(len(reranker.encoder.encode([(QUERY, d)])[0][0]) for d in DOCS)
    plain = httpx.post(rerank_server.base_url + "/v1/rerank", headers=headers,
                       json={"query": QUERY, "documents": DOCS}).json()  # default model, all, no documents
    assert [r["index"] for r in plain["results"]] == order and "document" not in plain["results"][0]
    assert "tiny-reranker" in {m["id"] for m in httpx.get(rerank_server.base_url + "/v1/models",
                                                           headers=headers).json()["data"]}


def test_without_a_rerank_model_the_endpoint_says_so(embed_server: RunningServer) -> None:
    response = httpx.post(embed_server.base_url + "/v1/rerank", headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"model": "bge-reranker-base", "query": "q", "documents": ["d"]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "no rerank model is configured" in error["message"]


def test_bad_rerank_input_is_a_clear_400(rerank_server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    for body, code in (({"query": "q", "documents": []}, "empty_input"),
                       ({"query": "", "documents": ["d"]}, "invalid_input"),
                       ({"query": "q", "documents": [1]}, "invalid_input"),
                       ({"query": "q", "documents": ["d"], "top_n": 0}, "invalid_parameter")):
        response = httpx.post(rerank_server.base_url + "/rerank", headers=headers, json=body)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.text
