import pytest

from zhiku.retrieval.fusion import (
    Candidate,
    ScoreItem,
    apply_token_budget,
    dedup,
    filter_similarity,
    rrf_fuse,
    rrf_k,
    score_of,
)


def chunk(chunk_id: int, q: str = "", a: str = "", scores: tuple[ScoreItem, ...] = ()) -> Candidate:
    return Candidate(
        chunk_id=chunk_id,
        q=q or f"question {chunk_id}",
        a=a,
        dataset_id=1,
        collection_id=10,
        chunk_index=chunk_id,
        source_name="manual.md",
        scores=scores,
    )


def ranked(score_type, *chunk_ids: int, values=None) -> list[Candidate]:
    """A search result list: chunks in rank order, each with its score item."""
    values = values or [1.0 - 0.1 * i for i in range(len(chunk_ids))]
    return [
        chunk(chunk_id, scores=(ScoreItem(score_type, value, index),))
        for index, (chunk_id, value) in enumerate(zip(chunk_ids, values, strict=True))
    ]


def ids(candidates) -> list[int]:
    return [c.chunk_id for c in candidates]


# rrf_k


@pytest.mark.parametrize(
    ("weight", "expected"),
    [(0, (120, 0)), (0.3, (84, 36)), (0.5, (60, 60)), (1, (0, 120))],
)
def test_rrf_k_formula(weight, expected):
    assert rrf_k(weight) == expected


def test_rrf_k_clamps_weight():
    assert rrf_k(-0.5) == (120, 0)
    assert rrf_k(1.7) == (0, 120)


def test_rrf_k_rounds_halves_up():
    # 120 × 0.1875 = 22.5 and 120 × 0.8125 = 97.5 exactly; Python's round() would give 22.
    assert rrf_k(0.1875) == (98, 23)


def test_rrf_k_refuses_nan():
    with pytest.raises(ValueError):
        rrf_k(float("nan"))


# rrf_fuse


def test_fused_order_hand_computed():
    vector_k, full_text_k = rrf_k(0.3)  # (84, 36)
    vector = ranked("embedding", 1, 2, 3)
    full_text = ranked("fullText", 3, 4)
    # 1: 1/85 ≈ 0.01176   2: 1/86 ≈ 0.01163   3: 1/87 + 1/37 ≈ 0.03852   4: 1/38 ≈ 0.02632
    fused = rrf_fuse([(vector, vector_k), (full_text, full_text_k)])
    assert ids(fused) == [3, 4, 1, 2]
    assert [score_of(c, "rrf") for c in fused] == pytest.approx([1 / 87 + 1 / 37, 1 / 38, 1 / 85, 1 / 86])


def test_k_zero_uses_one_based_ranks():
    fused = rrf_fuse([(ranked("embedding", 1, 2), 0)])
    assert [score_of(c, "rrf") for c in fused] == [1.0, 0.5]


def test_score_breakdown_is_kept():
    vector = ranked("embedding", 1, 2, values=[0.9, 0.8])
    full_text = ranked("fullText", 2, 5, values=[3.5, 1.25])
    fused = rrf_fuse([(vector, 60), (full_text, 60)])
    assert ids(fused) == [2, 1, 5]
    assert fused[0].scores == (
        ScoreItem("embedding", 0.8, 1),
        ScoreItem("fullText", 3.5, 0),
        ScoreItem("rrf", pytest.approx(1 / 62 + 1 / 61), 0),
    )
    assert fused[1].scores == (ScoreItem("embedding", 0.9, 0), ScoreItem("rrf", pytest.approx(1 / 61), 1))
    assert fused[2].scores == (ScoreItem("fullText", 1.25, 1), ScoreItem("rrf", pytest.approx(1 / 62), 2))
    assert fused[0].q == "question 2"
    assert fused[0].source_name == "manual.md"


def test_fusing_again_replaces_rrf_and_adds_rerank():
    first = rrf_fuse([(ranked("embedding", 1, 2), 60), (ranked("fullText", 2), 60)])
    assert ids(first) == [2, 1]
    reranked = ranked("reRank", 2, 1, values=[0.95, 0.4])
    final = rrf_fuse([(first, 60), (reranked, 60)])
    two = next(c for c in final if c.chunk_id == 2)
    assert [item.type for item in two.scores] == ["embedding", "fullText", "reRank", "rrf"]
    assert score_of(two, "reRank") == 0.95
    # Rank 1 in both fused lists; the first fusion's rrf (1/61 + 1/62) is gone.
    assert two.scores[-1] == ScoreItem("rrf", pytest.approx(2 / 61), 0)
    one = next(c for c in final if c.chunk_id == 1)
    assert one.scores == (
        ScoreItem("embedding", 1.0, 0),
        ScoreItem("reRank", 0.4, 1),
        ScoreItem("rrf", pytest.approx(2 / 62), 1),
    )


