"""contentExtract: the model fills the node's fields, described to it as a JSON schema built from
``extractKeys`` (key, desc, valueType, required, enum, defaultValue). Each field fills the output with
its key; ``fields`` is all of them as JSON; ``success`` says whether every required field came back."""

from __future__ import annotations

import json
from typing import Any

from zhiku.apps.nodes._llm import complete, history_messages, json_reply, model_name
from zhiku.apps.workflow.graph import as_list, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import coerce, to_text
from zhiku.chat_model import ChatMessage

_JSON_TYPES = {"string": "string", "number": "number", "boolean": "boolean", "object": "object",
               "arrayString": "array", "arrayNumber": "array", "arrayBoolean": "array", "arrayObject": "array",
               "arrayAny": "array", "any": "string"}
_ITEM_TYPES = {"arrayString": "string", "arrayNumber": "number", "arrayBoolean": "boolean", "arrayObject": "object"}

PROMPT = (
    "Extract information from the text below. {description}\n"
    "Reply with one JSON object only, matching this JSON schema; leave out a field the text does not give.\n"
    "JSON schema:\n{schema}\n\nText:\n{content}"
)


def extract_keys(value: Any) -> list[dict[str, Any]]:
    return [k for k in as_list(value) if isinstance(k, dict) and isinstance(k.get("key"), str) and k["key"]]


def json_schema(keys: list[dict[str, Any]]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in keys:
        value_type = str(field.get("valueType") or "string")
        prop: dict[str, Any] = {"type": _JSON_TYPES.get(value_type, "string"),
                                "description": to_text(field.get("desc"))}
        if value_type in _ITEM_TYPES:
            prop["items"] = {"type": _ITEM_TYPES[value_type]}
        enum = [e for e in to_text(field.get("enum")).split("\n") if e.strip()]
        if enum:
            prop["enum"] = enum
        properties[field["key"]] = prop
    return {"type": "object", "properties": properties,
            "required": [f["key"] for f in keys if f.get("required")]}


async def run(ctx: NodeContext) -> NodeResult:
    keys = extract_keys(ctx.get("extractKeys"))
    content = to_text(ctx.get("content"))
    history = history_messages(ctx, ctx.get("history"))
    schema = json_schema(keys)
    background = "\n".join(f"{m.role}: {m.content}" for m in history if m.role in ("user", "assistant"))
    prompt = PROMPT.format(description=to_text(ctx.get("description")),
                           schema=json.dumps(schema, ensure_ascii=False),
                           content=(background + "\n" if background else "") + content)
    model = model_name(ctx)
    result = await complete(ctx, [ChatMessage("user", prompt)], model)
    parsed = json_reply(result.content, dict)
    parsed = parsed if isinstance(parsed, dict) else {}
    values: dict[str, Any] = {}
    success = bool(parsed) or not keys
    for field in keys:
        key = field["key"]
        value = parsed.get(key)
        enum = schema["properties"][key].get("enum")
        if value in (None, "") or (enum and to_text(value) not in enum):
            if field.get("required"):
                success = False
            value = field.get("defaultValue")
        values[key] = coerce(value, str(field.get("valueType") or "string")) if value is not None else ""
    fields = json.dumps(values, ensure_ascii=False)
    return NodeResult(outputs={"success": success, "fields": fields, **values}, usage=result.usage,
                      response={"totalPoints": 0, "model": result.model or model, "query": content,
                                "extractDescription": to_text(ctx.get("description")), "extractResult": values,
                                "contextTotalLen": len(history) + 1})


def check(node: Node, workflow: Workflow) -> list[str]:
    keys = [k["key"] for k in extract_keys(node.value("extractKeys"))]
    return [f"field {k!r} is listed twice" for k in sorted({k for k in keys if keys.count(k) > 1})]


SPEC = NodeSpec(kind="contentExtract", run=run, check=check, description="structured extraction")
