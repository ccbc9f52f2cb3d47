"""Text preparation for full-text search over Chinese and English.

A Chinese sentence has no spaces, so no word-based index can match it without
segmentation. We segment with jieba ourselves and store the terms joined by
spaces (``chunks.fulltext``); ``zhiku.retrieval.fulltext`` turns them into BM25
postings. Queries go through the same function, so both sides always agree.

Token shape
-----------
Every term we emit is made only of Unicode letters and digits (after NFKC and
case folding), so a term never contains a space and the stored text splits back
into exactly ``index_terms(t)``. Text that would otherwise be ambiguous is
normalised here, identically for documents and queries:

* Joined words (``gpt-4o``, ``e5-small``, ``node.js``, ``snake_case``,
  ``don't``) yield the joined form without separators plus each part:
  ``gpt4o gpt 4o``. A query for ``GPT-4o``, ``gpt4o`` or ``gpt 4o`` therefore
  finds the same chunks.
* ``++`` and ``#`` after a word are spelt out, so they are not lost:
  ``c++`` -> ``cpp c``, ``c#`` -> ``csharp c``. Otherwise C, C++ and C# would be
  the same lexeme.
* Dotted numbers lose their dots like any joined word (``3.11`` -> ``311 3 11``);
  a rare false match on ``311`` is the price of one simple rule.
* Han characters are never glued to Latin ones (``微信app`` -> ``微信 app``), so
  Chinese runs go to jieba and everything else to the rule above. jieba's few
  mixed dictionary words (``T恤``) are split, on both sides alike.
* Terms longer than 64 characters (base64 blobs, minified code) are dropped;
  PostgreSQL itself refuses words over 2,047 bytes.

Markdown is reduced to its text: link and image syntax keep only the link text,
URLs and HTML tags go, and the remaining markup (``#``, ``*``, `````, ``>``,
``|``, ``---``) is punctuation, which never forms a term.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded with the tokenizer on first use: importing this module stays cheap (CLI start-up)
    import jieba  # type: ignore[import-untyped]

MAX_TERM_CHARS = 64

# CJK Unified Ideographs, Extension A and the compatibility block. Rarer
# extensions fall through to the non-Han rule, each run staying one term.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NON_HAN_WORD = rf"[^\W_{_HAN}]+"  # letters and digits, Han excluded
_JOINERS = "-.'\u2019_"
_SUFFIX_SPELLING = {"++": "pp", "#": "sharp"}
_TOKEN = re.compile(
    rf"(?P<han>[{_HAN}]+)"
    rf"|(?P<word>{_NON_HAN_WORD}(?:[{re.escape(_JOINERS)}]{_NON_HAN_WORD})*)(?P<suffix>\+\+|#)?"
)
_PARTS = re.compile(_NON_HAN_WORD)

_MD_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)")
# Only ASCII URL characters, so a URL ends where Chinese text resumes; no \b
# before the scheme, because Chinese text may run straight into it.
_URL = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:https?|ftp)://|www\.)[A-Za-z0-9\-._~:/?#@!$&*+,;=%]+", re.IGNORECASE
)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]*>")

_jieba_tokenizer: jieba.Tokenizer | None = None
_jieba_lock = threading.Lock()


def _jieba() -> jieba.Tokenizer:
    """A private, initialised jieba tokenizer; the dictionary (~1 s) loads on first use."""
    global _jieba_tokenizer
    if _jieba_tokenizer is None:
        with _jieba_lock:
            if _jieba_tokenizer is None:
                import jieba  # type: ignore[import-untyped]

                tokenizer = jieba.Tokenizer()
                # jieba announces every dictionary load on stderr at DEBUG level
                # through its own handler; hush it for this load only.
                jieba_logger = logging.getLogger("jieba")
                previous_level = jieba_logger.level
                jieba_logger.setLevel(logging.WARNING)
                try:
                    tokenizer.initialize()
                finally:
                    jieba_logger.setLevel(previous_level)
                _jieba_tokenizer = tokenizer
    return _jieba_tokenizer


@cache
def stop_words() -> frozenset[str]:
    """The bundled Chinese and English stop words."""
    text = resources.files("zhiku.retrieval").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _MD_IMAGE.sub(r" \1 ", text)
    text = _MD_LINK.sub(r" \1 ", text)
    text = _URL.sub(" ", text)
    return _HTML_TAG.sub(" ", text)


def _word_terms(word: str, suffix: str | None) -> list[str]:
    parts = _PARTS.findall(word)
    joined = "".join(parts) + (_SUFFIX_SPELLING[suffix] if suffix else "")
    return list(dict.fromkeys([joined, *parts]))


def index_terms(text: str) -> list[str]:
    """The terms to index for ``text``, in order, repeats kept (they weigh in ranking).

    Chinese is cut in jieba's search mode, which yields the long words and
    their dictionary sub-words (``天安门`` -> ``天安``, ``天安门``).
    """
    stop = stop_words()
    terms: list[str] = []
    for match in _TOKEN.finditer(_clean(text)):
        han = match.group("han")
        if han is not None:
            candidates = _jieba().cut_for_search(han)
        else:
            candidates = _word_terms(match.group("word"), match.group("suffix"))
        for term in candidates:
            # jieba passes through what its own Han pattern skips (e.g. the
            # compatibility ideographs); keep letters and digits only.
            if term.isalnum() and len(term) <= MAX_TERM_CHARS and term not in stop:
                terms.append(term)
    return terms


def index_document(text: str) -> str:
    """``text`` as its terms joined by single spaces (stored as ``chunks.fulltext``; terms hold no spaces)."""
    return " ".join(index_terms(text))


def query_terms(query: str) -> list[str]:
    """The terms of a search query: processed like documents, first occurrences only."""
    return list(dict.fromkeys(index_terms(query)))
