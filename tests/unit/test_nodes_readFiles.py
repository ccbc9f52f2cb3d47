"""readFiles' pure parts and the message's file_url parts."""

from __future__ import annotations

import pytest

from zhiku.apps.nodes.read_files import file_name, layout
from zhiku.apps.prompt import MAX_MESSAGE_FILES, message_files


@pytest.mark.parametrize(("url", "media_type", "name"), [
    ("http://h/docs/notes.md?x=1", "text/plain", "notes.md"), ("http://h/a%20b.txt", "", "a b.txt"),
    ("http://h/download", "application/pdf", "download.pdf"), ("http://h/", "text/html", "file.html"),
    ("http://h/raw", "", "raw.txt")])
def test_file_names_carry_an_extension_the_parsers_know(url: str, media_type: str, name: str) -> None:
    assert file_name(url, media_type) == name


def test_layout_is_fastgpts() -> None:
    assert layout([("a.md", "A"), ("b.txt", "B")]) == "File: a.md\n<Content>\nA\n</Content>\n******\n" \
                                                      "File: b.txt\n<Content>\nB\n</Content>"


def test_message_files_are_the_file_url_parts() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "read"},
                                           {"type": "file_url", "name": "a.md", "url": "http://h/a.md"},
                                           {"type": "image_url", "image_url": {"url": "http://h/i.png"}},
                                           {"type": "file_url", "url": ""}, "junk"]}
    assert message_files(message) == ["http://h/a.md"]
    assert message_files({"role": "user", "content": "text"}) == [] and message_files(None) == []
    many = {"content": [{"type": "file_url", "url": f"http://h/{i}.txt"} for i in range(50)]}
    assert len(message_files(many)) == MAX_MESSAGE_FILES
