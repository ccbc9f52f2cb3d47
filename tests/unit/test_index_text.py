from zhiku.knowledge.index_text import chunk_text, windows


def words(text: str) -> int:
    return len(text.split())


def test_short_text_is_one_window() -> None:
    assert windows("one two three", words, 5) == ["one two three"]


def test_long_text_splits_at_sentences_and_keeps_everything() -> None:
    text = " ".join(f"Sentence number {i} has six words." for i in range(20))
    out = windows(text, words, 14)
    assert len(out) > 1
    assert all(words(w) <= 14 for w in out)
    assert "".join(out).split() == text.split()
    assert all(w.rstrip().endswith(".") for w in out)


def test_unbroken_run_is_hard_cut_within_the_limit() -> None:
    text = "字" * 1000
    out = windows(text, len, 300)
    assert all(len(w) <= 300 for w in out) and "".join(out) == text


def test_chinese_sentences() -> None:
    text = "龙井茶产于杭州。" * 50
    out = windows(text, len, 100)
    assert all(len(w) <= 100 for w in out) and "".join(out) == text
    assert all(w.endswith("。") for w in out)


def test_chunk_text_joins_q_and_a() -> None:
    assert chunk_text("q", "") == "q"
    assert chunk_text("q", "a") == "q\na"
