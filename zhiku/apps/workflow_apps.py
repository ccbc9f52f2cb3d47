"""Workflow apps: a simple app compiled to a workflow, saving a checked graph, FastGPT import/export.

Every app runs as a workflow: a simple app's form (datasets, search settings, prompt, model) is compiled
by :func:`simple_workflow` into workflowStart → datasetSearchNode → chatNode at each turn, so editing the
form needs no migration of stored graphs. A workflow app keeps its graph in ``apps.workflow`` as saved,
checked by :func:`check_graph` first. These functions are what the API, the CLI and the web UI call.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.nodes.dataset_search import dataset_ids
from zhiku.apps.schemas import AppPublic, ChatConfig
from zhiku.apps.service import app_datasets_of, get_app, load_app
from zhiku.apps.workflow.formats import check_size, export_workflow, unwrap
from zhiku.apps.workflow.graph import as_list, parse_workflow, Workflow
from zhiku.apps.workflow.validate import validate_workflow
from zhiku.auth.service import Principal
from zhiku.db.models import App
from zhiku.errors import Conflict, InvalidInput, NotFound
from zhiku.knowledge.datasets import load_dataset
from zhiku.retrieval.settings import SearchSettings
from zhiku.safetext import check_name, clean_json

WORKFLOW_TYPE = "workflow"  # FastGPT's "advanced"
SEARCH_NODE_NAME = "Dataset search"
CHAT_NODE_NAME = "AI chat"
_FASTGPT_MODES = {"embedding": "embedding", "fullText": "fullTextRecall", "mixed": "mixedRecall"}


def _input(key: str, value: Any, value_type: str = "string", render: str = "input") -> dict[str, Any]:
    return {"key": key, "renderTypeList": [render], "valueType": value_type, "label": key, "value": value}


def _output(key: str, value_type: str) -> dict[str, Any]:
    return {"id": key, "key": key, "valueType": value_type, "type": "static", "label": key}


def _edge(source: str, target: str) -> dict[str, str]:
    return {"source": source, "sourceHandle": f"{source}-source-right", "target": target,
            "targetHandle": f"{target}-target-left"}


def simple_chat_config(chat_config: dict[str, Any]) -> dict[str, Any]:
    """A simple app's chat settings as FastGPT's chatConfig (variables with ``list`` options)."""
    variables = [{"key": v.get("key"), "label": v.get("label"), "type": v.get("type", "input"),
                  "required": bool(v.get("required")), "description": v.get("description", ""),
                  "valueType": "number" if v.get("type") == "numberInput" else "string",
                  "defaultValue": v.get("defaultValue", ""),
                  "list": [{"label": o, "value": o} for o in as_list(v.get("options"))]}
                 for v in as_list(chat_config.get("variables")) if isinstance(v, dict)]
    config = {"welcomeText": chat_config.get("welcomeText", ""), "variables": variables}
    if chat_config.get("openingQuestions"):
        config["openingQuestions"] = list(chat_config["openingQuestions"])
    return config


def simple_workflow(app: App, dataset_id_list: list[int]) -> dict[str, Any]:
    """The workflow a simple app runs as."""
    search = SearchSettings.from_dict(app.search, strict=False)
    nodes: list[dict[str, Any]] = [
        {"nodeId": "userGuide", "flowNodeType": "userGuide", "name": "System config", "inputs": [], "outputs": []},
        {"nodeId": "workflowStartNodeId", "flowNodeType": "workflowStart", "name": "Start",
         "inputs": [_input("userChatInput", "", render="textarea")],
         "outputs": [_output("userChatInput", "string")]},
    ]
    chat_inputs = [
        _input("model", app.model or "", render="settingLLMModel"),
        _input("temperature", None if app.temperature is None else app.temperature * 5, "number", "hidden"),
        _input("maxToken", app.max_tokens, "number", "hidden"),
        _input("systemPrompt", app.system_prompt, render="textarea"),
        _input("history", 6, "chatHistory", "numberInput"),
        _input("userChatInput", ["workflowStartNodeId", "userChatInput"], render="reference"),
    ]
    edges = []
    previous = "workflowStartNodeId"
    if dataset_id_list:
        nodes.append({
            "nodeId": "datasetSearch", "flowNodeType": "datasetSearchNode", "name": SEARCH_NODE_NAME,
            "showStatus": True,
            "inputs": [_input("datasets", [{"datasetId": i} for i in dataset_id_list], "selectDataset",
                              "selectDataset"),
                       _input("similarity", search.similarity, "number", "hidden"),
                       _input("limit", search.max_tokens, "number", "hidden"),
                       _input("searchMode", _FASTGPT_MODES[search.mode], "string", "hidden"),
                       _input("embeddingWeight", search.embedding_weight, "number", "hidden"),
                       _input("usingReRank", search.rerank, "boolean", "hidden"),
                       _input("rerankWeight", search.rerank_weight, "number", "hidden"),
                       _input("datasetSearchUsingExtensionQuery", False, "boolean", "hidden"),
                       _input("userChatInput", ["workflowStartNodeId", "userChatInput"], render="reference")],
            "outputs": [_output("quoteQA", "datasetQuote")]})
        chat_inputs.append(_input("quoteQA", ["datasetSearch", "quoteQA"], "datasetQuote", "settingDatasetQuotePrompt"))
        edges.append(_edge(previous, "datasetSearch"))
        previous = "datasetSearch"
    nodes.append({"nodeId": "chatNode", "flowNodeType": "chatNode", "name": CHAT_NODE_NAME, "showStatus": True,
                  "inputs": chat_inputs,
                  "outputs": [_output("answerText", "string"), _output("history", "chatHistory")]})
    edges.append(_edge(previous, "chatNode"))
    return {"nodes": nodes, "edges": edges, "chatConfig": simple_chat_config(app.chat_config or {})}


async def app_graph(session: AsyncSession, app: App) -> dict[str, Any]:
    """The graph an app runs: its saved workflow, or its simple form compiled."""
    if app.workflow is not None:
        return app.workflow
    return simple_workflow(app, [d.id for d in await app_datasets_of(session, app.id)])


def check_graph(raw: Any) -> tuple[dict[str, Any], Workflow]:
    """A graph ``{nodes, edges, chatConfig}`` checked without the database: its shape, size, kinds,
    edges, references and types. Kinds Zhiku does not run are named."""
    check_size(raw)
    workflow = parse_workflow(raw)
    unknown = sorted({n.kind for n in workflow.nodes if REGISTRY.get(n.kind) is None})
    if unknown:
        names = ", ".join(f"{k!r}" for k in unknown)
        nodes = [n for n in workflow.nodes if REGISTRY.get(n.kind) is None]
        raise InvalidInput(f"this app uses node kinds Zhiku does not run: {names} — in "
                           + ", ".join(n.label for n in nodes[:10]), code="workflow_unsupported_node",
                           detail={"kinds": unknown, "nodes": [{"nodeId": n.node_id, "name": n.name,
                                                                 "kind": n.kind} for n in nodes]})
    validate_workflow(workflow, REGISTRY)
    # stored as given, less what PostgreSQL's JSONB cannot hold (NUL, lone surrogates)
    return clean_json({"nodes": raw.get("nodes", raw.get("modules")), "edges": raw.get("edges") or [],
                       "chatConfig": workflow.chat_config}), workflow


async def _check_datasets(session: AsyncSession, principal: Principal, workflow: Workflow) -> None:
    for node in workflow.nodes:
        if node.kind != "datasetSearchNode":
            continue
        for dataset_id in dataset_ids(node.value("datasets")):
            try:
                await load_dataset(session, principal, dataset_id)
            except NotFound:
                raise InvalidInput(f"{node.label}: dataset {dataset_id} does not exist",
                                   code="dataset_not_found") from None


def _chat_config_for_app(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a workflow's chatConfig the app's own chat settings hold (welcome text, variables)."""
    variables = []
    for v in as_list(config.get("variables")):
        if not isinstance(v, dict):
            continue
        options = [str(o.get("value", o.get("label"))) if isinstance(o, dict) else str(o)
                   for o in as_list(v.get("list")) or as_list(v.get("enums"))]
        variables.append({"key": v.get("key"), "label": v.get("label") or v.get("key"),
                          "type": v.get("type") if v.get("type") in ("input", "textarea", "numberInput", "select")
                          else "input", "required": bool(v.get("required")),
                          "description": str(v.get("description") or ""),
                          "defaultValue": "" if v.get("defaultValue") is None else str(v.get("defaultValue")),
                          "options": [o for o in options if o]})
    kept = []
    for variable in variables:
        try:
            ChatConfig.model_validate({"variables": [variable]})
            kept.append(variable)
        except ValidationError:
            continue
    welcome = config.get("welcomeText") if isinstance(config.get("welcomeText"), str) else ""
    try:
        return ChatConfig.model_validate({"welcomeText": welcome, "variables": kept}).stored()
    except ValidationError:
        return ChatConfig.model_validate({"variables": kept}).stored()


