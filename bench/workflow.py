"""The workflow executor's own time per node, on a 20-node graph of cheap nodes.

The graph: workflowStart, then six rounds of textEditor → variableUpdate → ifElseNode (IF leads on), then
an answerNode: 20 nodes, no model or database. The baseline calls the same 20 node functions directly in
a plain loop, with inputs resolved once beforehand, so the difference is what the executor adds per node:
edge bookkeeping, input resolution (templates, references, value types), one task per node, ordered answer
release, the responseData item and the event queue. Baseline and executor runs alternate, after the same
warm-up; the table gives the median and best of the rounds.

    .venv/bin/python bench/workflow.py [--rounds 30] [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.workflow.executor import Limits, _Run, run_workflow
from zhiku.apps.workflow.graph import Workflow, parse_workflow
from zhiku.apps.workflow.node import ChatDeps, NodeContext, RunEnv
from zhiku.auth.service import Principal

ROUNDS_OF_THREE = 6


def graph() -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"nodeId": "start", "flowNodeType": "workflowStart", "name": "Start",
                                    "inputs": [{"key": "userChatInput", "valueType": "string"}],
                                    "outputs": [{"id": "userChatInput", "key": "userChatInput",
                                                 "valueType": "string"}]}]
    edges: list[dict[str, str]] = []
    previous, handle = "start", "start-source-right"
    for i in range(ROUNDS_OF_THREE):
        text, update, check = f"text{i}", f"set{i}", f"if{i}"
        nodes += [
            {"nodeId": text, "flowNodeType": "textEditor", "name": text, "inputs": [
                {"key": "system_addInputParam", "renderTypeList": ["addInputParam"], "valueType": "dynamic"},
                {"key": "q", "renderTypeList": ["reference"], "valueType": "string", "canEdit": True,
                 "value": ["start", "userChatInput"]},
                {"key": "system_textareaInput", "valueType": "string",
                 "value": f"round {i}: {{{{q}}}} / {{{{count}}}}"}],
             "outputs": [{"id": "system_text", "key": "system_text", "valueType": "string"}]},
            {"nodeId": update, "flowNodeType": "variableUpdate", "name": update, "inputs": [
                {"key": "updateList", "valueType": "any", "value": [
                    {"variable": ["VARIABLE_NODE_ID", "count"], "value": [text, "system_text"],
                     "valueType": "string", "renderType": "reference"}]}], "outputs": []},
            {"nodeId": check, "flowNodeType": "ifElseNode", "name": check, "inputs": [
                {"key": "ifElseList", "valueType": "any", "value": [{"condition": "AND", "list": [
                    {"variable": ["VARIABLE_NODE_ID", "count"], "condition": "include", "value": "round"}]}]}],
             "outputs": [{"id": "ifElseResult", "key": "ifElseResult", "valueType": "string"}]},
        ]
        edges += [{"source": previous, "sourceHandle": handle, "target": text},
                  {"source": text, "sourceHandle": f"{text}-source-right", "target": update},
                  {"source": update, "sourceHandle": f"{update}-source-right", "target": check}]
        previous, handle = check, f"{check}-source-IF"
    nodes.append({"nodeId": "reply", "flowNodeType": "answerNode", "name": "reply",
                  "inputs": [{"key": "text", "valueType": "any", "value": "{{$text5.system_text$}}"}]})
    edges.append({"source": previous, "sourceHandle": handle, "target": "reply"})
    return {"nodes": nodes, "edges": edges,
            "chatConfig": {"variables": [{"key": "count", "label": "count", "valueType": "string"}]}}


def env() -> RunEnv:
    deps = ChatDeps(sessions=None, embedders=None, chat_model=None, default_model="m")  # type: ignore[arg-type]
    return RunEnv(deps=deps, principal=Principal(kind="session", team_id=1, user_id=1, role="root"),
                  query="how fast?", variables={"count": ""})


async def executor_run(workflow: Workflow) -> None:
    async for _ in run_workflow(workflow, REGISTRY, env()):
        pass


async def baseline_run(workflow: Workflow, prepared: list[tuple[Any, dict[str, Any]]]) -> None:
    """The same node functions in a plain loop, inputs resolved beforehand."""
    run_env = env()
    values: dict[tuple[str, str], Any] = {}

    def lookup(node_id: str, output_id: str) -> Any:
        return run_env.variables.get(output_id) if node_id == "VARIABLE_NODE_ID" else values.get((node_id, output_id))

    for node, inputs in prepared:
        ctx = NodeContext(node, inputs, run_env, workflow, lambda e: None, lambda t, f: None,
                          lambda n, o, v: None, lookup)
        result = await REGISTRY.specs[node.kind].run(ctx)
        for key, value in result.outputs.items():
            values[(node.node_id, key)] = value


def prepare(workflow: Workflow) -> list[tuple[Any, dict[str, Any]]]:
    resolver = _Run(workflow, REGISTRY, env(), Limits(), asyncio.Queue(), None)
    return [(node, resolver.resolve_inputs(node)) for node in workflow.nodes]


async def timed(fn: Any, runs: int) -> float:
    started = time.perf_counter()
    for _ in range(runs):
        await fn()
    return (time.perf_counter() - started) / runs


async def main(rounds: int, runs: int) -> None:
    workflow = parse_workflow(graph())
    node_count = len(workflow.nodes)
    prepared = prepare(workflow)
    events = [e async for e in run_workflow(workflow, REGISTRY, env())]
    finished = events[-1]
    assert finished.error is None and len(finished.response_data) == node_count, finished  # every node ran

    async def base() -> None:
        await baseline_run(workflow, prepared)

    async def full() -> None:
        await executor_run(workflow)

    for _ in range(3):  # warm-up, both
        await timed(base, runs)
        await timed(full, runs)
    base_times, full_times = [], []
    for _ in range(rounds):  # interleaved
        base_times.append(await timed(base, runs))
        full_times.append(await timed(full, runs))
    b_med, f_med = statistics.median(base_times), statistics.median(full_times)
    b_min, f_min = min(base_times), min(full_times)
    print(f"{node_count} nodes, {rounds} rounds × {runs} runs each (median / best of the rounds)")
    print(f"  baseline: node functions in a loop   {b_med * 1e6:9.1f} µs / run  {b_min * 1e6:9.1f} µs best")
    print(f"  executor: run_workflow               {f_med * 1e6:9.1f} µs / run  {f_min * 1e6:9.1f} µs best")
    print(f"  executor's own time per node         {(f_med - b_med) / node_count * 1e6:9.1f} µs        "
          f"{(f_min - b_min) / node_count * 1e6:9.1f} µs best")
    spread = (max(full_times) - min(full_times)) / node_count * 1e6
    print(f"  run-to-run spread of the executor     {spread:9.1f} µs / node")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.runs))
