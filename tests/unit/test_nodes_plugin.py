"""pluginInput / pluginOutput on the executor, and how pluginModule / appModule name their app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.nodes.plugin import app_id_of, check_module
from zhiku.apps.workflow.events import WorkflowFinished
from zhiku.apps.workflow.executor import run_workflow
from zhiku.apps.workflow.graph import Workflow, parse_node, parse_workflow
from zhiku.apps.workflow.node import ChatDeps, RunEnv
from zhiku.auth.service import Principal
from zhiku.errors import InvalidInput

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"


async def run_child(variables: dict) -> WorkflowFinished:
    deps = ChatDeps(sessions=None, embedders=None, chat_model=None, default_model="m")  # type: ignore[arg-type]
    env = RunEnv(deps=deps, principal=Principal(kind="session", team_id=1, user_id=1, role="root"), query="",
                 variables=variables)
    graph = parse_workflow(json.loads((FIXTURES / "plugin_child.json").read_text(encoding="utf-8")))
    events = [e async for e in run_workflow(graph, REGISTRY, env)]
    assert isinstance(events[-1], WorkflowFinished)
    return events[-1]


@pytest.mark.parametrize(("variables", "greeting"), [({"name": "Bo"}, "Hello, Bo!"), ({}, "Hello, stranger!")])
async def test_plugin_input_takes_the_callers_values_and_output_collects_the_result(variables: dict,
                                                                                    greeting: str) -> None:
    done = await run_child(variables)
    assert done.error is None
    output = next(r for r in done.response_data if r["moduleType"] == "pluginOutput")
    assert output["pluginOutput"] == {"greeting": greeting}


@pytest.mark.parametrize(("raw", "expected"), [({"pluginId": "42"}, 42), ({"pluginId": 7}, 7),
                                               ({"inputs": [{"key": "pluginId", "value": {"id": "9"}}]}, 9)])
def test_the_app_comes_from_plugin_id(raw: dict, expected: int) -> None:
    assert app_id_of(parse_node({"nodeId": "m", "flowNodeType": "appModule", **raw}, 0)) == expected


def test_a_module_without_an_app_is_named() -> None:
    node = parse_node({"nodeId": "m", "flowNodeType": "pluginModule", "pluginId": "community-fetchUrl"}, 0)
    with pytest.raises(InvalidInput):
        app_id_of(node)
    assert check_module(node, Workflow(nodes=(node,), edges=())) == [
        "it names no Zhiku app to run (pluginId 'community-fetchUrl')"]
