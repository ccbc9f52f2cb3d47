"""The executor on graphs of cheap nodes and test kinds: branches and skip propagation, concurrent
branches, answer order, catch-error branches, step and time limits, interactive pause and resume."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.nodes.dataset_concat import concat_quotes
from zhiku.apps.nodes.if_else import OPERATORS, evaluate
from zhiku.apps.workflow.events import (
    AnswerText,
    InteractionRequested,
    NodeResponse,
    NodeStatus,
    VariablesUpdated,
    WorkflowFinished,
)
from zhiku.apps.workflow.executor import Limits, run_workflow
from zhiku.apps.workflow.graph import parse_workflow
from zhiku.apps.workflow.node import ChatDeps, NodeContext, NodeResult, NodeSpec, Registry, RunEnv
from zhiku.auth.service import Principal
from zhiku.errors import UpstreamError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"
START = {"nodeId": "start", "flowNodeType": "workflowStart", "name": "Start",
         "inputs": [{"key": "userChatInput", "valueType": "string"}],
         "outputs": [{"id": "userChatInput", "key": "userChatInput", "valueType": "string"}]}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def env(query: str = "hello", variables: dict[str, Any] | None = None) -> RunEnv:
    deps = ChatDeps(sessions=None, embedders=None, chat_model=None, default_model="m")  # type: ignore[arg-type]
    return RunEnv(deps=deps, principal=Principal(kind="session", team_id=1, user_id=1, role="root"), query=query,
                  variables=dict(variables or {}))


async def run(graph: dict, run_env: RunEnv | None = None, registry: Registry = REGISTRY,
              limits: Limits = Limits(), resume: dict | None = None) -> list[Any]:
    return [e async for e in run_workflow(parse_workflow(graph), registry, run_env or env(), limits, resume=resume)]


def answer_text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, AnswerText))


def finished(events: list[Any]) -> WorkflowFinished:
    assert isinstance(events[-1], WorkflowFinished)
    return events[-1]


def node(node_id: str, kind: str, inputs: list | None = None, outputs: list | None = None, **extra: Any) -> dict:
    return {"nodeId": node_id, "flowNodeType": kind, "name": node_id, "inputs": inputs or [],
            "outputs": outputs or [], **extra}


def edge(source: str, target: str, handle: str = "right") -> dict:
    return {"source": source, "target": target, "sourceHandle": f"{source}-source-{handle}",
            "targetHandle": f"{target}-target-left"}


def answer(node_id: str, text: str) -> dict:
    return node(node_id, "answerNode", [{"key": "text", "valueType": "any", "value": text}])


@pytest.mark.parametrize(("query", "expected", "ran", "skipped"), [
    ("a question over ten characters", "[BIG:a question over ten characters] IF", "big", {"mid", "small"}),
    ("mid", "[MID:mid] ELSE IF 1", "mid", {"big", "small"}),
    ("xyz", "[SMALL:xyz] ELSE", "small", {"big", "mid"}),
])
async def test_if_else_branches_skip_the_others_and_the_join_still_runs(query, expected, ran, skipped) -> None:
    events = await run(fixture("branches_join.json"), env(query))
    assert answer_text(events) == expected
    done = finished(events)
    assert done.error is None
    nodes = [item["nodeId"] for item in done.response_data]
    assert ran in nodes and "join" in nodes and not skipped & set(nodes)
    assert next(i for i in done.response_data if i["nodeId"] == "judge")["ifElseResult"] == expected.split("] ")[1]
    assert [e for e in events if isinstance(e, AnswerText)][0].fast  # an answerNode is a fastAnswer


def test_every_fastgpt_condition_operator() -> None:
    cases = [("equalTo", " a ", "a", True), ("notEqual", "a", "b", True), ("isEmpty", [], None, True),
             ("isEmpty", " ", None, True), ("isNotEmpty", {"a": 1}, None, True), ("isEmpty", 0, None, False),
             ("include", "coffee", "off", True), ("include", ["x", "y"], "y", True), ("notInclude", "tea", "off", True),
             ("startWith", "coffee", "co", True), ("endWith", "coffee", "ee", True), ("reg", "abc123", "/\\d+/", True),
             ("reg", "abc", "[", False), ("greaterThan", "5", 3, True), ("greaterThanOrEqualTo", 3, "3", True),
             ("lessThan", 2, 3, True), ("lessThanOrEqualTo", "x", 3, False), ("lengthEqualTo", "abc", 3, True),
             ("lengthNotEqualTo", [1], 2, True), ("lengthGreaterThan", "abcd", 3, True),
             ("lengthGreaterThanOrEqualTo", [1, 2], 2, True), ("lengthLessThan", "", 1, True),
             ("lengthLessThanOrEqualTo", "ab", 1, False)]
    assert {c[0] for c in cases} == set(OPERATORS)
    for operator, left, right, expected in cases:
        groups = [{"condition": "AND", "list": [{"variable": ["n", "v"], "condition": operator, "value": right}]}]
        assert evaluate(groups, lambda *_: left, {}) == ("IF" if expected else "ELSE"), (operator, left, right)
    # OR needs one, AND all, no operator is false, a reference on the right
    lookup = {("n", "a"): 1, ("n", "b"): 2}.get
    groups = [{"condition": "AND", "list": [{"variable": ["n", "a"], "condition": "equalTo", "value": 1},
                                            {"variable": ["n", "b"], "condition": ""}]},
              {"condition": "OR", "list": [{"variable": ["n", "a"], "condition": "equalTo", "value": 9},
                                           {"variable": ["n", "b"], "condition": "greaterThan",
                                            "value": ["n", "a"], "valueType": "reference"}]}]
    assert evaluate(groups, lambda n, o: lookup((n, o)), {}) == "ELSE IF 1"


def _barrier_kind() -> tuple[NodeSpec, list[str]]:
    arrived: list[str] = []
    both = asyncio.Event()

    async def meet(ctx: NodeContext) -> NodeResult:
        arrived.append(ctx.node.node_id)
        if len(arrived) == 2:
            both.set()
        await both.wait()  # only returns if the other branch runs at the same time
        return NodeResult(outputs={"done": ctx.node.node_id})

    return NodeSpec(kind="test.barrier", run=meet), arrived


async def test_independent_branches_run_concurrently() -> None:
    spec, arrived = _barrier_kind()
    graph = {"nodes": [START, node("left", "test.barrier"), node("right", "test.barrier"),
                       answer("end", "{{$left.done$}}+{{$right.done$}}")],
             "edges": [edge("start", "left"), edge("start", "right"), edge("left", "end"), edge("right", "end")]}
    events = await run(graph, registry=REGISTRY.with_specs(spec), limits=Limits(max_seconds=30))
    assert finished(events).error is None  # run one after the other, the barrier would never open
    assert sorted(arrived) == ["left", "right"] and answer_text(events) == "left+right"


async def test_answers_come_out_in_node_order_even_when_a_later_branch_is_faster() -> None:
    first_may_speak = asyncio.Event()

    async def slow(ctx: NodeContext) -> NodeResult:
        await first_may_speak.wait()
        for piece in ("A1 ", "A2 "):
            ctx.stream_answer(piece)
        return NodeResult()

    async def fast(ctx: NodeContext) -> NodeResult:
        for piece in ("B1 ", "B2 "):
            ctx.stream_answer(piece)
        first_may_speak.set()  # the slow branch speaks only after this one has said everything
        return NodeResult()

    registry = REGISTRY.with_specs(NodeSpec(kind="test.slow", run=slow), NodeSpec(kind="test.fast", run=fast))
    graph = {"nodes": [START, node("a", "test.slow"), node("b", "test.fast")],
             "edges": [edge("start", "a"), edge("start", "b")]}
    events = await run(graph, registry=registry)
    assert [e.text for e in events if isinstance(e, AnswerText)] == ["A1 ", "A2 ", "B1 ", "B2 "]


def _failing(kind: str = "test.boom") -> NodeSpec:
    async def boom(ctx: NodeContext) -> NodeResult:
        raise UpstreamError("model upstream said 500", status=500)

    return NodeSpec(kind=kind, run=boom)


async def test_a_failing_node_takes_its_catch_error_branch() -> None:
    graph = {"nodes": [START, node("risky", "test.boom", catchError=True,
                                   outputs=[{"id": "system_error_text", "key": "system_error_text", "type": "error",
                                             "valueType": "string"}]),
                       answer("ok", "fine"), answer("sorry", "Sorry: {{$risky.system_error_text$}}")],
             "edges": [edge("start", "risky"), edge("risky", "ok"),
                       {"source": "risky", "target": "sorry", "sourceHandle": "risky-source_catch-right",
                        "targetHandle": "sorry-target-left"}]}
    events = await run(graph, registry=REGISTRY.with_specs(_failing()))
    assert answer_text(events) == "Sorry: model upstream said 500"
    done = finished(events)
    assert done.error is None
    assert next(i for i in done.response_data if i["nodeId"] == "risky")["error"] == "model upstream said 500"


async def test_without_catch_error_the_branch_stops_the_others_finish_and_the_run_reports_it() -> None:
    graph = {"nodes": [START, node("risky", "test.boom"), answer("after", "never"), answer("other", "still here")],
             "edges": [edge("start", "risky"), edge("risky", "after"), edge("start", "other")]}
    events = await run(graph, registry=REGISTRY.with_specs(_failing()))
    assert answer_text(events) == "still here"
    done = finished(events)
    assert done.error is not None and done.error.status == 500 and "said 500" in done.error.message
    assert "after" not in {i["nodeId"] for i in done.response_data}


async def test_a_node_bug_is_a_visible_node_error_naming_the_node() -> None:
    async def buggy(ctx: NodeContext) -> NodeResult:
        return {}["missing"]  # type: ignore[return-value]

    graph = {"nodes": [START, node("bug", "test.bug")], "edges": [edge("start", "bug")]}
    done = finished(await run(graph, registry=REGISTRY.with_specs(NodeSpec(kind="test.bug", run=buggy))))
    assert done.error is not None and done.error.code == "node_failed"
    assert 'node "bug" (test.bug, id bug)' in done.error.message


async def test_an_endless_cycle_stops_at_the_step_limit() -> None:
    events = await run(fixture("endless_cycle.json"), limits=Limits(max_steps=40))
    done = finished(events)
    assert done.error is not None and done.error.code == "workflow_step_limit"
    runs = [i["nodeId"] for i in done.response_data]
    assert runs.count("again") >= 10 and "never" not in runs  # the cycle ran, round after round


async def test_a_run_past_its_time_limit_stops_with_a_clear_error() -> None:
    cancelled = []

    async def forever(ctx: NodeContext) -> NodeResult:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(ctx.node.node_id)
        return NodeResult()

    graph = {"nodes": [START, node("wait", "test.forever")], "edges": [edge("start", "wait")]}
    done = finished(await run(graph, registry=REGISTRY.with_specs(NodeSpec(kind="test.forever", run=forever)),
                              limits=Limits(max_seconds=0.2)))
    assert done.error is not None and done.error.code == "workflow_timeout" and cancelled == ["wait"]


async def test_closing_the_stream_cancels_running_nodes() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever(ctx: NodeContext) -> NodeResult:
        ctx.stream_answer("partial")
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return NodeResult()

    graph = {"nodes": [START, node("wait", "test.forever")], "edges": [edge("start", "wait")]}
    stream = run_workflow(parse_workflow(graph), REGISTRY.with_specs(NodeSpec(kind="test.forever", run=forever)),
                          env())
    async for event in stream:
        if isinstance(event, AnswerText):
            break
    await stream.aclose()
    assert started.is_set() and cancelled.is_set()


async def test_interactive_node_pauses_and_the_next_turn_resumes_there() -> None:
    async def ask(ctx: NodeContext) -> NodeResult:
        options = [{"key": "yes", "value": "Yes"}, {"key": "no", "value": "No"}]
        if not ctx.resumed:
            return NodeResult(interactive={"type": "userSelect",
                                           "params": {"description": "Go on?", "userSelectOptions": options}})
        chosen = next(o for o in options if o["value"] == ctx.env.resume_reply)
        return NodeResult(outputs={"selectResult": chosen["value"]},
                          skip_handles=tuple(o["key"] for o in options if o is not chosen))

    registry = REGISTRY.with_specs(NodeSpec(kind="test.ask", run=ask))
    graph = {"nodes": [START, answer("hi", "Hi."), node("ask", "test.ask", outputs=[
                 {"id": "selectResult", "key": "selectResult", "valueType": "string"}]),
                       answer("yes", "You chose {{$ask.selectResult$}} after {{$start.userChatInput$}}"),
                       answer("no", "Stopped.")],
             "edges": [edge("start", "hi"), edge("hi", "ask"), edge("ask", "yes", "yes"), edge("ask", "no", "no")]}
    first = await run(graph, env("begin"), registry=registry)
    paused = [e for e in first if isinstance(e, InteractionRequested)]
    assert answer_text(first) == "Hi." and len(paused) == 1
    payload = paused[0].interactive
    assert payload["type"] == "userSelect" and payload["entryNodeIds"] == ["ask"]
    assert {"nodeId": "start", "key": "userChatInput", "value": "begin"} in payload["nodeOutputs"]
    stored = json.loads(json.dumps(payload))  # what a chat record keeps
    resumed_env = env("Yes")
    resumed_env.resume_reply = "Yes"
    second = await run(graph, resumed_env, registry=registry, resume=stored)
    assert answer_text(second) == "You chose Yes after begin"
    assert finished(second).error is None and finished(second).interactive is None


async def test_variable_update_text_editor_and_node_status() -> None:
    graph = copy.deepcopy(fixture("extract_vars.json"))
    keep = {"448745", "setvars", "plan", "reply"}
    graph["nodes"] = [n for n in graph["nodes"] if n["nodeId"] in keep]
    graph["nodes"][1]["inputs"][0]["value"][0]["value"] = ["", "Lisbon"]  # a literal instead of the extraction
    graph["nodes"][1]["inputs"][0]["value"][0]["renderType"] = "input"
    plan = next(n for n in graph["nodes"] if n["nodeId"] == "plan")
    next(i for i in plan["inputs"] if i["key"] == "days")["value"] = "5"
    graph["edges"] = [edge("448745", "setvars"), edge("setvars", "plan"), edge("plan", "reply")]
    graph["nodes"][2]["showStatus"] = True
    events = await run(graph, env("trip", {"city": "", "visits": 0}))
    assert answer_text(events) == "Trip to Lisbon for 5 days"
    updates = [e.variables for e in events if isinstance(e, VariablesUpdated)]
    assert updates == [{"city": "Lisbon", "visits": 1}]
    assert finished(events).new_variables == {"city": "Lisbon", "visits": 1}
    assert any(isinstance(e, NodeStatus) for e in events)
    items = [e.item for e in events if isinstance(e, NodeResponse)]
    assert [i["moduleType"] for i in items] == ["workflowStart", "variableUpdate", "textEditor", "answerNode"]
    assert items[2]["textOutput"] == "Trip to Lisbon for 5 days" and items[1]["updateVarResult"] == ["Lisbon", 1]


def test_dataset_concat_fuses_by_rank_and_keeps_to_the_budget() -> None:
    a = [{"id": "1", "q": "one"}, {"id": "2", "q": "two"}, {"id": "3", "q": "three"}]
    b = [{"id": "2", "q": "two"}, {"id": "4", "q": "four"}]
    assert [q["id"] for q in concat_quotes([a, b], 3000)] == ["2", "1", "4", "3"]
    assert [q["id"] for q in concat_quotes([a, b], 1)] == ["2"]  # always one, then the budget
