"""An answer as FastGPT stores it: a list of value items (``text``, ``interactive``) in order.

A run that pauses for the user (userSelect, formInput) ends its answer with an ``interactive`` item; the
message that answers it resumes the run, and FastGPT merges the resumed run into the same answer: the
interactive item records the reply (``userSelectedVal``, or the form's values and ``submitted``) and the
new items are appended. Pure functions over JSON values; the chat turn and the record APIs use them.
"""

from __future__ import annotations

import copy
import json
from typing import Any


def text_item(content: str) -> dict[str, Any]:
    return {"type": "text", "text": {"content": content}}


def answer_value(text: str, interactive: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The value items of one run's answer: its text, then the interaction it paused on."""
    items = [text_item(text)] if text else []
    if interactive is not None:
        items.append({"type": "interactive", "interactive": interactive})
    return items


def stored_value(content: str, interactive: dict[str, Any] | None, value: list[Any] | None) -> list[Any]:
    """An answer's value items; answers stored before the list was kept are rebuilt from their text and
    pending interaction."""
    return list(value) if value is not None else answer_value(content, interactive)


def answered(interactive: dict[str, Any], reply: str) -> dict[str, Any]:
    """The interaction with the user's reply recorded in it, as FastGPT's updateInteractiveChat does: a
    choice in ``params.userSelectedVal``; a form's submitted values in its fields' ``value`` (by key, or
    by label as FastGPT's page sends them) and ``params.submitted``."""
    done = copy.deepcopy(interactive)
    params = done.setdefault("params", {})
    if done.get("type") == "userSelect":
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


def resumed_value(value: list[Any], reply: str, text: str,
                  interactive: dict[str, Any] | None) -> list[Any]:
    """``value`` (an answer that paused) with the reply recorded in its last interaction and the resumed
    run's items appended."""
    merged = list(value)
    for i in range(len(merged) - 1, -1, -1):
        item = merged[i]
        if isinstance(item, dict) and item.get("type") == "interactive" and isinstance(item.get("interactive"), dict):
            merged[i] = {**item, "interactive": answered(item["interactive"], reply)}
            break
    return merged + answer_value(text, interactive)
