"""loop / loopStart / loopEnd: run the loop's body once per element of an array (FASTGPT-FORMATS.md §2.4).

The body is the nodes whose ``parentNodeId`` is the loop (or that ``childrenNodeIdList`` names). For each
element (falsy ones dropped, as FastGPT does; at most ``MAX_ITEMS``) the body runs as a nested workflow
from its ``loopStart``, which gives the element (``loopStartInput``) and its 1-based index
(``loopStartIndex``); the value the body's ``loopEnd`` receives is appended to ``loopArray`` (None when no
``loopEnd`` ran). Body nodes read the outer run's outputs; global variables changed in one iteration carry
into the next and out of the loop. Answer text from the body reaches the user; the body's node responses
are the loop's ``loopDetail``. A body node that fails fails the loop.

An iteration whose body pauses for the user (a userSelect or formInput) pauses the loop with FastGPT's
``loopInteractive`` (``params``: ``childrenResponse``, the body's own interaction with its entry node,
edges and outputs; ``currentIndex``, the 0-based index of the paused item; ``loopResult``, the values of
the iterations before it). The next message resumes the loop node, which resumes that iteration's body
with the user's reply, appends its ``loopEnd`` value and goes on with the remaining items; a later
question pauses the loop again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from zhiku.apps.nodes._nested import run_nested, unwrap_pause, wrap_pause
from zhiku.apps.workflow.graph import Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.chat_model import Usage
from zhiku.errors import InvalidInput, ZhikuError

MAX_ITEMS = 50  # FastGPT's WORKFLOW_MAX_LOOP_TIMES
PAUSE_TYPE = "loopInteractive"  # FastGPT's interaction of a loop whose body paused


def body_ids(node: Node, workflow: Workflow) -> set[str]:
    listed = node.value("childrenNodeIdList")
    ids = {n.node_id for n in workflow.nodes if n.parent_node_id == node.node_id}
    if isinstance(listed, list):
        ids |= {i for i in listed if isinstance(i, str) and i in workflow.by_id}
    return ids


def body_workflow(node: Node, workflow: Workflow) -> tuple[Workflow, str | None]:
    """The graph one iteration runs: every node (so references to outer nodes stay references) but only
    the body's edges; and the body's loopStart."""
    ids = body_ids(node, workflow)
    edges = tuple(e for e in workflow.edges if e.source in ids and e.target in ids)
    start = next((n.node_id for n in workflow.nodes if n.node_id in ids and n.kind == "loopStart"), None)
    return Workflow(nodes=workflow.nodes, edges=edges, chat_config=workflow.chat_config), start


def items_of(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else ([] if value is None else [value])
    return [item for item in items if item]


@dataclasses.dataclass(frozen=True)
class PausedIteration:
    """A loop's pause, read back from its stored interaction."""

    body: dict[str, Any]  # the body's own interaction
    index: int  # 0-based, of the item whose iteration paused
    results: list[Any]  # of the iterations before it


def pause_payload(body: dict[str, Any], index: int, results: list[Any]) -> dict[str, Any]:
    """FastGPT's ``loopInteractive`` (the executor adds the loop node's entry, edges, outputs)."""
    return wrap_pause(PAUSE_TYPE, body, loopResult=results, currentIndex=index)


def paused_iteration(interaction: dict[str, Any] | None) -> PausedIteration | None:
    """The pause a resumed loop continues from; None when the stored interaction is not one."""
    unwrapped = unwrap_pause(interaction, PAUSE_TYPE)
    if unwrapped is None:
        return None
    params, body = unwrapped
    index = params.get("currentIndex")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        return None
    results = params.get("loopResult")
    return PausedIteration(body, index, list(results) if isinstance(results, list) else [])


async def run_loop(ctx: NodeContext) -> NodeResult:
    items = items_of(ctx.get("loopInputArray"))
    if len(items) > MAX_ITEMS:
        raise InvalidInput(f"{ctx.node.label}: the loop input has {len(items)} items; at most {MAX_ITEMS}",
                           code="loop_too_many_items")
    body, start = body_workflow(ctx.node, ctx.workflow)
    if start is None:
        raise InvalidInput(f"{ctx.node.label}: the loop body has no loopStart node", code="loop_no_start")
    assert ctx.registry is not None
    paused = paused_iteration(ctx.interaction) if ctx.resumed else None
    results: list[Any] = list(paused.results) if paused is not None else []
    details: list[dict[str, Any]] = []
    prompt = completion = 0
    interactive: dict[str, Any] | None = None
    for position in range(paused.index if paused is not None else 0, len(items)):
        item, index = items[position], position + 1

        def lookup(node_id: str, output_id: str, item: Any = item, index: int = index) -> Any:
            if node_id == start and output_id in ("loopStartInput", "loopStartIndex"):
                return item if output_id == "loopStartInput" else index
            return ctx.lookup(node_id, output_id)

        env = dataclasses.replace(ctx.env, depth=ctx.env.depth + 1, parent_lookup=lookup)
        # the paused iteration goes on from its body's own interaction; the others start at loopStart
        resume = paused.body if paused is not None and position == paused.index else None
        finished, responses = await run_nested(ctx, body, env, [start], resume=resume)
        ended = [item.get("loopOutputValue") for item in responses if item.get("moduleType") == "loopEnd"]
        if finished is None:  # the nesting limit: nothing ran
            break
        details.extend(finished.response_data)
        prompt += finished.usage.prompt_tokens
        completion += finished.usage.completion_tokens
        if finished.error is not None:
            raise ZhikuError(f"{ctx.node.label}: iteration {index} failed: {finished.error.message}",
                             code=finished.error.code, status=finished.error.status)
        if finished.interactive is not None:
            interactive = pause_payload(finished.interactive, position, list(results))
            break
        results.append(ended[-1] if ended else None)
    return NodeResult(outputs={} if interactive else {"loopArray": results}, interactive=interactive,
                      usage=Usage(prompt, completion) if prompt or completion else None,
                      response={"totalPoints": 0, "loopInput": items, "loopResult": results, "loopDetail": details,
                                "mergeSignId": ctx.node.node_id})


async def run_start(ctx: NodeContext) -> NodeResult:
    value = ctx.lookup(ctx.node.node_id, "loopStartInput")
    index = ctx.lookup(ctx.node.node_id, "loopStartIndex")
    return NodeResult(outputs={"loopStartInput": value, "loopStartIndex": index},
                      response={"loopInputValue": value})


async def run_end(ctx: NodeContext) -> NodeResult:
    value = ctx.get("loopEndInput")
    return NodeResult(response={"loopOutputValue": value})


def check_loop(node: Node, workflow: Workflow) -> list[str]:
    ids = body_ids(node, workflow)
    starts = [i for i in ids if workflow.by_id[i].kind == "loopStart"]
    return [] if len(starts) == 1 else [f"its body needs exactly one loopStart node (it has {len(starts)})"]


def check_child(node: Node, workflow: Workflow) -> list[str]:
    parent = workflow.by_id.get(node.parent_node_id or "")
    return [] if parent is not None and parent.kind == "loop" else ["it is not inside a loop node"]


SPECS = (NodeSpec(kind="loop", run=run_loop, check=check_loop, description="loop over an array"),
         NodeSpec(kind="loopStart", run=run_start, check=check_child, description="loop body entry"),
         NodeSpec(kind="loopEnd", run=run_end, check=check_child, description="loop body result"))
