import logging
import re
import threading

import pytest

from zhiku.retrieval import segment
from zhiku.retrieval.segment import index_document, index_terms, query_terms, stop_words


def test_chinese_sentence_is_cut_into_words_and_sub_words():
    terms = index_terms("我爱北京天安门")
    assert "北京" in terms
    assert "天安门" in terms
    assert "天安" in terms  # search mode also indexes the dictionary sub-word
    assert "北京天安门" not in terms
    assert "我" not in terms  # stop word


def test_long_words_keep_their_sub_words():
    terms = index_terms("中华人民共和国国歌")
    assert {"中华人民共和国", "人民", "共和国", "国歌"} <= set(terms)


def test_chinese_stop_words_are_dropped():
    terms = index_terms("这是我们的产品说明书")
    assert "产品" in terms
    assert "说明书" in terms
    assert not {"的", "我们", "这是", "是"} & set(terms)


def test_english_stop_words_and_case():
    assert index_terms("The Quick brown FOX is here") == ["quick", "brown", "fox"]


def test_meaningful_short_words_are_not_stop_words():
    assert index_terms("docker compose up; file not found") == ["docker", "compose", "up", "file", "not", "found"]


def test_stop_word_list_is_bundled_zh_and_en():
    words = stop_words()
    assert {"the", "and", "的", "了", "我们"} <= words
    assert not any(w.startswith("#") or w != w.strip() or not w for w in words)


def test_markdown_is_reduced_to_its_text():
    markdown = (
        "# Install *guide*\n\n"
        "> **Note**: run `pip install zhiku` first.\n\n"
        "| option | meaning |\n| --- | :---: |\n| port | listen port |\n\n"
        "See [the docs](https://docs.example.com/install?v=2#top) or "
        "![setup diagram](images/setup.png).<br/>\n"
        "```python\nprint(1)\n```"
    )
    assert index_terms(markdown) == [
        "install", "guide", "note", "run", "pip", "install", "zhiku", "first",
        "option", "meaning", "port", "listen", "port",
        "see", "docs", "setup", "diagram",
        "python", "print", "1",
    ]  # fmt: skip


def test_urls_are_removed_even_when_glued_to_chinese():
    terms = index_terms("详见https://example.com/a/b?q=1。以及 www.example.org/x 说明")
    assert terms == ["详见", "说明"]
    assert not {"https", "example", "com", "www", "org"} & set(terms)


def test_chinese_markdown_link_keeps_link_text():
    terms = index_terms("请阅读[安装文档](https://example.com/install)")
    assert {"安装", "文档"} <= set(terms)
    assert "example" not in terms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GPT-4o", ["gpt4o", "gpt", "4o"]),
        ("e5-small", ["e5small", "e5", "small"]),
        ("C++", ["cpp", "c"]),
        ("C#", ["csharp", "c"]),
        ("Node.js", ["nodejs", "node", "js"]),
        ("snake_case", ["snakecase", "snake", "case"]),
        ("O'Reilly", ["oreilly", "o", "reilly"]),
        ("O\u2019Reilly", ["oreilly", "o", "reilly"]),
        ("don't", []),  # "dont", "don" and "t" are all stop words
        ("Python 3.11", ["python", "311", "3", "11"]),
        ("end. Next", ["end", "next"]),
        ("ＧＰＴ－４ｏ", ["gpt4o", "gpt", "4o"]),  # full-width forms fold to ASCII
        ("微信app", ["微信", "app"]),
        ("2024年", ["2024", "年"]),
    ],
)
def test_joined_and_special_words(text, expected):
    assert index_terms(text) == expected


def test_spellings_of_a_joined_word_share_terms():
    indexed = set(index_terms("We evaluated GPT-4o today"))
    for query in ("gpt-4o", "GPT4o", "gpt 4o"):
        assert set(query_terms(query)) <= indexed


def test_c_cpp_and_csharp_stay_distinct():
    assert "cpp" not in index_terms("C# and C")
    assert "csharp" not in index_terms("C++ and C")


def test_every_term_is_one_postgres_word():
    """Only letters and digits: PostgreSQL's parser can neither split nor drop them."""
    text = "C++/C# 与 GPT-4o、e5-small: don't “引号” <b>粗体</b> a_b-c.d'e 100% $5 @user #tag ~/.cache"
    terms = index_terms(text)
    assert terms
    assert all(re.fullmatch(r"[^\W_]+", term) for term in terms), terms


def test_overlong_terms_are_dropped():
    blob = "x" * (segment.MAX_TERM_CHARS + 1)
    assert index_terms(f"keep {blob} words") == ["keep", "words"]
    assert index_terms("y" * segment.MAX_TERM_CHARS) == ["y" * segment.MAX_TERM_CHARS]


def test_index_document_joins_terms_with_spaces():
    text = "我爱北京天安门, and GPT-4o!"
    assert index_document(text) == " ".join(index_terms(text))
    assert index_document(text).split(" ") == index_terms(text)
    assert index_document("") == ""
    assert index_document("的 the ！？") == ""


def test_query_terms_are_deduplicated_in_order():
    assert query_terms("docker 部署 Docker 部署 compose docker") == ["docker", "部署", "compose"]


def test_query_and_document_processing_agree():
    document = "知识库支持混合检索：向量检索与全文检索。"
    assert set(query_terms(document)) == set(index_terms(document))


def test_hostile_query_yields_only_words():
    assert query_terms("a & !b | c:* '") == ["b", "c"]
    assert query_terms("'') | (!x <-> y:*A") == ["x", "y"]


def test_query_terms_of_mixed_query():
    assert query_terms("How to deploy 知识库 with C++?") == ["deploy", "知识", "知识库", "cpp", "c"]


def test_jieba_loads_once_quietly_and_thread_safely(monkeypatch, capfd):
    monkeypatch.setattr(segment, "_jieba_tokenizer", None)  # force a fresh dictionary load
    jieba_logger = logging.getLogger("jieba")
    level_before = jieba_logger.level
    results = []

    def load():
        results.append(segment._jieba())

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    assert all(tokenizer is results[0] for tokenizer in results)
    assert results[0].initialized
    captured = capfd.readouterr()
    assert "prefix dict" not in captured.err
    assert "Loading model" not in captured.err
    assert jieba_logger.level == level_before
