"""userSelect and formInput: the run pauses for the user, and the next message in the chat resumes it.

Reached normally, each returns FastGPT's interactive payload (``userSelect`` with ``description`` and
``userSelectOptions``; ``userInput`` with ``description`` and ``inputForm``): its path stops, the client gets
the ``interactive`` event and the chat turn keeps the state. The next request on the same ``chatId`` runs
the node again with the user's message as the reply (FASTGPT-FORMATS.md §2.6):

- userSelect: the option whose value (or key) is the reply; ``selectResult`` is its value and every other
  option's branch is skipped. A reply naming no option asks again.
- formInput: the reply is a JSON object of the form's values; ``formInputResult`` is that object and each
  field also fills the output of the same key. Missing required fields, or a reply that is not a JSON
  object, ask again. Values are coerced to each field's ``valueType`` and text is cut at ``maxLength``.
"""

from __future__ import annotations

import json
from typing import Any

from zhiku.apps.workflow.graph import Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import coerce, to_text

MAX_FORM_FIELDS = 50
MAX_REPLY_CHARS = 100_000


def options(value: Any) -> list[dict[str, str]]:
    return [{"key": to_text(o.get("key")), "value": to_text(o.get("value"))}
            for o in value or [] if isinstance(o, dict) and o.get("key")]


def choose(reply: str | None, choices: list[dict[str, str]]) -> dict[str, str] | None:
    wanted = (reply or "").strip()
    return next((c for c in choices if wanted and wanted in (c["value"].strip(), c["key"])), None)


async def run_select(ctx: NodeContext) -> NodeResult:
    choices = options(ctx.get("userSelectOptions"))
    description = to_text(ctx.get("description"))
    chosen = choose(ctx.env.resume_reply, choices) if ctx.resumed else None
    if chosen is None:
        return NodeResult(interactive={"type": "userSelect", "params": {
            "description": description, "userSelectOptions": choices}})
    return NodeResult(outputs={"selectResult": chosen["value"]},
                      skip_handles=tuple(c["key"] for c in choices if c["key"] != chosen["key"]),
                      response={"userSelectResult": chosen["value"]})


def forms(value: Any) -> list[dict[str, Any]]:
    return [f for f in value or [] if isinstance(f, dict) and f.get("key")][:MAX_FORM_FIELDS]


def read_form(reply: str | None, fields: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The submitted values, each in its field's type; None when the reply is not a complete form."""
    if not reply or len(reply) > MAX_REPLY_CHARS:
        return None
    try:
        submitted = json.loads(reply)
    except ValueError:
        return None
    if not isinstance(submitted, dict):
        return None
    values: dict[str, Any] = {}
    for field in fields:
        key = str(field["key"])
        value = submitted.get(key, field.get("defaultValue"))
        if value in (None, "") and field.get("required"):
            return None
        value = coerce(value, to_text(field.get("valueType")) or "any")
        limit = field.get("maxLength")
        if isinstance(value, str) and isinstance(limit, int) and limit > 0:
            value = value[:limit]
        values[key] = value
    return values


async def run_form(ctx: NodeContext) -> NodeResult:
    fields = forms(ctx.get("userInputForms"))
    values = read_form(ctx.env.resume_reply, fields) if ctx.resumed else None
    if values is None:
        return NodeResult(interactive={"type": "userInput", "params": {
            "description": to_text(ctx.get("description")), "inputForm": fields}})
    return NodeResult(outputs={"formInputResult": values, **values}, response={"formInputResult": values})


def check_select(node: Node, workflow: Workflow) -> list[str]:
    return [] if options(node.value("userSelectOptions")) else ["it has no options to choose from"]


def check_form(node: Node, workflow: Workflow) -> list[str]:
    keys = [str(f["key"]) for f in forms(node.value("userInputForms"))]
    problems = [] if keys else ["its form has no fields"]
    return problems + [f"form field {k!r} is declared twice" for k in sorted({k for k in keys if keys.count(k) > 1})]


SPECS = (NodeSpec(kind="userSelect", run=run_select, check=check_select,
                  branches=lambda node: [o["key"] for o in options(node.value("userSelectOptions"))],
                  description="ask the user to choose"),
         NodeSpec(kind="formInput", run=run_form, check=check_form, description="ask the user to fill a form"))