async def get_workflow(session: AsyncSession, principal: Principal, app_id: int) -> dict[str, Any]:
    """The app's graph as stored (a simple app's compiled one), with its type."""
    app = await load_app(session, principal, app_id)
    return {"appId": app.id, "type": app.type, **(await app_graph(session, app))}


async def save_workflow(session: AsyncSession, principal: Principal, app_id: int, raw: Any) -> dict[str, Any]:
    """Check and store a graph on an app; the app becomes a workflow app."""
    app = await load_app(session, principal, app_id)
    graph, workflow = check_graph(raw if isinstance(raw, dict) else None)
    await _check_datasets(session, principal, workflow)
    app.workflow = graph
    app.type = WORKFLOW_TYPE
    app.chat_config = _chat_config_for_app(workflow.chat_config)
    app.updated_at = func.now()
    await session.commit()
    return await get_workflow(session, principal, app_id)


async def import_workflow_app(session: AsyncSession, principal: Principal, raw: Any,
                              name: str | None = None) -> AppPublic:
    """A new workflow app from a FastGPT file (export, template or ``modules`` app), named ``name``, else
    the file's name. Every problem, unknown node kinds first, is an error naming its node."""
    unwrapped = unwrap(raw)
    if not (name or unwrapped.name or "").strip():
        raise InvalidInput("the app needs a name: the file has none, so pass one", code="name_required")
    try:
        app_name = check_name(name or unwrapped.name or "")
    except ValueError as exc:
        raise InvalidInput(f"the app name {exc}", code="invalid_name") from None
    if len(app_name) > 200:
        raise InvalidInput("an app name has at most 200 characters", code="name_too_long")
    graph, workflow = check_graph(unwrapped.graph)
    await _check_datasets(session, principal, workflow)
    app = App(team_id=principal.team_id, name=app_name, type=WORKFLOW_TYPE, workflow=graph, search={},
              chat_config=_chat_config_for_app(workflow.chat_config))
    session.add(app)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"an app named {app_name!r} already exists", code="app_exists") from None
    return await get_app(session, principal, app.id)


async def export_app(session: AsyncSession, principal: Principal, app_id: int) -> dict[str, Any]:
    """FastGPT's export JSON (``nodes``, ``edges``, ``chatConfig``) without dataset ids or secrets; a
    simple app exports the workflow it runs as."""
    app = await load_app(session, principal, app_id)
    return export_workflow(await app_graph(session, app))
