"""Import parsing benchmark: parse + chunk throughput per format, and a mixed folder imported end to end.

    flock /tmp/zhiku-bench.lock .venv/bin/python bench/ingest.py [--files 200] [--runs 3]

Part 1: one generated document of about 1 MB per format (text from SciFact abstracts and CMRC 2018
contexts, half English, half Chinese), parsed, chunked (chunk size 1000, overlap 0.2, each section on
its own, as the import does) and segmented for full text (jieba) with the product's own functions; best
of ``--runs`` runs. MB/s counts the file's bytes.

Part 2: ``--files`` small documents of every format (a few KB of text each, a few images for OCR)
imported through the real path (collection and job rows, the worker's parse and embed jobs, PostgreSQL)
until every collection is ready. The parse step's time per file is the ``parse_seconds`` the worker
records on each collection (parse + chunk + segment, inside the worker's thread); time inside the
embedder is measured by wrapping it.

The goal (issue 12): parsing and chunking of every text-layer format under 10% of the import's time,
embedding being the rest. Per format it is checked as the share of the parse step in
``parse step + embedding`` for that format's 1 MB document, its embedding time estimated from its
chunks' model tokens at the embedding throughput measured in part 2.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib
import io
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pypdfium2 as pdfium  # noqa: E402
from sqlalchemy import text  # noqa: E402

from tests import documents  # noqa: E402
from zhiku.auth.service import root_principal  # noqa: E402
from zhiku.knowledge import datasets  # noqa: E402
from zhiku.knowledge.chunker import ChunkPiece, split_text  # noqa: E402
from zhiku.knowledge.parsers import ParsedDocument, parser_for  # noqa: E402
from zhiku.knowledge.schemas import DatasetCreate  # noqa: E402
from zhiku.retrieval.segment import index_document  # noqa: E402

BENCH_IMPORT = importlib.import_module("import")  # bench/import.py ("import" is a keyword)


class CountingEmbedder(BENCH_IMPORT.TimedEmbedder):  # type: ignore[misc, name-defined]
    """bench/import.py's timing wrapper, also counting the model tokens it embeds."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        super().__init__(inner)
        self.tokens = 0

    def embed(self, texts, kind="passage"):  # noqa: ANN001, ANN201
        self.tokens += sum(self.inner.count_tokens(t) for t in texts)  # outside the timed interval
        return super().embed(texts, kind)

EVAL = ROOT.parent / "shared" / "data" / "eval"
MB = 1024 * 1024
CHUNK_SIZE = 1000
OCR_FORMATS = {".png"}
FOLDER_FILE_CHARS = 600  # text per file of the mixed folder: about one chunk, so 200 files embed in about a minute


def paragraphs() -> list[str]:
    english = [json.loads(line)["text"] for line, _ in zip((EVAL / "scifact" / "corpus.jsonl").open(), range(600))]
    chinese = [p["context"] for article in json.loads((EVAL / "cmrc2018" / "trial.json").read_text())["data"]
               for p in article["paragraphs"]][:600]
    mixed = [p for pair in zip(english, chinese) for p in pair]
    return [" ".join(p.split()) for p in mixed if p.strip()]


