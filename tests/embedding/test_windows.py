"""Windowing a text over the model's limit, measured with any token counter."""

from __future__ import annotations

import pytest

from zhiku.embedding.windows import split_windows


def words(text: str) -> int:
    return len(text.split()) + 2  # like a model: specials included


def test_windows_fit_cover_the_text_and_end_at_word_breaks() -> None:
    text = " ".join(f"w{i}" for i in range(1000))
    windows = split_windows(text, words, limit=50)
    assert "".join(windows) == text
    assert all(words(w) <= 50 for w in windows)
    assert all(w.endswith(" ") for w in windows[:-1])
    assert len(windows) == -(-1000 // 48)


def test_a_text_that_fits_is_one_window() -> None:
    assert split_windows("a b c", words, limit=50) == ["a b c"]


def test_chinese_without_spaces_is_cut_by_characters() -> None:
    text = "知识库" * 200
    windows = split_windows(text, lambda t: len(t) + 2, limit=100)
    assert "".join(windows) == text and all(len(w) <= 98 for w in windows)


def test_a_limit_too_small_for_one_character_is_an_error() -> None:
    with pytest.raises(ValueError, match="over the limit"):
        split_windows("abc", lambda t: len(t) + 2, limit=2)
