from zhiku.retrieval.index_text import chunk_text


def test_chunk_text_joins_q_and_a() -> None:
    assert chunk_text("q", "") == "q"
    assert chunk_text("q", "a") == "q\na"
    assert chunk_text("q", "  ") == "q"
