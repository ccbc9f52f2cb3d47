"""The built-in extractive answerer: a fresh install with no chat model still answers.

It replies with the sentences of the top quotes that share the most search terms
with the question, in their original order, under a header that says the answer
is extracted, not generated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from zhiku.retrieval.fusion import Candidate
from zhiku.retrieval.segment import index_terms, query_terms

MODEL_NAME = "zhiku-extractive"
MAX_QUOTES = 3
MAX_SENTENCES = 3
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=[.])\s+|\n+")
_CJK = re.compile(r"[\u3400-\u9fff]")

HEADER_ZH = "（摘录回答：未配置对话模型，以下内容直接摘自知识库）"
HEADER_EN = "(Extractive answer: no chat model is configured, so these sentences are quoted from the knowledge base.)"
NOTHING_ZH = "知识库中没有找到与问题相关的内容。"
NOTHING_EN = "Nothing in the knowledge base matches the question."


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def extractive_answer(question: str, quotes: Sequence[Candidate]) -> str:
    chinese = bool(_CJK.search(question))
    header = HEADER_ZH if chinese else HEADER_EN
    if not quotes:
        return f"{header}\n\n{NOTHING_ZH if chinese else NOTHING_EN}"
    terms = set(query_terms(question))
    scored: list[tuple[float, int, str, Candidate]] = []
    position = 0
    for rank, quote in enumerate(quotes[:MAX_QUOTES]):
        for sentence in _sentences(f"{quote.q}\n{quote.a}" if quote.a.strip() else quote.q):
            overlap = len(terms & set(index_terms(sentence)))
            # earlier quotes rank higher in search, so a small prior breaks ties toward them
            scored.append((overlap - rank * 0.1, position, sentence, quote))
            position += 1
    best = [s for s in sorted(scored, key=lambda s: (-s[0], s[1]))[:MAX_SENTENCES] if s[0] > 0]
    if not best:
        best = sorted(scored, key=lambda s: s[1])[:1]  # no shared term: the top quote's opening sentence
    lines = [f"{sentence} [{quote.citation}]" for _, _, sentence, quote in sorted(best, key=lambda s: s[1])]
    return header + "\n\n" + "\n".join(lines)
