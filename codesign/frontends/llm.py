"""LLM workload builder: a transformer Cascade from an `LLMConfig` and a `Workload`.

Shapes only: weight tensors carry no data (attach it with `attach_weights` or
`attach_random_weights`), so Llama-2-70B builds in well under a second and a few MB.

Naming (stable, so weights can be loaded by name and the roofline can group by layer type):
* Einsums of layer ``i`` are ``L{i}_{label}[_{part}]`` where ``label`` is one of `LABELS`
  (LLM-Viewer's layer names where it has one): ``L3_q_proj``, ``L3_softmax_exp``,
  ``L3_attn_norm_var``.  Whole-model Einsums use the label alone (``embed``, ``lm_head``).
  `layer_of` and `label_of` recover both from a name.  ``op`` is the coarse kind
  (``Linear``, ``Attention``, ``Softmax``, ``Norm``, ...; see `OPS`).
* Weights: ``embed``, ``pos_embed``, ``type_embed``, ``embed_norm_w/_b``, per layer ``L{i}_wq,
  _wk, _wv, _wo`` (biases ``_bq ...``), ``L{i}_w_gate, _w_up, _w_down`` or ``L{i}_w_fc1,
  _w_fc2`` (biases ``L{i}_b_fc1 ...``), ``L{i}_attn_norm_w/_b``, ``L{i}_mlp_norm_w/_b``,
  ``final_norm_w/_b``, ``lm_head`` (absent when tied: the LM head reads ``embed``),
  ``lm_head_b``.  Linear weights are ``[in_features, out_features]``.
* Inputs: ``tokens`` [batch, new] (i32); ``rope_cos``/``rope_sin`` [new, rotary_dim/2] for the
  positions processed; ``attn_mask`` [new, keys] additive causal mask (prefill of a decoder);
  decode adds ``L{i}_k_cache``/``L{i}_v_cache`` [batch, kv_heads, kv_len, head_dim].
  `llm_inputs` makes all of them but the cache.
* Outputs: ``logits`` [batch, 1 or seq, vocab] (``hidden_out`` for an encoder without head),
  and the KV cache each pass writes: prefill ``L{i}_k``/``L{i}_v`` [batch, kv_heads, seq,
  head_dim]; decode ``L{i}_k_all``/``L{i}_v_all`` with ``kv_len + 1`` rows, the old cache copied
  (``kv_cache`` Einsums, as Hugging Face's DynamicCache concatenates) and the new row written by
  the rotary / V-store Einsum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from codesign.errors import InputError
from codesign.frontends.llm_config import (
    Activation,
    Block,
    LLMConfig,
    Norm,
    Phase,
    Positions,
    Workload,
    param_count,
)
from codesign.frontends.llm_presets import preset, presets, resolve_llm
from codesign.ir.builder import CascadeBuilder, var_access
from codesign.ir.cascade import Cascade, Role, TensorSpec
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine, Gathered

__all__ = [
    "LABELS", "OPS", "PRESETS", "LLMConfig", "Phase", "Workload", "attach_random_weights",
    "attach_weights", "build_llm", "kv_cache_from_prefill", "label_of", "layer_of",
    "llm_from_spec", "llm_inputs", "param_count", "preset", "resolve_llm", "rope_tables",
]  # fmt: skip

# Layer-type labels, in forward order.  Longer labels first where one prefixes another.
LABELS = (
    "embed_norm", "embed", "attn_norm", "q_proj", "k_proj", "v_proj", "rope", "kv_cache",
    "qk_matmul", "attn_scale", "softmax", "sv_matmul", "out_proj", "attn_add", "mlp_norm",
    "gate_proj", "up_proj", "fc1", "mlp_act", "down_proj", "fc2", "router", "expert_gate",
    "expert_up", "expert_act", "expert_down", "moe_combine", "shared_gate_proj",
    "shared_up_proj", "shared_act", "shared_down_proj", "shared_expert_gate", "shared_add",
    "mlp_add", "final_norm", "lm_head",
)  # fmt: skip
OPS = (
    "Embedding", "Norm", "Linear", "Rotary", "KVCache", "Attention", "Softmax", "Activation",
    "Residual", "Router", "Expert",
)  # fmt: skip
PRESETS = presets()  # name -> LLMConfig of every bundled config.json
_LAYER = re.compile(r"^L(\d+)_")
_ACT = {
    Activation.SILU: UnaryOp.SILU, Activation.GELU: UnaryOp.GELU,
    Activation.GELU_TANH: UnaryOp.GELU_TANH, Activation.RELU: UnaryOp.RELU,
}  # fmt: skip


def layer_of(einsum_name: str) -> int | None:
    """The decoder layer an Einsum (or tensor) belongs to, None for embedding / head."""
    match = _LAYER.match(einsum_name)
    return int(match.group(1)) if match else None


def label_of(einsum_name: str) -> str | None:
    """The layer-type label (one of `LABELS`) of a builder-made Einsum name, else None."""
    rest = _LAYER.sub("", einsum_name, count=1)
    for label in LABELS:
        if rest == label or rest.startswith(label + "_"):
            return label
    return None


def _v(name: str) -> Affine:
    return Affine.var(name)


class _LLMBuilder:
    """Emits one transformer into a CascadeBuilder; one method per block of the model."""

    def __init__(self, config: LLMConfig, workload: Workload, n_layers: int, lm_head: str):
        self.c, self.w, self.n_layers, self.lm_head = config, workload, n_layers, lm_head
        self.b = CascadeBuilder(f"{config.name}_{workload.phase.value}")
        self.dt = config.dtype
        self.batch, self.new = workload.batch, workload.new_tokens
        self.past = cached_keys(config, workload)
        self.keys = self.past + self.new

    # -- helpers
    def weight(self, name: str, shape: tuple[int, ...], ranks: tuple[str, ...]) -> str:
        return self.b.tensor(name, shape, self.dt, Role.WEIGHT, ranks=ranks)

    def linear(self, label: str, x: str, w: str, bias: str | None, role: Role) -> str:
        y = self.b.matmul(label, x, w, src="Linear")
        if bias is not None:
            y = self.b.binary(f"{label}_bias", y, bias, BinaryOp.ADD, src="Linear")
        if role is not Role.INTERMEDIATE:
            self.b.set_role(y, role)
        return y

    def norm(self, label: str, x: str) -> str:
        c = self.c
        rms = c.norm is Norm.RMSNORM
        w = self.weight(f"{label}_w", (c.hidden,), ("H",))
        bias = None if rms else self.weight(f"{label}_b", (c.hidden,), ("H",))
        return self.b.layernorm(label, x, w, bias, eps=c.norm_eps, rms=rms, src="Norm")

    def add(self, label: str, x: str, y: str) -> str:
        return self.b.binary(label, x, y, BinaryOp.ADD, src="Residual")

    # -- model pieces
    def embed(self) -> str:
        c, b = self.c, self.b
        tokens = b.tensor("tokens", (self.batch, self.new), DType.I32, Role.INPUT, ranks=("B", "S"))
        table = self.weight("embed", (c.vocab, c.hidden), ("V", "H"))
        x = b.tensor("embed_out", (self.batch, self.new, c.hidden), self.dt, ranks=("B", "S", "H"))
        row = Gathered(tokens, (_v("b"), _v("s")))
        out = Access(x, (_v("b"), _v("s"), _v("h")))
        extents = {"b": self.batch, "s": self.new, "h": c.hidden}
        b.einsum("embed", out, Access(table, (row, _v("h"))), extents, op="Embedding")
        if c.positions is Positions.LEARNED or c.type_vocab:
            body: Expr = var_access(x, ("b", "s", "h"))
            if c.positions is Positions.LEARNED:
                pos = self.weight(
                    "pos_embed", (c.max_position + c.position_offset, c.hidden), ("P", "H")
                )
                first = c.position_offset + self.past
                body = Binary(
                    BinaryOp.ADD, body, Access(pos, (Affine.of({"s": 1}, first), _v("h")))
                )
            if c.type_vocab:
                types = self.weight("type_embed", (c.type_vocab, c.hidden), ("T", "H"))
                body = Binary(BinaryOp.ADD, body, Access(types, (Affine.constant(0), _v("h"))))
            y = b.tensor("embed_sum", (self.batch, self.new, c.hidden), self.dt)
            b.einsum(
                "embed_positions", var_access(y, ("b", "s", "h")), body, extents, op="Embedding"
            )
            x = y
        if c.embed_norm:
            x = self.norm("embed_norm", x)
        return x

    def rope_inputs(self) -> tuple[str, str] | None:
        if self.c.positions is not Positions.ROTARY:
            return None
        half = self.c.rotary_dim // 2
        cos = self.b.tensor("rope_cos", (self.new, half), self.dt, Role.INPUT, ranks=("S", "J"))
        sin = self.b.tensor("rope_sin", (self.new, half), self.dt, Role.INPUT, ranks=("S", "J"))
        return cos, sin

    def rope(
        self, p: str, which: str, x: str, heads: int, out: str, row0: int, tables: tuple[str, str]
    ) -> None:
        """Rotate-half RoPE of projection `x` [b, s, heads*D] into `out` [b, heads, rows, D]
        at row offset `row0`: one Einsum per half plus a copy of the unrotated tail."""
        c, b = self.c, self.b
        cos, sin = tables
        d, half = c.head_dim, c.rotary_dim // 2
        ext = {"b": self.batch, "h": heads, "s": self.new, "j": half}

        def src(offset: int) -> Access:
            return Access(x, (_v("b"), _v("s"), Affine.of({"h": d, "j": 1}, offset)))

        cs = Access(cos, (_v("s"), _v("j")))
        sn = Access(sin, (_v("s"), _v("j")))
        lo = Binary(
            BinaryOp.SUB, Binary(BinaryOp.MUL, src(0), cs), Binary(BinaryOp.MUL, src(half), sn)
        )
        hi = Binary(
            BinaryOp.ADD, Binary(BinaryOp.MUL, src(half), cs), Binary(BinaryOp.MUL, src(0), sn)
        )
        for part, body, off in (("lo", lo, 0), ("hi", hi, half)):
            dst = Access(
                out, (_v("b"), _v("h"), Affine.of({"s": 1}, row0), Affine.of({"j": 1}, off))
            )
            b.einsum(f"{p}rope_{which}_{part}", dst, body, ext, op="Rotary")
        if c.rotary_dim < d:
            ext = {**ext, "j": d - c.rotary_dim}
            dst = Access(
                out,
                (_v("b"), _v("h"), Affine.of({"s": 1}, row0), Affine.of({"j": 1}, c.rotary_dim)),
            )
            b.einsum(f"{p}rope_{which}_pass", dst, src(c.rotary_dim), ext, op="Rotary")

    def store_heads(self, name: str, x: str, heads: int, out: str, row0: int) -> None:
        """View ``out[b, h, row0 + s, e] = x[b, s, h*D + e]`` (write into the KV cache)."""
        d = self.c.head_dim
        dst = Access(out, (_v("b"), _v("h"), Affine.of({"s": 1}, row0), _v("e")))
        src = Access(x, (_v("b"), _v("s"), Affine.of({"h": d, "e": 1})))
        ext = {"b": self.batch, "h": heads, "s": self.new, "e": d}
        self.b.einsum(name, dst, src, ext, op="KVCache")

    def kv_tensor(self, p: str, which: str, tables: tuple[str, str] | None, x: str) -> str:
        """The keys (`which` = "k") or values of layer prefix `p` in cache layout, written as
        this pass's KV cache output (decode: old cache copied, new row appended)."""
        c, b = self.c, self.b
        shape = (self.batch, c.kv_heads, self.keys, c.head_dim)
        ranks = ("B", "G", "T", "E")
        decode = self.w.phase is Phase.DECODE
        out = b.tensor(
            f"{p}{which}_all" if decode else f"{p}{which}", shape, self.dt, Role.OUTPUT, ranks=ranks
        )
        if decode:
            cache_shape = (self.batch, c.kv_heads, self.past, c.head_dim)
            cache = b.tensor(f"{p}{which}_cache", cache_shape, self.dt, Role.INPUT, ranks=ranks)
            vs = ("b", "g", "t", "e")
            b.einsum(
                f"{p}kv_cache_{which}_past",
                var_access(out, vs),
                var_access(cache, vs),
                dict(zip(vs, cache_shape, strict=True)),
                op="KVCache",
            )
        if which == "k" and tables is not None:
            self.rope(p, "k", x, c.kv_heads, out, self.past, tables)
        else:
            self.store_heads(f"{p}kv_cache_{which}_new", x, c.kv_heads, out, self.past)
        return out

    def attention(self, p: str, x: str, tables: tuple[str, str] | None, mask: str | None) -> str:
        c, b = self.c, self.b
        d, g_n, rep = c.head_dim, c.kv_heads, c.group_size
        qd, kvd = c.heads * d, c.kv_heads * d

        def proj(name: str, wname: str, bname: str, out_dim: int) -> str:
            w = self.weight(f"{p}{wname}", (c.hidden, out_dim), ("IN", "OUT"))
            bias = self.weight(f"{p}{bname}", (out_dim,), ("OUT",)) if c.qkv_bias else None
            return self.linear(f"{p}{name}", x, w, bias, Role.INTERMEDIATE)

        q = proj("q_proj", "wq", "bq", qd)
        k = proj("k_proj", "wk", "bk", kvd)
        v = proj("v_proj", "wv", "bv", kvd)
        if tables is not None:
            q_rot = b.tensor(
                f"{p}q_rot", (self.batch, c.heads, self.new, d), self.dt, ranks=("B", "N", "S", "E")
            )
            self.rope(p, "q", q, c.heads, q_rot, 0, tables)
            q_acc = Access(q_rot, (_v("b"), Affine.of({"g": rep, "r": 1}), _v("s"), _v("e")))
        else:
            q_acc = Access(q, (_v("b"), _v("s"), Affine.of({"g": rep * d, "r": d, "e": 1})))
        keys = self.kv_tensor(p, "k", tables, k)
        values = self.kv_tensor(p, "v", None, v)
        # scores[b, g, r, s, t]: query head g*rep + r reads key/value head g (GQA)
        s_shape = (self.batch, g_n, rep, self.new, self.keys)
        s_ranks = ("B", "G", "R", "S", "T")
        ext = {"b": self.batch, "g": g_n, "r": rep, "s": self.new, "t": self.keys, "e": d}
        scores = b.tensor(f"{p}qk_matmul", s_shape, self.dt, ranks=s_ranks)
        k_acc = Access(keys, (_v("b"), _v("g"), _v("t"), _v("e")))
        s_vars = ("b", "g", "r", "s", "t")
        b.einsum(
            f"{p}qk_matmul",
            var_access(scores, s_vars),
            Binary(BinaryOp.MUL, q_acc, k_acc),
            ext,
            ReduceOp.SUM,
            ("e",),
            op="Attention",
        )
        body: Expr = Binary(BinaryOp.MUL, var_access(scores, s_vars), Const(1 / math.sqrt(d)))
        if mask is not None:
            body = Binary(BinaryOp.ADD, body, Access(mask, (_v("s"), _v("t"))))
        scaled = b.tensor(f"{p}attn_scale", s_shape, self.dt, ranks=s_ranks)
        b.einsum(
            f"{p}attn_scale",
            var_access(scaled, s_vars),
            body,
            {v_: ext[v_] for v_ in s_vars},
            op="Attention",
        )
        probs = b.softmax(f"{p}softmax", scaled, axis=-1, src="Softmax")
        ctx = b.tensor(f"{p}sv_matmul", (self.batch, self.new, qd), self.dt, ranks=("B", "S", "C"))
        dst = Access(ctx, (_v("b"), _v("s"), Affine.of({"g": rep * d, "r": d, "e": 1})))
        v_acc = Access(values, (_v("b"), _v("g"), _v("t"), _v("e")))
        b.einsum(
            f"{p}sv_matmul",
            dst,
            Binary(BinaryOp.MUL, var_access(probs, s_vars), v_acc),
            ext,
            ReduceOp.SUM,
            ("t",),
            op="Attention",
        )
        wo = self.weight(f"{p}wo", (qd, c.hidden), ("IN", "OUT"))
        bo = self.weight(f"{p}bo", (c.hidden,), ("OUT",)) if c.out_bias else None
        return self.linear(f"{p}out_proj", ctx, wo, bo, Role.INTERMEDIATE)

    def mlp(self, p: str, x: str, width: int | None = None, prefix: str = "") -> str:
        """The dense MLP (or a MoE's shared expert: `prefix` "shared_", its `width`)."""
        c, b = self.c, self.b
        act = _ACT[c.activation]

        def lin(label: str, wname: str, x_: str, shape: tuple[int, int]) -> str:
            w = self.weight(f"{p}w_{prefix}{wname}", shape, ("IN", "OUT"))
            bias = (
                self.weight(f"{p}b_{prefix}{wname}", (shape[1],), ("OUT",)) if c.mlp_bias else None
            )
            return self.linear(f"{p}{prefix}{label}", x_, w, bias, Role.INTERMEDIATE)

        h, f = c.hidden, width or c.intermediate
        if c.gated_mlp:
            gate = lin("gate_proj", "gate", x, (h, f))
            up = lin("up_proj", "up", x, (h, f))
            hid = b.map(
                f"{p}{prefix}act" if prefix else f"{p}mlp_act",
                [gate, up],
                lambda g, u: Binary(BinaryOp.MUL, Unary(act, g), u),
                op="Activation",
            )
            return lin("down_proj", "down", hid, (f, h))
        hid = b.map(
            f"{p}mlp_act", [lin("fc1", "fc1", x, (h, f))], lambda a: Unary(act, a), op="Activation"
        )
        return lin("fc2", "fc2", hid, (f, h))

    def ffn(self, p: str, x: str) -> str:
        if self.c.is_moe:
            from codesign.frontends.llm_moe import moe_layer

            return moe_layer(self, p, x)
        return self.mlp(p, x)

    def layer(self, i: int, x: str, tables: tuple[str, str] | None, mask: str | None) -> str:
        p = f"L{i}_"
        block = self.c.block
        if block is Block.POST_NORM:
            x = self.norm(
                f"{p}attn_norm", self.add(f"{p}attn_add", x, self.attention(p, x, tables, mask))
            )
            return self.norm(f"{p}mlp_norm", self.add(f"{p}mlp_add", x, self.ffn(p, x)))
        h = self.norm(f"{p}attn_norm", x)
        attn = self.attention(p, h, tables, mask)
        if block is Block.PARALLEL:
            return self.add(f"{p}mlp_add", self.add(f"{p}attn_add", x, attn), self.ffn(p, h))
        if block is Block.PARALLEL_TWO_NORMS:
            mlp = self.ffn(p, self.norm(f"{p}mlp_norm", x))
            return self.add(f"{p}mlp_add", self.add(f"{p}attn_add", x, attn), mlp)
        x = self.add(f"{p}attn_add", x, attn)
        return self.add(f"{p}mlp_add", x, self.ffn(p, self.norm(f"{p}mlp_norm", x)))

    def head(self, x: str) -> None:
        c, b = self.c, self.b
        if c.final_norm:
            x = self.norm("final_norm", x)
        if self.lm_head == "none":
            out = b.map("hidden_out", [x], lambda a: a, op="View")
            b.set_role(out, Role.OUTPUT)
            return
        rows = 1 if self.lm_head == "last" else self.new
        shape, ranks = (self.batch, rows, c.vocab), ("B", "S", "V")
        logits = b.tensor(
            "lm_head_out" if c.lm_head_bias else "logits", shape, self.dt, ranks=ranks
        )
        x_acc = Access(x, (_v("b"), Affine.of({"s": 1}, self.new - rows), _v("k")))
        if c.tied_embeddings:
            w_acc = Access("embed", (_v("n"), _v("k")))
        else:
            w_acc = Access(
                self.weight("lm_head", (c.hidden, c.vocab), ("IN", "OUT")), (_v("k"), _v("n"))
            )
        ext = {"b": self.batch, "s": rows, "n": c.vocab, "k": c.hidden}
        b.einsum(
            "lm_head",
            Access(logits, (_v("b"), _v("s"), _v("n"))),
            Binary(BinaryOp.MUL, x_acc, w_acc),
            ext,
            ReduceOp.SUM,
            ("k",),
            op="Linear",
        )
        if c.lm_head_bias:
            bias = self.weight("lm_head_b", (c.vocab,), ("OUT",))
            out = b.tensor("logits", shape, self.dt, ranks=ranks)
            logits = b.map(
                "lm_head_bias",
                [logits, bias],
                lambda x_, y_: Binary(BinaryOp.ADD, x_, y_),
                op="Linear",
                out_name=out,
            )
        b.set_role(logits, Role.OUTPUT)

    def build(self) -> Cascade:
        c = self.c
        x = self.embed()
        tables = self.rope_inputs()
        mask = None
        if c.causal and self.w.phase is Phase.PREFILL:
            mask = self.b.tensor(
                "attn_mask", (self.new, self.keys), self.dt, Role.INPUT, ranks=("S", "T")
            )
        for i in range(self.n_layers):
            x = self.layer(i, x, tables, mask)
        self.head(x)
        return self.b.build()


