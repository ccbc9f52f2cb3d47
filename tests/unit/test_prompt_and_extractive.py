import pytest

from zhiku.apps.extractive import HEADER_EN, HEADER_ZH, extractive_answer
from zhiku.apps.prompt import build_messages, fill_variables, parse_messages
from zhiku.chat_model import ChatMessage
from zhiku.errors import InvalidInput
from zhiku.retrieval.fusion import Candidate


def quote(q: str, source: str = "doc.md", a: str = "") -> Candidate:
    return Candidate(chunk_id=1, q=q, a=a, dataset_id=1, collection_id=1, chunk_index=0, source_name=source)


def test_variables_filled_and_unknown_kept() -> None:
    assert fill_variables("Hi {{ name }}, {{other}}", {"name": "Ana"}) == "Hi Ana, {{other}}"


def test_build_messages_puts_quotes_with_the_question() -> None:
    history = [ChatMessage("user", "earlier"), ChatMessage("assistant", "reply")]
    msgs = build_messages("Be kind to {{u}}.", [quote("Tea grows in Hangzhou.", "tea.md")], history,
                          "Where does tea grow?", {"u": "Li"})
    assert msgs[0].role == "system" and msgs[0].content.startswith("Be kind to Li.")
    assert [m.content for m in msgs[1:3]] == ["earlier", "reply"]
    assert "<Quotes>" in msgs[-1].content and "(tea.md)" in msgs[-1].content
    assert msgs[-1].content.endswith("Question: Where does tea grow?")


def test_no_quotes_no_system_sends_the_bare_question() -> None:
    msgs = build_messages("", [], [], "hello")
    assert msgs == [ChatMessage("user", "hello")]


@pytest.mark.parametrize("raw", [[], [{"role": "user", "content": "  "}], [{"role": "bot", "content": "x"}],
                                 [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                                 [{"role": "user", "content": 5}]])
def test_parse_messages_rejects_bad_input(raw: list) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_messages(raw)
    assert err.value.code == "invalid_messages"


def test_parse_messages_accepts_content_parts() -> None:
    msgs = parse_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}])
    assert msgs[-1].content == "hi"


def test_extractive_picks_matching_sentences_and_cites() -> None:
    quotes = [quote("Descale the machine every 200 cups. Use citric acid. The tank holds two litres.", "manual.md")]
    answer = extractive_answer("How often should I descale?", quotes)
    assert answer.startswith(HEADER_EN)
    assert "Descale the machine every 200 cups. [manual.md]" in answer
    assert "two litres" not in answer  # sentences sharing no term with the question are left out


def test_extractive_chinese_header_and_nothing_found() -> None:
    assert extractive_answer("龙井茶产地？", []).startswith(HEADER_ZH)
    answer = extractive_answer("龙井茶产于哪里？", [quote("龙井茶产于杭州西湖。红茶产于安徽。", "tea.md")])
    assert "龙井茶产于杭州西湖。 [tea.md]" in answer
