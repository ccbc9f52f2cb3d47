"""Split document text into chunks for indexing, the way FastGPT users expect.

The splitter works top-down through separators of falling strength (custom
separators, markdown headings, code fences and tables, blank lines, newlines,
sentence ends, clause punctuation, spaces between words, and finally a hard
cut). Text is packed greedily into chunks; a piece that does not fit is split
with the next weaker separator, so chunks end at the strongest boundary that
keeps them within 0.8-1.2 x ``chunk_size``. Sizes count non-whitespace
characters, which treats Chinese (no spaces) and English alike. Overlap and a
repeated table header count towards a chunk's size; the heading lines put in
front of a chunk do not (they are short, and the same for every chunk of a section).

Everything here is pure: strings in, frozen ``ChunkPiece`` values out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Literal

from zhiku.errors import InvalidInput


@dataclass(frozen=True)
class ChunkPiece:
    """One chunk. ``headings`` is its markdown heading path, outermost first,
    as the heading lines appear in the source (``("# Guide", "## Install")``)."""

    text: str
    headings: tuple[str, ...] = ()


# All limits are fractions of chunk_size.
_ACCEPT_LOW = 0.8  # a chunk this full may end at the next boundary
_ACCEPT_HIGH = 1.2  # hard limit: a piece that would pass it is split finer
_TAIL_MIN = 0.4  # a last chunk smaller than this joins the one before it
_OVERLAP_CAP = 0.4
_HEADING_DEPTH = 5  # headings deeper than this are ordinary text

_HEADING = re.compile(r" {0,3}(#{1,6})[ \t]+\S")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_TABLE_RULE = re.compile(r"[\s|:\-]*")
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_NEWLINE = re.compile(r"\n")
# A sentence ends at 。 or at ". "; closing quotes/brackets stay with their sentence.
_SENTENCE_END = re.compile(r"。[”’」』）)\"']*|\.[”’\"')]*[ \t]+")
# ASCII clause punctuation only counts when followed by a space, so "1,000" and "3.14" stay whole.
_CLAUSE_END = re.compile(r"[！？；，][”’」』）)\"']*|[!?;,][”’\"')]*[ \t]+")
_WORD_GAP = re.compile(r"[ \t]+")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")

SegKind = Literal["text", "code", "table", "row"]


@dataclass(frozen=True, slots=True)  # a long line of words makes one per word: keep them small
class _Seg:
    """A contiguous slice of the source that the packer places as a whole or splits finer."""

    text: str
    path: tuple[str, ...]
    kind: SegKind = "text"
    level: int = -1  # index in _LEVELS of the splitter that made it; finer splits start after it
    soft_end: bool = False  # ends on sentence/clause punctuation, so the next chunk may overlap it
    table_header: str = ""  # for table rows: header + rule lines to repeat atop a new chunk
    in_code: bool = False  # a fenced code block or a slice of one: "#" lines there are not headings


@dataclass
class _Draft:
    """A chunk being filled. ``prefix`` is repeated text (overlap or a table header), not new content."""

    prefix: str = ""
    prefix_size: int = 0
    segs: list[_Seg] = field(default_factory=list)
    size: int = 0


@dataclass(frozen=True)
class _Config:
    target: int
    low: float
    high: float
    overlap: float
    markdown: bool


def _size(text: str) -> int:
    return len("".join(text.split()))


# --- splitters, strongest first -------------------------------------------------------------


def _split_after(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Split after each match, keeping the separator with the piece before it, so nothing is lost."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _children(seg: _Seg, pieces: list[str], level: int, soft: bool) -> list[_Seg]:
    # The last piece ends where its parent ended, so it inherits the parent's kind of boundary.
    return [
        replace(seg, text=piece, level=level, soft_end=soft if i < len(pieces) - 1 else seg.soft_end)
        for i, piece in enumerate(pieces)
    ]


def _scan_lines(text: str) -> list[tuple[int, str, bool]]:
    """(offset, line, inside_code_fence) for each line; fence lines themselves count as code."""
    result: list[tuple[int, str, bool]] = []
    offset, fence = 0, ""
    for line in text.splitlines(keepends=True):
        if fence:
            result.append((offset, line, True))
            # A closing fence is a bare run of the opening character, at least as long.
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = ""
        else:
            opener = _FENCE.match(line)
            fence = opener.group(1) if opener else ""
            result.append((offset, line, bool(opener)))
        offset += len(line)
    return result


def _heading_splitter(depth: int) -> Callable[[_Seg, int], list[_Seg]]:
    def split(seg: _Seg, level: int) -> list[_Seg]:
        cuts = [
            offset
            for offset, line, in_code in _scan_lines(seg.text)
            if not in_code and (m := _HEADING.match(line)) and len(m.group(1)) == depth
        ]
        if not cuts:
            return [seg]
        bounds = sorted({0, *cuts, len(seg.text)})
        pieces = []
        for start, end in zip(bounds, bounds[1:]):
            text = seg.text[start:end]
            path = seg.path + (text.split("\n", 1)[0].strip(),) if start in cuts else seg.path
            pieces.append(replace(seg, text=text, path=path, level=level))
        return pieces

    return split


def _split_blocks(seg: _Seg, level: int) -> list[_Seg]:
    """Separate fenced code blocks and tables from the prose around them."""
    scanned = _scan_lines(seg.text)
    kinds: list[SegKind] = ["code" if in_code else "text" for _, _, in_code in scanned]
    i = 0
    while i + 1 < len(scanned):
        # A table is a line with "|", a rule line such as |---|:--:|, then rows up to a blank line.
        if kinds[i] == kinds[i + 1] == "text" and "|" in scanned[i][1] and _is_table_rule(scanned[i + 1][1]):
            j = i + 2
            while j < len(scanned) and kinds[j] == "text" and "|" in scanned[j][1] and scanned[j][1].strip():
                j += 1
            kinds[i:j] = ["table"] * (j - i)
            i = j
        else:
            i += 1
    return [
        replace(seg, text="".join(line for _, (_, line, _) in group), kind=kind, level=level,
                in_code=kind == "code")
        for kind, group in groupby(zip(kinds, scanned), key=lambda pair: pair[0])
    ]


def _is_table_rule(line: str) -> bool:
    return "|" in line and "-" in line and _TABLE_RULE.fullmatch(line) is not None


def _pattern_splitter(pattern: re.Pattern[str], soft: bool) -> Callable[[_Seg, int], list[_Seg]]:
    def split(seg: _Seg, level: int) -> list[_Seg]:
        return _children(seg, _split_after(seg.text, pattern), level, soft)

    return split


_LEVELS: tuple[Callable[[_Seg, int], list[_Seg]], ...] = (
    *(_heading_splitter(depth) for depth in range(1, _HEADING_DEPTH + 1)),
    _split_blocks,
    _pattern_splitter(_BLANK_LINES, soft=False),
    _pattern_splitter(_NEWLINE, soft=False),
    _pattern_splitter(_SENTENCE_END, soft=True),
    _pattern_splitter(_CLAUSE_END, soft=True),
    # Before cutting mid-word, cut English at a space (a no-op for Chinese).
    _pattern_splitter(_WORD_GAP, soft=False),
)
_FIRST_PLAIN_LEVEL = _HEADING_DEPTH + 1  # headings, fences and tables are markdown-only
_CLAUSE_LEVEL = len(_LEVELS) - 2


def _split_table(seg: _Seg) -> list[_Seg] | None:
    """Rows of a table; the first keeps the header, the rest remember it for repeating."""
    lines = seg.text.splitlines(keepends=True)
    header, rows = "".join(lines[:2]), lines[2:]
    if not rows:
        return None
    first = replace(seg, text=header + rows[0], kind="row")
    return [first, *(replace(seg, text=row, kind="row", table_header=header) for row in rows[1:])]


def _descend(seg: _Seg, markdown: bool) -> list[_Seg] | None:
    """Split ``seg`` with the strongest separator that divides it; None when none does."""
    if seg.kind == "row":
        return None
    if seg.kind == "table":
        return _split_table(seg)
    if seg.kind == "code":
        # Punctuation inside code is not prose: go from lines straight to spaces, then a hard cut.
        lines = seg.text.splitlines(keepends=True)
        if len(lines) < 2:
            return None
        return [replace(seg, text=line, kind="text", level=_CLAUSE_LEVEL) for line in lines]
    for level in range(seg.level + 1, len(_LEVELS)):
        if not markdown and level < _FIRST_PLAIN_LEVEL:
            continue
        pieces = _LEVELS[level](seg, level)
        # One piece can still be progress: a section that gained its heading, a block that is a table.
        if len(pieces) > 1 or (pieces[0].kind, pieces[0].path) != (seg.kind, seg.path):
            return pieces
    return None


def _hard_cut(seg: _Seg, first: int, size: int) -> list[_Seg]:
    """Cut into pieces of ``first``, then ``size``, non-whitespace characters each."""
    pieces, start, count, limit = [], 0, 0, first
    for i, char in enumerate(seg.text):
        if not char.isspace():
            count += 1
            if count == limit:
                pieces.append(seg.text[start : i + 1])
                start, count, limit = i + 1, 0, size
    if start < len(seg.text):
        pieces.append(seg.text[start:])
    return _children(seg, pieces, seg.level, soft=False)


# --- packing ---------------------------------------------------------------------------------


def _is_atomic(seg: _Seg, size: int, cfg: _Config) -> bool:
    # Rows are never split; a code block is split only when it alone passes the hard limit.
    return seg.kind == "row" or (seg.kind == "code" and size <= cfg.high)


def _pack(root: _Seg, cfg: _Config) -> list[_Draft]:
    drafts: list[_Draft] = []
    draft = _Draft()
    stack = [root]
    while stack:
        seg = stack.pop()
        size = _size(seg.text)
        if not draft.segs and size == 0:
            continue  # never start a chunk with blank text
        cost = size
        if not draft.segs and seg.table_header:
            cost += _size(seg.table_header)
        if draft.size + cost <= cfg.target:
            _add(draft, seg, cost)
        elif draft.size >= cfg.low:
            # The chunk is already acceptable: end it here, at the strongest boundary on offer.
            stack.append(seg)
            draft = _flush(drafts, draft, stack, cfg)
        elif draft.size + cost <= cfg.high:
            _add(draft, seg, cost)
        elif not _is_atomic(seg, size, cfg) and (pieces := _descend(seg, cfg.markdown)) is not None:
            stack.extend(reversed(pieces))  # too big for this chunk: split finer and keep filling
        elif seg.kind != "text":
            # Rows, code blocks and header-only tables are placed whole, alone if need be.
            if draft.segs:
                stack.append(seg)
                draft = _flush(drafts, draft, stack, cfg)
            else:
                _add(draft, seg, cost)
        else:
            room = max(1, int(cfg.target - draft.size))
            stack.extend(reversed(_hard_cut(seg, room, cfg.target)))
    if draft.segs:
        drafts.append(draft)
    return drafts


def _add(draft: _Draft, seg: _Seg, cost: int) -> None:
    if not draft.segs and seg.table_header:
        # A table continued in a new chunk gets its header again (cost includes it).
        draft.prefix, draft.prefix_size = seg.table_header, _size(seg.table_header)
        draft.size = 0  # overlap cannot precede a row, but never count two prefixes
    draft.segs.append(seg)
    draft.size += cost


def _flush(drafts: list[_Draft], draft: _Draft, stack: list[_Seg], cfg: _Config) -> _Draft:
    """Close ``draft`` and return the next one, seeded with overlap when the cut fell mid-prose."""
    moved = False
    # A heading must not end a chunk far from its body: hand it to the next chunk.
    while cfg.markdown and len(draft.segs) > 1 and _is_heading_line(draft.segs[-1].text):
        heading = draft.segs.pop()
        draft.size -= _size(heading.text)
        stack.append(heading)
        moved = True
    drafts.append(draft)
    if moved or not draft.segs[-1].soft_end or cfg.overlap <= 0:
        return _Draft()
    # Repeat the last sentences that fit in the overlap budget, starting right after punctuation.
    tail: list[str] = []
    total, start, start_size = 0, 0, 0
    for i in range(len(draft.segs) - 1, 0, -1):
        seg = draft.segs[i]
        total += _size(seg.text)
        if seg.kind != "text" or seg.in_code or total > cfg.overlap:
            break
        tail.append(seg.text)
        if draft.segs[i - 1].soft_end:
            start, start_size = len(tail), total
    prefix = "".join(reversed(tail[:start]))
    return _Draft(prefix=prefix, prefix_size=start_size, size=start_size)


def _is_heading_line(text: str) -> bool:
    stripped = text.strip()
    return "\n" not in stripped and _HEADING.match(stripped) is not None


def _merge_small_tail(drafts: list[_Draft], cfg: _Config) -> list[_Draft]:
    if len(drafts) >= 2:
        last = drafts[-1]
        if last.size - last.prefix_size < _TAIL_MIN * cfg.target:
            # Its prefix only repeats what the previous chunk already holds, so drop it.
            drafts[-2].segs.extend(last.segs)
            drafts[-2].size += last.size - last.prefix_size
            drafts.pop()
    return drafts


# --- output ----------------------------------------------------------------------------------


def _common_path(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _heading_path(segs: list[_Seg]) -> tuple[str, ...]:
    """The heading path shared by every non-blank line of the chunk.

    Worked out from the content rather than from how deep the splitter went, so a whole
    document under "# Title" gets ("# Title",) whether or not it needed splitting.
    """
    common: tuple[str, ...] | None = None
    for seg in segs:
        if seg.in_code:
            lines = [(seg.text, True)]
        else:
            lines = [(line, in_code) for _, line, in_code in _scan_lines(seg.text)]
        path = seg.path
        for line, in_code in lines:
            heading = None if in_code else _HEADING.match(line)
            if heading and len(heading.group(1)) <= _HEADING_DEPTH:
                depth = len(heading.group(1))
                path = tuple(h for h in path if len(h) - len(h.lstrip("#")) < depth) + (line.strip(),)
            if line.strip():
                common = path if common is None else _common_path(common, path)
    return common or ()


def _render(draft: _Draft) -> ChunkPiece | None:
    body = draft.prefix + "".join(seg.text for seg in draft.segs)
    body = _LEADING_BLANK_LINES.sub("", body).rstrip()
    if not body.strip():
        return None
    path = _heading_path(draft.segs)
    # Lead with the heading path so the chunk embeds with its context, unless it already starts
    # with (the tail of) that path, e.g. a chunk that begins at its own section heading.
    first_line = body.lstrip().split("\n", 1)[0].strip()
    lead = path[: path.index(first_line)] if first_line in path else path
    return ChunkPiece(text="\n".join((*lead, body)), headings=path)


def _split_custom(text: str, separators: Sequence[str]) -> list[str]:
    """Custom separators are hard boundaries chosen by the user; the markers themselves are dropped."""
    seps = sorted({s.replace("\r\n", "\n") for s in separators if s}, key=len, reverse=True)
    if not seps:
        return [text]
    return re.split("|".join(re.escape(s) for s in seps), text)


def split_text(
    text: str,
    *,
    chunk_size: int = 1000,
    overlap_ratio: float = 0.2,
    separators: Sequence[str] = (),
    markdown: bool = True,
) -> list[ChunkPiece]:
    """Split ``text`` into chunks of about ``chunk_size`` non-whitespace characters.

    ``overlap_ratio`` (0 for qa mode) repeats the previous chunk's last sentences at the start
    of the next chunk, only when the cut fell on sentence punctuation, and never more than
    0.4 x ``chunk_size``. With ``markdown`` the chunks carry their heading path, code fences
    stay whole and tables split by rows with the header repeated.
    """
    if chunk_size < 1:
        raise InvalidInput(f"chunk size must be at least 1, got {chunk_size}", code="invalid_chunk_size")
    if not 0 <= overlap_ratio < 1:
        raise InvalidInput(
            f"overlap ratio must be at least 0 and below 1, got {overlap_ratio}", code="invalid_overlap"
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cfg = _Config(
        target=chunk_size,
        low=_ACCEPT_LOW * chunk_size,
        high=_ACCEPT_HIGH * chunk_size,
        overlap=min(overlap_ratio, _OVERLAP_CAP) * chunk_size,
        markdown=markdown,
    )
    chunks: list[ChunkPiece] = []
    for part in _split_custom(text, separators):
        if not part.strip():
            continue
        for draft in _merge_small_tail(_pack(_Seg(text=part, path=()), cfg), cfg):
            if (piece := _render(draft)) is not None:
                chunks.append(piece)
    return chunks
