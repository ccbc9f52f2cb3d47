"""Refused forms: every UI form reads its fields into the API's own schema with :func:`validated`, and shows
what was refused as a :class:`FormError` — each bad field named by the label the user sees (in the page's
language) with the reason, and that field's input marked ``aria-invalid``.

A form's input names (``system_prompt``, ``qpm``) are not always the API's key paths (``systemPrompt``,
``limit.QPM``): each form describes itself once with a :class:`FormFields` kept next to its handler, and
:meth:`FormFields.error` turns a pydantic ``ValidationError`` or a domain error into the form's terms.

Templates: ``{% include "errors/form.html" %}`` shows ``form_error``; ``{{ invalid('name') }}`` on an
input marks it when ``form_error`` refused it (``invalid('name', form_id)`` where one fragment holds
several forms: the error belongs to the form whose ``FormFields.form`` is ``form_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from zhiku.errors import ZhikuError

M = TypeVar("M", bound=BaseModel)

VALIDATION_CODE = "validation_error"  # what the API answers for the same refusal (the banner's data-code)

# pydantic's error types worded by the UI's catalogues (``common.code.<code>``), with the limit they name;
# the others keep pydantic's English message.
_WORDED: dict[str, tuple[str, str | None]] = {
    "missing": ("field_required", None),
    "string_too_short": ("field_too_short", "min_length"),
    "string_too_long": ("field_too_long", "max_length"),
    "too_short": ("field_too_few", "min_length"),
    "too_long": ("field_too_many", "max_length"),
    "greater_than_equal": ("field_too_small", "ge"),
    "greater_than": ("field_too_small", "gt"),
    "less_than_equal": ("field_too_large", "le"),
    "less_than": ("field_too_large", "lt"),
    "int_parsing": ("field_not_whole_number", None),
    "int_from_float": ("field_not_whole_number", None),
    "float_parsing": ("field_not_number", None),
}


@dataclass(frozen=True)
class FieldProblem:
    """One refused field: ``field`` is the form's input name ("" when the problem is the whole form's).
    The banner shows ``message`` worded by the catalogue key of ``code`` (``<area>.code.<code>``, filled
    from ``params``) when a catalogue has one, else ``message`` itself (pydantic's English); ``named``: the banner puts the field's label before it."""

    field: str
    message: str
    code: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    named: bool = True


@dataclass(frozen=True)
class FormError:
    """What a refused form shows: its problems, the labels of its inputs, and the response status."""

    problems: tuple[FieldProblem, ...]
    labels: Mapping[str, str]  # input name -> catalogue key of the label the page shows for it
    status: int = 422
    code: str = VALIDATION_CODE
    form: str = ""

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(p.field for p in self.problems if p.field)

    def label(self, problem: FieldProblem) -> str | None:
        """The catalogue key of the label the banner names ``problem`` by, if it names one."""
        return self.labels.get(problem.field) if problem.named else None


@dataclass(frozen=True)
class FormFields:
    """One form: the catalogue key of each input's label, the input named by each API key path where the
    two differ (``"limit.QPM": "qpm"``; a path not listed is the input of the same name, a deeper path the
    input of its nearest listed parent), and the input a domain error code is about (``"invalid_password":
    "password"``). ``form`` names the form where a fragment holds several."""

    labels: Mapping[str, str]
    inputs: Mapping[str, str] = field(default_factory=dict)
    codes: Mapping[str, str] = field(default_factory=dict)
    form: str = ""

    def input_of(self, path: tuple[Any, ...] | list[Any]) -> str:
        """The input an API key path was typed into ("" when no input of the form holds it)."""
        parts = [str(p) for p in path if p != "body"]
        for end in range(len(parts), 0, -1):
            key = ".".join(parts[:end])
            if key in self.inputs:
                return self.inputs[key]
            if key in self.labels:
                return key
        return ""

    def error(self, exc: ValidationError | ZhikuError) -> FormError:
        """``exc`` in this form's terms."""
        if isinstance(exc, ValidationError):
            return FormError(tuple(self._problem(e) for e in exc.errors()), self.labels, form=self.form)
        detail = exc.detail if isinstance(exc.detail, dict) else {}
        if isinstance(detail.get("field"), str):  # a value the page itself could not read (gateway.whole_number)
            where = self.input_of(detail["field"].split("."))
            problem = FieldProblem(where, exc.message if where else f"{detail['field']}: {exc.message}",
                                   exc.code if where else "", detail)
        else:  # the service's message names what it refused; the code may tell which input that was
            problem = FieldProblem(self.codes.get(exc.code, ""), exc.message, exc.code, detail, named=False)
        return FormError((problem,), self.labels, status=exc.status, code=exc.code, form=self.form)

    def _problem(self, error: Any) -> FieldProblem:
        where = self.input_of(error["loc"])
        code, limit = _WORDED.get(error["type"], ("", None))
        ctx = error.get("ctx") or {}
        if error["type"] == "string_too_short" and ctx.get("min_length") == 1:  # a blank text field
            code, limit = "field_required", None
        params = {"limit": _number(ctx[limit])} if limit and limit in ctx else {}
        # an error about a place no input holds keeps its path, so the user can still tell which it was
        message = error["msg"] if where else f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
        return FieldProblem(where, message, code if where else "", params)


def _number(value: Any) -> Any:
    """A limit as the user would write it: ``-1``, not ``-1.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class FormInvalid(ZhikuError):
    """Raised by :func:`validated`: the form's fields do not fit the API's schema."""

    status = 422
    code = VALIDATION_CODE

    def __init__(self, error: FormError) -> None:
        super().__init__("; ".join(p.message for p in error.problems), detail=None)
        self.form_error = error


def validated(model: type[M], data: dict[str, Any], fields: FormFields) -> M:
    """A form's fields (in the API's names) as the API's own schema; refused: :class:`FormInvalid`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FormInvalid(fields.error(exc)) from None


def form_error(exc: ZhikuError, fields: FormFields) -> FormError:
    """What a form shows for an error its handler caught (a :class:`FormInvalid` as it was raised)."""
    return exc.form_error if isinstance(exc, FormInvalid) else fields.error(exc)


@pass_context
def invalid(context: Context, name: str, form: object = "") -> Markup:
    """``aria-invalid="true"`` on the input ``name`` when the page's ``form_error`` refused it."""
    error = context.get("form_error")
    if isinstance(error, FormError) and str(form) == error.form and name in error.fields:
        return Markup(' aria-invalid="true"')
    return Markup("")
