"""References, text templates and value types (FASTGPT-FORMATS.md §1.6). Pure.

A reference is ``[nodeId, outputId]`` (``VARIABLE_NODE_ID`` for a global variable) or a list of such
pairs; ``{{$nodeId.outputId$}}`` inside text is a node-output template and ``{{key}}`` a variable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from zhiku.apps.workflow.graph import VARIABLE_NODE_ID

NODE_TEMPLATE = re.compile(r"\{\{\$([^.{}$]+)\.([^{}$]+?)\$\}\}")
VARIABLE_TEMPLATE = re.compile(r"\{\{([^{}$][^{}]*?)\}\}")
ARRAY_TYPES = {"arrayString": "string", "arrayNumber": "number", "arrayBoolean": "boolean",
               "arrayObject": "object", "arrayAny": "any"}
# Inputs kept as written: no templates, no references.
RAW_INPUT_KEYS = frozenset({"childrenNodeIdList", "system_httpJsonBody"})

Lookup = Callable[[str, str], Any]


def is_pair(value: Any, node_ids: Collection[str]) -> bool:
    return (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
            and (value[0] in node_ids or value[0] == VARIABLE_NODE_ID))


def references(value: Any, node_ids: Collection[str]) -> list[tuple[str, str]] | None:
    """The pairs ``value`` refers to, or None if it is a literal."""
    if is_pair(value, node_ids):
        return [(value[0], value[1])]
    if isinstance(value, list) and value and all(is_pair(v, node_ids) for v in value):
        return [(v[0], v[1]) for v in value]
    return None


def resolve_reference(value: Any, node_ids: Collection[str], lookup: Lookup) -> Any:
    pairs = references(value, node_ids)
    if pairs is None:
        return value
    if is_pair(value, node_ids):
        return lookup(*pairs[0])
    flat: list[Any] = []
    for pair in pairs:
        found = lookup(*pair)
        if isinstance(found, list):
            flat.extend(v for v in found if v is not None)
        elif found is not None:
            flat.append(found)
    return flat


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def template_refs(text: str) -> list[tuple[str, str]]:
    return NODE_TEMPLATE.findall(text)


def render(text: str, lookup: Lookup, variables: Mapping[str, Any]) -> str:
    """Node-output templates first, then ``{{key}}`` variables; unknown variables stay as written."""
    if "{{" not in text:
        return text
    text = NODE_TEMPLATE.sub(lambda m: to_text(lookup(m.group(1), m.group(2))), text)
    return render_variables(text, variables)


def render_variables(text: str, variables: Mapping[str, Any]) -> str:
    if "{{" not in text:
        return text
    return VARIABLE_TEMPLATE.sub(
        lambda m: to_text(variables[m.group(1)]) if m.group(1) in variables else m.group(0), text)


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value
        if math.isfinite(number) and number.is_integer() and "." not in value and "e" not in value.lower():
            return int(number)
        return number
    return value


def _json(value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def coerce(value: Any, value_type: str) -> Any:
    """A value converted to a FastGPT ``valueType`` where that makes sense; otherwise as it was."""
    if value is None or value_type in ("any", "dynamic", ""):
        return value
    if value_type == "string":
        return to_text(value)
    if value_type == "number":
        return _number(value)
    if value_type == "boolean":
        if isinstance(value, str):
            return value.strip().lower() not in ("false", "0", "", "null", "undefined")
        return bool(value)
    if value_type in ("object", "datasetQuote", "chatHistory", "selectDataset", "selectApp") or \
            value_type in ARRAY_TYPES:
        if isinstance(value, str):
            value = _json(value)
        if value_type in ARRAY_TYPES:
            if not isinstance(value, list):
                value = [value]
            element = ARRAY_TYPES[value_type]
            return [coerce(v, element) for v in value] if element != "any" else value
        return value
    return value


_COMPATIBLE_ANY = {"any", "dynamic", ""}
_STRUCTURED = {"datasetQuote", "chatHistory", "selectDataset", "selectApp"}


def types_compatible(source: str, target: str) -> bool:
    """Whether an output of type ``source`` can feed an input of type ``target``.

    FastGPT coerces most pairs (anything renders as a string, a scalar wraps into an array); what never
    works is a dataset quote list or a chat history meeting a scalar, or a list or object feeding a
    number or boolean."""
    if source == target or source in _COMPATIBLE_ANY or target in _COMPATIBLE_ANY:
        return True
    if source in _STRUCTURED or target in _STRUCTURED:
        return (source in ("arrayObject", "arrayAny", "object") and target in _STRUCTURED) or \
            (target in ("arrayObject", "arrayAny", "object", "string") and source in _STRUCTURED)
    if target == "string":
        return True
    if target in ("number", "boolean"):
        return source in ("string", "number", "boolean")
    if target in ARRAY_TYPES:
        return source in ARRAY_TYPES or source in ("string", "number", "boolean", "object") or \
            ARRAY_TYPES[target] == source
    if target == "object":
        return source in ("string", "object") or source in ARRAY_TYPES
    return True
