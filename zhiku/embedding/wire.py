"""The embedding server's wire format: request bodies checked into plain values, responses shaped.

Pure functions, no I/O. Every refusal is an ``InvalidInput`` (400) with a stable
code, so a client can tell an empty input from a wrong type from an over-long one:

=====================  ===========================================================
``invalid_encoding``   the body is not UTF-8
``invalid_json``       the body is not JSON
``invalid_request``    the body is not a JSON object, or a required field is missing
``invalid_parameter``  a field other than ``input`` has a wrong type or value
``invalid_input``      ``input`` (or a document) has a wrong type
``empty_input``        an empty list, or an empty string at some index
``too_many_inputs``    more items than the server's limit
``invalid_token_ids``  a token id outside the tokenizer's range
``input_too_long``     over the model's maximum while the server rejects such inputs
=====================  ===========================================================
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from zhiku.embedding.base import EmbedKind
from zhiku.errors import InvalidInput

InputForm = Literal["text", "token_ids"]
_KIND_NAMES: dict[str, EmbedKind] = {"query": "query", "passage": "passage", "document": "passage",
                                     "search_query": "query", "search_document": "passage"}


@dataclass(frozen=True)
class EmbeddingsCall:
    model: str | None  # None: the server's default model
    kind: EmbedKind
    inputs: tuple[str, ...] | tuple[tuple[int, ...], ...]
    form: InputForm
    base64: bool
    dimensions: int | None


@dataclass(frozen=True)
class RerankCall:
    model: str | None
    query: str
    documents: tuple[str, ...]
    top_n: int | None
    return_documents: bool


def decode_json_body(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the request body is not valid UTF-8 (byte {exc.start})",
                           code="invalid_encoding") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                           f"column {exc.colno}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", code="invalid_request")
    return body


def split_model_kind(model: str) -> tuple[str, EmbedKind | None]:
    """``"m3e:query"`` → ``("m3e", "query")``; a name without a known suffix is kept whole."""
    name, sep, suffix = model.rpartition(":")
    if sep and name and suffix.lower() in _KIND_NAMES:
        return name, _KIND_NAMES[suffix.lower()]
    return model, None


def _model_field(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if model is None:
        return None
    if not isinstance(model, str) or not model.strip():
        raise InvalidInput("'model' must be a non-empty string", code="invalid_parameter")
    return model.strip()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_inputs(value: Any, max_inputs: int) -> tuple[tuple[Any, ...], InputForm]:
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    elif value is None:
        raise InvalidInput("'input' is required: a string, a list of strings, or token-id arrays",
                           code="invalid_request")
    else:
        raise InvalidInput(f"'input' must be a string, a list of strings, or token-id arrays, "
                           f"not {type(value).__name__}", code="invalid_input")
    if not items:
        raise InvalidInput("'input' is an empty list; send at least one text", code="empty_input")
    if items and all(_is_int(v) for v in items):  # one token-id array
        items = [items]
    if len(items) > max_inputs:
        raise InvalidInput(f"'input' has {len(items)} items; this server takes at most {max_inputs} per request",
                           code="too_many_inputs", detail={"count": len(items), "limit": max_inputs})
    if all(isinstance(v, str) for v in items):
        for index, text in enumerate(items):
            if not text:
                raise InvalidInput(f"input[{index}] is an empty string", code="empty_input",
                                   detail={"index": index})
        return tuple(items), "text"
    if all(isinstance(v, list) for v in items):
        for index, ids in enumerate(items):
            if not ids:
                raise InvalidInput(f"input[{index}] is an empty token-id array", code="empty_input",
                                   detail={"index": index})
            if not all(_is_int(t) for t in ids):
                raise InvalidInput(f"input[{index}] must be an array of integer token ids", code="invalid_input",
                                   detail={"index": index})
        return tuple(tuple(ids) for ids in items), "token_ids"
    index = next(i for i, v in enumerate(items) if not isinstance(v, type(items[0])) or
                 not isinstance(v, (str, list)))
    raise InvalidInput(f"input[{index}] is {type(items[index]).__name__}; every item must be a string "
                       f"(or every item a token-id array)", code="invalid_input", detail={"index": index})


def parse_embeddings(body: dict[str, Any], max_inputs: int) -> EmbeddingsCall:
    model = _model_field(body)
    kind: EmbedKind | None = None
    if model is not None:
        model, kind = split_model_kind(model)
    input_type = body.get("input_type")
    if input_type is not None:
        if not isinstance(input_type, str) or input_type.lower() not in _KIND_NAMES:
            raise InvalidInput("'input_type' must be 'query' or 'passage'", code="invalid_parameter")
        kind = _KIND_NAMES[input_type.lower()]
    encoding_format = body.get("encoding_format", "float")
    if encoding_format not in (None, "float", "base64"):
        raise InvalidInput("'encoding_format' must be 'float' or 'base64'", code="invalid_parameter")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise InvalidInput("'dimensions' must be a positive integer", code="invalid_parameter")
    inputs, form = _check_inputs(body.get("input"), max_inputs)
    return EmbeddingsCall(model=model, kind=kind or "passage", inputs=inputs, form=form,
                          base64=encoding_format == "base64", dimensions=dimensions)


def parse_rerank(body: dict[str, Any], max_inputs: int) -> RerankCall:
    model = _model_field(body)
    query = body.get("query")
    if not isinstance(query, str) or not query:
        raise InvalidInput("'query' must be a non-empty string", code="invalid_input")
    documents = body.get("documents")
    if not isinstance(documents, list):
        raise InvalidInput("'documents' must be a list of strings or {\"text\": ...} objects",
                           code="invalid_input")
    if not documents:
        raise InvalidInput("'documents' is an empty list", code="empty_input")
    if len(documents) > max_inputs:
        raise InvalidInput(f"'documents' has {len(documents)} items; this server takes at most {max_inputs}",
                           code="too_many_inputs", detail={"count": len(documents), "limit": max_inputs})
    texts: list[str] = []
    for index, doc in enumerate(documents):
        text = doc.get("text") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise InvalidInput(f"documents[{index}] must be a string or an object with a string 'text'",
                               code="invalid_input", detail={"index": index})
        texts.append(text)
    top_n = body.get("top_n")
    if top_n is not None and (not _is_int(top_n) or top_n < 1):
        raise InvalidInput("'top_n' must be a positive integer", code="invalid_parameter")
    return_documents = body.get("return_documents", False)
    if not isinstance(return_documents, bool):
        raise InvalidInput("'return_documents' must be true or false", code="invalid_parameter")
    return RerankCall(model=model, query=query, documents=tuple(texts), top_n=top_n,
                      return_documents=return_documents)


def embeddings_body(vectors: np.ndarray, model: str, tokens: int, *, as_base64: bool,
                    windowed: list[int]) -> dict[str, Any]:
    data = []
    for index, vector in enumerate(np.asarray(vectors, dtype="<f4")):
        value: Any = base64.b64encode(vector.tobytes()).decode() if as_base64 else vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    body: dict[str, Any] = {"object": "list", "data": data, "model": model,
                            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    if windowed:
        body["zhiku"] = {"windowed": windowed}
    return body


def rerank_body(scores: list[float], call: RerankCall, model: str, tokens: int) -> dict[str, Any]:
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)[: call.top_n or None]
    results = []
    for index in order:
        item: dict[str, Any] = {"index": index, "relevance_score": float(scores[index])}
        if call.return_documents:
            item["document"] = {"text": call.documents[index]}
        results.append(item)
    return {"model": model, "results": results, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
