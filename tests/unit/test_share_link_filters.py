"""The pure parts of share links: what a visitor sees of a run, which visitor ids are accepted, link ids."""

from __future__ import annotations

import re

import pytest

from zhiku.apps.share_links import checked_uid, new_share_id, public_response_data, question_of, usage_points
from zhiku.errors import Unauthorized

RUN = [
    {"id": "a", "nodeId": "s", "moduleName": "Search", "moduleType": "datasetSearchNode", "runningTime": 0.12,
     "query": "secret query", "quoteList": [{"id": "1", "q": "quoted text", "a": ""}], "totalPoints": 0},
    {"id": "b", "nodeId": "c", "moduleName": "AI", "moduleType": "chatNode", "runningTime": 1.5,
     "historyPreview": [{"obj": "System", "value": "the system prompt"}]},
    {"id": "c", "nodeId": "p", "moduleType": "pluginOutput", "runningTime": 0.01, "pluginOutput": {"x": 1}},
]


def test_visitors_see_only_public_nodes_and_fields() -> None:
    assert public_response_data(RUN, response_detail=False) == [
        {"moduleType": "datasetSearchNode", "runningTime": 0.12},
        {"moduleType": "pluginOutput", "runningTime": 0.01, "pluginOutput": {"x": 1}}]


def test_response_detail_adds_the_quotes() -> None:
    shown = public_response_data(RUN, response_detail=True)
    assert shown[0]["quoteList"] == RUN[0]["quoteList"] and "query" not in shown[0]
    assert all(n["moduleType"] != "chatNode" for n in shown)


@pytest.mark.parametrize("uid", ["", "   ", "a|b", "a/b", 'a"b', "a\\b", "x" * 256, "é" * 128, None, 42])
def test_bad_visitor_ids_are_refused(uid: object) -> None:
    with pytest.raises(Unauthorized) as err:
        checked_uid(uid)
    assert err.value.code == "invalid_uid"


def test_good_visitor_ids_pass() -> None:
    assert checked_uid("local-3f9a") == "local-3f9a" and checked_uid("x" * 255) == "x" * 255


def test_share_ids_are_random_and_shaped_like_fastgpts() -> None:
    ids = {new_share_id() for _ in range(200)}
    assert len(ids) == 200 and all(re.fullmatch(r"[a-z0-9]{24}", i) for i in ids)


def test_question_and_points() -> None:
    assert question_of([{"role": "user", "content": "hi"}]) == "hi"
    assert question_of([{"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "image_url", "image_url": {"url": "u"}}]}]) == "a"
    assert question_of("nonsense") == "" and question_of([]) == ""
    assert usage_points(1500) == 1.5
