"""userSelect and formInput: choosing, reading a form, and a pause then resume on the executor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.nodes.interactive import check_form, choose, options, read_form
from zhiku.apps.workflow.events import AnswerText, InteractionRequested, WorkflowFinished
from zhiku.apps.workflow.executor import run_workflow
from zhiku.apps.workflow.graph import Workflow, parse_node, parse_workflow
from zhiku.apps.workflow.node import ChatDeps, RunEnv
from zhiku.auth.service import Principal

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"
FIELDS = [{"key": "size", "valueType": "string", "required": True, "maxLength": 5},
          {"key": "cups", "valueType": "number", "defaultValue": 1}]


def test_choose_by_value_or_key() -> None:
    choices = options([{"key": "a", "value": "Yes"}, {"key": "b", "value": "No"}, {"value": "keyless"}])
    assert choices == [{"key": "a", "value": "Yes"}, {"key": "b", "value": "No"}]
    assert choose(" No ", choices) == choices[1] and choose("a", choices) == choices[0]
    assert choose("Maybe", choices) is None and choose(None, choices) is None and choose("", choices) is None


def test_read_form_types_defaults_and_required_fields() -> None:
    assert read_form('{"size": "enormous", "cups": "3"}', FIELDS) == {"size": "enorm", "cups": 3}
    assert read_form('{"size": "S"}', FIELDS) == {"size": "S", "cups": 1}
    for reply in ('{"cups": 2}', '{"size": ""}', "not json", "[1]", None, '{"size": "' + "x" * 200_000 + '"}'):
        assert read_form(reply, FIELDS) is None


def test_checks_name_empty_and_duplicate_fields() -> None:
    node = parse_node({"nodeId": "f", "flowNodeType": "formInput", "inputs": [
        {"key": "userInputForms", "value": [{"key": "a"}, {"key": "a"}]}]}, 0)
    assert check_form(node, Workflow(nodes=(node,), edges=())) == ["form field 'a' is declared twice"]


async def run(resume: dict | None = None, reply: str | None = None) -> list[Any]:
    deps = ChatDeps(sessions=None, embedders=None, chat_model=None, default_model="m")  # type: ignore[arg-type]
    env = RunEnv(deps=deps, principal=Principal(kind="session", team_id=1, user_id=1, role="root"),
                 query=reply or "I want a drink", resume_reply=reply)
    graph = parse_workflow(json.loads((FIXTURES / "interactive_order.json").read_text(encoding="utf-8")))
    return [e async for e in run_workflow(graph, REGISTRY, env, resume=resume)]


def text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, AnswerText))


async def test_pause_select_then_form_then_answer() -> None:
    first = await run()
    asked = next(e.interactive for e in first if isinstance(e, InteractionRequested))
    assert text(first) == "Welcome!" and asked["type"] == "userSelect" and asked["entryNodeIds"] == ["sel"]
    assert asked["params"] == {"description": "Hot or cold?", "userSelectOptions": [
        {"key": "hot", "value": "Hot"}, {"key": "cold", "value": "Cold"}]}
    assert isinstance(first[-1], WorkflowFinished) and first[-1].interactive == asked and first[-1].error is None
    again = await run(asked, "Lukewarm")  # no such option: asked again
    assert next(e.interactive for e in again if isinstance(e, InteractionRequested))["type"] == "userSelect"
    hot = await run(asked, "Hot")
    assert text(hot) == "Brewing a hot drink for: I want a drink"  # the first turn's outputs restored
    cold = await run(asked, "Cold")
    form = next(e.interactive for e in cold if isinstance(e, InteractionRequested))
    assert form["type"] == "userInput" and [f["key"] for f in form["params"]["inputForm"]] == ["size", "cups"]
    done = await run(form, '{"size": "large", "cups": 2}')
    assert text(done) == "Cold: 2 x large" and done[-1].interactive is None
    item = next(r for r in done[-1].response_data if r["moduleType"] == "formInput")
    assert item["formInputResult"] == {"size": "large", "cups": 2}