def build_llm(
    config: LLMConfig, workload: Workload, layers: int | None = None, lm_head: str | None = None
) -> Cascade:
    """The forward pass of `config` on `workload` as a shapes-only Cascade.

    `layers` builds only the first N decoder layers (default all).  `lm_head` is ``"last"``
    (logits of the last position only, as LLM-Viewer counts; the default for decoders),
    ``"all"`` (every position) or ``"none"`` (hidden states out; the default for encoders).
    """
    n_layers = config.layers if layers is None else layers
    if not 0 < n_layers <= config.layers:
        raise InputError(f"{config.name}: layers must be in 1..{config.layers}, got {n_layers}")
    if lm_head is None:
        lm_head = "last" if config.causal else "none"
    if lm_head not in ("last", "all", "none"):
        raise InputError(f"lm_head must be 'last', 'all' or 'none', got {lm_head!r}")
    if workload.phase is Phase.DECODE and not config.causal:
        raise InputError(f"{config.name} is an encoder: it has no decode phase")
    if config.positions is Positions.LEARNED and workload.keys > config.max_position:
        raise InputError(
            f"{config.name}: {workload.keys} positions exceed max_position {config.max_position}"
        )
    return _LLMBuilder(config, workload, n_layers, lm_head).build()


def cached_keys(config: LLMConfig, workload: Workload) -> int:
    """Keys the KV cache holds for a pass: the earlier tokens, at most ``sliding_window - 1``
    with a window (a rolling buffer: the new token then attends to exactly the window)."""
    past = workload.cache_len
    if config.sliding_window and workload.phase is Phase.DECODE:
        past = min(past, config.sliding_window - 1)
    return past


