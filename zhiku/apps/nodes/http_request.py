"""httpRequest468: an HTTP request with templated URL, headers, query parameters and body; JSONPath outputs.

Everything goes through the platform's one safe fetcher (:mod:`zhiku.knowledge.fetch`): http(s) only, the
host's addresses checked after DNS and on every redirect (private ones refused unless
``ZHIKU_ALLOW_PRIVATE_URLS``), the response capped at ``ZHIKU_FETCH_MAX_BYTES``, the node's timeout
(``system_httpTimeout``, 1–600 s, default 30) as the whole request's deadline. A refused address, a
timeout or an HTTP error status is the node's error with the fetcher's code (``url_private_address`` …),
so a ``catchError`` branch can take it.

Templates: ``{{$nodeId.outputId$}}`` and ``{{key}}`` (global variables and the node's own dynamic inputs)
in the URL, header and parameter values and the body. In a JSON body a template that is a whole JSON
string (``"{{x}}"``) becomes the value's JSON (a number stays a number, an object an object); inside a
longer string it is escaped text; outside strings it is the value's JSON. Bodies: ``json``, ``form-data``,
``x-www-form-urlencoded``, ``xml``, ``raw-text``, or ``none``. Outputs: ``httpRawResponse`` (parsed JSON,
else text) and one output per user-added output whose key is a JSONPath into the response.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from zhiku.apps.nodes._jsonpath import query
from zhiku.apps.workflow.graph import Node, Workflow
from zhiku.apps.workflow.node import NodeContext, NodeResult, NodeSpec
from zhiku.apps.workflow.refs import NODE_TEMPLATE, VARIABLE_TEMPLATE, Lookup, render, to_text
from zhiku.errors import InvalidInput

DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 600
MAX_BODY_BYTES = 5 * 1024 * 1024  # what the node sends
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
CONTENT_TYPES = {"json": "application/json", "form-data": "multipart/form-data",
                 "x-www-form-urlencoded": "application/x-www-form-urlencoded", "xml": "application/xml",
                 "raw-text": "text/plain"}
# Outputs the node always has; every other output is a JSONPath into the response.
FIXED_OUTPUTS = frozenset({"system_addOutputParam", "httpRawResponse", "error", "system_error_text"})
_TEMPLATE = re.compile(f"{NODE_TEMPLATE.pattern}|{VARIABLE_TEMPLATE.pattern}")


def _template_value(match: re.Match[str], lookup: Lookup, variables: Mapping[str, Any]) -> tuple[bool, Any]:
    if match.group(1) is not None:
        return True, lookup(match.group(1), match.group(2))
    key = match.group(3)
    return (key in variables), variables.get(key)


def _in_string(text: str, position: int) -> bool:
    """Whether ``position`` in JSON text is inside a string literal."""
    inside = escaped = False
    for char in text[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = inside
        elif char == '"':
            inside = not inside
    return inside


def render_json_body(text: str, lookup: Lookup, variables: Mapping[str, Any]) -> str:
    """The JSON body with its templates replaced so the result stays JSON (see the module docstring)."""
    whole = re.compile(f'"(?:{_TEMPLATE.pattern})"')

    def whole_string(match: re.Match[str]) -> str:
        inner = _TEMPLATE.fullmatch(match.group(0)[1:-1])
        assert inner is not None
        known, value = _template_value(inner, lookup, variables)
        return json.dumps(value, ensure_ascii=False) if known else match.group(0)

    text = whole.sub(whole_string, text)
    out: list[str] = []
    last = 0
    for match in _TEMPLATE.finditer(text):
        known, value = _template_value(match, lookup, variables)
        out.append(text[last:match.start()])
        if not known:
            out.append(match.group(0))
        elif _in_string(text, match.start()):
            out.append(json.dumps(to_text(value), ensure_ascii=False)[1:-1])
        else:
            out.append(json.dumps(value, ensure_ascii=False))
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def pairs(value: Any, lookup: Lookup, variables: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A header/parameter/form list ``[{key, value}]`` with templates rendered; empty keys dropped."""
    found = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict) or not to_text(item.get("key")).strip():
            continue
        raw = item.get("value")
        if isinstance(raw, dict):  # a secret header: {"secret": …, "value": …}
            raw = raw.get("value", raw.get("secret"))
        found.append((render(to_text(item["key"]).strip(), lookup, variables),
                      render(to_text(raw), lookup, variables)))
    return found


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        safe = name.replace('"', "%22").replace("\r", " ").replace("\n", " ")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{safe}"\r\n\r\n{value}\r\n')
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode(), f"multipart/form-data; boundary={boundary}"


