"""The web UI's catalogues: every key in both languages, every key a page uses in some catalogue."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from zhiku.web.ui.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, catalogues, pick_language

UI = Path(__file__).resolve().parents[2] / "zhiku" / "web" / "ui"
AREAS = ("common", "auth", "users", "datasets", "apps", "chat", "gateway", "workflow")
# A string literal that names a catalogue key: an area, a dot, more name (never a file like "chat.js").
# One followed by ~ or + is the start of keys a page completes (t("users.role." ~ role)).
_LITERAL = r"""["'`]((?:%s)\.[A-Za-z0-9_.\-]*)["'`]""" % "|".join(AREAS)
KEY_LITERAL = re.compile(_LITERAL + r"(?!\s*[~+])")
PREFIX_LITERAL = re.compile(_LITERAL + r"(?=\s*[~+])")
FILE_SUFFIXES = (".js", ".css", ".html", ".json", ".png", ".svg", ".py")


def catalogue_files() -> dict[str, dict[str, Path]]:
    return {lang: {path.stem: path for path in sorted((UI / "i18n" / lang).glob("*.json"))} for lang in LANGUAGES}


def sources() -> list[Path]:
    """Templates, the UI's own scripts (not vendored ones) and its Python modules (but the catalogue
    loader, whose docstring shows an example key)."""
    found = [*UI.glob("templates/**/*.html"), *(path for path in UI.glob("**/*.py") if path.name != "i18n.py")]
    found += [path for path in UI.glob("static/**/*.js") if "vendor" not in path.parts]
    return sorted(found)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_area_has_a_catalogue_in_every_language_with_the_same_keys() -> None:
    files = catalogue_files()
    assert set(files[DEFAULT_LANGUAGE]) == set(files["zh-CN"]), "an area's catalogue is missing in one language"
    for area, path in files[DEFAULT_LANGUAGE].items():
        assert area in AREAS, f"{path}: unknown area {area!r} (areas: {AREAS})"
        texts = {lang: json.loads(files[lang][area].read_text(encoding="utf-8")) for lang in LANGUAGES}
        for lang, catalogue in texts.items():
            for key, text in catalogue.items():
                assert key.startswith(f"{area}."), f"{lang}/{area}.json: {key!r} does not start with {area!r}."
                assert isinstance(text, str) and text.strip(), f"{lang}/{area}.json: {key!r} is empty"
        only_en = sorted(texts["en"].keys() - texts["zh-CN"].keys())
        only_zh = sorted(texts["zh-CN"].keys() - texts["en"].keys())
        assert not only_en and not only_zh, f"{area}: only in en {only_en}; only in zh-CN {only_zh}"
        for key, text in texts["en"].items():
            assert placeholders(text) == placeholders(texts["zh-CN"][key]), f"{key}: placeholders differ"


def test_no_key_is_defined_twice_across_areas() -> None:
    seen: dict[str, str] = {}
    for area, path in catalogue_files()[DEFAULT_LANGUAGE].items():
        for key in json.loads(path.read_text(encoding="utf-8")):
            assert key not in seen, f"{key} is in both {seen[key]} and {area}"
            seen[key] = area


def test_every_key_the_pages_use_is_in_a_catalogue() -> None:
    known = catalogues()[DEFAULT_LANGUAGE]
    missing: list[str] = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        for key in KEY_LITERAL.findall(text):
            if not key.endswith(FILE_SUFFIXES) and key not in known:
                missing.append(f"{path.relative_to(UI)}: {key}")
        for prefix in PREFIX_LITERAL.findall(text):  # t("users.role." ~ role): some key must follow it
            if not any(k.startswith(prefix) for k in known):
                missing.append(f"{path.relative_to(UI)}: {prefix}*")
    assert not missing, "keys used but in no catalogue:\n" + "\n".join(missing)


def test_the_checks_find_a_missing_key() -> None:
    """The scan above can fail: a made-up key in template syntax is caught."""
    sample = '{{ t("users.no_such_key") }} {{ t("users.role." ~ x) }} static("chat.js")'
    assert KEY_LITERAL.findall(sample) == ["users.no_such_key", "chat.js"]
    assert PREFIX_LITERAL.findall(sample) == ["users.role."]
    assert "users.no_such_key" not in catalogues()[DEFAULT_LANGUAGE]


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, None, "en"),
    (None, "", "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    (None, "zh-TW", "zh-CN"),
    (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    (None, "fr-FR,fr;q=0.9,zh;q=0.5,en;q=0.4", "zh-CN"),
    (None, "de, ja", "en"),
    (None, "en;q=0.2, zh;q=0.9", "zh-CN"),
    (None, "zh;q=0, en", "en"),
    (None, "zh;q=bogus, en", "en"),
    ("zh-CN", "en-US", "zh-CN"),
    ("en", "zh-CN", "en"),
    ("klingon", "zh-CN", "zh-CN"),
])
def test_the_language_is_the_cookie_else_the_browser_else_english(cookie: str | None, header: str | None,
                                                                   expected: str) -> None:
    assert pick_language(cookie, header) == expected


def test_the_translator_fills_placeholders_and_falls_back() -> None:
    zh, en = Translator("zh-CN"), Translator("en")
    assert en("users.created", username="<b>x</b>") == "User <b>x</b> was added."  # escaping is the template's
    assert zh("users.created", username="x") == "已添加用户 x。"
    assert en("users.created") == "User {username} was added."
    assert en("users.created", other=1) == "User {username} was added."
    assert en("no.such.key") == "no.such.key"
    assert en.error("too_many_login_attempts", "message", {"retry_after": 7, "scope": "account"}) == \
        "Too many failed logins. Try again in 7 seconds."
    assert zh.error("no_such_code", "the service's message") == "the service's message"