def llm_from_spec(
    name: str, batch: int, seq: int, phase: str | Phase, kv_len: int | None = None
) -> Cascade:
    """The CLI's ``--llm NAME|config.json --batch --seq --phase --kv-len``."""
    try:
        phase_ = phase if isinstance(phase, Phase) else Phase(phase.strip().lower())
    except ValueError:
        raise InputError(f"unknown phase {phase!r}; known: prefill, decode") from None
    return build_llm(resolve_llm(name), Workload(batch, seq, phase_, kv_len))


# -- running a built cascade ----------------------------------------------------------------------
def rope_tables(config: LLMConfig, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [len(positions), rotary_dim/2] of the rotate-half RoPE, float64."""
    half = config.rotary_dim // 2
    inv_freq = config.rope_theta ** (-np.arange(half, dtype=np.float64) * 2 / config.rotary_dim)
    angles = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles), np.sin(angles)


def llm_inputs(config: LLMConfig, workload: Workload, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """Every input but the KV cache: tokens, RoPE tables, causal mask."""
    tokens = np.asarray(tokens)
    if tokens.shape != (workload.batch, workload.new_tokens):
        raise InputError(
            f"tokens: shape {tokens.shape}, expected {(workload.batch, workload.new_tokens)}"
        )
    inputs: dict[str, np.ndarray] = {"tokens": tokens.astype(np.int32)}
    if config.positions is Positions.ROTARY:
        first = workload.cache_len
        cos, sin = rope_tables(config, np.arange(first, first + workload.new_tokens))
        inputs["rope_cos"], inputs["rope_sin"] = cos, sin
    if config.causal and workload.phase is Phase.PREFILL:
        n = workload.seq_len
        inputs["attn_mask"] = np.where(np.tril(np.ones((n, n), dtype=bool)), 0.0, -np.inf)
    return inputs


def kv_cache_from_prefill(
    outputs: Mapping[str, np.ndarray], layers: int, length: int
) -> dict[str, np.ndarray]:
    """Decode cache inputs (``L{i}_k_cache`` ...) from a prefill's ``L{i}_k``/``L{i}_v``
    outputs, keeping the first `length` positions."""
    cache: dict[str, np.ndarray] = {}
    for i in range(layers):
        for which in ("k", "v"):
            cache[f"L{i}_{which}_cache"] = np.asarray(outputs[f"L{i}_{which}"])[:, :, :length]
    return cache


def attach_weights(cascade: Cascade, arrays: Mapping[str, np.ndarray]) -> Cascade:
    """`cascade` with `arrays` attached as weight data (by tensor name, shapes checked)."""
    known = {t.name for t in cascade.weights}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise InputError(f"{cascade.name}: no weight named {', '.join(unknown[:5])}")
    tensors = []
    for t in cascade.tensors:
        if t.name in arrays:
            data = np.asarray(arrays[t.name])
            if data.shape != t.shape:
                raise InputError(f"weight {t.name}: shape {data.shape}, expected {t.shape}")
            t = TensorSpec(
                t.name,
                t.ranks,
                t.shape,
                t.dtype,
                t.role,
                np.ascontiguousarray(data, dtype=t.dtype.numpy),
            )
        tensors.append(t)
    return Cascade(cascade.name, tuple(tensors), cascade.einsums)


def attach_random_weights(cascade: Cascade, seed: int = 0) -> Cascade:
    """Random weights of a realistic scale: norm scales near 1, biases small, matrices
    N(0, 1/fan_in); deterministic in `seed` and the cascade's weight order."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for t in cascade.weights:
        if t.name.endswith("_norm_w"):
            arrays[t.name] = 1.0 + 0.1 * rng.standard_normal(t.shape)
        elif len(t.shape) == 1:
            arrays[t.name] = 0.05 * rng.standard_normal(t.shape)
        else:  # [in, out] matrices scale by fan-in; embedding tables [rows, hidden] by hidden
            fan_in = t.shape[1] if t.name.endswith("embed") else t.shape[0]
            arrays[t.name] = rng.standard_normal(t.shape) / math.sqrt(fan_in)
    return attach_weights(cascade, arrays)
