"""FastGPT's app JSON in and out (FASTGPT-FORMATS.md §5). Pure.

:func:`unwrap` takes any of the three forms a user has — an exported app (``nodes``/``edges``/
``chatConfig``), a template file (``{name, …, workflow: {…}}``) or an app document with ``modules`` —
and returns the graph as stored, with the name the file gives. :func:`export_workflow` gives FastGPT's
export shape back with dataset ids and secrets removed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from zhiku.apps.workflow.graph import as_list, MAX_WORKFLOW_CHARS
from zhiku.errors import InvalidInput, PayloadTooLarge

# Input keys whose values are secrets or a team's own ids, never exported.
SECRET_INPUT_KEYS = frozenset({"system_input_config", "system_header_secret"})


@dataclass(frozen=True)
class Unwrapped:
    graph: dict[str, Any]  # {"nodes", "edges", "chatConfig"}
    name: str | None  # the name field of a template or app document
    intro: str
    form: str  # "export", "template" or "modules"


def check_size(raw: Any) -> None:
    size = len(json.dumps(raw, ensure_ascii=False, separators=(",", ":")))
    if size > MAX_WORKFLOW_CHARS:
        raise PayloadTooLarge(f"the workflow JSON is {size} characters; at most {MAX_WORKFLOW_CHARS} are taken",
                              code="workflow_too_large")


def unwrap(raw: Any) -> Unwrapped:
    if not isinstance(raw, dict):
        raise InvalidInput("an app file is a JSON object (FastGPT's export, a template or an app with modules)",
                           code="invalid_workflow")
    check_size(raw)
    name = raw.get("name") if isinstance(raw.get("name"), str) else None
    intro = raw.get("intro") if isinstance(raw.get("intro"), str) else ""
    if isinstance(raw.get("workflow"), dict):
        inner = raw["workflow"]
        form = "template"
    elif "nodes" in raw:
        inner, form = raw, "export"
    elif "modules" in raw:
        inner, form = raw, "modules"
    else:
        raise InvalidInput("no workflow found: expected nodes and edges, modules, or a template's workflow",
                           code="invalid_workflow")
    nodes = inner.get("nodes", inner.get("modules"))
    graph = {"nodes": nodes, "edges": inner.get("edges") or [], "chatConfig": inner.get("chatConfig") or
             raw.get("chatConfig") or {}}
    return Unwrapped(graph=graph, name=name, intro=intro, form=form)


def export_workflow(graph: dict[str, Any]) -> dict[str, Any]:
    """``{nodes, edges, chatConfig}`` with every datasetSearchNode's datasets emptied and secret inputs
    (``system_input_config``, ``system_header_secret``, secret HTTP headers) cleared."""
    nodes = copy.deepcopy(as_list(graph.get("nodes")))
    for node in nodes:
        if not isinstance(node, dict):
            continue
        for item in as_list(node.get("inputs")):
            if not isinstance(item, dict):
                continue
            if node.get("flowNodeType") == "datasetSearchNode" and item.get("key") == "datasets":
                item["value"] = []
            elif item.get("key") in SECRET_INPUT_KEYS:
                item.pop("value", None)
            elif item.get("key") == "system_httpHeader" and isinstance(item.get("value"), list):
                item["value"] = [h for h in item["value"] if not (isinstance(h, dict) and h.get("type") == "secret")]
    return {"nodes": nodes, "edges": copy.deepcopy(as_list(graph.get("edges"))),
            "chatConfig": copy.deepcopy(graph.get("chatConfig") or {})}
