"""Checks of a workflow before it is saved: every problem named with its node. Pure.

Unknown node kinds, duplicate ids, dangling edges, references and templates pointing at outputs that
do not exist, reference types that cannot meet, and each kind's own checks (``NodeSpec.check``).
"""

from __future__ import annotations

from dataclasses import dataclass

from zhiku.apps.workflow.graph import SYSTEM_VARIABLES, VARIABLE_NODE_ID, Node, Workflow
from zhiku.apps.workflow.node import Registry
from zhiku.apps.workflow.refs import RAW_INPUT_KEYS, references, template_refs, types_compatible
from zhiku.errors import InvalidInput

MAX_LISTED = 20  # problems listed in the error's message; all are in its detail


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    node_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "nodeId": self.node_id}


def unsupported_kinds(workflow: Workflow, registry: Registry) -> list[Problem]:
    return [Problem("workflow_unsupported_node",
                    f"{n.label}: Zhiku does not run node kind {n.kind!r}", n.node_id)
            for n in workflow.nodes if registry.get(n.kind) is None]


def _reference_problems(node: Node, workflow: Workflow) -> list[Problem]:
    problems: list[Problem] = []
    variables = {v.key for v in workflow.variables} | set(SYSTEM_VARIABLES)
    node_ids = set(workflow.by_id)
    for item in node.inputs:
        if item.key in RAW_INPUT_KEYS:
            continue
        pairs = references(item.value, node_ids) or []
        if isinstance(item.value, str):
            pairs += [p for p in template_refs(item.value)]
        for source_id, output_id in pairs:
            if source_id == VARIABLE_NODE_ID:
                if output_id not in variables:
                    problems.append(Problem("workflow_missing_reference",
                                            f"{node.label}: input {item.key!r} uses global variable "
                                            f"{output_id!r}, which chatConfig.variables does not declare",
                                            node.node_id))
                continue
            source = workflow.by_id.get(source_id)
            if source is None:
                problems.append(Problem("workflow_missing_reference",
                                        f"{node.label}: input {item.key!r} refers to node {source_id!r}, "
                                        "which is not in the workflow", node.node_id))
                continue
            output = source.output_by_id(output_id)
            if output is None:
                if source.input(output_id) is not None or output_id in _RUNTIME_OUTPUTS.get(source.kind, ()):
                    continue
                problems.append(Problem("workflow_missing_reference",
                                        f"{node.label}: input {item.key!r} refers to output {output_id!r} of "
                                        f"{source.label}, which has no such output", node.node_id))
            elif not types_compatible(output.value_type, item.value_type):
                problems.append(Problem("workflow_type_mismatch",
                                        f"{node.label}: input {item.key!r} ({item.value_type}) is connected to "
                                        f"output {output.key!r} ({output.value_type}) of {source.label}",
                                        node.node_id))
    return problems


def reference_problem(pair: tuple[str, str], workflow: Workflow) -> str | None:
    """What is wrong with a reference found inside a kind's own structure (conditions, updates), or None."""
    source_id, output_id = pair
    if source_id == VARIABLE_NODE_ID:
        declared = {v.key for v in workflow.variables} | set(SYSTEM_VARIABLES)
        return None if output_id in declared else \
            f"uses global variable {output_id!r}, which chatConfig.variables does not declare"
    source = workflow.by_id.get(source_id)
    if source is None:
        return f"refers to node {source_id!r}, which is not in the workflow"
    if source.output_by_id(output_id) is None and source.input(output_id) is None and \
            output_id not in _RUNTIME_OUTPUTS.get(source.kind, ()):
        return f"refers to output {output_id!r} of {source.label}, which has no such output"
    return None


# Outputs a node returns without declaring them (FastGPT's answerNode returns answerText, chatNode history).
_RUNTIME_OUTPUTS = {"answerNode": ("answerText",), "chatNode": ("history", "answerText", "reasoningText")}


def check_workflow(workflow: Workflow, registry: Registry) -> list[Problem]:
    problems: list[Problem] = unsupported_kinds(workflow, registry)
    seen: set[str] = set()
    for node in workflow.nodes:
        if node.node_id in seen:
            problems.append(Problem("workflow_duplicate_node", f"{node.label}: the node id is used twice",
                                    node.node_id))
        seen.add(node.node_id)
    for i, edge in enumerate(workflow.edges):
        for end in (edge.source, edge.target):
            if end not in workflow.by_id:
                problems.append(Problem("workflow_dangling_edge",
                                        f"edges[{i}] ({edge.source} -> {edge.target}) names node {end!r}, "
                                        "which is not in the workflow", end))
        source = workflow.by_id.get(edge.source)
        spec = registry.get(source.kind) if source is not None else None
        if source is not None and spec is not None and spec.branches is not None and \
                edge.source_handle.startswith(f"{source.node_id}-source-"):
            suffix = edge.source_handle[len(source.node_id) + len("-source-"):]
            branches = spec.branches(source)
            if suffix not in branches and suffix not in ("right", "left", "top", "bottom"):
                problems.append(Problem("workflow_dangling_edge",
                                        f"{source.label}: edges[{i}] leaves from branch {suffix!r}, which the "
                                        f"node does not have (it has {', '.join(branches) or 'none'})",
                                        source.node_id))
    for node in workflow.nodes:
        if node.parent_node_id is not None and node.parent_node_id not in workflow.by_id:
            problems.append(Problem("workflow_dangling_edge", f"{node.label}: its parent node "
                                    f"{node.parent_node_id!r} is not in the workflow", node.node_id))
        problems += _reference_problems(node, workflow)
        spec = registry.get(node.kind)
        if spec is not None and spec.check is not None:
            problems += [Problem("workflow_invalid_node", f"{node.label}: {message}", node.node_id)
                         for message in spec.check(node, workflow)]
    if not any((spec := registry.get(n.kind)) is not None and spec.entry and n.kind != "userGuide"
               for n in workflow.nodes):
        problems.append(Problem("workflow_no_start", "the workflow has no start node (workflowStart)"))
    return problems


def validate_workflow(workflow: Workflow, registry: Registry) -> None:
    """Raise one :class:`InvalidInput` listing every problem (code of the first), or return."""
    problems = check_workflow(workflow, registry)
    if not problems:
        return
    listed = "; ".join(p.message for p in problems[:MAX_LISTED])
    more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    raise InvalidInput(f"the workflow has {len(problems)} problem(s): {listed}{more}", code=problems[0].code,
                       detail={"problems": [p.as_dict() for p in problems]})
