"""The text splitter: sizes, boundaries, overlap, markdown structure, and that nothing is lost."""

from __future__ import annotations

import random

import pytest

from zhiku.errors import InvalidInput
from zhiku.knowledge.chunker import ChunkPiece, split_text


def nonws(text: str) -> str:
    return "".join(text.split())


def size(text: str) -> int:
    return len(nonws(text))


def assert_well_formed(chunks: list[ChunkPiece]) -> None:
    for chunk in chunks:
        assert chunk.text.strip(), "empty or whitespace-only chunk"
        assert "\r" not in chunk.text


def assert_covers(source: str, chunks: list[ChunkPiece]) -> None:
    """Every non-whitespace character of ``source`` appears in the chunks, in order.

    Overlap and repeated headers only add characters, so the source must be a subsequence
    of the concatenated chunks.
    """
    assert_well_formed(chunks)
    wanted = nonws(source)
    got = nonws("".join(chunk.text for chunk in chunks))
    position = 0
    for char in got:
        if position < len(wanted) and char == wanted[position]:
            position += 1
    assert position == len(wanted), f"lost text from {wanted[position:position + 40]!r} on"


def assert_exact_cover(source: str, chunks: list[ChunkPiece]) -> None:
    """Without overlap or headings, the chunks are exactly the source, cut into pieces."""
    assert_well_formed(chunks)
    assert nonws("".join(chunk.text for chunk in chunks)) == nonws(source)


def overlap_between(previous: str, following: str) -> str:
    """The longest start of ``following`` that ``previous`` ends with."""
    for n in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:n]):
            return following[:n]
    return ""


