"""datasetSearchNode: knowledge-base search with every FastGPT setting.

``datasets`` ([{datasetId}]), ``similarity``, ``limit`` (token budget), ``searchMode``
(embedding | fullTextRecall | mixedRecall), ``embeddingWeight``, ``usingReRank`` / ``rerankWeight``
(the platform's rerank model), ``datasetSearchUsingExtensionQuery`` with ``datasetSearchExtensionModel``
and ``datasetSearchExtensionBg`` (each extra query searched and fused by RRF, k = 60), and
``collectionFilterMatch`` (``{"tags": {"$and" | "$or": [...]}}``: collections with any of the tags).
"""

from __future__ import annotations

import asyncio
from typing import Any

from zhiku.apps.nodes._llm import json_reply
from zhiku.apps.nodes._queries import extend_query
from zhiku.apps.workflow.events import QuotesFound
from zhiku.apps.workflow.graph import as_list, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text
from zhiku.errors import InvalidInput
from zhiku.knowledge.datasets import load_dataset
from zhiku.retrieval.fusion import apply_token_budget, iter_dedup, rrf_fuse
from zhiku.retrieval.search import quote_dict, search
from zhiku.retrieval.settings import SearchSettings
from zhiku.tokencount import count_tokens

EXTENSION_RRF_K = 60


def dataset_ids(value: Any) -> list[int]:
    """Dataset ids of a ``datasets`` input: [{datasetId}] items, or bare ids."""
    ids = []
    for item in as_list(value):
        raw = item.get("datasetId") if isinstance(item, dict) else item
        if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()):
            ids.append(int(raw))
        elif raw not in (None, ""):
            raise InvalidInput(f"dataset id {raw!r} is not a Zhiku dataset id", code="dataset_not_found")
    return list(dict.fromkeys(ids))


def tag_filter(value: Any) -> list[str] | None:
    raw = json_reply(value) if isinstance(value, str) and value.strip() else value
    tags = raw.get("tags") if isinstance(raw, dict) else None
    if isinstance(tags, dict):
        listed = as_list(tags.get("$or")) + as_list(tags.get("$and"))
        return [str(t) for t in listed if t] or None
    return None


async def run(ctx: NodeContext) -> NodeResult:
    env = ctx.env
    deps = env.deps
    query = to_text(ctx.get("userChatInput")).strip() or env.query
    settings = SearchSettings.from_dict({
        "searchMode": ctx.get("searchMode", "embedding"), "similarity": ctx.get("similarity", 0.4),
        "limit": ctx.get("limit", 5000), "embeddingWeight": ctx.get("embeddingWeight", 0.5),
        "usingReRank": bool(ctx.get("usingReRank", False)), "rerankWeight": ctx.get("rerankWeight", 0.5)})
    ids = dataset_ids(ctx.get("datasets"))
    async with deps.sessions() as session:
        datasets = [await load_dataset(session, env.principal, i) for i in ids]
    queries, extension = [query], None
    extension_model = to_text(ctx.get("datasetSearchExtensionModel")).strip()
    if query and datasets and ctx.get("datasetSearchUsingExtensionQuery", True) and extension_model and \
            deps.chat_model is not None:
        queries, extension = await extend_query(ctx, query, extension_model,
                                                to_text(ctx.get("datasetSearchExtensionBg")), env.histories)
    tags = tag_filter(ctx.get("collectionFilterMatch"))
    quotes = []
    mode = settings.mode
    reranked = False
    if query and datasets:
        results = await asyncio.gather(*(search(deps.sessions, deps.embedders, datasets, q, settings,
                                                reranker=deps.reranker, vector_store=deps.vector_store, tags=tags)
                                         for q in queries))
        reranked = any(r.reranked for r in results)
        if len(results) == 1:
            quotes = results[0].quotes
        else:
            fused = rrf_fuse([(r.quotes, EXTENSION_RRF_K) for r in results])
            quotes = apply_token_budget(iter_dedup(fused), settings.max_tokens, count_tokens)
    ctx.emit(QuotesFound(quotes))
    quote_list = [quote_dict(q) for q in quotes]
    response: dict[str, Any] = {
        "totalPoints": 0, "query": ", ".join(queries), "similarity": settings.similarity,
        "limit": settings.max_tokens, "searchMode": mode, "embeddingWeight": settings.embedding_weight,
        "rerankWeight": settings.rerank_weight, "searchUsingReRank": reranked, "reranked": reranked,
        "embeddingModel": ", ".join(sorted({d.embedding_model for d in datasets})), "quoteList": quote_list}
    usage = None
    if extension is not None:
        response["queryExtensionResult"] = extension.response
        usage = extension.usage
    return NodeResult(outputs={"quoteQA": quote_list}, response=response, usage=usage)


def check(node: Node, workflow: Workflow) -> list[str]:
    try:
        dataset_ids(node.value("datasets"))
    except InvalidInput as exc:
        return [exc.message]
    mode = node.value("searchMode", "embedding")
    try:
        SearchSettings.from_dict({"searchMode": mode})
    except InvalidInput as exc:
        return [exc.message]
    return []


SPEC = NodeSpec(kind="datasetSearchNode", run=run, check=check, description="knowledge-base search")
