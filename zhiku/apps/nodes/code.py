"""code: the user's JavaScript or Python ``main`` run on the node's inputs; its returned keys are outputs.

The inputs are the node's dynamic (user-added) inputs by key; ``codeType`` is ``js`` (default) or ``py``.
The code runs in :mod:`zhiku.apps.nodes._sandbox` (V8 without I/O / a limited Python process), within a
time and a memory limit. ``system_rawResponse`` is the whole returned object; each other output is
filled from the key of the same name. A failure, a timeout or a memory limit is the node's error
(``code_failed``, ``code_timeout``, ``code_memory_limit``), so a ``catchError`` branch can take it.
"""

from __future__ import annotations

from typing import Any

from zhiku.apps.nodes._sandbox import SandboxLimits, run_js, run_python
from zhiku.apps.workflow.graph import Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import to_text
from zhiku.errors import InvalidInput

LANGUAGES = {"js": run_js, "javascript": run_js, "py": run_python, "python": run_python}
LIMITS = SandboxLimits()


def outputs_of(node: Node, value: Any) -> dict[str, Any]:
    """The node's outputs from what ``main`` returned: the whole object, and each declared key."""
    outputs: dict[str, Any] = {"system_rawResponse": value}
    if isinstance(value, dict):
        for output in node.outputs:
            if output.key in value and output.key not in ("system_rawResponse", "system_addOutputParam"):
                outputs[output.key] = value[output.key]
    return outputs


async def run(ctx: NodeContext) -> NodeResult:
    language = to_text(ctx.get("codeType") or "js").strip().lower()
    runner = LANGUAGES.get(language)
    if runner is None:
        raise InvalidInput(f"{ctx.node.label}: unknown code language {language!r} (js or py)", code="code_language")
    inputs = ctx.dynamic_inputs()
    result = await runner(to_text(ctx.node.value("code")), inputs, LIMITS)
    return NodeResult(outputs=outputs_of(ctx.node, result.value),
                      response={"customInputs": inputs, "customOutputs": result.value, "codeLog": result.log})


def check(node: Node, workflow: Workflow) -> list[str]:
    problems = []
    language = to_text(node.value("codeType") or "js").strip().lower()
    if language not in LANGUAGES:
        problems.append(f"unknown code language {language!r} (js or py)")
    if not to_text(node.value("code")).strip():
        problems.append("it has no code")
    return problems


SPEC = NodeSpec(kind="code", run=run, check=check, description="JavaScript or Python code")
