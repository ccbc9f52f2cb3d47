"""Server-drawn SVG charts and the gateway dashboard's day range: pure functions, no server."""

from __future__ import annotations

import re
from datetime import date

import pytest

from zhiku.errors import InvalidInput
from zhiku.web.ui.charts import bar_chart, column_chart, format_number, nice_max
from zhiku.web.ui.pages.gateway import day_range, per_day, per_model
from zhiku.web.ui.pages.gateway_channels import mapping

HOSTILE = "<img src=x onerror=alert(1)>"


def test_labels_and_titles_are_escaped() -> None:
    for svg in (column_chart([(HOSTILE, 3)], title=HOSTILE), bar_chart([(HOSTILE, 3)], title=HOSTILE)):
        assert "<img" not in svg
        assert "&lt;img src=x onerror=alert(1)&gt;" in svg


def test_bars_scale_to_a_round_axis_top() -> None:
    assert [nice_max(v) for v in (0, 1, 7, 10, 11, 180, 2001)] == [1, 1, 10, 10, 20, 200, 5000]
    svg = column_chart([("a", 5), ("b", 10)], title="t", height=200)  # plot height 160, axis top 10
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights == [80.0, 160.0]
    assert "a: 5" in svg and "b: 10" in svg


def test_horizontal_bars_name_each_row_with_its_value() -> None:
    svg = bar_chart([("gpt-x", 1500), ("other", 0)], title="requests", unit=" ms")
    assert svg.count("<rect") == 2
    assert "gpt-x: 1500 ms" in svg and "other: 0 ms" in svg
    assert format_number(12_345) == "12k" and format_number(2_500_000) == "2.5M" and format_number(3.25) == "3.2"


def test_an_empty_chart_still_draws_its_axis() -> None:
    svg = column_chart([], title="nothing")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "<rect" not in svg


def test_day_range_defaults_to_the_last_days_and_checks_its_ends() -> None:
    today = date(2026, 3, 10)
    span = day_range(7, "", "", today)
    assert (span.first, span.last) == (date(2026, 3, 4), today)
    assert span.days()[0] == "2026-03-04" and len(span.days()) == 7
    assert span.until.isoformat() == "2026-03-11T00:00:00+00:00"
    assert day_range(7, "2026-02-27", "2026-03-01", today).days() == ["2026-02-27", "2026-02-28", "2026-03-01"]
    for since, until in (("2026-03-05", "2026-03-01"), ("2024-01-01", "2026-01-01"), ("yesterday", "")):
        with pytest.raises(InvalidInput):
            day_range(7, since, until, today)


def test_days_without_requests_are_zero_and_models_rank_by_requests() -> None:
    span = day_range(3, "", "", date(2026, 3, 10))
    rows = [{"day": "2026-03-09", "requests": 4}]
    assert per_day(rows, span, "requests") == [("03-08", 0.0), ("03-09", 4.0), ("03-10", 0.0)]
    models = [{"model": "b", "requests": 1, "errors": 1}, {"model": "a", "requests": 5, "errors": 0}]
    assert per_model(models, "errors") == [("a", 0.0), ("b", 1.0)]


def test_model_mapping_field_takes_a_json_object_of_names() -> None:
    assert mapping("") == {}
    assert mapping('{"gpt-4o": "deploy-1"}') == {"gpt-4o": "deploy-1"}
    for bad in ("[1]", '{"a": 1}', "gpt-4o=deploy"):
        with pytest.raises(InvalidInput):
            mapping(bad)