def test_same_type_from_two_lists_keeps_the_higher_value():
    # Two extended queries both found chunk 1 by vector search.
    first_query = ranked("embedding", 1, 2, values=[0.7, 0.6])
    second_query = ranked("embedding", 3, 1, values=[0.9, 0.8])
    fused = rrf_fuse([(first_query, 60), (second_query, 60)])
    one = next(c for c in fused if c.chunk_id == 1)
    assert [item for item in one.scores if item.type == "embedding"] == [ScoreItem("embedding", 0.8, 1)]


def test_ties_break_by_best_rank_then_first_seen():
    # Chunk 3 (rank 2, k 60) and chunk 9 (rank 1, k 61) both score exactly 1/62;
    # 9 ranked better in its list, so it goes first although 3 was seen first.
    fused = rrf_fuse([(ranked("embedding", 1, 3), 60), (ranked("fullText", 9), 61)])
    assert ids(fused) == [1, 9, 3]
    # Equal scores and equal best ranks: first appearance decides.
    fused = rrf_fuse([(ranked("embedding", 1, 2), 60), (ranked("fullText", 3, 4), 60)])
    assert ids(fused) == [1, 3, 2, 4]


def test_a_chunk_repeated_in_one_list_counts_once():
    fused = rrf_fuse([(ranked("embedding", 1, 2, 1), 60)])
    assert ids(fused) == [1, 2]
    assert score_of(fused[0], "rrf") == pytest.approx(1 / 61)


def test_fuse_edge_cases():
    assert rrf_fuse([]) == []
    assert rrf_fuse([([], 60)]) == []
    with pytest.raises(ValueError):
        rrf_fuse([(ranked("embedding", 1), -1)])


# dedup


def test_dedup_ignores_punctuation_and_case():
    candidates = [
        chunk(1, q="How do I reset my password?", a="Use the **Reset** link."),
        chunk(2, q="how do i reset my password", a="use the reset link"),
        chunk(3, q="How do I change my password?", a="Use the settings page."),
    ]
    assert ids(dedup(candidates)) == [1, 3]


def test_dedup_chinese():
    candidates = [
        chunk(1, q="你好，世界！", a="欢迎使用知识库。"),
        chunk(2, q="你好 世界", a="欢迎使用：知识库"),
        chunk(3, q="你好，中国！", a="欢迎使用知识库。"),
    ]
    assert ids(dedup(candidates)) == [1, 3]


def test_dedup_keeps_the_first_and_compares_q_plus_a():
    candidates = [chunk(7, q="same", a="answer"), chunk(4, q="same", a="other answer"), chunk(2, q="same", a="answer")]
    kept = dedup(candidates)
    assert ids(kept) == [7, 4]
    assert kept[0] is candidates[0]


def test_dedup_does_not_merge_chunks_without_letters():
    assert ids(dedup([chunk(1, q="---"), chunk(2, q="***"), chunk(1, q="---")])) == [1, 2]


# filter_similarity


def test_filter_similarity_threshold_is_inclusive():
    candidates = [
        chunk(1, scores=(ScoreItem("reRank", 0.9, 0),)),
        chunk(2, scores=(ScoreItem("reRank", 0.4, 1),)),
        chunk(3, scores=(ScoreItem("reRank", 0.39, 2),)),
    ]
    assert ids(filter_similarity(candidates, 0.4, "reRank")) == [1, 2]


def test_filter_similarity_drops_candidates_without_that_score():
    candidates = [
        chunk(1, scores=(ScoreItem("embedding", 0.8, 0), ScoreItem("fullText", 2.0, 0))),
        chunk(2, scores=(ScoreItem("fullText", 9.0, 1),)),
    ]
    assert ids(filter_similarity(candidates, 0.5, "embedding")) == [1]
    assert filter_similarity(candidates, 0.5, "reRank") == []


# apply_token_budget (count = characters, to keep the arithmetic visible)


def test_budget_adds_while_total_fits():
    candidates = [chunk(1, q="aaaa", a="bb"), chunk(2, q="cccc"), chunk(3, q="dd")]
    # 6, then 10, then 12 tokens.
    assert ids(apply_token_budget(candidates, 12, len)) == [1, 2, 3]
    assert ids(apply_token_budget(candidates, 11, len)) == [1, 2]


def test_budget_keeps_one_even_if_it_is_over():
    candidates = [chunk(1, q="x" * 50), chunk(2, q="y")]
    assert ids(apply_token_budget(candidates, 10, len)) == [1]
    assert ids(apply_token_budget(candidates, 0, len)) == [1]


def test_budget_stops_at_the_first_over():
    candidates = [chunk(1, q="aaaa"), chunk(2, q="b" * 10), chunk(3, q="c")]
    # Chunk 3 would fit on its own, but ranks below the chunk that overflowed.
    assert ids(apply_token_budget(candidates, 8, len)) == [1]


def test_budget_of_nothing():
    assert apply_token_budget([], 100, len) == []


def test_score_of():
    candidate = chunk(1, scores=(ScoreItem("embedding", 0.75, 3), ScoreItem("rrf", 0.02, 0)))
    assert score_of(candidate, "embedding") == 0.75
    assert score_of(candidate, "rrf") == 0.02
    assert score_of(candidate, "fullText") is None
