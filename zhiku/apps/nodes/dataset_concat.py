"""datasetConcatNode: several quote lists fused by reciprocal rank (k = 60) and cut to a token budget."""

from __future__ import annotations

from typing import Any

from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.tokencount import count_tokens

RRF_K = 60
DEFAULT_LIMIT = 3000


def concat_quotes(lists: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    scores: dict[str, float] = {}
    first: dict[str, dict[str, Any]] = {}
    for quotes in lists:
        for rank, quote in enumerate(quotes, start=1):
            key = str(quote.get("id") or f"{quote.get('q')}\n{quote.get('a')}")
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(key, quote)
    ordered = sorted(first, key=lambda k: -scores[k])
    kept: list[dict[str, Any]] = []
    used = 0
    for key in ordered:
        quote = first[key]
        tokens = count_tokens(f"{quote.get('q') or ''}{quote.get('a') or ''}")
        if kept and used + tokens > limit:
            break
        kept.append(quote)
        used += tokens
    return kept


async def run(ctx: NodeContext) -> NodeResult:
    lists = [v for v in ctx.dynamic_inputs().values() if isinstance(v, list)]
    limit = ctx.get("limit", DEFAULT_LIMIT)
    quotes = concat_quotes([[q for q in lst if isinstance(q, dict)] for lst in lists],
                           int(limit) if isinstance(limit, (int, float)) else DEFAULT_LIMIT)
    return NodeResult(outputs={"quoteQA": quotes}, response={"concatLength": len(quotes)})


SPEC = NodeSpec(kind="datasetConcatNode", inline=True, run=run, description="merge quote lists")
