"""BERT / XLM-RoBERTa encoders from a local Hugging Face or sentence-transformers directory, in numpy.

For models a user downloaded elsewhere (m3e-base, bge-small-zh, bge-m3 …): the
directory holds ``config.json``, ``tokenizer.json`` and ``model.safetensors``;
a sentence-transformers export adds ``modules.json`` and ``1_Pooling/config.json``
(mean or CLS pooling) and may name query/passage prompts in
``config_sentence_transformers.json``. The forward pass is plain batched float32
numpy: texts sorted by length, padded per batch, masked attention.

``HFEncoder`` is the transformer alone (shared with the cross-encoder in
``zhiku.embedding.rerank``); ``HFEmbedder`` adds pooling and normalisation
behind the ``Embedder`` protocol.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zhiku.embedding.base import EmbedKind
from zhiku.errors import StartupError

Pooling = Literal["mean", "cls"]
_ARCHITECTURES = {"bert", "xlm-roberta", "roberta"}


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (hidden, 3 * hidden), already transposed for x @ w
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (max error 1.5e-7, below float32 resolution near 1): numpy has no erf."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def gelu(x: np.ndarray, kind: str = "gelu") -> np.ndarray:
    if kind in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
    if kind == "relu":
        return np.maximum(x, 0)
    return 0.5 * x * (1.0 + _erf(x / np.float32(1.4142135623730951)))


def _layer_norm(x: np.ndarray, ln: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * ln[0] + ln[1]


class _Weights:
    """Tensors by name, whatever prefix (``bert.``, ``roberta.``, none) and LayerNorm naming the file uses."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors

    def find(self, name: str) -> np.ndarray | None:
        variants = [name, name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")]
        for prefix in ("", "bert.", "roberta.", "model.", "xlm_roberta."):
            for variant in variants:
                if prefix + variant in self.tensors:
                    return self.tensors[prefix + variant].astype(np.float32)
        return None

    def get(self, name: str) -> np.ndarray:
        tensor = self.find(name)
        if tensor is None:
            raise StartupError(f"the model weights have no tensor {name!r}")
        return tensor


class HFEncoder:
    """A BERT-family transformer: token ids in, final hidden states out."""

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        path = Path(path)
        for required in ("config.json", "tokenizer.json", "model.safetensors"):
            if not (path / required).is_file():
                raise StartupError(f"{path} is not a model directory: {required} is missing "
                                   f"(needs config.json, tokenizer.json and model.safetensors)")
        self.path = path
        self.config = config = _read_json(path / "config.json")
        model_type = str(config.get("model_type", "bert"))
        if model_type not in _ARCHITECTURES:
            raise StartupError(f"{path}: model_type {model_type!r} is not supported (BERT and XLM-RoBERTa are)")
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.act = str(config.get("hidden_act", "gelu"))
        # RoBERTa counts positions from padding_idx + 1 (positions 0..pad are never used)
        self.position_offset = int(config.get("pad_token_id", 1)) + 1 if model_type != "bert" else 0
        weights = _Weights(load_file(str(path / "model.safetensors")))
        self.word = weights.get("embeddings.word_embeddings.weight")
        self.position = weights.get("embeddings.position_embeddings.weight")
        token_type = weights.find("embeddings.token_type_embeddings.weight")
        self.token_type = token_type if token_type is not None else np.zeros((1, self.hidden), np.float32)
        self.ln_embed = (weights.get("embeddings.LayerNorm.weight"), weights.get("embeddings.LayerNorm.bias"))
        self.layers = [self._layer(weights, i) for i in range(int(config["num_hidden_layers"]))]
        self.weights = weights
        self.max_tokens = self.position.shape[0] - self.position_offset
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self._lock = threading.Lock()  # the tokenizer object is not documented as thread-safe

    @staticmethod
    def _layer(weights: _Weights, i: int) -> _Layer:
        p = f"encoder.layer.{i}."

        def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
            return weights.get(p + name + ".weight").T.copy(), weights.get(p + name + ".bias")

        q, qb = linear("attention.self.query")
        k, kb = linear("attention.self.key")
        v, vb = linear("attention.self.value")
        out, out_b = linear("attention.output.dense")
        up, up_b = linear("intermediate.dense")
        down, down_b = linear("output.dense")
        return _Layer(qkv=np.concatenate([q, k, v], axis=1), qkv_bias=np.concatenate([qb, kb, vb]),
                      out=out, out_bias=out_b,
                      ln1=(weights.get(p + "attention.output.LayerNorm.weight"),
                           weights.get(p + "attention.output.LayerNorm.bias")),
                      up=up, up_bias=up_b, down=down, down_bias=down_b,
                      ln2=(weights.get(p + "output.LayerNorm.weight"), weights.get(p + "output.LayerNorm.bias")))

    def encode(self, texts: Sequence[str] | Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(ids, token type ids) of each text or (text, text) pair, special tokens included."""
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return [(e.ids, e.type_ids) for e in encodings]

    def forward(self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Hidden states ``(batch, seq, hidden)`` of a padded batch; ``mask`` is 1 on real tokens."""
        batch, seq = ids.shape
        positions = np.arange(seq)[None, :] + self.position_offset
        x = self.word[ids] + self.position[positions] + self.token_type[type_ids]
        x = _layer_norm(x, self.ln_embed, self.eps).astype(np.float32)
        head = self.hidden // self.heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(head))
        for layer in self.layers:
            qkv = x @ layer.qkv + layer.qkv_bias
            q, k, v = (qkv[..., i * self.hidden:(i + 1) * self.hidden]
                       .reshape(batch, seq, self.heads, head).transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, seq, self.hidden)
            x = _layer_norm(ctx @ layer.out + layer.out_bias + x, layer.ln1, self.eps)
            hidden = gelu(x @ layer.up + layer.up_bias, self.act)
            x = _layer_norm(hidden @ layer.down + layer.down_bias + x, layer.ln2, self.eps).astype(np.float32)
        return x

    def run(self, encoded: Sequence[tuple[list[int], list[int]]], max_batch_tokens: int = 8192
            ) -> list[np.ndarray]:
        """Hidden states of each sequence (its own length, no padding), batched by length."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        out: list[np.ndarray] = [np.zeros(0)] * len(encoded)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * len(encoded[order[end]][0]) <= max_batch_tokens:
                end += 1
            group = order[start:end]
            seq = max(len(encoded[i][0]) for i in group)
            ids = np.zeros((len(group), seq), np.int64)
            types = np.zeros((len(group), seq), np.int64)
            mask = np.zeros((len(group), seq), np.float32)
            for row, i in enumerate(group):
                n = len(encoded[i][0])
                ids[row, :n], types[row, :n], mask[row, :n] = encoded[i][0], encoded[i][1], 1.0
            hidden = self.forward(ids, types, mask)
            for row, i in enumerate(group):
                out[i] = hidden[row, :len(encoded[i][0])]
            start = end
        return out


def _pooling_of(path: Path) -> tuple[Pooling, dict[str, str]]:
    """Pooling mode from modules.json + the Pooling module's config; prompts from the ST config."""
    pooling: Pooling = "mean"
    modules_file = path / "modules.json"
    if modules_file.is_file():
        for module in json.loads(modules_file.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith("models.Pooling"):
                config_file = path / module.get("path", "1_Pooling") / "config.json"
                if config_file.is_file():
                    config = _read_json(config_file)
                    if config.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif not config.get("pooling_mode_mean_tokens", True):
                        raise StartupError(f"{path}: only mean and CLS pooling are supported")
    prompts: dict[str, str] = {}
    st_config = path / "config_sentence_transformers.json"
    if st_config.is_file():
        found = _read_json(st_config).get("prompts") or {}
        for kind, keys in (("query", ("query",)), ("passage", ("passage", "document"))):
            prompt = next((found[k] for k in keys if found.get(k)), "")
            if prompt:
                prompts[kind] = prompt
    return pooling, prompts


class HFEmbedder:
    """A sentence-transformers style embedder: encoder, mean or CLS pooling, L2 normalisation."""

    def __init__(self, path: Path, *, name: str | None = None, pooling: Pooling | None = None,
                 max_batch_tokens: int = 8192) -> None:
        self.encoder = HFEncoder(path)
        found_pooling, self.prompts = _pooling_of(Path(path))
        self.pooling: Pooling = pooling or found_pooling
        self.model_name = name or Path(path).name
        self.dim = self.encoder.hidden
        self.max_tokens = self.encoder.max_tokens
        self._max_batch_tokens = max_batch_tokens

    def count_tokens(self, text: str) -> int:
        return len(self.encoder.encode([text])[0][0])

    def prefix_tokens(self, kind: EmbedKind = "passage") -> int:
        prompt = self.prompts.get(kind, "")
        return len(self.encoder.encode([prompt])[0][0]) - len(self.encoder.encode([""])[0][0]) if prompt else 0

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        prompt = self.prompts.get(kind, "")
        encoded = self.encoder.encode([prompt + t for t in texts])
        for index, (ids, _) in enumerate(encoded):
            if len(ids) > self.max_tokens:
                raise ValueError(f"input {index} is {len(ids)} tokens; {self.model_name} takes at most "
                                 f"{self.max_tokens}")
        states = self.encoder.run(encoded, self._max_batch_tokens)
        pooled = np.stack([s[0] if self.pooling == "cls" else s.mean(0) for s in states]).astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.where(norms == 0, 1.0, norms)


def load_hf_embedder(path: Path, *, name: str | None = None) -> HFEmbedder:
    return HFEmbedder(path, name=name)