def build_body(content_type: str, json_body: str, form: list[tuple[str, str]],
               lookup: Lookup, variables: Mapping[str, Any]) -> tuple[bytes | None, str | None, Any]:
    """The bytes to send, their Content-Type, and the body as responseData shows it."""
    if content_type == "json":
        if not json_body.strip():
            return None, None, None
        text = render_json_body(json_body, lookup, variables)
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"the JSON body is not valid JSON after its templates were filled in ({exc})",
                               code="http_body_invalid") from None
        return text.encode(), CONTENT_TYPES["json"], parsed
    if content_type == "form-data":
        body, header = multipart(form)
        return body, header, dict(form)
    if content_type == "x-www-form-urlencoded":
        return urlencode(form).encode(), CONTENT_TYPES[content_type], dict(form)
    if content_type in ("xml", "raw-text"):
        text = render(json_body, lookup, variables)
        return text.encode(), CONTENT_TYPES[content_type], text
    return None, None, None


def path_outputs(node: Node, response: Any) -> dict[str, Any]:
    """Each user-added output's value: its key read as a JSONPath into the response."""
    values: dict[str, Any] = {}
    for output in node.outputs:
        if output.key in FIXED_OUTPUTS or output.type == "error" or not output.key.strip():
            continue
        try:
            values[output.key] = query(response, output.key)
        except ValueError:
            values[output.key] = None
    return values


def timeout(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT_S
    return min(max(seconds, 1.0), MAX_TIMEOUT_S)


def parse_response(body: bytes, charset: str | None) -> Any:
    text = body.decode(charset or "utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def run(ctx: NodeContext) -> NodeResult:
    import httpx  # the HTTP stack loads with the first request, not the node registry (``zhiku apps import``)

    from zhiku.knowledge.fetch import FetchRequest, fetch

    variables = {**ctx.env.variables, **ctx.dynamic_inputs()}
    method = to_text(ctx.get("system_httpMethod") or "POST").upper()
    if method not in METHODS:
        raise InvalidInput(f"{ctx.node.label}: unknown HTTP method {method!r}", code="http_method_invalid")
    url = render(to_text(ctx.get("system_httpReqUrl")).strip(), ctx.lookup, variables)
    headers = pairs(ctx.get("system_httpHeader"), ctx.lookup, variables)
    params = pairs(ctx.get("system_httpParams"), ctx.lookup, variables)
    secret = ctx.get("system_header_secret")
    if isinstance(secret, dict):
        headers += [(str(k), to_text(v.get("value", v.get("secret")) if isinstance(v, dict) else v))
                    for k, v in secret.items()]
    content_type = to_text(ctx.get("system_httpContentType") or "json")
    body, body_type, shown_body = build_body(
        content_type, to_text(ctx.node.value("system_httpJsonBody")),
        pairs(ctx.get("system_httpFormBody"), ctx.lookup, variables), ctx.lookup, variables)
    if body is not None and len(body) > MAX_BODY_BYTES:
        raise InvalidInput(f"{ctx.node.label}: the request body is {len(body)} bytes; at most {MAX_BODY_BYTES}",
                           code="http_body_too_large")
    if params:
        url = str(httpx.URL(url).copy_merge_params(params)) if url else url
    if body_type and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", body_type))
    seconds = timeout(ctx.get("system_httpTimeout"))
    policy = replace(ctx.env.deps.fetch_policy, deadline_seconds=seconds, timeout_seconds=seconds)
    page = await fetch(url, policy, request=FetchRequest(method=method, headers=tuple(headers),
                                                         body=body if method not in ("GET", "HEAD") else None))
    result = parse_response(page.body, page.charset)
    if isinstance(result, dict) and isinstance(result.get("answerText"), str):
        ctx.fast_answer(result["answerText"])  # FastGPT: a response's answerText goes to the user
    return NodeResult(outputs={"httpRawResponse": result, **path_outputs(ctx.node, result)},
                      response={"totalPoints": 0, "params": dict(params), "body": shown_body,
                                "headers": {k: v for k, v in headers}, "httpResult": result})


def check(node: Node, workflow: Workflow) -> list[str]:
    problems = []
    if not to_text(node.value("system_httpReqUrl")).strip():
        problems.append("it has no URL")
    method = to_text(node.value("system_httpMethod") or "POST").upper()
    if method not in METHODS:
        problems.append(f"unknown HTTP method {method!r}")
    content_type = to_text(node.value("system_httpContentType") or "json")
    if content_type not in CONTENT_TYPES and content_type != "none":
        problems.append(f"unknown content type {content_type!r}")
    return problems


SPEC = NodeSpec(kind="httpRequest468", run=run, check=check, description="HTTP request")
