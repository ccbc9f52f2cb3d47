"""Workflow apps over HTTP and the CLI: import of the three FastGPT forms, checks that name the node,
export without dataset ids, the workflow of an app read and replaced, FastGPT's /api/core/app paths,
and GET /v1/models by credential."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from tests.conftest import cli_env, unique
from tests.integration.helpers import create_dataset

FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def import_app(client: httpx.Client, name: str, body: dict | None = None) -> dict:
    r = client.post("/api/apps/import", params={"name": unique(name)}, json=body or fixture(f"{name}.json"))
    assert r.status_code == 201, r.text
    return r.json()


def test_import_the_three_forms_and_read_them_back(server, client: httpx.Client) -> None:
    template = fixture("template_classify.json")
    template["name"] = unique("Coffee classifier")
    r = client.post("/api/apps/import", json=template)  # no name given: the template's own
    assert r.status_code == 201, r.text
    assert r.json()["name"] == template["name"] and r.json()["type"] == "workflow"
    modules = import_app(client, "modules_old_ifelse")
    exported = import_app(client, "export_search_chat")
    # the userGuide node's welcome text and variables become the app's chat settings
    assert modules["chat_config"]["welcomeText"] == "Welcome, member!"
    assert modules["chat_config"]["variables"][0]["options"] == ["gold", "silver"]
    assert exported["chat_config"]["welcomeText"] == "你好！Ask me about coffee."
    stored = client.get(f"/api/apps/{exported['id']}/workflow").json()
    assert stored["type"] == "workflow" and stored["nodes"] == fixture("export_search_chat.json")["nodes"]
    names = {a["name"] for a in client.get("/api/apps").json()}
    assert {template["name"], modules["name"], exported["name"]} <= names


def test_unsupported_kinds_and_bad_graphs_are_refused_naming_the_node(server, client: httpx.Client) -> None:
    r = client.post("/api/apps/import", params={"name": unique("laf")}, json=fixture("unsupported_kinds.json"))
    assert r.status_code == 400 and r.json()["code"] == "workflow_unsupported_node"
    assert "lafModule" in r.json()["message"] and r.json()["detail"]["kinds"] == ["lafModule", "parallelRun"]
    broken = fixture("parallel_answers.json")
    broken["edges"].append({"source": "chatA", "target": "nowhere", "sourceHandle": "chatA-source-right"})
    r = client.post("/api/apps/import", params={"name": unique("broken")}, json=broken)
    assert r.status_code == 400 and r.json()["code"] == "workflow_dangling_edge"
    assert r.json()["detail"]["problems"][0]["nodeId"] == "nowhere"
    r = client.post("/api/apps/import", json=fixture("parallel_answers.json"))  # no name anywhere
    assert r.status_code == 400 and r.json()["code"] == "name_required"
    r = client.post("/api/apps/import", params={"name": unique("v1")},
                    json={"modules": [{"moduleId": "x", "flowType": "chatNode"}]})
    assert r.status_code == 400 and r.json()["code"] == "workflow_v1_unsupported"
    searching = fixture("search_concat.json")
    searching["nodes"][1]["inputs"][0]["value"] = [{"datasetId": "999999999"}]
    r = client.post("/api/apps/import", params={"name": unique("ghostds")}, json=searching)
    assert r.status_code == 400 and r.json()["code"] == "dataset_not_found" and "Manual search" in r.json()["message"]


def test_export_round_trip_strips_dataset_ids(server, client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("wfds"))
    graph = fixture("search_concat.json")
    for node in graph["nodes"]:
        if node["flowNodeType"] == "datasetSearchNode":
            node["inputs"][0]["value"] = [{"datasetId": str(dataset_id)}]
    app = import_app(client, "search_concat", graph)
    exported = client.get(f"/api/apps/{app['id']}/export").json()
    assert set(exported) == {"nodes", "edges", "chatConfig"}
    searches = [n for n in exported["nodes"] if n["flowNodeType"] == "datasetSearchNode"]
    assert len(searches) == 2 and all(n["inputs"][0] == {**n["inputs"][0], "key": "datasets", "value": []}
                                      for n in searches)
    assert "datasetId" not in json.dumps(exported)
    again = import_app(client, "search_concat", exported)
    assert client.get(f"/api/apps/{again['id']}/export").json() == exported
    # a simple app exports the workflow it runs as
    simple = client.post("/api/apps", json={"name": unique("simple"), "datasetIds": [dataset_id],
                                            "systemPrompt": "Be brief."}).json()
    flow = client.get(f"/api/apps/{simple['id']}/export").json()
    assert [n["flowNodeType"] for n in flow["nodes"]] == ["userGuide", "workflowStart", "datasetSearchNode",
                                                          "chatNode"]
    assert flow["nodes"][2]["inputs"][0]["value"] == []


def test_put_workflow_checks_then_replaces_and_turns_the_app_into_a_workflow(server, client: httpx.Client) -> None:
    simple = client.post("/api/apps", json={"name": unique("convert")}).json()
    bad = fixture("branches_join.json")
    bad["nodes"][1]["inputs"][0]["value"][0]["list"][0]["variable"] = ["judge", "nothing"]
    r = client.put(f"/api/apps/{simple['id']}/workflow", json=bad)
    assert r.status_code == 400 and r.json()["code"] == "workflow_invalid_node", r.text
    assert "output 'nothing'" in r.json()["message"] and 'node "Size"' in r.json()["message"]
    r = client.put(f"/api/apps/{simple['id']}/workflow", json=fixture("branches_join.json"))
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "workflow" and len(r.json()["nodes"]) == 6
    assert client.get(f"/api/apps/{simple['id']}").json()["type"] == "workflow"
    r = client.put(f"/api/apps/{simple['id']}/workflow", json=["not", "an", "object"])
    assert r.status_code == 400 and r.json()["code"] == "invalid_workflow"


def test_fastgpt_app_paths_answer_in_its_envelope(server, client: httpx.Client) -> None:
    graph = fixture("branches_join.json")
    r = client.post("/api/core/app/create", json={"name": unique("fg"), "type": "advanced", "modules": graph["nodes"],
                                                  "edges": graph["edges"], "chatConfig": {}})
    assert r.status_code == 200 and r.json()["code"] == 200, r.text
    app_id = r.json()["data"]
    detail = client.get("/api/core/app/detail", params={"appId": app_id}).json()["data"]
    assert detail["type"] == "advanced" and detail["version"] == "v2" and len(detail["modules"]) == 6
    assert any(a["_id"] == app_id for a in client.post("/api/core/app/list", json={}).json()["data"])
    renamed = unique("fg-renamed")
    r = client.put("/api/core/app/update", params={"appId": app_id},
                   json={"name": renamed, "nodes": fixture("catch_error.json")["nodes"],
                         "edges": fixture("catch_error.json")["edges"], "chatConfig": {}})
    assert r.json()["code"] == 200, r.text
    assert client.get(f"/api/apps/{app_id}").json()["name"] == renamed
    r = client.post("/api/core/app/create", json={"name": unique("fgbad"), "type": "advanced",
                                                  "modules": fixture("unsupported_kinds.json")["nodes"], "edges": []})
    assert r.status_code == 400 and r.json()["statusText"] == "workflow_unsupported_node"
    assert client.delete("/api/core/app/del", params={"appId": app_id}).json()["code"] == 200
    r = client.get("/api/core/app/detail", params={"appId": app_id})
    assert r.status_code == 404 and r.json()["statusText"] == "app_not_found"


def test_workflow_routes_need_a_team_credential(server, client: httpx.Client) -> None:
    app = import_app(client, "branches_join", fixture("branches_join.json"))
    assert httpx.get(server.base_url + f"/api/apps/{app['id']}/workflow").status_code == 401
    key = client.post("/api/keys", json={"name": "k", "appId": app["id"]}).json()["key"]
    r = httpx.get(server.base_url + f"/api/apps/{app['id']}/export", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and r.json()["code"] == "app_key_scope"


def test_v1_models_lists_apps_for_platform_credentials_and_models_for_gateway_tokens(server, fake,
                                                                                    client: httpx.Client) -> None:
    app = import_app(client, "branches_join", fixture("branches_join.json"))
    other = import_app(client, "catch_error", fixture("catch_error.json"))
    key = client.post("/api/keys", json={"name": "k", "appId": app["id"]}).json()["key"]
    listed = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key).models.list()
    assert [m.id for m in listed.data] == [str(app["id"])]
    by_login = client.get("/v1/models").json()
    ids = {m["id"] for m in by_login["data"]}
    assert {str(app["id"]), str(other["id"])} <= ids and by_login["object"] == "list"
    assert next(m for m in by_login["data"] if m["id"] == str(app["id"]))["name"] == app["name"]
    token = client.post("/api/token/", json={"name": unique("models")}).json()["key"]
    gateway = httpx.get(server.base_url + "/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert gateway.status_code == 200, gateway.text
    assert not {m["id"] for m in gateway.json()["data"]} & ids  # models, not apps
    r = httpx.get(server.base_url + "/v1/models", headers={"Authorization": "Bearer sk-nobody"})
    assert r.status_code == 401 and "error" in r.json()
    assert httpx.get(server.base_url + "/v1/models").status_code == 401


def test_cli_import_export_list(fresh_db: str, tmp_path: Path) -> None:
    env = cli_env(fresh_db, tmp_path / "data")

    def zhiku(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zhiku", *args], env=env, capture_output=True, text=True,
                              timeout=300)

    source = tmp_path / "Desk app.json"
    source.write_text(json.dumps(fixture("modules_old_ifelse.json")), encoding="utf-8")
    done = zhiku("apps", "import", str(source))
    assert done.returncode == 0, done.stderr
    assert "'Membership desk'" in done.stdout  # the file's own name field
    plain = tmp_path / "branchy.json"
    plain.write_text(json.dumps(fixture("branches_join.json")), encoding="utf-8")
    assert zhiku("apps", "import", str(plain)).returncode == 0  # no name field: the file's stem
    assert zhiku("apps", "import", str(plain), "--name", "Branches two").returncode == 0
    listed = zhiku("apps", "list")
    assert all(n in listed.stdout for n in ("Membership desk", "branchy", "Branches two", "workflow"))
    exported = zhiku("apps", "export", "Membership desk")
    assert exported.returncode == 0, exported.stderr
    body = json.loads(exported.stdout)
    assert set(body) == {"nodes", "edges", "chatConfig"} and body["chatConfig"]["welcomeText"] == "Welcome, member!"
    out = tmp_path / "out.json"
    assert zhiku("apps", "export", "branchy", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text(encoding="utf-8"))["nodes"] == fixture("branches_join.json")["nodes"]
    refused = tmp_path / "laf.json"
    refused.write_text(json.dumps(fixture("unsupported_kinds.json")), encoding="utf-8")
    failed = zhiku("apps", "import", str(refused))
    assert failed.returncode != 0 and "lafModule" in failed.stderr
    assert "laf" not in zhiku("apps", "list").stdout
    missing = zhiku("apps", "export", "no such app")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
