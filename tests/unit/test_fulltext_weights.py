import math

import pytest

from zhiku.retrieval.fulltext import K1, B, idf, term_weights


def test_weight_grows_with_tf_and_saturates() -> None:
    w = term_weights(["tea"] * 1 + ["x", "y", "z"], avgdl=4)
    w3 = term_weights(["tea"] * 3 + ["x", "y"], avgdl=3)
    w30 = term_weights(["tea"] * 30 + ["x", "y"], avgdl=3)
    assert w["tea"] < w3["tea"] < w30["tea"] < K1 + 1


def test_longer_documents_weigh_less() -> None:
    short = term_weights(["tea", "a"], avgdl=10)["tea"]
    long = term_weights(["tea"] + [f"w{i}" for i in range(40)], avgdl=10)["tea"]
    assert long < short
    # at average length the factor is tf(k1+1)/(tf+k1)
    at_avg = term_weights(["tea"] + [f"w{i}" for i in range(9)], avgdl=10)["tea"]
    assert at_avg == pytest.approx(1 * (K1 + 1) / (1 + K1 * (1 - B + B)))


def test_idf_rare_terms_weigh_more_and_stays_positive() -> None:
    assert idf(1000, 1) > idf(1000, 100) > idf(1000, 900) > 0
    assert idf(10, 10) == pytest.approx(math.log(1 + 0.5 / 10.5))


def test_empty_chunk_has_no_terms() -> None:
    assert term_weights([], avgdl=5) == {}