def _csv(rows: Sequence[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def _html(paras: Sequence[str]) -> bytes:
    from html import escape

    body = "".join(f"<h2>Section {i}</h2><p>{escape(p)}</p>" for i, p in enumerate(paras))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Report</title></head><body>"
            f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav><article><h1>Report</h1>{body}</article>"
            f"<footer>Copyright 2026</footer><script>var x = 1;</script></body></html>").encode()


# Each maker turns paragraphs into a file of its format.
MAKERS: dict[str, Callable[[Sequence[str]], bytes]] = {
    ".txt": lambda ps: "\n\n".join(ps).encode(),
    ".md": lambda ps: "\n\n".join(f"## Section {i}\n\n{p}" for i, p in enumerate(ps)).encode(),
    ".json": lambda ps: json.dumps([{"id": i, "text": p} for i, p in enumerate(ps)], ensure_ascii=False).encode(),
    ".csv": lambda ps: _csv([["id", "text"], *([i, p] for i, p in enumerate(ps))]),
    ".xlsx": lambda ps: documents.workbook({"Sheet1": [["id", "text"], *([i, p] for i, p in enumerate(ps))]}),
    ".docx": lambda ps: documents.word([("h1", "Report"), *(("p", p) for p in ps)]),
    ".pptx": lambda ps: documents.slides([(f"Slide {i}", p, "") for i, p in enumerate(ps)]),
    ".pdf": lambda ps: documents.pdf(["\n\n".join(ps[i:i + 2]) for i in range(0, len(ps), 2)]),
    ".html": _html,
}


def sized(extension: str, pool: list[str], target: int) -> bytes:
    """A document of ``extension`` of about ``target`` bytes."""
    def take(n: int) -> list[str]:
        return [pool[i % len(pool)] for i in range(n)]

    probe = 40
    data = MAKERS[extension](take(probe))
    return MAKERS[extension](take(max(1, round(probe * target / len(data)))))


def parse_and_chunk(name: str, data: bytes) -> tuple[ParsedDocument, list[ChunkPiece], float, float]:
    """What the import's parse job does with a file before segmenting, timed: (doc, chunks, parse s, chunk s)."""
    t0 = time.perf_counter()
    doc = parser_for(name).parse(data, name)
    t1 = time.perf_counter()
    pieces = [piece for section in doc.parts()
              for piece in split_text(section.text, chunk_size=CHUNK_SIZE, overlap_ratio=0.2,
                                      markdown=doc.format == "markdown")]
    return doc, pieces, t1 - t0, time.perf_counter() - t1


def throughput(pool: list[str], runs: int, count_tokens: Callable[[str], int]) -> dict[str, dict]:
    results: dict[str, dict] = {}
    print(f"\n== parse + chunk throughput, one ~1 MB document per format, best of {runs} (jieba: one run) ==")
    print(f"{'format':<7}{'file MB':>8}{'text MB':>8}{'chunks':>7}{'parse s':>9}{'chunk s':>9}{'jieba s':>9}"
          f"{'parse+chunk MB/s':>18}{'with jieba MB/s':>17}")
    for extension in MAKERS:
        data = sized(extension, pool, MB)
        runs_ = [parse_and_chunk(f"doc{extension}", data) for _ in range(runs)]
        doc, pieces = runs_[0][:2]
        parse_s, chunk_s = min(r[2] for r in runs_), min(r[3] for r in runs_)
        started = time.perf_counter()
        for piece in pieces:
            index_document(piece.text)
        segment_s = time.perf_counter() - started
        tokens = sum(count_tokens(piece.text) for piece in pieces)
        size = len(data) / MB
        results[extension] = {"seconds": parse_s + chunk_s + segment_s, "tokens": tokens}
        print(f"{extension:<7}{size:8.2f}{len(doc.text.encode()) / MB:8.2f}{len(pieces):7d}{parse_s:9.3f}"
              f"{chunk_s:9.3f}{segment_s:9.3f}{size / (parse_s + chunk_s):18.2f}"
              f"{size / (parse_s + chunk_s + segment_s):17.2f}")
    return results


def mixed_folder(pool: list[str], files: int) -> list[tuple[str, bytes]]:
    """``files`` small documents (one chunk of text each), every format in turn; every 40th an image for OCR."""
    formats = list(MAKERS)
    planned: list[tuple[str, str]] = []  # (name, text)
    for i in range(files):
        extension = ".png" if i % 40 == 39 else formats[i % len(formats)]
        planned.append((f"doc-{i}{extension}", pool[(i * 7) % len(pool)][:FOLDER_FILE_CHARS]))
    # One PDF of all the PDFs' pages, split: fpdf2 takes seconds to load the CJK font for each document.
    pdf_pages = iter(single_pages(documents.pdf([body for name, body in planned if name.endswith(".pdf")])))
    folder = []
    for name, body in planned:
        if name.endswith(".png"):
            data = documents.text_image([body[:40], "Invoice 4711"])
        elif name.endswith(".pdf"):
            data = next(pdf_pages)
        else:
            data = MAKERS[Path(name).suffix]([body])
        folder.append((name, data))
    return folder


def single_pages(data: bytes) -> list[bytes]:
    """Each page of a PDF as a PDF of its own."""
    source = pdfium.PdfDocument(data)
    pages = []
    for index in range(len(source)):
        single = pdfium.PdfDocument.new()
        single.import_pages(source, [index])
        buffer = io.BytesIO()
        single.save(buffer)
        pages.append(buffer.getvalue())
    return pages


async def import_folder(folder: list[tuple[str, bytes]], url: str | None) -> dict:
    platform, registry, real, timed = await BENCH_IMPORT.open_timed_platform(url, CountingEmbedder)
    try:
        async with platform.db.sessions() as session:
            principal = await root_principal(session)
            ds = await datasets.create_dataset(session, principal, registry,
                                               DatasetCreate(name=f"ingest-{time.time():.0f}"))
        index_document("预热 jieba")  # load jieba's dictionary now, as a running server already has
        total = await BENCH_IMPORT.import_files(platform, principal, ds.id, folder)
        async with platform.db.sessions() as session:
            rows = (await session.execute(text(
                "SELECT name, status, error_code, chunk_count, (metadata->>'parse_seconds')::float AS parse_s "
                "FROM collections WHERE dataset_id = :d"), {"d": ds.id})).all()
    finally:
        await platform.close()
    return {"rows": rows, "total": total, "embed": timed.seconds, "embed_tokens": timed.tokens,
            "count_tokens": real.count_tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database-url", default=None, help="external PostgreSQL (default: a temporary embedded one)")
    args = ap.parse_args()
    pool = paragraphs()
    logging.getLogger("fpdf").setLevel(logging.ERROR)  # glyphs the CJK font lacks in the generated PDFs

    folder = mixed_folder(pool, args.files)
    run = asyncio.run(import_folder(folder, args.database_url))
    by_format: dict[str, list[float]] = defaultdict(list)
    failed = [(name, code) for name, status, code, _, _ in run["rows"] if status != "ready"]
    for name, _, _, _, parse_s in run["rows"]:
        by_format[Path(name).suffix].append(parse_s or 0.0)
    text_layer = sum(s for ext, ss in by_format.items() if ext not in OCR_FORMATS for s in ss)
    ocr = sum(s for ext in OCR_FORMATS for s in by_format.get(ext, []))
    chunks = sum(row[3] for row in run["rows"])
    tokens_per_s = run["embed_tokens"] / run["embed"]
    print(f"== {len(folder)} files imported end to end: {chunks} chunks, {len(failed)} failed {failed or ''} ==")
    print(f"{'stage':<34}{'seconds':>9}{'share':>8}")
    for label, seconds in [("parse step, text-layer formats", text_layer), ("parse step, OCR (images)", ocr),
                           ("embed", run["embed"]),
                           ("store + queue + waiting", run["total"] - text_layer - ocr - run["embed"])]:
        print(f"{label:<34}{seconds:9.2f}{seconds / run['total']:8.1%}")
    print(f"{'total (wall)':<34}{run['total']:9.2f}")
    print("parse step per format (s, summed over its files): " +
          ", ".join(f"{ext} {sum(ss):.2f}" for ext, ss in sorted(by_format.items())))
    print(f"embedding throughput: {tokens_per_s:.0f} model tokens/s "
          "(parse steps run in the worker's threads, overlapping embedding; shares are of the wall time)")

    results = throughput(pool, args.runs, run["count_tokens"])
    print("\n== goal: the parse step under 10% of a text-layer document's import (parse step + embedding) ==")
    worst = 0.0
    for extension, result in results.items():
        embed_s = result["tokens"] / tokens_per_s
        share = result["seconds"] / (result["seconds"] + embed_s)
        worst = max(worst, share)
        print(f"{extension:<7} parse step {result['seconds']:6.2f}s, embedding ≈{embed_s:7.1f}s → {share:6.1%}")
    print(f"worst format: {worst:.1%} — goal < 10%: {'met' if worst < 0.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
