"""The UI's strings: one JSON catalogue per language and area, ``i18n/<lang>/<area>.json``.

Keys are flat and start with their area (``"users.create": "Create user"``); a value may hold
``{name}`` placeholders filled by :meth:`Translator.__call__`. The language of a request is its ``lang``
cookie, else the first language of ``Accept-Language`` that the UI speaks, else English.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
LANG_COOKIE = "lang"
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}  # each in its own language, as switches show them


@functools.cache
def catalogues() -> dict[str, dict[str, str]]:
    """Every language's keys and texts, read once from the package's ``i18n`` folder."""
    root = resources.files("zhiku.web.ui").joinpath("i18n")
    merged: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        texts: dict[str, str] = {}
        for entry in sorted(root.joinpath(lang).iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                texts.update(json.loads(entry.read_text(encoding="utf-8")))
        merged[lang] = texts
    return merged


@functools.cache
def error_keys() -> dict[str, str]:
    """Error code -> the catalogue key that words it (``"users.code.username_taken"``)."""
    return {key.partition(".code.")[2]: key for key in catalogues()[DEFAULT_LANGUAGE] if ".code." in key}


class _Params(dict[str, object]):
    """A placeholder the caller did not fill stays as written instead of failing the page."""

    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


@dataclass(frozen=True)
class Translator:
    lang: str

    def __call__(self, key: str, **params: object) -> str:
        """The text of ``key`` in this language (English when only English has it, the key itself when
        no catalogue has it: the i18n unit test keeps that from shipping)."""
        texts = catalogues()
        text = texts[self.lang].get(key) or texts[DEFAULT_LANGUAGE].get(key) or key
        return text.format_map(_Params(params)) if params else text

    def error(self, code: str, message: str, detail: object = None) -> str:
        """A domain error's text: ``<area>.code.<code>`` from any area's catalogue (filled from the
        error's detail, e.g. ``{retry_after}``), else the service's own message."""
        key = error_keys().get(code)
        if key is None:
            return message
        return self(key, **(detail if isinstance(detail, dict) else {}))

    def many(self, *keys: str) -> dict[str, str]:
        """Several texts at once, for the JSON block page scripts read their strings from."""
        return {key: self(key) for key in keys}


def _match(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        lang = _match(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE
