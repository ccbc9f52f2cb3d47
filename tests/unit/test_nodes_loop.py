"""loop / loopStart / loopEnd on the executor: the body per element, results collected, variables carried,
body answers streamed, limits and failures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.nodes.loop import MAX_ITEMS, body_workflow, check_child, check_loop, items_of
from zhiku.apps.workflow.events import AnswerText, VariablesUpdated, WorkflowFinished
from zhiku.apps.workflow.executor import run_workflow
from zhiku.apps.workflow.graph import parse_workflow
from zhiku.apps.workflow.node import ChatDeps, RunEnv
from zhiku.auth.service import Principal

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"


def graph() -> dict:
    return json.loads((FIXTURES / "loop_items.json").read_text(encoding="utf-8"))


async def run(raw: dict, variables: dict[str, Any]) -> tuple[list[Any], WorkflowFinished]:
    deps = ChatDeps(sessions=None, embedders=None, chat_model=None, default_model="m")  # type: ignore[arg-type]
    env = RunEnv(deps=deps, principal=Principal(kind="session", team_id=1, user_id=1, role="root"), query="q",
                 variables=dict(variables))
    events = [e async for e in run_workflow(parse_workflow(raw), REGISTRY, env)]
    assert isinstance(events[-1], WorkflowFinished)
    return events, events[-1]


def test_items_drop_falsy_values_and_wrap_a_scalar() -> None:
    assert items_of(["a", "", None, 0, "b", [1]]) == ["a", "b", [1]]
    assert items_of("x") == ["x"] and items_of(None) == []


def test_the_body_is_the_loops_children_with_their_edges_only() -> None:
    workflow = parse_workflow(graph())
    body, start = body_workflow(workflow.by_id["loop"], workflow)
    assert start == "ls" and {(e.source, e.target) for e in body.edges} == {("ls", "te"), ("te", "vu"),
                                                                            ("vu", "ans"), ("ans", "le")}
    assert check_loop(workflow.by_id["loop"], workflow) == [] and check_child(workflow.by_id["le"], workflow) == []
    assert check_child(workflow.by_id["after"], workflow) == ["it is not inside a loop node"]


async def test_each_element_runs_the_body_and_loop_end_values_are_collected() -> None:
    events, done = await run(graph(), {"items": ["apple", "", "pear"], "last": ""})
    assert done.error is None
    text = "".join(e.text for e in events if isinstance(e, AnswerText))
    assert text == '[1. apple for q][2. pear for q]Done: ["1. apple for q", "2. pear for q"] last=2. pear for q'
    loop = next(r for r in done.response_data if r["moduleType"] == "loop")
    assert loop["loopResult"] == ["1. apple for q", "2. pear for q"] and loop["loopInput"] == ["apple", "pear"]
    assert [d["moduleType"] for d in loop["loopDetail"]].count("textEditor") == 2
    assert done.new_variables["last"] == "2. pear for q"
    assert [e.variables["last"] for e in events if isinstance(e, VariablesUpdated)] == ["1. apple for q",
                                                                                        "2. pear for q"]
    # the body's nodes report inside the loop, not as top-level responses
    assert [r["moduleType"] for r in done.response_data] == ["workflowStart", "loop", "answerNode"]


async def test_a_loop_end_that_never_runs_adds_none() -> None:
    raw = graph()
    raw["edges"] = [e for e in raw["edges"] if e["target"] != "le"]  # FastGPT's loopTest.json has this shape
    _, done = await run(raw, {"items": ["a", "b"]})
    assert next(r for r in done.response_data if r["moduleType"] == "loop")["loopResult"] == [None, None]


async def test_too_many_items_and_a_failing_body_are_the_loops_error() -> None:
    _, done = await run(graph(), {"items": [str(i) for i in range(MAX_ITEMS + 1)]})
    assert done.error is not None and done.error.code == "loop_too_many_items"
    raw = copy.deepcopy(graph())
    te = next(n for n in raw["nodes"] if n["nodeId"] == "te")
    te["flowNodeType"] = "lafModule"  # a kind Zhiku does not run fails the first iteration
    _, done = await run(raw, {"items": ["a"]})
    assert done.error is not None and done.error.code == "workflow_unsupported_node"
    assert "iteration 1 failed" in done.error.message


def test_a_loop_without_loop_start_is_named() -> None:
    raw = graph()
    raw["nodes"] = [n for n in raw["nodes"] if n["nodeId"] != "ls"]
    raw["edges"] = [e for e in raw["edges"] if "ls" not in (e["source"], e["target"])]
    workflow = parse_workflow(raw)
    assert check_loop(workflow.by_id["loop"], workflow) == ["its body needs exactly one loopStart node (it has 0)"]
