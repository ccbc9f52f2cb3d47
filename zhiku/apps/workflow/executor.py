"""Runs a workflow as FastGPT does (FASTGPT-FORMATS.md §2), streaming typed events.

Edges carry a status (waiting, active, skipped). A node runs when, among its common incoming edges or
among its recursive ones (part of a cycle back to it), at least one is active and none waits; it is
skipped when all of a group are skipped, and the skip propagates. Nodes that become ready together run
concurrently as tasks; all edge bookkeeping happens in one loop, between tasks, so it needs no locks.
Answer text is released in the order nodes started, so parallel branches never interleave their text.
Each run costs one step and each skip a tenth; the run stops with ``workflow_step_limit`` when the
budget is spent and with ``workflow_timeout`` after ``Limits.max_seconds``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from zhiku.apps.workflow.events import (
    AnswerText,
    InteractionRequested,
    NodeResponse,
    NodeStatus,
    WorkflowEvent,
    WorkflowFinished,
)
from zhiku.apps.workflow.graph import SYSTEM_VARIABLES, VARIABLE_NODE_ID, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, Registry, RunEnv
from zhiku.apps.workflow.refs import RAW_INPUT_KEYS, coerce, render, resolve_reference
from zhiku.chat_model import Usage
from zhiku.errors import ZhikuError

log = logging.getLogger(__name__)

MAX_DEPTH = 20  # nested runs (child apps, loops) deeper than this return nothing
CATCH_HANDLE = "source_catch-right"


@dataclass(frozen=True)
class Limits:
    max_steps: float = 500  # FastGPT's WORKFLOW_MAX_RUN_TIMES
    max_seconds: float = 600


class WorkflowLimit(ZhikuError):
    status = 422
    code = "workflow_step_limit"


class _Answers:
    """Answer text per node start order: a node's text goes out once every earlier node finished."""

    def __init__(self, emit: Any) -> None:
        self._emit = emit
        self._buffers: list[list[tuple[str, bool]]] = []
        self._closed: list[bool] = []
        self._head = 0

    def open(self) -> int:
        self._buffers.append([])
        self._closed.append(False)
        return len(self._buffers) - 1

    def write(self, slot: int, text: str, fast: bool) -> None:
        if slot == self._head:
            self._emit(AnswerText(text, fast))
        else:
            self._buffers[slot].append((text, fast))

    def close(self, slot: int) -> None:
        self._closed[slot] = True
        while self._head < len(self._closed) and self._closed[self._head]:
            self._head += 1
            if self._head < len(self._buffers):
                for text, fast in self._buffers[self._head]:
                    self._emit(AnswerText(text, fast))
                self._buffers[self._head].clear()


@dataclass(frozen=True)
class _Topology:
    incoming: dict[str, list[int]]
    outgoing: dict[str, list[int]]
    recursive: frozenset[int]


_topologies: weakref.WeakKeyDictionary[Workflow, _Topology] = weakref.WeakKeyDictionary()


def topology(workflow: Workflow) -> _Topology:
    """Edge indexes by node and the recursive edges, computed once per parsed workflow."""
    found = _topologies.get(workflow)
    if found is None:
        incoming: dict[str, list[int]] = {}
        outgoing: dict[str, list[int]] = {}
        for i, e in enumerate(workflow.edges):
            if e.source_handle == "selectedTools":
                continue
            incoming.setdefault(e.target, []).append(i)
            outgoing.setdefault(e.source, []).append(i)
        found = _topologies[workflow] = _Topology(incoming, outgoing, frozenset(_recursive_edges(workflow)))
    return found


def _recursive_edges(workflow: Workflow) -> set[int]:
    """Indexes of edges that close a cycle: their target can reach their source."""
    children: dict[str, set[str]] = {}
    for e in workflow.edges:
        if e.source_handle != "selectedTools":
            children.setdefault(e.source, set()).add(e.target)
    reach: dict[str, set[str]] = {}

    def reachable(start: str) -> set[str]:
        if start not in reach:
            seen: set[str] = set()
            todo = [start]
            while todo:
                for child in children.get(todo.pop(), ()):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            reach[start] = seen
        return reach[start]

    return {i for i, e in enumerate(workflow.edges) if e.source == e.target or e.source in reachable(e.target)}


