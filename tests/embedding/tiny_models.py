"""Tiny randomly initialised model directories in the Hugging Face layout, and a reference forward pass.

The reference is written independently of ``zhiku.embedding.hf_model``: one
sequence at a time, no padding, attention head by head, exact ``math.erf`` GELU.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "bird", "flew", "over", "house", "river", "bank", "money", "water", "tree", "green", "red", "blue", "small", "big", "fast", "slow", "quiet", "loud", "猫", "狗", "鸟", "水", "树"]
HIDDEN, HEADS, LAYERS, FFN, POSITIONS = 16, 2, 2, 32, 40


def _tokenizer(path: Path, xlmr: bool) -> dict[str, int]:
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if xlmr else ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS])}
    unk = "<unk>" if xlmr else "[UNK]"
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if xlmr:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.save(str(path / "tokenizer.json"))
    return vocab


def _encoder_tensors(rng: np.random.Generator, vocab_size: int, positions: int, types: int,
                     prefix: str) -> dict[str, np.ndarray]:
    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.4).astype(np.float32)

    t = {f"{prefix}embeddings.word_embeddings.weight": r(vocab_size, HIDDEN),
         f"{prefix}embeddings.position_embeddings.weight": r(positions, HIDDEN),
         f"{prefix}embeddings.token_type_embeddings.weight": r(types, HIDDEN),
         f"{prefix}embeddings.LayerNorm.weight": 1 + r(HIDDEN) * 0.1,
         f"{prefix}embeddings.LayerNorm.bias": r(HIDDEN) * 0.1}
    for i in range(LAYERS):
        p = f"{prefix}encoder.layer.{i}."
        for name, (out_dim, in_dim) in {"attention.self.query": (HIDDEN, HIDDEN), "attention.self.key": (HIDDEN, HIDDEN),
                                        "attention.self.value": (HIDDEN, HIDDEN),
                                        "attention.output.dense": (HIDDEN, HIDDEN),
                                        "intermediate.dense": (FFN, HIDDEN), "output.dense": (HIDDEN, FFN)}.items():
            t[p + name + ".weight"] = r(out_dim, in_dim)
            t[p + name + ".bias"] = r(out_dim) * 0.1
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"] = 1 + r(HIDDEN) * 0.1
            t[p + ln + ".bias"] = r(HIDDEN) * 0.1
    return t


def write_bert_embedder(path: Path, *, pooling: str, seed: int = 7) -> Path:
    """A sentence-transformers export of a tiny BERT: weights without prefix, modules.json, 1_Pooling."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = _tokenizer(path, xlmr=False)
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": HIDDEN,
              "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "intermediate_size": FFN,
              "max_position_embeddings": POSITIONS, "type_vocab_size": 2, "vocab_size": len(vocab),
              "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0}
    (path / "config.json").write_text(json.dumps(config))
    save_file(_encoder_tensors(np.random.default_rng(seed), len(vocab), POSITIONS, 2, ""),
              str(path / "model.safetensors"))
    (path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": pooling == "cls",
         "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False}))
    return path


def write_xlmr_cross_encoder(path: Path, seed: int = 11) -> Path:
    """A bge-reranker style XLMRobertaForSequenceClassification with one label."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = _tokenizer(path, xlmr=True)
    config = {"model_type": "xlm-roberta", "architectures": ["XLMRobertaForSequenceClassification"],
              "hidden_size": HIDDEN, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
              "intermediate_size": FFN, "max_position_embeddings": POSITIONS + 2, "type_vocab_size": 1,
              "vocab_size": len(vocab), "layer_norm_eps": 1e-5, "hidden_act": "gelu", "pad_token_id": 1,
              "num_labels": 1}
    (path / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    tensors = _encoder_tensors(rng, len(vocab), POSITIONS + 2, 1, "roberta.")
    tensors.update({"classifier.dense.weight": (rng.standard_normal((HIDDEN, HIDDEN)) * 0.5).astype(np.float32),
                    "classifier.dense.bias": (rng.standard_normal(HIDDEN) * 0.1).astype(np.float32),
                    "classifier.out_proj.weight": (rng.standard_normal((1, HIDDEN)) * 2).astype(np.float32),
                    "classifier.out_proj.bias": np.zeros(1, np.float32)})
    save_file(tensors, str(path / "model.safetensors"))
    return path


def reference_hidden(tensors: dict[str, np.ndarray], ids: list[int], type_ids: list[int], *,
                     prefix: str = "", position_offset: int = 0, eps: float = 1e-12) -> np.ndarray:
    """Final hidden states of one sequence, computed the slow obvious way in float64."""
    t = {k: v.astype(np.float64) for k, v in tensors.items()}

    def ln(x: np.ndarray, name: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * t[name + ".weight"] + t[name + ".bias"]

    def dense(x: np.ndarray, name: str) -> np.ndarray:
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    e = prefix + "embeddings."
    x = np.stack([t[e + "word_embeddings.weight"][i] + t[e + "position_embeddings.weight"][p + position_offset]
                  + t[e + "token_type_embeddings.weight"][ty] for p, (i, ty) in enumerate(zip(ids, type_ids))])
    x = ln(x, e + "LayerNorm")
    head = HIDDEN // HEADS
    for layer in range(LAYERS):
        p = f"{prefix}encoder.layer.{layer}."
        q, k, v = (dense(x, p + f"attention.self.{n}") for n in ("query", "key", "value"))
        ctx = np.zeros_like(x)
        for h in range(HEADS):
            s = slice(h * head, (h + 1) * head)
            scores = q[:, s] @ k[:, s].T / math.sqrt(head)
            weights = np.exp(scores - scores.max(1, keepdims=True))
            ctx[:, s] = (weights / weights.sum(1, keepdims=True)) @ v[:, s]
        x = ln(dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        up = dense(x, p + "intermediate.dense")
        up = 0.5 * up * (1 + np.vectorize(math.erf)(up / math.sqrt(2)))
        x = ln(dense(up, p + "output.dense") + x, p + "output.LayerNorm")
    return x
