"""ifElseNode: condition groups → IF / ELSE IF n / ELSE; every branch but the first match is skipped.

Operators (FastGPT's ``ifElse/constant.ts``): equalTo, notEqual (strings compared after trimming),
isEmpty, isNotEmpty, include, notInclude (substring, or membership in a list), startWith, endWith,
reg (a regular expression, surrounding slashes stripped), greaterThan, greaterThanOrEqualTo, lessThan,
lessThanOrEqualTo (numeric), lengthEqualTo, lengthNotEqualTo, lengthGreaterThan,
lengthGreaterThanOrEqualTo, lengthLessThan, lengthLessThanOrEqualTo. A condition without an operator is
false; AND needs every condition, OR any.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from zhiku.apps.workflow.graph import as_list, Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import render_variables, to_text
from zhiku.apps.workflow.validate import reference_problem

MAX_PATTERN_CHARS = 1000


def _number(value: Any) -> float | None:
    try:
        number = float(value) if not isinstance(value, bool) else float(int(value))
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, (list, dict)):
        return not value
    return False


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    return len(to_text(value))


def _compare(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(left: Any, right: Any) -> bool:
        a, b = _number(left), _number(right)
        return a is not None and b is not None and op(a, b)
    return check


def _length_compare(op: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(left: Any, right: Any) -> bool:
        b = _number(right)
        return b is not None and op(_length(left), b)
    return check


def _include(left: Any, right: Any) -> bool:
    if isinstance(left, list):
        return to_text(right).strip() in [to_text(v).strip() for v in left]
    return to_text(right) in to_text(left)


def _regex(left: Any, right: Any) -> bool:
    pattern = to_text(right).strip()
    if len(pattern) > 1 and pattern.startswith("/") and pattern.rfind("/") > 0:
        pattern = pattern[1:pattern.rfind("/")]
    if len(pattern) > MAX_PATTERN_CHARS:
        return False
    try:
        return re.search(pattern, to_text(left)) is not None
    except re.error:
        return False


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "equalTo": lambda a, b: to_text(a).strip() == to_text(b).strip(),
    "notEqual": lambda a, b: to_text(a).strip() != to_text(b).strip(),
    "isEmpty": lambda a, b: is_empty(a),
    "isNotEmpty": lambda a, b: not is_empty(a),
    "include": _include,
    "notInclude": lambda a, b: not _include(a, b),
    "startWith": lambda a, b: to_text(a).startswith(to_text(b)),
    "endWith": lambda a, b: to_text(a).endswith(to_text(b)),
    "reg": _regex,
    "greaterThan": _compare(lambda a, b: a > b),
    "greaterThanOrEqualTo": _compare(lambda a, b: a >= b),
    "lessThan": _compare(lambda a, b: a < b),
    "lessThanOrEqualTo": _compare(lambda a, b: a <= b),
    "lengthEqualTo": _length_compare(lambda a, b: a == b),
    "lengthNotEqualTo": _length_compare(lambda a, b: a != b),
    "lengthGreaterThan": _length_compare(lambda a, b: a > b),
    "lengthGreaterThanOrEqualTo": _length_compare(lambda a, b: a >= b),
    "lengthLessThan": _length_compare(lambda a, b: a < b),
    "lengthLessThanOrEqualTo": _length_compare(lambda a, b: a <= b),
}


def branch_names(groups: list[Any]) -> list[str]:
    return ["IF"] + [f"ELSE IF {i}" for i in range(1, len(groups))] + ["ELSE"]


def _groups(value: Any) -> list[dict[str, Any]]:
    return [g for g in as_list(value) if isinstance(g, dict)]


def _pair(value: Any) -> tuple[str, str] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return value[0], value[1]
    return None


def evaluate(groups: list[dict[str, Any]], lookup: Callable[[str, str], Any],
             variables: dict[str, Any]) -> str:
    for index, group in enumerate(groups):
        results = []
        for item in as_list(group.get("list")):
            if not isinstance(item, dict):
                continue
            operator = OPERATORS.get(str(item.get("condition") or ""))
            pair = _pair(item.get("variable"))
            if operator is None or pair is None:
                results.append(False)
                continue
            left = lookup(*pair)
            right = item.get("value")
            if item.get("valueType") == "reference" and _pair(right) is not None:
                right = lookup(*_pair(right))  # type: ignore[misc]
            elif isinstance(right, str):
                right = render_variables(right, variables)
            results.append(operator(left, right))
        joined = any(results) if str(group.get("condition") or "AND").upper() == "OR" else \
            (bool(results) and all(results))
        if joined:
            return branch_names(groups)[index]
    return "ELSE"


async def run(ctx: NodeContext) -> NodeResult:
    groups = _groups(ctx.node.value("ifElseList"))
    result = evaluate(groups, ctx.lookup, ctx.env.variables)
    return NodeResult(outputs={"ifElseResult": result},
                      skip_handles=tuple(b for b in branch_names(groups) if b != result),
                      response={"totalPoints": 0, "ifElseResult": result})


def check(node: Node, workflow: Workflow) -> list[str]:
    problems = []
    for group in _groups(node.value("ifElseList")):
        for item in as_list(group.get("list")):
            operator = item.get("condition") if isinstance(item, dict) else None
            if operator and operator not in OPERATORS:
                problems.append(f"unknown condition operator {operator!r}")
            pair = _pair(item.get("variable")) if isinstance(item, dict) else None
            if pair is not None:
                problem = reference_problem(pair, workflow)
                if problem:
                    problems.append(f"a condition {problem}")
    return problems


SPEC = NodeSpec(kind="ifElseNode", inline=True, run=run, check=check,
                branches=lambda node: branch_names(_groups(node.value("ifElseList"))), description="if / else")
