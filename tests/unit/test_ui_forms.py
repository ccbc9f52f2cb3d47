"""A refused form in the form's own terms (zhiku.web.ui.forms): API key paths to input names, pydantic's
common refusals to catalogue codes, domain errors to the input they are about, and the banner and the
``aria-invalid`` mark they render."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from zhiku.errors import InvalidInput
from zhiku.web.ui.forms import FormFields, FormInvalid, form_error, validated
from zhiku.web.ui.i18n import Translator
from zhiku.web.ui.templating import _env


class Limit(BaseModel):
    qpm: int = Field(1000, alias="QPM", ge=1)


class Link(BaseModel):
    name: str = Field(min_length=1, max_length=5)
    limit: Limit = Field(default_factory=Limit)
    tags: list[str] = Field(default_factory=list, max_length=1)


LINK = FormFields(labels={"name": "apps.name", "qpm": "apps.share_qpm", "tags": "datasets.tags"},
                  inputs={"limit.QPM": "qpm"}, codes={"name_required": "name"})


def refused(data: dict[str, Any], fields: FormFields = LINK) -> FormInvalid:
    with pytest.raises(FormInvalid) as caught:
        validated(Link, data, fields)
    return caught.value


def test_each_refused_api_path_is_the_input_it_was_typed_into_with_a_worded_reason() -> None:
    error = refused({"name": "", "limit": {"QPM": 0}, "tags": ["a", "b"]}).form_error
    assert [(p.field, p.code, dict(p.params)) for p in error.problems] == [
        ("name", "field_required", {}), ("qpm", "field_too_small", {"limit": 1}),
        ("tags", "field_too_many", {"limit": 1})]
    assert error.fields == {"name", "qpm", "tags"} and error.status == 422 and error.code == "validation_error"
    assert validated(Link, {"name": "ok"}, LINK).name == "ok"


def test_a_refusal_no_input_holds_keeps_its_path_and_pydantics_message() -> None:
    problem = refused({"name": "ok", "limit": {"QPM": 5, "extra": 1}, "tags": "x"},
                      FormFields(labels={"name": "apps.name"})).form_error.problems[0]
    assert problem.field == "" and problem.code == "" and problem.message.startswith("tags: ")


def test_a_domain_error_is_about_the_input_its_code_or_its_detail_names() -> None:
    by_code = form_error(InvalidInput("an API key needs a name", code="name_required"), LINK)
    assert by_code.fields == {"name"} and by_code.status == 400 and not by_code.problems[0].named
    by_detail = LINK.error(InvalidInput("'x' is not a whole number", code="field_not_whole_number",
                                        detail={"field": "limit.QPM"}))
    assert by_detail.fields == {"qpm"} and by_detail.problems[0].named
    unknown = LINK.error(InvalidInput("'x' is not a whole number", detail={"field": "weight"}))
    assert unknown.fields == frozenset() and unknown.problems[0].message == "weight: 'x' is not a whole number"
    whole_form = LINK.error(InvalidInput("something else", code="other"))
    assert whole_form.fields == frozenset() and whole_form.code == "other"


@pytest.mark.parametrize(("lang", "banner"), [
    ("en", "<li data-field=\"qpm\"><strong class=\"field-name\">Questions per minute</strong>: must be at least 1.</li>"),
    ("zh-CN", "<li data-field=\"qpm\"><strong class=\"field-name\">每分钟提问数</strong>：不能小于 1。</li>")])
def test_the_banner_names_the_field_by_its_label_in_the_pages_language_and_marks_only_its_input(
        lang: str, banner: str) -> None:
    error = refused({"name": "<b>x</b>", "limit": {"QPM": 0}}).form_error
    html = _env.from_string('{% include "errors/form.html" %}<input name="qpm"{{ invalid("qpm") }}>'
                            '<input name="name"{{ invalid("name") }}><input name="qpm"{{ invalid("qpm", "7") }}>'
                            ).render(t=Translator(lang), form_error=error)
    assert banner in html
    assert "QPM" not in html and "<b>" not in html  # no API path; the typed text is never markup
    assert html.count('aria-invalid="true"') == 2  # name (too long) and qpm of this form, not form "7"'s
