"""variableUpdate: assigns global variables (``VARIABLE_NODE_ID``) or other nodes' outputs."""

from __future__ import annotations

from typing import Any

from zhiku.apps.workflow.events import VariablesUpdated
from zhiku.apps.workflow.graph import as_list, SYSTEM_VARIABLES, VARIABLE_NODE_ID, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import coerce, render_variables
from zhiku.apps.workflow.validate import reference_problem


def _pair(value: Any) -> tuple[str, str] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return value[0], value[1]
    return None


def _items(value: Any) -> list[dict[str, Any]]:
    return [i for i in as_list(value) if isinstance(i, dict)]


async def run(ctx: NodeContext) -> NodeResult:
    results = []
    changed = False
    for item in _items(ctx.node.value("updateList")):
        target = _pair(item.get("variable"))
        if target is None:
            continue
        raw = item.get("value")
        if item.get("renderType") == "reference" and _pair(raw) is not None and raw[0]:
            value = ctx.lookup(*_pair(raw))  # type: ignore[misc]
        else:
            value = raw[1] if isinstance(raw, list) and len(raw) == 2 else raw
            if isinstance(value, str):
                value = render_variables(value, ctx.env.variables)
        value = coerce(value, str(item.get("valueType") or "any"))
        if target[0] == VARIABLE_NODE_ID:
            ctx.env.variables[target[1]] = value
            changed = True
        else:
            ctx.set_output(target[0], target[1], value)
        results.append(value)
    if changed:
        ctx.emit(VariablesUpdated({k: v for k, v in ctx.env.variables.items() if k not in SYSTEM_VARIABLES}))
    return NodeResult(response={"totalPoints": 0, "updateVarResult": results})


def check(node: Node, workflow: Workflow) -> list[str]:
    problems = []
    declared = {v.key for v in workflow.variables}
    for item in _items(node.value("updateList")):
        target = _pair(item.get("variable"))
        if target is None:
            problems.append("an update has no variable to assign")
        elif target[0] == VARIABLE_NODE_ID:
            if target[1] not in declared:
                problems.append(f"it assigns global variable {target[1]!r}, which chatConfig.variables "
                                "does not declare")
        elif target[0] not in workflow.by_id:
            problems.append(f"it assigns an output of node {target[0]!r}, which is not in the workflow")
        value = _pair(item.get("value"))
        if item.get("renderType") == "reference" and value is not None and value[0]:
            problem = reference_problem(value, workflow)
            if problem:
                problems.append(f"an update {problem}")
    return problems


SPEC = NodeSpec(kind="variableUpdate", inline=True, run=run, check=check, description="assign variables")
