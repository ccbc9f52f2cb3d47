"""An answer as FastGPT stores it: a list of value items (``text``, ``tool``, ``interactive``) in order.

A tools node's calls sit between the answer's text items where they happened: the calls one model answer
made form one ``tool`` item whose ``tools`` list each call (``id``, ``toolName``, ``toolAvatar``,
``functionName``, ``params``, ``response``), as FastGPT's GPTMessages2Chats builds them.

A run that pauses for the user (userSelect, formInput) ends its answer with an ``interactive`` item; the
message that answers it resumes the run, and FastGPT merges the resumed run into the same answer: the
interactive item records the reply (``userSelectedVal``, or the form's values and ``submitted``) and the
new items are appended. Pure functions over JSON values; the chat turn and the record APIs use them.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from zhiku.apps.workflow.events import ToolActivity


# Interactions that wrap the one of a nested run (a tool branch, a loop body, a child app) in
# ``params.childrenResponse``.
CHILD_INTERACTIONS = frozenset({"toolChildrenInteractive", "loopInteractive", "childrenInteractive"})


def text_item(content: str) -> dict[str, Any]:
    return {"type": "text", "text": {"content": content}}


def answer_value(text: str, interactive: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The value items of one run's answer: its text, then the interaction it paused on."""
    items = [text_item(text)] if text else []
    if interactive is not None:
        items.append({"type": "interactive", "interactive": interactive})
    return items


class AnswerItems:
    """The value items of one run's answer, built from its events as they arrive: adjacent answer text
    in one ``text`` item, each model answer's tool calls in one ``tool`` item (a call's arguments and
    response filled in as they stream), in the order they happened."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._calls: dict[str, dict[str, Any]] = {}
        self._open_round = False  # the last item holds calls of a model answer whose tools have not run yet
        # Results of calls made before the run paused for the user (a resumed tool branch's result),
        # by call id: they belong to the answer that paused.
        self.earlier_responses: dict[str, str] = {}

    def add_text(self, text: str) -> None:
        if not text:
            return
        self._open_round = False
        last = self._items[-1] if self._items else None
        if last is not None and last["type"] == "text":
            last["text"]["content"] += text
        else:
            self._items.append(text_item(text))

    def add_tool(self, activity: ToolActivity) -> None:
        if activity.event == "toolCall":
            call = {"id": activity.call_id, "toolName": activity.tool_name, "toolAvatar": activity.tool_avatar,
                    "functionName": activity.function_name, "params": activity.params, "response": ""}
            self._calls[activity.call_id] = call
            if not self._open_round:
                self._items.append({"type": "tool", "tools": []})
                self._open_round = True
            self._items[-1]["tools"].append(call)
            return
        call = self._calls.get(activity.call_id)
        if call is None:
            if activity.event == "toolResponse":
                self.earlier_responses[activity.call_id] = activity.response
            return
        if activity.event == "toolParams":
            call["params"] += activity.params
        elif activity.event == "toolResponse":
            call["response"] = activity.response
            self._open_round = False  # the answer's tools run: a later call belongs to the next answer

    def value(self, interactive: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The items so far, then the interaction the run paused on."""
        items = copy.deepcopy(self._items)
        if interactive is not None:
            items.append({"type": "interactive", "interactive": interactive})
        return items


def without_tools(value: list[Any]) -> list[Any]:
    """An answer's items without its tool calls (what a share link that hides node status shows)."""
    return [item for item in value if not (isinstance(item, dict) and item.get("type") == "tool")]


def stored_value(content: str, interactive: dict[str, Any] | None, value: list[Any] | None) -> list[Any]:
    """An answer's value items; answers stored before the list was kept are rebuilt from their text and
    pending interaction."""
    return list(value) if value is not None else answer_value(content, interactive)


def message_value(role: str, content: str, interactive: dict[str, Any] | None, value: list[Any] | None) -> list[Any]:
    """A stored message's value items: an answer's as stored, a question as its one text item."""
    return stored_value(content, interactive, value) if role == "assistant" else [text_item(content)]


def answered(interactive: dict[str, Any], reply: str) -> dict[str, Any]:
    """The interaction with the user's reply recorded in it, as FastGPT's updateInteractiveChat does: a
    choice in ``params.userSelectedVal``; a form's submitted values in its fields' ``value`` (by key, or
    by label as FastGPT's page sends them) and ``params.submitted``."""
    done = copy.deepcopy(interactive)
    params = done.setdefault("params", {})
    child = params.get("childrenResponse")
    if done.get("type") in CHILD_INTERACTIONS and isinstance(child, dict):  # the nested node that asked
        params["childrenResponse"] = answered(child, reply)
    elif done.get("type") == "userSelect":
        params["userSelectedVal"] = reply
    elif done.get("type") == "userInput":
        try:
            submitted = json.loads(reply)
        except ValueError:
            submitted = None
        if isinstance(submitted, dict):
            for field in params.get("inputForm") or []:
                if not isinstance(field, dict):
                    continue
                for name in (field.get("key"), field.get("label")):
                    if isinstance(name, str) and name in submitted:
                        field["value"] = submitted[name]
                        break
            params["submitted"] = True
    return done


def resumed_value(value: list[Any], reply: str, added: list[Any],
                  responses: dict[str, str] | None = None) -> list[Any]:
    """``value`` (an answer that paused) with the reply recorded in its last interaction, the results of
    its tool calls that waited for the user (``responses`` by call id) filled in, and the resumed run's
    items (``added``) appended."""
    merged = list(value)
    for i in range(len(merged) - 1, -1, -1):
        item = merged[i]
        if isinstance(item, dict) and item.get("type") == "interactive" and isinstance(item.get("interactive"), dict):
            merged[i] = {**item, "interactive": answered(item["interactive"], reply)}
            break
    for i, item in enumerate(merged):
        if responses and isinstance(item, dict) and item.get("type") == "tool" and isinstance(item.get("tools"), list):
            merged[i] = {**item, "tools": [{**call, "response": responses[call["id"]]}
                                           if isinstance(call, dict) and call.get("id") in responses else call
                                           for call in item["tools"]]}
    return merged + added
