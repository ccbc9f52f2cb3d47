"""Text that can be stored: PostgreSQL's ``text`` and ``jsonb`` cannot hold NUL, and UTF-8 cannot hold a
lone surrogate, so either one reaching the database would fail the whole statement.

Free text (documents, prompts, chat messages, descriptions) is cleaned: NUL and lone surrogates are
removed. Names (datasets, apps, keys, files) are refused with a validation error instead, since
dropping characters from a name changes what it names.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """``text`` without NUL characters and lone surrogates."""
    return _UNSTORABLE.sub("", text) if _UNSTORABLE.search(text) else text


def clean_json(value: Any) -> Any:
    """A JSON value with every string (keys included) cleaned."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def check_name(value: str) -> str:
    """A name as given, stripped; control characters, NUL and lone surrogates are refused."""
    if _UNSTORABLE.search(value) or _CONTROL.search(value):
        raise ValueError("must not contain control characters, NUL or lone surrogates")
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


StoredText = Annotated[str, AfterValidator(clean)]
Name = Annotated[str, AfterValidator(check_name)]
