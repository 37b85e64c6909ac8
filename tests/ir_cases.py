"""Small hand-built cascades shared by the IR tests."""

from __future__ import annotations

import numpy as np

from codesign.ir import (
    Access,
    Affine,
    Binary,
    BinaryOp,
    Cascade,
    DType,
    Gathered,
    ReduceOp,
    Role,
    UnaryOp,
)
from codesign.ir.builder import CascadeBuilder, var_access


def conv_cascade(rng: np.random.Generator, stride: int = 2, pad: int = 1) -> Cascade:
    """3x3 conv (stride, padding) -> relu -> 3x3 max pool (stride 2, pad 1)."""
    b = CascadeBuilder("convnet")
    x = b.tensor("X", (2, 3, 9, 9), role=Role.INPUT, ranks=("B", "C", "H", "W"))
    w = b.tensor(
        "W",
        (4, 3, 3, 3),
        role=Role.WEIGHT,
        data=rng.standard_normal((4, 3, 3, 3)),
        ranks=("M", "C", "R", "S"),
    )
    p = (9 + 2 * pad - 3) // stride + 1
    y = b.tensor("Y", (2, 4, p, p), ranks=("B", "M", "P", "Q"))
    window = Access(
        x,
        (
            Affine.var("b"),
            Affine.var("c"),
            Affine.of([("p", stride), ("r", 1)], -pad),
            Affine.of([("q", stride), ("s", 1)], -pad),
        ),
    )
    b.einsum(
        "conv",
        var_access(y, "bmpq"),
        Binary(BinaryOp.MUL, window, var_access(w, "mcrs")),
        dict(b=2, m=4, p=p, q=p, c=3, r=3, s=3),
        ReduceOp.SUM,
        ("c", "r", "s"),
        op="Conv",
    )
    a = b.unary("relu", y, UnaryOp.RELU)
    pp = (p + 2 - 3) // 2 + 1
    out = b.tensor("pool", (2, 4, pp, pp), role=Role.OUTPUT)
    win = Access(
        a,
        (
            Affine.var("b"),
            Affine.var("m"),
            Affine.of([("p", 2), ("r", 1)], -1),
            Affine.of([("q", 2), ("s", 1)], -1),
        ),
    )
    b.einsum(
        "pool",
        var_access(out, "bmpq"),
        win,
        dict(b=2, m=4, p=pp, q=pp, r=3, s=3),
        ReduceOp.MAX,
        ("r", "s"),
        op="MaxPool",
    )
    return b.build()


def conv_reference(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    p = (x.shape[2] + 2 * pad - w.shape[2]) // stride + 1
    y = np.zeros((x.shape[0], w.shape[0], p, p))
    for i in range(p):
        for j in range(p):
            patch = xp[:, :, i * stride : i * stride + 3, j * stride : j * stride + 3]
            y[:, :, i, j] = np.einsum("bcrs,mcrs->bm", patch, w)
    return y


def maxpool_reference(y: np.ndarray) -> np.ndarray:
    yp = np.pad(y, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    p = (y.shape[2] + 2 - 3) // 2 + 1
    out = np.zeros(y.shape[:2] + (p, p))
    for i in range(p):
        for j in range(p):
            out[:, :, i, j] = yp[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(2, 3))
    return out


def transformer_cascade(rng: np.random.Generator) -> Cascade:
    """Embedding gather, attention-like matmuls, softmax, layernorm, reshape and concat."""
    b = CascadeBuilder("mini_tf")
    ids = b.tensor("ids", (2, 5), dtype=DType.I64, role=Role.INPUT)
    table = b.tensor("embed", (11, 8), role=Role.WEIGHT, data=rng.standard_normal((11, 8)))
    emb = b.tensor("emb", (2, 5, 8))
    b.einsum(
        "embed",
        var_access(emb, ["d0", "d1", "d2"]),
        Access(table, (Gathered(ids, (Affine.var("d0"), Affine.var("d1"))), Affine.var("d2"))),
        dict(d0=2, d1=5, d2=8),
        op="Gather",
    )
    heads = b.reshape("split_heads", emb, (2, 5, 2, 4))
    q = b.transpose("q", heads, (0, 2, 1, 3))
    k = b.transpose("kT", heads, (0, 2, 3, 1))
    s = b.matmul("scores", q, k)
    p = b.softmax("attn", s, -1)
    o = b.matmul("context", p, q)
    merged = b.reshape("merge", b.transpose("unperm", o, (0, 2, 1, 3)), (2, 5, 8))
    cat = b.concat("cat", [merged, emb], -1)
    gamma = b.tensor("gamma", (16,), role=Role.WEIGHT, data=rng.standard_normal(16))
    beta = b.tensor("beta", (16,), role=Role.WEIGHT, data=rng.standard_normal(16))
    ln = b.layernorm("ln", cat, gamma, beta)
    b.set_role(ln, Role.OUTPUT)
    return b.build()


def transformer_reference(cascade: Cascade, ids: np.ndarray) -> np.ndarray:
    table = cascade.tensor("embed").data
    emb = table[ids]
    h = emb.reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)
    s = h @ h.transpose(0, 1, 3, 2)
    e = np.exp(s - s.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    o = (p @ h).transpose(0, 2, 1, 3).reshape(2, 5, 8)
    cat = np.concatenate([o, emb], -1)
    mu = cat.mean(-1, keepdims=True)
    var = ((cat - mu) ** 2).mean(-1, keepdims=True)
    return (cat - mu) / np.sqrt(var + 1e-5) * cascade.tensor("gamma").data + cascade.tensor(
        "beta"
    ).data
