"""The embedding server over real HTTP on loopback, driven by the official ``openai`` client and httpx."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.embedding.conftest import API_KEY, RunningServer
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.embedding.service import model_tokens
from zhiku.tokencount import get_encoding

TEXTS = ["知识库问答系统把文档切成片段并向量化。", "The quick brown fox jumps over the lazy dog.",
         "向量检索与全文检索的结果用 RRF 融合。", "Embeddings turn text into vectors."]


def _client(server: RunningServer, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=120)


def _http(server: RunningServer, key: str | None = API_KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=120)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"] and error["type"]
    return error


def test_string_list_and_formats_through_the_openai_client(embed_server: RunningServer,
                                                            embedders: EmbedderRegistry) -> None:
    bundled = embedders.get()
    direct = bundled.embed(TEXTS, kind="passage")
    client = _client(embed_server)
    one = client.embeddings.create(model="multilingual-e5-small", input=TEXTS[0], encoding_format="float")
    assert len(one.data) == 1 and len(one.data[0].embedding) == bundled.dim
    assert _cos(np.array(one.data[0].embedding), direct[0]) > 0.999
    assert one.usage.prompt_tokens == one.usage.total_tokens == model_tokens(bundled, TEXTS[0], "passage")
    many = client.embeddings.create(model="m3e", input=TEXTS, encoding_format="float")
    assert [d.index for d in many.data] == [0, 1, 2, 3]
    for got, want in zip(many.data, direct):
        assert _cos(np.array(got.embedding), want) > 0.999
    assert many.usage.prompt_tokens == sum(model_tokens(bundled, t, "passage") for t in TEXTS)
    # the client's default asks for base64 and decodes it itself
    default = client.embeddings.create(model="m3e", input=TEXTS)
    for got, want in zip(default.data, direct):
        assert _cos(np.array(got.embedding), want) > 0.999


def test_base64_is_little_endian_float32(embed_server: RunningServer) -> None:
    with _http(embed_server) as http:
        floats = http.post("/v1/embeddings", json={"model": "m3e", "input": TEXTS[1]}).json()
        packed = http.post("/v1/embeddings", json={"model": "m3e", "input": TEXTS[1],
                                                   "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(vector, floats["data"][0]["embedding"], atol=1e-6)
    assert packed["usage"] == floats["usage"]


def test_query_form_by_field_and_by_model_suffix(embed_server: RunningServer, embedders: EmbedderRegistry) -> None:
    query = embedders.get().embed([TEXTS[3]], kind="query")[0]
    passage = embedders.get().embed([TEXTS[3]], kind="passage")[0]
    assert _cos(query, passage) < 0.999  # the two forms really differ
    with _http(embed_server) as http:
        by_field = http.post("/v1/embeddings", json={"model": "m3e", "input": TEXTS[3], "input_type": "query"})
        by_suffix = http.post("/v1/embeddings", json={"model": "m3e:query", "input": TEXTS[3]})
    for response in (by_field, by_suffix):
        assert _cos(np.array(response.json()["data"][0]["embedding"]), query) > 0.999


def test_token_id_arrays_are_cl100k_ids(embed_server: RunningServer) -> None:
    ids = get_encoding("cl100k_base").encode(TEXTS[1])
    with _http(embed_server) as http:
        as_text = http.post("/v1/embeddings", json={"model": "m3e", "input": [TEXTS[1]]}).json()
        as_ids = http.post("/v1/embeddings", json={"model": "m3e", "input": [ids]}).json()
        single = http.post("/v1/embeddings", json={"model": "m3e", "input": ids}).json()
    for body in (as_ids, single):
        assert _cos(np.array(body["data"][0]["embedding"]), np.array(as_text["data"][0]["embedding"])) > 0.9999
        assert body["usage"] == as_text["usage"]


def test_models_and_health(embed_server: RunningServer) -> None:
    listed = {m.id for m in _client(embed_server).models.list()}
    assert {"multilingual-e5-small", "m3e", "text-embedding-ada-002", "tiny-mean"} <= listed
    health = httpx.get(f"{embed_server.base_url}/health")  # public: no key
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_wrong_or_missing_key_is_401_in_openai_shape(embed_server: RunningServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        _client(embed_server, key="sk-wrong").embeddings.create(model="m3e", input="x")
    for key in ("sk-wrong", None):
        with _http(embed_server, key) as http:
            _error(http.post("/v1/embeddings", json={"model": "m3e", "input": "x"}), 401, "invalid_api_key")
            _error(http.get("/v1/models"), 401, "invalid_api_key")


def test_fifty_parallel_requests_are_answered_in_order(embed_server: RunningServer,
                                                       embedders: EmbedderRegistry) -> None:
    bundled = embedders.get()
    requests = [[f"第 {i} 个请求：{TEXTS[i % 4]}", f"request {i}, part two: {TEXTS[(i + 1) % 4]} " * (1 + i % 5)]
                for i in range(50)]
    client = _client(embed_server)

    def send(texts: list[str]) -> Any:
        return client.embeddings.create(model="m3e", input=texts, encoding_format="float")

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(send, requests))
    for texts, answer in zip(requests, answers):
        assert [d.index for d in answer.data] == [0, 1]
        for text, got in zip(texts, answer.data):
            want = bundled.embed([text], kind="passage")[0]
            assert _cos(np.array(got.embedding), want) > 0.999
        assert answer.usage.prompt_tokens == sum(model_tokens(bundled, t, "passage") for t in texts)


def test_long_input_is_windowed_and_says_so(embed_server: RunningServer, embedders: EmbedderRegistry) -> None:
    bundled = embedders.get()
    long_text = "。".join(f"第{i}段讲的是知识库的检索、切分与向量化流程" for i in range(120))
    assert bundled.count_tokens(long_text) > bundled.max_tokens
    with _http(embed_server) as http:
        body = http.post("/v1/embeddings", json={"model": "m3e", "input": ["short", long_text]}).json()
    assert body["zhiku"] == {"windowed": [1]}
    vector = np.array(body["data"][1]["embedding"])
    assert abs(np.linalg.norm(vector) - 1) < 1e-5
    assert body["usage"]["prompt_tokens"] > bundled.max_tokens
    plain = httpx.post(f"{embed_server.base_url}/v1/embeddings", json={"input": "short"},
                       headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert "zhiku" not in plain


def test_long_input_is_rejected_when_configured(reject_server: RunningServer, embedders: EmbedderRegistry) -> None:
    long_text = "knowledge base retrieval " * 300
    tokens = model_tokens(embedders.get(), long_text, "passage")
    with _http(reject_server) as http:
        error = _error(http.post("/v1/embeddings", json={"model": "m3e", "input": ["ok", long_text]}),
                       400, "input_too_long")
    assert "input[1]" in error["message"] and str(tokens) in error["message"]
    assert error["detail"] == {"index": 1, "tokens": tokens, "limit": 512}


@pytest.mark.parametrize(("body", "code", "says"), [
    ({"model": "m3e", "input": []}, "empty_input", "empty list"),
    ({"model": "m3e", "input": ""}, "empty_input", "input[0]"),
    ({"model": "m3e", "input": ["fine", ""]}, "empty_input", "input[1]"),
    ({"model": "m3e", "input": ["fine", 3]}, "invalid_input", "input[1]"),
    ({"model": "m3e", "input": ["fine", None]}, "invalid_input", "input[1]"),
    ({"model": "m3e", "input": 42}, "invalid_input", "int"),
    ({"model": "m3e", "input": {"text": "x"}}, "invalid_input", "dict"),
    ({"model": "m3e"}, "invalid_request", "'input' is required"),
    ({"model": "m3e", "input": [[1, 2], "x"]}, "invalid_input", "input[1]"),
    ({"model": "m3e", "input": [[1, "2"]]}, "invalid_input", "input[0]"),
    ({"model": "m3e", "input": [[1, 10**9]]}, "invalid_token_ids", "input[0]"),
    ({"model": "m3e", "input": "x", "encoding_format": "hex"}, "invalid_parameter", "encoding_format"),
    ({"model": "m3e", "input": "x", "input_type": "banana"}, "invalid_parameter", "input_type"),
    ({"model": 5, "input": "x"}, "invalid_parameter", "model"),
    ({"model": "m3e", "input": "x", "dimensions": 128}, "dimensions_not_supported", "384"),
    ({"model": "m3e", "input": "x", "dimensions": "many"}, "invalid_parameter", "dimensions"),
    ({"model": "m3e", "input": ["x"] * 10_000}, "too_many_inputs", "2048"),
])
def test_bad_input_is_a_clear_400(embed_server: RunningServer, body: dict[str, Any], code: str, says: str) -> None:
    with _http(embed_server) as http:
        error = _error(http.post("/v1/embeddings", json=body), 400, code)
    assert says in error["message"]


@pytest.mark.parametrize(("raw", "code"), [
    (b'{"model": "m3e", "input": "caf\xe9"}', "invalid_encoding"),
    (b'{"model": "m3e", "input": ', "invalid_json"),
    (b'["m3e", "x"]', "invalid_request"),
    (b"", "invalid_json"),
])
def test_bad_body_is_a_clear_400(embed_server: RunningServer, raw: bytes, code: str) -> None:
    with _http(embed_server) as http:
        _error(http.post("/v1/embeddings", content=raw, headers={"Content-Type": "application/json"}), 400, code)


def test_unknown_model_is_404(embed_server: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _client(embed_server).embeddings.create(model="no-such-model", input="x")
    assert "no-such-model" in str(caught.value)


def test_dimensions_equal_to_the_model_size_is_accepted(embed_server: RunningServer) -> None:
    answer = _client(embed_server).embeddings.create(model="m3e", input="x", dimensions=384)
    assert len(answer.data[0].embedding) == 384


def test_a_configured_hf_model_is_served(embed_server: RunningServer, embedders: EmbedderRegistry) -> None:
    with _http(embed_server) as http:
        body = http.post("/v1/embeddings", json={"model": "tiny-mean", "input": ["the cat sat", "dog"]}).json()
    assert body["model"] == "tiny-mean" and len(body["data"][0]["embedding"]) == 16
    assert body["usage"]["prompt_tokens"] == 5 + 3  # [CLS] the cat sat [SEP], [CLS] dog [SEP]


def test_the_cli_command_exists() -> None:
    from typer.testing import CliRunner

    from zhiku.cli.main import app

    result = CliRunner().invoke(app, ["embed-server", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--host" in result.output


def test_production_refuses_the_seed_key() -> None:
    from zhiku.config import Settings
    from zhiku.errors import StartupError
    from zhiku.web.embed_server import check_embed_settings

    with pytest.raises(StartupError, match="ZHIKU_EMBED_API_KEY"):
        check_embed_settings(Settings(profile="prod", embed_api_key=API_KEY, root_password=None, secret_key=""))
    check_embed_settings(Settings(profile="prod", embed_api_key="sk-a-real-secret-key", root_password=None,
                                  secret_key=""))
    check_embed_settings(Settings(profile="dev", embed_api_key=API_KEY))
