"""The HTML parser: main text as markdown, the title, the page's own charset, markup never kept as markup."""

from __future__ import annotations

import pytest

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import parser_for, supported_extensions
from zhiku.knowledge.parsers.html import declare_charset, decode_html, title_of

ARTICLE = """<html><head><title>Bike  care &amp;
 more</title>{meta}<script>var secret = "alert(2)";</script><style>p {{ color: red }}</style></head>
<body><nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
<main><article><h1>自行车 Chain care</h1>
<p onclick="alert(1)" onmouseover="steal()">Clean the chain every 300 kilometres and oil it lightly afterwards.
This is important for the longevity of the whole drivetrain.</p>
<p>Shown literally: &lt;script&gt;alert(3)&lt;/script&gt; and &lt;img src=x onerror=alert(4)&gt; stay text.</p>
<h2>Tyres</h2><p>Road tyres hold 6 to 8 bar. Check the pressure weekly, before long rides above all.</p>
<ul><li>pump</li><li>gauge</li></ul>
<table><tr><th>tyre</th><th>bar</th></tr><tr><td>road</td><td>7</td></tr></table>
</article></main><footer>Copyright 2026, all rights reserved</footer>
<script>document.write("evil")</script></body></html>"""


def parse(data: bytes, name: str = "page.html"):
    return parser_for(name).parse(data, name)


def test_registered_for_html_and_htm() -> None:
    assert {".html", ".htm"} <= set(supported_extensions())
    assert parser_for("INDEX.HTM").name == "html"


def test_main_text_as_markdown_without_menus_footers_or_scripts() -> None:
    doc = parse(ARTICLE.format(meta='<meta charset="utf-8">').encode())
    assert doc.format == "markdown"
    assert doc.metadata["title"] == "Bike care & more"
    assert "# 自行车 Chain care" in doc.text and "## Tyres" in doc.text
    assert "- pump" in doc.text and "| road | 7 |" in doc.text
    assert "300 kilometres" in doc.text
    for dropped in ("About us", "Copyright", "document.write", "secret", "color: red"):
        assert dropped not in doc.text


def test_script_and_event_handlers_are_never_kept_as_markup() -> None:
    doc = parse(ARTICLE.format(meta="").encode())
    for markup in ("onclick", "onmouseover", "alert(1)", "alert(2)", "steal()", "evil"):
        assert markup not in doc.text
    # what the page showed as text stays text: every "<" escaped, so markdown shows the characters
    assert "alert(3)" in doc.text and "onerror=alert(4)" in doc.text
    assert doc.text.count("<") == doc.text.count("\\<") == 3


def test_the_pages_own_declaration_decides_the_charset() -> None:
    gbk = ARTICLE.format(meta='<meta http-equiv="Content-Type" content="text/html; charset=GB2312">').encode("gbk")
    doc = parse(gbk)
    assert doc.metadata["encoding"] == "gb18030" and "自行车" in doc.text


def test_the_http_charset_applies_when_the_page_declares_none() -> None:
    big5 = "<html><head><title>單車</title></head><body><p>自行車的鏈條要每三百公里清潔一次。</p></body></html>"
    stored = declare_charset(big5.encode("big5"), "big5")
    assert title_of(stored) == "單車"
    assert "自行車的鏈條" in parse(stored).text
    # the page's own declaration wins over the header
    own = '<meta charset="utf-8"><p>自行车</p>'.encode()
    assert declare_charset(own, "big5") == own
    assert decode_html(declare_charset(own, "big5")).text.endswith("自行车</p>")


def test_a_wrong_declaration_falls_back_to_recognition() -> None:
    page = '<meta charset="utf-8"><title>x</title><p>自行车的链条要每三百公里清洁一次，之后轻轻上油。</p>'.encode("gbk")
    assert "自行车的链条" in parse(page).text


def test_a_short_page_keeps_its_text() -> None:
    assert parse(b"<html><body><p>just one line</p></body></html>").text == "just one line"


@pytest.mark.parametrize("data", [b"", b"   ", b"<html><body><script>x()</script></body></html>"])
def test_no_text_is_an_error(data: bytes) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parse(data)
    assert caught.value.code == "empty_file"
