"""The workflow graph: parsing FastGPT's JSON with its quirks, references and templates, validation
errors that name the node, the three import forms and the export without dataset ids or secrets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from zhiku.apps.nodes import REGISTRY
from zhiku.apps.workflow.formats import export_workflow, unwrap
from zhiku.apps.workflow.graph import MAX_NODES, parse_workflow
from zhiku.apps.workflow.refs import coerce, render, resolve_reference, to_text, types_compatible
from zhiku.apps.workflow.validate import check_workflow
from zhiku.apps.workflow_apps import check_graph
from zhiku.errors import InvalidInput, PayloadTooLarge

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def codes(raw: dict) -> list[str]:
    return [p.code for p in check_workflow(parse_workflow(raw), REGISTRY)]


def test_every_fixture_of_a_supported_kind_passes_the_checks() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name == "unsupported_kinds.json":
            continue
        graph, workflow = check_graph(unwrap(json.loads(path.read_text(encoding="utf-8"))).graph)
        assert workflow.nodes and graph["nodes"], path.name


def test_three_import_forms_unwrap_to_the_same_shape() -> None:
    exported = unwrap(fixture("export_search_chat.json"))
    template = unwrap(fixture("template_classify.json"))
    modules = unwrap(fixture("modules_old_ifelse.json"))
    assert (exported.form, template.form, modules.form) == ("export", "template", "modules")
    assert (exported.name, template.name, modules.name) == (None, "Coffee classifier", "Membership desk")
    assert template.intro == "Routes greetings and coffee questions"
    for unwrapped in (exported, template, modules):
        assert set(unwrapped.graph) == {"nodes", "edges", "chatConfig"}
        assert isinstance(unwrapped.graph["nodes"], list) and unwrapped.graph["nodes"]


def test_quirks_output_type_enum_name_old_if_else_and_user_guide_settings() -> None:
    cq = parse_workflow(unwrap(fixture("template_classify.json")).graph).by_id["classify"]
    assert cq.outputs[0].type == "static"  # "FlowNodeOutputTypeEnum.static"
    old = parse_workflow(unwrap(fixture("modules_old_ifelse.json")).graph)
    judge = old.by_id["judge"]
    assert judge.input("condition") is None
    assert judge.value("ifElseList") == [{"condition": "AND", "list": [
        {"variable": ["VARIABLE_NODE_ID", "tier"], "condition": "equalTo", "value": "gold"}]}]
    # the settings an older app keeps in its userGuide node become chatConfig
    assert old.chat_config["welcomeText"] == "Welcome, member!"
    tier = old.variables[0]
    assert (tier.key, tier.options, tier.max_length, tier.required) == ("tier", ("gold", "silver"), 10, True)


def test_deprecated_variable_fields_and_a_string_default_for_an_array() -> None:
    workflow = parse_workflow(unwrap(fixture("export_search_chat.json")).graph)
    user, tier, weights = workflow.variables
    assert user.max_length == 50 and tier.options == ("gold", "silver")
    assert coerce(weights.default_value, weights.value_type) == [1, 2, 3]


def test_a_v1_app_is_refused_with_how_to_upgrade() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_workflow({"modules": [{"moduleId": "m1", "flowType": "chatNode"}], "edges": []})
    assert caught.value.code == "workflow_v1_unsupported"


def test_unsupported_kinds_are_named_at_import() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_graph(unwrap(fixture("unsupported_kinds.json")).graph)
    error = caught.value
    assert error.code == "workflow_unsupported_node"
    assert "lafModule" in error.message and "parallelRun" in error.message and "Laf函数调用" in error.message
    assert error.detail["kinds"] == ["lafModule", "parallelRun"]


def test_dangling_edges_and_unknown_branches_name_the_node() -> None:
    raw = copy.deepcopy(fixture("branches_join.json"))
    raw["edges"].append({"source": "big", "target": "ghost", "sourceHandle": "big-source-right",
                         "targetHandle": "ghost-target-left"})
    raw["edges"].append({"source": "judge", "target": "join", "sourceHandle": "judge-source-ELSE IF 7",
                         "targetHandle": "join-target-left"})
    problems = check_workflow(parse_workflow(raw), REGISTRY)
    messages = " | ".join(p.message for p in problems)
    assert [p.code for p in problems] == ["workflow_dangling_edge", "workflow_dangling_edge"]
    assert "'ghost'" in messages
    assert 'node "Size" (ifElseNode, id judge)' in messages and "'ELSE IF 7'" in messages


def test_missing_outputs_variables_and_nodes_in_references_and_templates() -> None:
    raw = copy.deepcopy(fixture("parallel_answers.json"))
    after = next(n for n in raw["nodes"] if n["nodeId"] == "after")
    after["inputs"][0]["value"] = "{{$chatA.nope$}} {{$gone.answerText$}}"
    chat_b = next(n for n in raw["nodes"] if n["nodeId"] == "chatB")
    next(i for i in chat_b["inputs"] if i["key"] == "userChatInput")["value"] = ["VARIABLE_NODE_ID", "undeclared"]
    problems = check_workflow(parse_workflow(raw), REGISTRY)
    assert [p.code for p in problems] == ["workflow_missing_reference"] * 3
    text = " | ".join(p.message for p in problems)
    assert "output 'nope'" in text and "node 'gone'" in text and "global variable 'undeclared'" in text
    assert 'node "Summary" (answerNode, id after)' in text


def test_a_reference_whose_types_cannot_meet_is_a_type_mismatch() -> None:
    raw = copy.deepcopy(fixture("search_concat.json"))
    chat = next(n for n in raw["nodes"] if n["nodeId"] == "chat")
    next(i for i in chat["inputs"] if i["key"] == "quoteQA")["value"] = ["448745", "userChatInput"]
    problems = check_workflow(parse_workflow(raw), REGISTRY)
    assert [p.code for p in problems] == ["workflow_type_mismatch"]
    assert "quoteQA" in problems[0].message and "datasetQuote" in problems[0].message
    assert types_compatible("datasetQuote", "datasetQuote") and types_compatible("number", "string")
    assert not types_compatible("arrayObject", "number") and not types_compatible("string", "chatHistory")


def test_kind_checks_duplicates_and_no_start() -> None:
    raw = copy.deepcopy(fixture("template_classify.json")["workflow"])
    classify = next(n for n in raw["nodes"] if n["nodeId"] == "classify")
    agents = next(i for i in classify["inputs"] if i["key"] == "agents")
    agents["value"].append({"key": "wqre", "value": "again"})
    raw["nodes"].append(copy.deepcopy(raw["nodes"][-1]))
    assert codes(raw) == ["workflow_duplicate_node", "workflow_invalid_node"]
    raw = {"nodes": [n for n in fixture("branches_join.json")["nodes"] if n["flowNodeType"] != "workflowStart"],
           "edges": []}
    assert "workflow_no_start" in codes(raw)
    bad_if = copy.deepcopy(fixture("branches_join.json"))
    bad_if["nodes"][1]["inputs"][0]["value"][0]["list"][0]["condition"] = "roughlyEqual"
    assert codes(bad_if) == ["workflow_invalid_node"]


def test_validation_lists_every_problem_in_one_error() -> None:
    raw = copy.deepcopy(fixture("branches_join.json"))
    raw["edges"] += [{"source": "x1", "target": "join"}, {"source": "x2", "target": "join"}]
    with pytest.raises(InvalidInput) as caught:
        check_graph(raw)
    assert caught.value.code == "workflow_dangling_edge"
    assert len(caught.value.detail["problems"]) == 2 and "2 problem(s)" in caught.value.message


def test_size_limits() -> None:
    start = fixture("branches_join.json")["nodes"][0]
    many = {"nodes": [dict(start, nodeId=f"n{i}") for i in range(MAX_NODES + 1)], "edges": []}
    with pytest.raises(InvalidInput) as caught:
        parse_workflow(many)
    assert caught.value.code == "workflow_too_large"
    huge = {"nodes": [dict(start, intro="x" * 2_100_000)], "edges": []}
    with pytest.raises(PayloadTooLarge):
        unwrap(huge)
    for bad in ([], {"nodes": "x", "edges": []}, {"edges": []}, {"nodes": [{"flowNodeType": "answerNode"}]}):
        with pytest.raises(InvalidInput):
            check_graph(unwrap(bad).graph if isinstance(bad, dict) and ("nodes" in bad) else bad)


def test_export_empties_datasets_and_secrets_and_keeps_the_rest() -> None:
    graph = copy.deepcopy(unwrap(fixture("export_search_chat.json")).graph)
    search = next(n for n in graph["nodes"] if n["nodeId"] == "search")
    next(i for i in search["inputs"] if i["key"] == "datasets")["value"] = [{"datasetId": "7"}]
    search["inputs"].append({"key": "system_input_config", "value": {"key": "sk-secret"}})
    search["inputs"].append({"key": "system_httpHeader", "value": [{"key": "A", "type": "secret", "value": "s"},
                                                                   {"key": "B", "type": "string", "value": "b"}]})
    exported = export_workflow(graph)
    assert set(exported) == {"nodes", "edges", "chatConfig"}
    text = json.dumps(exported)
    assert "sk-secret" not in text and '"datasetId"' not in text and '"s"' not in text and '"b"' in text
    out = next(n for n in exported["nodes"] if n["nodeId"] == "search")
    assert next(i for i in out["inputs"] if i["key"] == "datasets")["value"] == []
    assert exported["edges"] == graph["edges"] and exported["chatConfig"] == graph["chatConfig"]
    # the round trip: an export imports back to the same graph
    assert unwrap(json.loads(json.dumps(exported))).graph["nodes"] == exported["nodes"]
    assert graph["nodes"][2]["inputs"][0]["value"] == [{"datasetId": "7"}]  # the original is untouched


def test_references_templates_and_coercion() -> None:
    values = {("a", "x"): "1", ("a", "list"): [1, None, 2], ("b", "obj"): {"k": "v"}}

    def lookup(node_id: str, output_id: str):
        if node_id == "VARIABLE_NODE_ID":
            return {"name": "Ana"}.get(output_id)
        return values.get((node_id, output_id))

    ids = {"a", "b"}
    assert resolve_reference(["a", "x"], ids, lookup) == "1"
    assert resolve_reference([["a", "list"], ["VARIABLE_NODE_ID", "name"]], ids, lookup) == [1, 2, "Ana"]
    assert resolve_reference(["zz", "x"], ids, lookup) == ["zz", "x"]  # not a node: a literal
    assert render("{{$a.x$}}/{{$b.obj$}}/{{name}}/{{unknown}}/{{$a.none$}}", lookup, {"name": "Ana"}) == \
        '1/{"k": "v"}/Ana/{{unknown}}/'
    assert coerce("42", "number") == 42 and coerce("4.5", "number") == 4.5 and coerce(3, "string") == "3"
    assert coerce("false", "boolean") is False and coerce('{"a": 1}', "object") == {"a": 1}
    assert coerce("x", "arrayString") == ["x"] and coerce("[1, 2]", "arrayNumber") == [1, 2]
    assert to_text(None) == "" and to_text(True) == "true" and to_text(2.0) == "2"


def test_hand_edited_shapes_are_clear_errors_or_ignored_never_a_crash() -> None:
    base = fixture("template_classify.json")["workflow"]
    bad_values = [7, "text", None, {"a": 1}, [1, "x", None], True]
    paths = [("inputs",), ("outputs",), ("renderTypeList",), ("agents",), ("ifElseList",), ("list",)]
    for value in bad_values:
        for path in paths:
            raw = copy.deepcopy(base)
            for node in raw["nodes"]:
                if path[0] in ("inputs", "outputs"):
                    node[path[0]] = value
                else:
                    for item in node.get("inputs") or []:
                        if path[0] == "renderTypeList":
                            item["renderTypeList"] = value
                        elif item.get("key") == path[0] or path[0] == "list":
                            item["value"] = value if path[0] != "list" else [{"condition": "AND", "list": value}]
            raw["chatConfig"] = {"variables": [{"key": "v", "list": value, "enums": value}]}
            try:
                check_graph(raw)
            except InvalidInput:
                pass
        for where in ("nodes", "edges", "chatConfig"):
            raw = copy.deepcopy(base)
            raw[where] = value
            if value is None and where != "nodes" or isinstance(value, dict) and where == "chatConfig":
                check_graph(raw)  # missing edges or settings are fine
            else:
                with pytest.raises(InvalidInput):
                    check_graph(raw)
        exported = export_workflow({"nodes": [{"inputs": value}, value], "edges": value, "chatConfig": {}})
        assert exported["edges"] == [] or exported["edges"] == value
