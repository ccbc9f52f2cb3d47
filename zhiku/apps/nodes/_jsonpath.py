"""JSONPath as the HTTP node's outputs use it (FastGPT reads them with jsonpath-plus). Pure.

Supported: ``$`` root, ``.key`` / ``['key']`` / ``["key"]``, ``[n]`` (negative from the end), ``[*]`` / ``.*``,
``[a:b]`` slices, ``[1,2]`` / ``['a','b']`` unions and ``..key`` recursive descent. A path without
``$`` gets ``$.`` in front. A path with a wildcard, slice, union or ``..`` gives a list of every match;
a plain path gives its one value, or None when nothing is there. Filters (``?()``) match nothing.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PATH_CHARS = 500
_TOKEN = re.compile(r"\.\.|\.\*|\.([^.\[\]]+)|\[([^\]]*)\]")


def _steps(path: str) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"cannot read JSONPath {path!r} at {path[position:]!r}")
        text = match.group(0)
        if text == "..":
            steps.append(("descend", None))
        elif text == ".*":
            steps.append(("wild", None))
        elif match.group(1) is not None:
            steps.append(("key", match.group(1)))
        else:
            steps.append(_bracket(match.group(2).strip()))
        position = match.end()
    return steps


def _bracket(inner: str) -> tuple[str, Any]:
    if inner == "*":
        return "wild", None
    if inner.startswith("?"):
        return "none", None
    if ":" in inner and not inner.startswith(("'", '"')):
        parts = [int(p) if p.strip() else None for p in inner.split(":")[:3]]
        return "slice", slice(*parts)
    items = [p.strip() for p in inner.split(",")]
    keys: list[Any] = [p[1:-1] if len(p) >= 2 and p[0] in "'\"" and p[-1] == p[0] else int(p) for p in items]
    return ("union", keys) if len(keys) > 1 else ("key", keys[0])


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list) else []


def _descendants(value: Any) -> list[Any]:
    found = [value]
    for child in _children(value):
        found.extend(_descendants(child))
    return found


def _get(value: Any, key: Any) -> list[Any]:
    if isinstance(value, dict) and str(key) in value:
        return [value[str(key)]]
    if isinstance(value, list):
        try:
            index = int(key)
        except (TypeError, ValueError):
            return []
        if -len(value) <= index < len(value):
            return [value[index]]
    return []


def query(data: Any, path: str) -> Any:
    """The value(s) at ``path`` in ``data``; raises ValueError for a path it cannot read."""
    path = path.strip()
    if len(path) > MAX_PATH_CHARS:
        raise ValueError(f"a JSONPath may have at most {MAX_PATH_CHARS} characters")
    if not path.startswith("$"):
        path = "$." + path if not path.startswith("[") else "$" + path
    steps = _steps(re.sub(r"\.\.(?=[^.\[])", "...", path[1:]))  # "..key" reads as descend, then ".key"
    many = any(kind in ("descend", "wild", "slice", "union", "none") for kind, _ in steps)
    current = [data]
    for kind, arg in steps:
        if kind == "descend":
            current = [d for value in current for d in _descendants(value)]
        elif kind == "wild":
            current = [c for value in current for c in _children(value)]
        elif kind == "key":
            current = [found for value in current for found in _get(value, arg)]
        elif kind == "union":
            current = [found for value in current for key in arg for found in _get(value, key)]
        elif kind == "slice":
            current = [c for value in current if isinstance(value, list) for c in value[arg]]
        else:
            current = []
    if many:
        return current
    return current[0] if current else None
