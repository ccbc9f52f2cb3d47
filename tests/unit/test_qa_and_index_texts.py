"""Pure parts of training mode qa, index texts and the collection filter."""

from __future__ import annotations

from zhiku.errors import RateLimited, UpstreamError
from zhiku.knowledge.qa import MAX_PAIRS, QA_SYSTEM_PROMPT, QAPair, parse_pairs, qa_messages
from zhiku.retrieval.chunk_filter import NO_FILTER, ChunkFilter, filter_sql
from zhiku.retrieval.index_text import fulltext_text, vector_texts
from zhiku.worker.runner import retry_after


def test_pairs_parse_with_numbered_bare_bold_and_full_width_markers() -> None:
    reply = ("Sure, here they are:\nQ1: What is X?\nA1: X is a thing.\nIt spans lines.\n\n"
             "**Q2**: Why?\n**A2**: Because.\nQ：为什么？\nA：因为。\nQ4: a question without an answer")
    assert parse_pairs(reply) == [QAPair("What is X?", "X is a thing.\nIt spans lines."), QAPair("Why?", "Because."),
                                  QAPair("为什么？", "因为。")]


def test_replies_without_pairs_parse_to_nothing_and_long_ones_are_capped() -> None:
    assert parse_pairs("I cannot help with that.") == []
    assert parse_pairs("A1: an answer with no question") == []
    assert parse_pairs("Q1: \nA1: an answer to an empty question") == []
    many = "\n".join(f"Q{i}: q{i}?\nA{i}: a{i}." for i in range(MAX_PAIRS + 20))
    assert len(parse_pairs(many)) == MAX_PAIRS
    assert parse_pairs("Q1: nul\x00?\nA1: ok")[0].q == "nul?"


def test_the_prompt_puts_the_text_in_context_tags_and_a_custom_prompt_keeps_the_format() -> None:
    system, user = qa_messages("Tea is grown on hills.")
    assert system.content == QA_SYSTEM_PROMPT and user.content == "<Context>\nTea is grown on hills.\n</Context>"
    custom = qa_messages("text", "Ask only about prices.")[0].content
    assert custom.startswith("Ask only about prices.") and "Q1: the first question" in custom


def test_vector_texts_are_the_chunk_text_then_each_distinct_index_text() -> None:
    indexes = [{"type": "question", "text": "How long?"}, {"text": "How long?"}, {"type": "summary", "text": " "},
               {"type": "custom", "text": "q\na"}]
    assert vector_texts("q", "a", indexes) == [("default", "q\na"), ("question", "How long?")]
    assert vector_texts("q", " ") == [("default", "q")]
    assert fulltext_text("q", "a", indexes) == "q\na\nHow long?"


def test_the_filter_becomes_conditions_only_when_there_is_one() -> None:
    assert filter_sql(NO_FILTER, "chunk_id") == ("", {})
    sql, params = filter_sql(ChunkFilter(collection_ids=(1, 2), exclude_collection_ids=(3,)), "ct.chunk_id")
    assert "ct.chunk_id IN" in sql and "ct.chunk_id NOT IN" in sql
    assert params == {"filter_collections": [1, 2], "filter_excluded": [3]}
    assert ChunkFilter(collection_ids=()).matches_nothing and not NO_FILTER.matches_nothing


def test_retry_after_is_read_from_the_error_and_capped() -> None:
    assert retry_after(UpstreamError("busy", status=429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after(RateLimited("cooling", headers={"retry-after": "99999"})) == 600.0
    assert retry_after(UpstreamError("no header", status=503)) is None
    assert retry_after(UpstreamError("a date", status=429, headers={"Retry-After": "Wed, 21 Oct 2015"})) is None
