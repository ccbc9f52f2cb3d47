"""What a workflow run streams to its consumer (the chat turn re-exports these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zhiku.chat_model import Usage
from zhiku.errors import ZhikuError
from zhiku.retrieval.fusion import Candidate


@dataclass(frozen=True)
class NodeStatus:
    """A node started (FastGPT's ``flowNodeStatus``; only nodes with ``showStatus``)."""

    name: str
    status: str = "running"


@dataclass(frozen=True)
class QuotesFound:
    quotes: list[Candidate]


@dataclass(frozen=True)
class AnswerText:
    """Answer text for the user, in answer order. ``fast``: a whole fixed reply (``fastAnswer``)."""

    text: str
    fast: bool = False


@dataclass(frozen=True)
class NodeResponse:
    """One node finished: its ``responseData`` item (v2's ``flowNodeResponse``)."""

    item: dict[str, Any]


@dataclass(frozen=True)
class VariablesUpdated:
    """The global variables changed (``updateVariables``): all of them, without system variables."""

    variables: dict[str, Any]


@dataclass(frozen=True)
class InteractionRequested:
    """A node paused the run for the user (``interactive``); the payload is stored to resume from."""

    interactive: dict[str, Any]


@dataclass(frozen=True)
class WorkflowFinished:
    """Always last from a run."""

    response_data: list[dict[str, Any]]
    new_variables: dict[str, Any]
    usage: Usage
    duration_s: float
    model: str | None  # of the last model call, if any
    finish_reason: str
    error: ZhikuError | None = None  # the first failure that no catch-error branch took
    interactive: dict[str, Any] | None = None
    custom_feedbacks: list[str] = field(default_factory=list)


WorkflowEvent = (NodeStatus | QuotesFound | AnswerText | NodeResponse | VariablesUpdated | InteractionRequested
                 | WorkflowFinished)
