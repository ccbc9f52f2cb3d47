"""The workflow engine: FastGPT's workflow JSON, checked and run (FASTGPT-FORMATS.md §1, §2).

- ``graph``: the JSON as frozen dataclasses (:func:`graph.parse_workflow`), quirks of older exports evened out.
- ``refs``: references ``[nodeId, outputId]``, templates ``{{$nodeId.outputId$}}`` / ``{{key}}``, value types.
- ``validate``: every problem of a graph named with its node, before it is saved.
- ``formats``: import of the three file forms and FastGPT's export shape (dataset ids and secrets removed).
- ``executor``: :func:`executor.run_workflow` streams :mod:`events` while it runs the graph.
- ``node``: the node interface below. The node kinds themselves live in :mod:`zhiku.apps.nodes`.

Writing a node kind
-------------------
A kind is one module in ``zhiku/apps/nodes/`` that defines ``SPEC = NodeSpec(kind="<flowNodeType>",
run=run, ...)`` (or ``SPECS`` for several no-op kinds); the package finds it by itself. ``run`` is
``async def run(ctx: NodeContext) -> NodeResult``:

- **Inputs**: ``ctx.get(key)`` is the input's value after templates, references and the input's
  ``valueType`` were applied; ``ctx.node`` is the raw node, ``ctx.dynamic_inputs()`` the user-added
  (``canEdit``) inputs, ``ctx.lookup(nodeId, outputId)`` any value of the run.
- **Outputs**: ``NodeResult(outputs={key: value})`` by output *key* (the executor stores each under the
  output's ``id``, which references use). ``skip_handles=("IF",)`` skips the branches whose source
  handle is ``<nodeId>-source-<suffix>``; everything else the node leaves runs on.
- **Answer text**: ``ctx.stream_answer(piece)`` as it arrives (``answer`` events), ``ctx.fast_answer(text)``
  for a whole fixed reply (``fastAnswer``). The executor releases text in the order nodes started.
- **responseData**: ``NodeResult(response={...})`` adds the kind's fields (§2.7) to the item the executor
  builds (id, nodeId, moduleName, moduleType, runningTime); ``usage=Usage(...)`` adds inputTokens/outputTokens
  and counts toward the turn's usage; ``model`` / ``finish_reason`` are the turn's when this node answered.
- **Errors**: raise a :class:`zhiku.errors.ZhikuError` (or let any exception through), or return
  ``NodeResult(error="...")``: the error goes into the node's responseData; without ``catchError`` the
  node's branch stops and the turn ends with that error once the other branches finished; with
  ``catchError`` only the ``<id>-source_catch-right`` branch runs, with the error outputs filled.
- **The chat model**: ``ctx.env.deps.chat_model`` (``complete`` / ``stream``; None means no model is
  configured: answer without one, as chatNode's extractive answer does), ``ctx.env.deps.default_model``.
  ``zhiku.apps.nodes._llm`` has the shared helpers (history rounds, JSON replies).
- **Interaction**: return ``NodeResult(interactive={"type": "userSelect", "params": {...}})``; this path
  stops, the client gets ``interactive`` with entryNodeIds/memoryEdges/nodeOutputs, and the next turn
  passes that payload back as ``resume`` to :func:`executor.run_workflow`: the node runs again with
  ``ctx.resumed`` true, the user's reply in ``ctx.env.resume_reply`` and the stored payload in
  ``ctx.interaction``. A node whose nested run paused returns that run's interaction wrapped in its own
  (``params.childrenResponse``, as the tools node's ``toolChildrenInteractive`` and the loop's
  ``loopInteractive``) and, resumed, passes it back as the nested run's ``resume``.
- **State**: ``ctx.env.variables`` (global variables; emit :class:`events.VariablesUpdated` after a
  change), ``ctx.env.histories`` / ``query`` / ``files``, ``ctx.set_output(nodeId, outputId, value)``.
- **Other events**: ``ctx.emit(event)`` (e.g. :class:`events.QuotesFound` for citations,
  :class:`events.ToolActivity` for a tool call).
- **Nested runs** (loops, tool branches, child apps): call :func:`executor.run_workflow` with
  ``RunEnv(depth=env.depth + 1)`` (``zhiku.apps.nodes._nested.run_nested`` passes the answer text and
  events on and collects the node responses); its :class:`events.WorkflowFinished` has every output it produced.
- **Cheap kinds**: ``NodeSpec(inline=True)`` when ``run`` never awaits I/O (text, conditions, variables):
  the executor runs it in place instead of in a task of its own (see ``bench/workflow.py``).
- **Checks at save time**: ``NodeSpec.check(node, workflow) -> [problem sentences]`` and
  ``NodeSpec.branches(node) -> [handle suffixes]`` for edge checks; ``entry=True`` for start kinds.
"""
