"""userGuide (system config): holds the app's chat settings — welcome text, variables, opening
questions (``questionGuide``), TTS/whisper, the input guide. An entry node that does nothing at run
time; the settings are read from ``chatConfig`` over this node's inputs (``graph.user_guide_config``)."""

from __future__ import annotations

from zhiku.apps.workflow.graph import Node, Workflow
from zhiku.apps.workflow.node import NodeSpec


def check(node: Node, workflow: Workflow) -> list[str]:
    variables = workflow.chat_config.get("variables") or []
    keys = [v.get("key") for v in variables if isinstance(v, dict)]
    problems = [f"variable {k!r} is declared twice" for k in {k for k in keys if keys.count(k) > 1}]
    problems += ["a variable has no key" for k in keys if not k]
    return problems


SPEC = NodeSpec(kind="userGuide", inline=True, entry=True, check=check, description="app settings")