def english_prose(sentences: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    words = ["index", "vector", "query", "model", "answer", "dataset", "search", "token", "chunk"]
    return " ".join(
        f"Sentence {i} says {' '.join(rng.choice(words) for _ in range(rng.randint(2, 5)))}."
        for i in range(sentences)
    )


def prose_of_size(target: int, seed: int) -> str:
    """Whole sentences of English adding up to about ``target`` non-whitespace characters."""
    sentences = english_prose(400, seed=seed).split(". ")
    taken: list[str] = []
    while size(". ".join(taken)) < target:
        taken.append(sentences[len(taken)])
    return ". ".join(taken).rstrip(".") + "."


def chinese_prose(sentences: int, end: str = "。") -> str:
    return "".join(f"第{i}句话介绍知识库的检索功能和向量索引{end}" for i in range(sentences))


# --- basics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\n \t\r\n"])
def test_empty_or_whitespace_input_gives_no_chunks(text: str) -> None:
    assert split_text(text) == []


def test_short_text_stays_one_chunk() -> None:
    text = "A short note. It has two sentences."
    assert split_text(text) == [ChunkPiece(text=text)]


def test_markdown_under_the_size_stays_one_chunk_with_its_structure() -> None:
    text = "# Title\n\nIntro.\n\n## Part\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```"
    chunks = split_text(text)
    assert len(chunks) == 1
    assert chunks[0].text == text
    assert chunks[0].headings == ("# Title",)


def test_crlf_is_normalised() -> None:
    chunks = split_text("line one\r\nline two\r\n\r\nline three", chunk_size=1000)
    assert chunks == [ChunkPiece(text="line one\nline two\n\nline three")]


@pytest.mark.parametrize("kwargs", [{"chunk_size": 0}, {"overlap_ratio": -0.1}, {"overlap_ratio": 1.0}])
def test_invalid_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        split_text("text", **kwargs)  # type: ignore[arg-type]


# --- sizes and boundaries --------------------------------------------------------------------


def test_long_english_prose_splits_at_sentence_ends_within_bounds() -> None:
    text = english_prose(300)
    chunks = split_text(text, chunk_size=400)
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert 0.8 * 400 <= size(chunk.text) <= 1.2 * 400
        assert chunk.text.endswith(".")
    assert 0.4 * 400 <= size(chunks[-1].text) <= 1.6 * 400
    assert_covers(text, chunks)


def test_chinese_splits_on_full_stops() -> None:
    text = chinese_prose(200)
    chunks = split_text(text, chunk_size=300)
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert chunk.text.endswith("。")
        assert 0.8 * 300 <= size(chunk.text) <= 1.2 * 300
    assert_covers(text, chunks)


def test_chinese_without_full_stops_splits_on_semicolons() -> None:
    text = chinese_prose(200, end="；")
    chunks = split_text(text, chunk_size=300, overlap_ratio=0)
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert chunk.text.endswith("；")
    assert_exact_cover(text, chunks)


def test_paragraph_boundaries_are_preferred_over_sentences() -> None:
    paragraphs = [english_prose(12, seed=i) for i in range(8)]
    para_size = size(paragraphs[0])
    text = "\n\n".join(paragraphs)
    # Each chunk can hold about one paragraph, so every cut should fall between paragraphs.
    chunks = split_text(text, chunk_size=int(para_size * 1.1))
    assert [chunk.text for chunk in chunks] == paragraphs


def test_tiny_trailing_piece_joins_the_previous_chunk() -> None:
    big, tiny = prose_of_size(475, seed=1), prose_of_size(90, seed=2)
    # big fills 95% of a chunk, so the chunk ends before tiny (20%): tiny is then merged back.
    chunks = split_text(big + "\n\n" + tiny, chunk_size=500)
    assert [chunk.text for chunk in chunks] == [big + "\n\n" + tiny]


def test_trailing_piece_of_fair_size_stays_its_own_chunk() -> None:
    big = english_prose(10, seed=1)
    chunk_size = int(size(big) / 0.9)
    tail = english_prose(5, seed=2)
    assert size(tail) >= 0.4 * chunk_size
    chunks = split_text(big + "\n\n" + tail, chunk_size=chunk_size)
    assert [chunk.text for chunk in chunks] == [big, tail]


def test_chunk_below_acceptance_keeps_filling_up_to_the_hard_limit() -> None:
    paragraphs = [prose_of_size(255, seed=i) for i in range(6)]
    assert all(250 <= size(p) < 300 for p in paragraphs)
    # Each paragraph alone (<60%) is under the 80% acceptance, two (<120%) are within the hard limit.
    chunks = split_text("\n\n".join(paragraphs), chunk_size=500)
    assert [chunk.text for chunk in chunks] == [
        "\n\n".join(paragraphs[i : i + 2]) for i in range(0, 6, 2)
    ]


def test_run_without_any_separator_is_hard_cut() -> None:
    text = "".join(random.Random(3).choice("abcdefghij") for _ in range(5000))
    chunks = split_text(text)
    assert [size(chunk.text) for chunk in chunks] == [1000] * 5
    assert "".join(chunk.text for chunk in chunks) == text


def test_ascii_punctuation_inside_numbers_is_not_a_boundary() -> None:
    text = "Revenue was 1,234,567 and pi is 3.14159 " * 60
    chunks = split_text(text, chunk_size=200, overlap_ratio=0)
    for chunk in chunks:
        assert "1,234,567" in chunk.text or "3.14159" in chunk.text
        assert not chunk.text.startswith((",", ".", "234", "14159"))
    assert_exact_cover(text, chunks)


# --- overlap ---------------------------------------------------------------------------------


def test_overlap_repeats_whole_sentences_within_the_ratio() -> None:
    text = english_prose(300)
    chunks = split_text(text, chunk_size=400)
    overlaps = [overlap_between(a.text, b.text) for a, b in zip(chunks, chunks[1:])]
    assert all(overlaps), "every cut here falls on a sentence end, so each should overlap"
    for overlap in overlaps:
        assert 0 < size(overlap) <= 0.2 * 400
        assert overlap.startswith("Sentence ") and overlap.rstrip().endswith(".")


def test_overlap_is_capped_at_forty_percent() -> None:
    text = english_prose(300)
    chunks = split_text(text, chunk_size=400, overlap_ratio=0.9)
    overlaps = [size(overlap_between(a.text, b.text)) for a, b in zip(chunks, chunks[1:])]
    assert max(overlaps) <= 0.4 * 400
    assert max(overlaps) > 0.2 * 400  # the ratio did raise the overlap, up to the cap
    assert_covers(text, chunks)


def test_qa_mode_has_no_overlap() -> None:
    text = english_prose(300)
    chunks = split_text(text, chunk_size=400, overlap_ratio=0)
    assert all(overlap_between(a.text, b.text) == "" for a, b in zip(chunks, chunks[1:]))
    assert_exact_cover(text, chunks)


def test_no_overlap_where_the_cut_falls_between_paragraphs() -> None:
    paragraphs = [english_prose(12, seed=i) for i in range(6)]
    chunks = split_text("\n\n".join(paragraphs), chunk_size=int(size(paragraphs[0]) * 1.1))
    assert all(overlap_between(a.text, b.text) == "" for a, b in zip(chunks, chunks[1:]))


def test_overlap_follows_sentence_cuts_but_not_the_paragraph_cut_after_them() -> None:
    long_paragraph, next_paragraph = prose_of_size(850, seed=4), prose_of_size(450, seed=5)
    chunks = split_text(long_paragraph + "\n\n" + next_paragraph, chunk_size=500)
    assert len(chunks) == 3
    assert overlap_between(chunks[0].text, chunks[1].text)  # cut inside the long paragraph
    assert chunks[1].text.endswith(long_paragraph[-40:])
    assert chunks[2].text == next_paragraph  # cut between paragraphs: nothing repeated


def test_chinese_overlap_repeats_the_last_sentences() -> None:
    chunks = split_text(chinese_prose(200), chunk_size=300)
    for a, b in zip(chunks, chunks[1:]):
        overlap = overlap_between(a.text, b.text)
        assert overlap.startswith("第") and overlap.endswith("。")
        assert size(overlap) <= 0.2 * 300


# --- markdown structure ----------------------------------------------------------------------


MANUAL = (
    "# Manual\n\nWelcome to the manual.\n\n"
    "## Install\n\n" + "\n\n".join(english_prose(8, seed=i) for i in range(6)) + "\n\n"
    "### Linux\n\n" + english_prose(8, seed=20) + "\n\n"
    "## Usage\n\n" + english_prose(8, seed=30) + "\n"
)


def test_markdown_chunks_carry_their_heading_path() -> None:
    chunks = split_text(MANUAL, chunk_size=300)
    assert len(chunks) > 4
    install = [c for c in chunks if c.headings == ("# Manual", "## Install")]
    assert len(install) >= 3
    for chunk in install:
        assert chunk.text.startswith("# Manual\n## Install\n")
    linux = [c for c in chunks if "### Linux" in c.headings]
    assert linux and all(c.headings == ("# Manual", "## Install", "### Linux") for c in linux)
    usage = [c for c in chunks if c.headings == ("# Manual", "## Usage")]
    assert usage and usage[0].text.startswith("# Manual\n## Usage\n\nSentence 0")
    assert_covers(MANUAL, chunks)


def test_a_chunk_that_starts_at_its_heading_is_not_given_it_twice() -> None:
    chunks = split_text(MANUAL, chunk_size=300)
    starting_at_heading = [c for c in chunks if c.text.startswith("# Manual\n## Usage\n")]
    assert starting_at_heading
    for chunk in chunks:
        heading_lines = [line for line in chunk.text.split("\n") if line.startswith("#")]
        assert len(heading_lines) == len(set(heading_lines)), chunk.text[:80]


def test_headings_are_not_tracked_for_plain_text() -> None:
    chunks = split_text(MANUAL, chunk_size=300, markdown=False)
    assert all(chunk.headings == () for chunk in chunks)
    assert_covers(MANUAL, chunks)


def test_hash_lines_inside_code_fences_are_not_headings() -> None:
    code = "```bash\n# install the package\npip install zhiku\n```"
    text = "# Real\n\n" + english_prose(30) + "\n\n" + code + "\n\n" + english_prose(30, seed=2)
    chunks = split_text(text, chunk_size=300)
    assert all(chunk.headings in ((), ("# Real",)) for chunk in chunks)


def test_code_fence_is_kept_whole() -> None:
    code_lines = [f"    value_{i} = compute({i}, 'x')  # step {i}. Then, go on;" for i in range(12)]
    code = "```python\n" + "\n".join(code_lines[:6]) + "\n\n\n" + "\n".join(code_lines[6:]) + "\n```"
    before = english_prose(25)
    after = english_prose(25, seed=3)
    chunk_size = int(size(code) * 1.1)
    chunks = split_text(before + "\n\n" + code + "\n\n" + after, chunk_size=chunk_size)
    holding = [chunk for chunk in chunks if "```python" in chunk.text]
    assert len(holding) == 1
    assert code in holding[0].text
    assert sum("value_" in chunk.text for chunk in chunks) == 1


def test_code_fence_over_the_hard_limit_is_split_by_lines() -> None:
    lines = [f"print('line number {i} of a long script')" for i in range(200)]
    code = "```python\n" + "\n".join(lines) + "\n```"
    chunks = split_text(code, chunk_size=300)
    assert len(chunks) > 5
    for chunk in chunks:
        for line in chunk.text.split("\n"):
            assert line in lines or line in ("```python", "```")
    assert_exact_cover(code, chunks)


def test_large_table_splits_by_rows_with_header_repeated() -> None:
    header = "| id | name | description |\n| --- | :---: | --- |"
    rows = [f"| {i} | item-{i} | a short description of item {i} |" for i in range(300)]
    text = "# Inventory\n\n" + header + "\n" + "\n".join(rows) + "\n\nEnd of inventory."
    chunks = split_text(text, chunk_size=500)
    table_chunks = [chunk for chunk in chunks if "| item-" in chunk.text]
    assert len(table_chunks) > 10
    seen: list[str] = []
    for chunk in table_chunks:
        assert chunk.headings == ("# Inventory",)
        body = chunk.text.split("\n")
        start = body.index("| id | name | description |")
        assert body[start + 1] == "| --- | :---: | --- |"
        table_lines = [line for line in body[start + 2 :] if line.startswith("|")]
        assert all(line in rows for line in table_lines), "a row was split"
        seen.extend(table_lines)
    assert seen == rows
    assert all(size(chunk.text) <= 1.2 * 500 + size("# Inventory") for chunk in chunks)
    assert_covers(text, chunks)


# --- custom separators -----------------------------------------------------------------------


def test_custom_separator_takes_priority() -> None:
    text = "## Q1\nFirst answer.\n===\n## Q2\nSecond answer.\n\nMore of it.\n===\nThird."
    chunks = split_text(text, separators=["==="])
    assert [chunk.text for chunk in chunks] == [
        "## Q1\nFirst answer.",
        "## Q2\nSecond answer.\n\nMore of it.",
        "Third.",
    ]
    assert chunks[0].headings == ("## Q1",)


def test_custom_separator_parts_are_still_split_when_too_long() -> None:
    text = english_prose(200) + "\n@@@\n" + "Short part."
    chunks = split_text(text, chunk_size=300, separators=["@@@"])
    assert len(chunks) > 3
    assert chunks[-1].text == "Short part."
    assert "@@@" not in "".join(chunk.text for chunk in chunks)
    assert_covers(text.replace("@@@", ""), chunks)


# --- nothing lost ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_mixed_documents_lose_nothing(seed: int) -> None:
    rng = random.Random(seed)
    blocks = []
    for i in range(40):
        kind = rng.choice(["prose", "chinese", "heading", "code", "table", "list"])
        if kind == "prose":
            blocks.append(english_prose(rng.randint(1, 15), seed=i))
        elif kind == "chinese":
            blocks.append(chinese_prose(rng.randint(1, 20), end=rng.choice("。；，")))
        elif kind == "heading":
            blocks.append("#" * rng.randint(1, 6) + f" Heading {i}")
        elif kind == "code":
            blocks.append("```\n" + "\n".join(f"x{j} = {j}" for j in range(rng.randint(1, 60))) + "\n```")
        elif kind == "table":
            blocks.append("| a | b |\n|---|---|\n" + "\n".join(f"| {j} | {j * j} |" for j in range(40)))
        else:
            blocks.append("\n".join(f"- item {j}, with a comma; and more" for j in range(10)))
    text = "\n\n".join(blocks)
    for chunk_size, overlap in [(200, 0.2), (500, 0.0), (1000, 0.3)]:
        chunks = split_text(text, chunk_size=chunk_size, overlap_ratio=overlap)
        assert_covers(text, chunks)
        plain = split_text(text, chunk_size=chunk_size, overlap_ratio=0, markdown=False)
        assert_exact_cover(text, plain)