class _Run:
    def __init__(self, workflow: Workflow, registry: Registry, env: RunEnv, limits: Limits,
                 queue: asyncio.Queue[Any], resume: dict[str, Any] | None,
                 entries: Sequence[str] | None = None) -> None:
        self.given_entries = list(entries) if entries is not None else None
        self.workflow = workflow
        self.registry = registry
        self.env = env
        self.limits = limits
        self.queue = queue
        self.node_ids = set(workflow.by_id)
        self.edges = workflow.edges
        self.status = ["waiting"] * len(self.edges)
        shape = topology(workflow)
        self.incoming, self.outgoing, self.recursive = shape.incoming, shape.outgoing, shape.recursive
        self.values: dict[str, dict[str, Any]] = {}
        self.budget = limits.max_steps
        self.running: dict[asyncio.Task[Any], tuple[str, int]] = {}
        self.finished: asyncio.Queue[asyncio.Task[Any]] = asyncio.Queue()
        self.ready: list[tuple[Node, int, bool]] = []  # inline nodes waiting their turn
        prefix = uuid.uuid4().hex[:16]  # responseData item ids: unique per run, then counted
        self.response_ids = (f"{prefix}{n:08x}" for n in itertools.count())
        self.skipped_since_run: set[str] = set()
        self.responses: list[dict[str, Any]] = []
        self.answers = _Answers(self.emit)
        self.usage = Usage()
        self.model: str | None = None
        self.finish_reason = "stop"
        self.error: ZhikuError | None = None
        self.interactive: dict[str, Any] | None = None
        self.resume = resume
        self.started = time.perf_counter()

    def emit(self, event: WorkflowEvent) -> None:
        self.queue.put_nowait(event)

    # ---- values ----------------------------------------------------------------------------

    def lookup(self, node_id: str, output_id: str) -> Any:
        if node_id == VARIABLE_NODE_ID:
            return self.env.variables.get(output_id)
        outputs = self.values.get(node_id, {})
        if output_id in outputs:
            return outputs[output_id]
        if node_id not in self.values and self.env.parent_lookup is not None:  # a loop body reads its parent's
            return self.env.parent_lookup(node_id, output_id)
        node = self.workflow.by_id.get(node_id)
        if node is not None and node.output_by_id(output_id) is None:  # templates may name an input key
            found = node.input(output_id)
            return found.value if found is not None else None
        return None

    def set_output(self, node_id: str, output_id: str, value: Any) -> None:
        self.values.setdefault(node_id, {})[output_id] = value

    def resolve_inputs(self, node: Node) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for item in node.inputs:
            value = item.value
            if item.key not in RAW_INPUT_KEYS:
                if isinstance(value, str):
                    value = render(value, self.lookup, self.env.variables)
                value = coerce(resolve_reference(value, self.node_ids, self.lookup), item.value_type)
            resolved[item.key] = value
        if any(i.render_type == "addInputParam" for i in node.inputs):
            resolved["system_addInputParam"] = {i.key: resolved[i.key] for i in node.inputs if i.can_edit}
        return resolved

    # ---- scheduling ------------------------------------------------------------------------

    def _group(self, edges: list[int]) -> str | None:
        if not edges:
            return None
        statuses = [self.status[i] for i in edges]
        if "active" in statuses and "waiting" not in statuses:
            return "run"
        if all(s == "skipped" for s in statuses):
            return "skip"
        return "wait"

    def check(self, node_id: str) -> str:
        incoming = self.incoming.get(node_id, [])
        if not incoming:
            return "run"
        groups = (self._group([i for i in incoming if i not in self.recursive]),
                  self._group([i for i in incoming if i in self.recursive]))
        if "run" in groups:
            return "run"
        return "skip" if "skip" in groups else "wait"

    def _reset_incoming(self, node_id: str) -> None:
        for i in self.incoming.get(node_id, []):
            self.status[i] = "waiting"

    def start(self, node_id: str, *, resumed: bool = False) -> None:
        if any(running_id == node_id for running_id, _ in self.running.values()) or \
                any(ready.node_id == node_id for ready, _, _ in self.ready):
            return
        if self.budget <= 0:
            raise WorkflowLimit(f"the workflow stopped after {self.limits.max_steps:g} steps (node runs); "
                                f"a loop in the graph may never end", code="workflow_step_limit")
        self.budget -= 1
        self._reset_incoming(node_id)
        self.skipped_since_run.discard(node_id)
        node = self.workflow.by_id[node_id]
        slot = self.answers.open()
        spec = self.registry.get(node.kind)
        if spec is not None and spec.inline:  # no I/O: run in place by the loop below, without a task
            self.ready.append((node, slot, resumed))
            return
        task = asyncio.ensure_future(self._execute(node, slot, resumed))
        self.running[task] = (node_id, slot)
        task.add_done_callback(self.finished.put_nowait)

    def skip(self, node_id: str) -> None:
        todo = [node_id]
        while todo:
            current = todo.pop(0)
            if current in self.skipped_since_run or any(r == current for r, _ in self.running.values()) or \
                    any(ready.node_id == current for ready, _, _ in self.ready):
                continue
            self.skipped_since_run.add(current)
            self.budget -= 0.1
            self._reset_incoming(current)
            for i in self.outgoing.get(current, []):
                self.status[i] = "skipped"
            for target in dict.fromkeys(self.edges[i].target for i in self.outgoing.get(current, [])):
                decision = self.check(target)
                if decision == "run":
                    self.start(target)
                elif decision == "skip":
                    todo.append(target)

    def after(self, node: Node, result: NodeResult, failed: ZhikuError | None) -> None:
        """Edge statuses after a node ran, then the nodes that became ready."""
        out = self.outgoing.get(node.node_id, [])
        catch = f"{node.node_id}-{CATCH_HANDLE}"
        errored = failed is not None or result.error is not None
        skip = {f"{node.node_id}-source-{h}" for h in result.skip_handles}
        for i in out:
            handle = self.edges[i].source_handle
            if errored:
                active = node.catch_error and handle == catch
            else:
                active = handle != catch and handle not in skip
            self.status[i] = "active" if active else "skipped"
        active_targets = list(dict.fromkeys(self.edges[i].target for i in out if self.status[i] == "active"))
        skipped_targets = list(dict.fromkeys(self.edges[i].target for i in out if self.status[i] == "skipped"))
        started: set[str] = set()
        for target in active_targets:
            decision = self.check(target)
            if decision == "run":
                started.add(target)
                self.start(target)
            elif decision == "skip":
                self.skip(target)
        for target in skipped_targets:
            if target in started:
                continue
            decision = self.check(target)
            if decision == "run":
                self.start(target)
            elif decision == "skip":
                self.skip(target)

    # ---- one node --------------------------------------------------------------------------

    async def _execute(self, node: Node, slot: int, resumed: bool) -> tuple[NodeResult, ZhikuError | None, float]:
        started = time.perf_counter()
        spec = self.registry.get(node.kind)
        try:
            if spec is None:
                raise ZhikuError(f"{node.label}: Zhiku does not run this node kind", code="workflow_unsupported_node",
                                 status=422)
            inputs = self.resolve_inputs(node)
            if node.show_status:
                self.emit(NodeStatus(node.name))
            ctx = NodeContext(node, inputs, self.env, self.workflow, self.emit,
                              lambda text, fast: self.answers.write(slot, text, fast), self.set_output,
                              self.lookup, resumed=resumed, registry=self.registry,
                              interaction=self.resume if resumed else None)
            result = await spec.run(ctx)
            return result, None, time.perf_counter() - started
        except asyncio.CancelledError:
            raise
        except ZhikuError as exc:
            return NodeResult(), exc, time.perf_counter() - started
        except Exception as exc:  # a node's bug stops its branch, visibly, not the server
            log.exception("workflow node %s failed", node.node_id)
            return NodeResult(), ZhikuError(f"{node.label} failed: {exc}", code="node_failed"), \
                time.perf_counter() - started

    def finish_node(self, node: Node, result: NodeResult, failed: ZhikuError | None, seconds: float) -> None:
        outputs = self.values.setdefault(node.node_id, {})
        declared = set()
        for output in node.outputs:
            declared.add(output.key)
            if output.key in result.outputs:
                outputs[output.id] = coerce(result.outputs[output.key], output.value_type)
            elif output.required and output.default_value is not None and output.id not in outputs:
                outputs[output.id] = output.default_value
        for key, value in result.outputs.items():
            if key not in declared:
                outputs[key] = value
        item: dict[str, Any] = {"id": next(self.response_ids), "nodeId": node.node_id, "moduleName": node.name,
                                "moduleType": node.kind, "runningTime": round(seconds, 2), **result.response}
        if result.usage is not None:
            self.usage = Usage(self.usage.prompt_tokens + result.usage.prompt_tokens,
                               self.usage.completion_tokens + result.usage.completion_tokens)
            item.setdefault("inputTokens", result.usage.prompt_tokens)
            item.setdefault("outputTokens", result.usage.completion_tokens)
        if result.model:
            self.model = result.model
        if result.finish_reason:
            self.finish_reason = result.finish_reason
        message = failed.message if failed is not None else result.error
        if message is not None:
            item["error"] = item["errorText"] = message
            if node.catch_error:  # the catch-error branch runs with the error text
                outputs["system_error_text"] = message
                for output in node.outputs:
                    if output.type == "error":
                        outputs[output.id] = message
            elif self.error is None:
                self.error = failed or ZhikuError(f"{node.label}: {message}", code="node_failed")
        self.responses.append(item)
        self.emit(NodeResponse(item))
        if result.interactive is not None and failed is None:
            self._pause(node, result.interactive)
            return
        self.after(node, result, failed)

    def _pause(self, node: Node, interactive: dict[str, Any]) -> None:
        incoming = set(self.incoming.get(node.node_id, []))
        memory = [{"source": e.source, "sourceHandle": e.source_handle, "target": e.target,
                   "targetHandle": e.target_handle, "status": "active" if i in incoming else self.status[i]}
                  for i, e in enumerate(self.edges)]
        outputs = [{"nodeId": node_id, "key": key, "value": value}
                   for node_id, values in self.values.items() for key, value in values.items()]
        self.interactive = {**interactive, "entryNodeIds": [node.node_id], "memoryEdges": memory,
                            "nodeOutputs": outputs}

    # ---- the whole run ---------------------------------------------------------------------

    def _entries(self) -> list[str]:
        if self.resume:
            memory = {(m.get("source"), m.get("sourceHandle"), m.get("target"), m.get("targetHandle")): m.get("status")
                      for m in self.resume.get("memoryEdges") or [] if isinstance(m, dict)}
            for i, e in enumerate(self.edges):
                status = memory.get((e.source, e.source_handle, e.target, e.target_handle))
                if status in ("waiting", "active", "skipped"):
                    self.status[i] = status
            for item in self.resume.get("nodeOutputs") or []:
                if isinstance(item, dict) and isinstance(item.get("nodeId"), str):
                    self.set_output(item["nodeId"], str(item.get("key")), item.get("value"))
            return [n for n in self.resume.get("entryNodeIds") or [] if n in self.node_ids]
        if self.given_entries is not None:  # a nested run starts where its caller says (a loop's loopStart)
            return [n for n in self.given_entries if n in self.node_ids]
        entries = [n.node_id for n in self.workflow.nodes
                   if (spec := self.registry.get(n.kind)) is not None and spec.entry]
        return entries or [n.node_id for n in self.workflow.nodes if n.kind == "tool"]

    async def drive(self) -> None:
        try:
            async with asyncio.timeout(self.limits.max_seconds):
                for node_id in self._entries():
                    self.start(node_id, resumed=self.resume is not None)
                while self.ready or self.running:
                    if self.ready:
                        node, slot, resumed = self.ready.pop(0)
                        result, failed, seconds = await self._execute(node, slot, resumed)
                        self.answers.close(slot)
                        self.finish_node(node, result, failed, seconds)
                        continue
                    task = await self.finished.get()
                    node_id, slot = self.running.pop(task)
                    result, failed, seconds = task.result()
                    self.answers.close(slot)
                    self.finish_node(self.workflow.by_id[node_id], result, failed, seconds)
        except TimeoutError:
            self.error = WorkflowLimit(f"the workflow ran longer than {self.limits.max_seconds:g} s and was stopped",
                                       code="workflow_timeout")
        except WorkflowLimit as exc:
            self.error = exc
        finally:
            await self._cancel_running()
        if self.interactive is not None:
            self.emit(InteractionRequested(self.interactive))
        self.emit(WorkflowFinished(
            response_data=self.responses, usage=self.usage, duration_s=time.perf_counter() - self.started,
            new_variables={k: v for k, v in self.env.variables.items() if k not in SYSTEM_VARIABLES},
            model=self.model, finish_reason=self.finish_reason, error=self.error, interactive=self.interactive,
            custom_feedbacks=list(self.env.custom_feedbacks), outputs=self.values))

    async def _cancel_running(self) -> None:
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()


_END = object()


async def run_workflow(workflow: Workflow, registry: Registry, env: RunEnv, limits: Limits = Limits(), *,
                       resume: dict[str, Any] | None = None,
                       entries: Sequence[str] | None = None) -> AsyncIterator[WorkflowEvent]:
    """Run ``workflow``: its events in order, ending with :class:`WorkflowFinished`. Closing the
    iterator early cancels the nodes still running. ``entries``: the nodes to start from instead of the
    entry kinds (a nested run: a loop's body from its loopStart)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    if env.depth > MAX_DEPTH:
        yield WorkflowFinished(response_data=[], new_variables={}, usage=Usage(), duration_s=0.0, model=None,
                               finish_reason="stop")
        return
    run = _Run(workflow, registry, env, limits, queue, resume, entries)

    async def drive() -> None:
        try:
            await run.drive()
        finally:
            queue.put_nowait(_END)

    driver = asyncio.ensure_future(drive())
    try:
        while True:
            event = await queue.get()
            if event is _END:
                break
            yield event
        await driver
    finally:
        if not driver.done():
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)


