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
class ToolActivity:
    """A tools node's tool call, as FastGPT streams it: ``toolCall`` when a call starts (the tool's name
    and avatar, the function name, the arguments so far), ``toolParams`` for each later piece of its
    arguments, ``toolResponse`` with the tool's result (cut to its first and last 5,000 characters)."""

    event: str  # toolCall | toolParams | toolResponse
    call_id: str
    tool_name: str = ""
    tool_avatar: str = ""
    function_name: str = ""  # toolCall only
    params: str = ""
    response: str = ""

    def payload(self) -> dict[str, Any]:
        tool = {"id": self.call_id, "toolName": self.tool_name, "toolAvatar": self.tool_avatar,
                "params": self.params, "response": self.response}
        if self.event == "toolCall":
            tool["functionName"] = self.function_name
        return {"tool": tool}


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
    # Every output the run produced: node id -> output id -> value (a nested run hands them to its caller).
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)


WorkflowEvent = (NodeStatus | QuotesFound | AnswerText | NodeResponse | VariablesUpdated | InteractionRequested
                 | ToolActivity | WorkflowFinished)
