import os
import socket

import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from zhiku import tokencount as tokens


def test_cl100k_matches_openai_ids():
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_o200k_matches_openai_ids():
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]


def test_default_encoding_is_cl100k_and_cached():
    assert tokens.get_encoding() is tokens.get_encoding("cl100k_base")
    assert isinstance(tokens.get_encoding(), tiktoken.Encoding)


def test_round_trip_of_mixed_text():
    text = "知识库问答 with GPT-4o 🚀\n\tend"
    for name in ("cl100k_base", "o200k_base"):
        encoding = tokens.get_encoding(name)
        assert encoding.decode(encoding.encode(text)) == text


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="unknown encoding 'p50k_base'"):
        tokens.get_encoding("p50k_base")


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_definitions_agree_with_installed_tiktoken(name, monkeypatch):
    """Our copied pattern, special tokens and vocabulary hash are tiktoken's own.

    tiktoken's constructor would download the vocabulary; intercept that call and
    keep what it asked for.
    """
    requested = {}

    def fake_load(blobpath, expected_hash=None):
        requested["hash"] = expected_hash
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    official = openai_public.ENCODING_CONSTRUCTORS[name]()
    ours = tokens._SPECS[name]
    assert ours.pat_str == official["pat_str"]
    assert ours.special_tokens == official["special_tokens"]
    assert ours.sha256 == requested["hash"]


def test_building_an_encoding_touches_neither_network_nor_environment(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    class EnvironmentTripwire(dict):
        def __getitem__(self, key):
            raise AssertionError(f"environment variable {key!r} read")

        def get(self, key, default=None):
            raise AssertionError(f"environment variable {key!r} read")

        def __contains__(self, key):
            raise AssertionError(f"environment variable {key!r} read")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(os, "environ", EnvironmentTripwire())
    monkeypatch.setattr(tokens, "_encodings", {})  # force a fresh build

    encoding = tokens.get_encoding("cl100k_base")

    assert encoding.encode("hello world") == [15339, 1917]


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "GPT-4o-2024-08-06",
        "chatgpt-4o-latest",
        "gpt-4.1-nano",
        "gpt-5",
        "gpt-5.1",
        "gpt-5-mini",
        "o1",
        "o1-mini",
        "o3-mini",
        "o4-mini",
        "openai/gpt-4o",
        "ft:gpt-4o-mini-2024-07-18:org::abc",
    ],
)
def test_new_openai_models_use_o200k(model):
    assert tokens.encoding_for_model(model) is tokens.get_encoding("o200k_base")


@pytest.mark.parametrize(
    "model",
    ["gpt-4", "gpt-4-turbo", "gpt-3.5-turbo", "text-embedding-3-small", "qwen2.5-72b", "glm-4", "o1x", "m3e"],
)
def test_other_models_use_cl100k(model):
    assert tokens.encoding_for_model(model) is tokens.get_encoding("cl100k_base")


def test_count_tokens():
    assert tokens.count_tokens("") == 0
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("hello world", model="gpt-4o") == 2
    chinese = "我爱北京天安门"
    assert tokens.count_tokens(chinese) == len(tokens.get_encoding("cl100k_base").encode(chinese))
    assert tokens.count_tokens(chinese, model="gpt-4o") == len(
        tokens.get_encoding("o200k_base").encode(chinese)
    )


def test_special_token_text_counts_as_ordinary_text():
    # tiktoken's plain encode() raises on this; user text must never crash counting.
    assert tokens.count_tokens("<|endoftext|>") > 1


def test_message_overhead_by_hand():
    # 3 per message + "user" (1) + "hello world" (2), then 3 for the reply priming.
    assert tokens.count_message_tokens([{"role": "user", "content": "hello world"}]) == 9
    # A name costs its own tokens ("bob": 1) plus 1.
    named = [{"role": "user", "name": "bob", "content": "hello world"}]
    assert tokens.count_message_tokens(named) == 11
    assert tokens.count_message_tokens([]) == 3


def test_message_count_matches_openai_cookbook_example():
    # The OpenAI cookbook's example conversation; the API reports 129 prompt
    # tokens for it on gpt-3.5-turbo / gpt-4 (cl100k_base).
    messages = [
        {
            "role": "system",
            "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
            "into plain English.",
        },
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Things working well together will increase revenue.",
        },
        {
            "role": "system",
            "name": "example_user",
            "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
            "increased leverage.",
        },
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Let's talk later when we're less busy about how to do better.",
        },
        {
            "role": "user",
            "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
        },
    ]
    assert tokens.count_message_tokens(messages, model="gpt-4-0613") == 129


def test_structured_message_fields():
    multimodal = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    # Only the text part counts: same as the plain-text message.
    assert tokens.count_message_tokens(multimodal) == 9

    tool_call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    with_tool = [{"role": "assistant", "content": None, "tool_calls": [tool_call]}]
    expected_json = tokens.count_tokens(
        '[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{}"}}]'
    )
    assert tokens.count_message_tokens(with_tool) == 3 + 1 + 0 + expected_json + 3
