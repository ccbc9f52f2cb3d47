"""The node interface: what one node kind is, what it is given, what it gives back.

See the package docstring of :mod:`zhiku.apps.workflow` for how to write a kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zhiku.apps.workflow.graph import Node, Workflow
from zhiku.auth.service import Principal
from zhiku.chat_model import ChatMessage, ChatModel, Usage
from zhiku.knowledge.files import BlobStore
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.vector_store import VectorStore

if TYPE_CHECKING:  # the graph and its validation (``zhiku apps import``) need none of these at run time
    from zhiku.apps.workflow.events import WorkflowEvent
    from zhiku.embedding.base import Reranker
    from zhiku.embedding.registry import EmbedderRegistry
    from zhiku.knowledge.fetch import FetchPolicy


def _default_fetch_policy() -> FetchPolicy:
    from zhiku.knowledge.fetch import FetchPolicy

    return FetchPolicy()


@dataclass(frozen=True)
class ChatDeps:
    """What a chat turn and its nodes use, handed in by whoever wires the process."""

    sessions: async_sessionmaker[AsyncSession]
    embedders: EmbedderRegistry
    chat_model: ChatModel | None  # None: the built-in extractive answerer
    default_model: str
    reranker: Reranker | None = None
    vector_store: VectorStore = PGVECTOR_STORE
    fetch_policy: FetchPolicy = field(default_factory=_default_fetch_policy)  # HTTP nodes and attached files: the one safe fetcher's limits
    blobs: BlobStore | None = None  # the files uploaded to Zhiku (chat files readFiles reads from storage)


@dataclass
class RunEnv:
    """One run's shared state: the question, history, variables and the services nodes call."""

    deps: ChatDeps
    principal: Principal
    query: str
    histories: list[ChatMessage] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    stream: bool = True  # model nodes stream their answer (False: one piece)
    app_id: int | None = None
    chat_id: str | None = None
    resume_reply: str | None = None  # the user's reply when the run resumes an interactive node
    custom_feedbacks: list[str] = field(default_factory=list)
    depth: int = 0  # nested runs (child apps, loops)
    # A nested run (a loop's body) reads the values its own nodes did not produce from its parent run.
    parent_lookup: Callable[[str, str], Any] | None = None


@dataclass
class NodeResult:
    """What a node gives back. ``outputs`` by output *key*; ``skip_handles`` are the suffixes of source
    handles not to follow (``"IF"``, an agent key); ``error`` is a handled failure (error branch);
    ``interactive`` pauses this path for the user."""

    outputs: dict[str, Any] = field(default_factory=dict)
    skip_handles: tuple[str, ...] = ()
    response: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None
    model: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    interactive: dict[str, Any] | None = None


class NodeContext:
    """Given to a node's ``run``: its node, its resolved inputs, the run's state, and the ways out."""

    def __init__(self, node: Node, inputs: dict[str, Any], env: RunEnv, workflow: Workflow,
                 emit: Callable[[WorkflowEvent], None], answer: Callable[[str, bool], None],
                 set_output: Callable[[str, str, Any], None], lookup: Callable[[str, str], Any],
                 resumed: bool = False, registry: Registry | None = None,
                 interaction: dict[str, Any] | None = None) -> None:
        self.node = node
        self.inputs = inputs
        self.env = env
        self.workflow = workflow
        self._emit = emit
        self._answer = answer
        self._set_output = set_output
        self.lookup = lookup
        self.resumed = resumed  # this node is where an interactive run resumes
        self.registry = registry  # the kinds of this run, for nested runs (loops, child apps)
        # When resumed: the interaction the run paused on, as stored (a tools node finds its paused tool
        # branch's own interaction in it, FastGPT's toolChildrenInteractive; a loop its paused iteration's,
        # loopInteractive).
        self.interaction = interaction

    def get(self, key: str, default: Any = None) -> Any:
        value = self.inputs.get(key)
        return default if value is None else value

    def stream_answer(self, text: str) -> None:
        """Answer text for the user (``answer`` events), kept in answer order across branches."""
        if text:
            self._answer(text, False)

    def fast_answer(self, text: str) -> None:
        """A whole fixed reply at once (``fastAnswer``)."""
        if text:
            self._answer(text, True)

    def emit(self, event: WorkflowEvent) -> None:
        self._emit(event)

    def set_output(self, node_id: str, output_id: str, value: Any) -> None:
        """Overwrite another node's output (variableUpdate)."""
        self._set_output(node_id, output_id, value)

    def dynamic_inputs(self) -> dict[str, Any]:
        """The user-added (``canEdit``) inputs by key, resolved."""
        return {i.key: self.inputs.get(i.key) for i in self.node.inputs if i.can_edit}


RunFn = Callable[[NodeContext], Awaitable[NodeResult]]
CheckFn = Callable[[Node, Workflow], list[str]]


async def _nothing(ctx: NodeContext) -> NodeResult:
    return NodeResult()


@dataclass(frozen=True)
class NodeSpec:
    """One node kind. ``entry``: a run starts here; ``inline``: ``run`` never waits on I/O, so the
    executor runs it in place, one after another, without a task of its own; ``check``: kind-specific problems for validation
    (each a sentence, the executor adds the node's name); ``branches``: the source-handle suffixes
    the node may skip (for edge checks)."""

    kind: str
    run: RunFn = _nothing
    entry: bool = False
    inline: bool = False  # run never awaits I/O: the executor calls it in place instead of in a task
    check: CheckFn | None = None
    branches: Callable[[Node], list[str]] | None = None
    description: str = ""


@dataclass(frozen=True)
class Registry:
    specs: Mapping[str, NodeSpec]

    def get(self, kind: str) -> NodeSpec | None:
        return self.specs.get(kind)

    def with_specs(self, *specs: NodeSpec) -> Registry:
        return Registry({**self.specs, **{s.kind: s for s in specs}})
