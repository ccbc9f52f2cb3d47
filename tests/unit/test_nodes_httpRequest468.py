"""httpRequest468's pure parts: JSONPath outputs, JSON body templates, header/param lists, bodies, timeout."""

from __future__ import annotations

import json

import pytest

from zhiku.apps.nodes._jsonpath import query
from zhiku.apps.nodes.http_request import build_body, check, pairs, path_outputs, render_json_body, timeout
from zhiku.apps.workflow.graph import parse_node
from zhiku.apps.workflow.graph import Workflow
from zhiku.errors import InvalidInput

DATA = {"data": {"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}], "total": 2}, "name": "root",
        "odd key": True}
OUTPUTS = {("up", "city"): "Paris", ("up", "n"): 3, ("up", "obj"): {"k": [1, 2]}, ("up", "quote"): 'say "hi"'}


def lookup(node_id: str, output_id: str):
    return OUTPUTS.get((node_id, output_id))


@pytest.mark.parametrize(("path", "expected"), [
    ("$.data.total", 2), ("data.total", 2), ("$.data.items[0].name", "a"), ("$.data.items[-1].n", 2),
    ("$.data.items[*].name", ["a", "b"]), ("$..name", ["root", "a", "b"]), ("$.data.items[0:1]", [DATA["data"]["items"][0]]),
    ("$['odd key']", True), ("$.data.items[0,1].n", [1, 2]), ("$.missing", None), ("$.data.items[9]", None),
    ("$.data.items[?(@.n>1)]", []), ("$", DATA)])
def test_jsonpath(path: str, expected: object) -> None:
    assert query(DATA, path) == expected


def test_a_path_it_cannot_read_is_an_error() -> None:
    with pytest.raises(ValueError):
        query(DATA, "$.a[")


def test_json_body_templates_keep_json_types_and_escape_inside_strings() -> None:
    body = ('{"city": "{{$up.city$}}", "n": {{$up.n$}}, "obj": "{{$up.obj$}}", "text": "I said {{$up.quote$}}", '
            '"v": "{{lang}}", "unknown": "{{nope}}"}')
    rendered = render_json_body(body, lookup, {"lang": "zh"})
    assert json.loads(rendered) == {"city": "Paris", "n": 3, "obj": {"k": [1, 2]}, "text": 'I said say "hi"',
                                    "v": "zh", "unknown": "{{nope}}"}


def test_bodies_of_each_content_type() -> None:
    form = [("a", "1"), ("b", "x y")]
    body, kind, shown = build_body("json", '{"q": "{{q}}"}', [], lookup, {"q": "hi"})
    assert json.loads(body) == {"q": "hi"} and kind == "application/json" and shown == {"q": "hi"}
    body, kind, _ = build_body("x-www-form-urlencoded", "", form, lookup, {})
    assert body == b"a=1&b=x+y" and kind == "application/x-www-form-urlencoded"
    body, kind, _ = build_body("form-data", "", form, lookup, {})
    assert kind.startswith("multipart/form-data; boundary=") and b'name="b"\r\n\r\nx y\r\n' in body
    body, kind, _ = build_body("raw-text", "city={{$up.city$}}", [], lookup, {})
    assert body == b"city=Paris" and kind == "text/plain"
    assert build_body("none", '{"x": 1}', form, lookup, {}) == (None, None, None)
    with pytest.raises(InvalidInput) as caught:
        build_body("json", '{"q": {{q}}', [], lookup, {"q": 1})
    assert caught.value.code == "http_body_invalid"


def test_header_lists_render_and_drop_empty_keys() -> None:
    value = [{"key": "X-City", "type": "string", "value": "{{$up.city$}}"}, {"key": "", "value": "x"},
             {"key": "Authorization", "type": "secret", "value": {"secret": "", "value": "Bearer {{tok}}"}}, "junk"]
    assert pairs(value, lookup, {"tok": "t1"}) == [("X-City", "Paris"), ("Authorization", "Bearer t1")]


def test_custom_outputs_read_their_key_as_a_jsonpath() -> None:
    node = parse_node({"nodeId": "h", "flowNodeType": "httpRequest468", "outputs": [
        {"id": "system_addOutputParam", "key": "system_addOutputParam"},
        {"id": "httpRawResponse", "key": "httpRawResponse"}, {"id": "error", "key": "error", "type": "error"},
        {"id": "r1", "key": "$.data.total", "type": "dynamic"}, {"id": "r2", "key": "data.items[*].name"},
        {"id": "r3", "key": "$.a["}]}, 0)
    assert path_outputs(node, DATA) == {"$.data.total": 2, "data.items[*].name": ["a", "b"], "$.a[": None}


@pytest.mark.parametrize(("value", "seconds"), [(None, 30), ("abc", 30), (5, 5), ("12", 12), (0, 1), (9999, 600)])
def test_timeout_is_bounded(value: object, seconds: float) -> None:
    assert timeout(value) == seconds


def test_check_names_a_missing_url_and_bad_method() -> None:
    node = parse_node({"nodeId": "h", "flowNodeType": "httpRequest468", "inputs": [
        {"key": "system_httpMethod", "value": "FETCH"}, {"key": "system_httpContentType", "value": "yaml"}]}, 0)
    assert check(node, Workflow(nodes=(node,), edges=())) == ["it has no URL", "unknown HTTP method 'FETCH'",
                                                             "unknown content type 'yaml'"]
