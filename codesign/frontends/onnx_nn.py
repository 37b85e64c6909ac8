"""ONNX lowerings of the neural-network ops: Conv, Gemm/MatMul, pooling, normalisations,
Softmax/LogSoftmax, LRN and reductions.  Registered into `codesign.frontends.onnx_ops.OPS`.

Sliding windows are affine accesses ``X[b,c,s·p + d·r - pad]``; padding is the guard rule of
the IR (an out-of-bounds point contributes the reduction's identity: 0 for sum, -inf for max).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from codesign.frontends.onnx_ops import (
    LoweringContext,
    UnsupportedNode,
    _const_input,
    _input,
    _ints,
    _operands,
    _register,
    attrs,
    axis_in_range,
    elementwise,
    hint,
)
from codesign.ir.builder import CascadeBuilder, iter_vars, var_access
from codesign.ir.cascade import Role
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine, FloorDiv, IndexExpr

# Iteration variables of sliding windows: output positions and kernel offsets per spatial dim.
_OUT_VARS = ("p", "q", "u")
_KER_VARS = ("r", "s", "t")


@dataclass(frozen=True, slots=True)
class Window:
    """Geometry of a sliding window along each spatial dim (all tuples one entry per dim)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pad_begin: tuple[int, ...]
    pad_end: tuple[int, ...]
    out: tuple[int, ...]

    def index(self, dim: int) -> Affine:
        """``stride·p + dilation·r - pad_begin`` for spatial dim `dim`."""
        return Affine.of(
            [(_OUT_VARS[dim], self.strides[dim]), (_KER_VARS[dim], self.dilations[dim])],
            -self.pad_begin[dim],
        )

    def extents(self) -> dict[str, int]:
        ext = {_OUT_VARS[k]: n for k, n in enumerate(self.out)}
        ext.update({_KER_VARS[k]: n for k, n in enumerate(self.kernel)})
        return ext


def _check_window_attrs(strides: Sequence[int], dilations: Sequence[int], rank: int) -> None:
    """strides and dilations: one positive integer per spatial dim."""
    for name, values in (("strides", strides), ("dilations", dilations)):
        if len(values) != rank or any(v < 1 for v in values):
            raise UnsupportedNode(f"{name}={list(values)} must be {rank} positive integers")


def window(
    node: onnx.NodeProto, spatial: Sequence[int], kernel: Sequence[int], ceil_mode: bool = False
) -> Window:
    """Output size and padding from ONNX's strides/pads/dilations/auto_pad (and ceil_mode)."""
    a = attrs(node)
    n = len(spatial)
    if n > len(_OUT_VARS):
        raise UnsupportedNode(f"{n} spatial dims (at most {len(_OUT_VARS)})")
    strides = tuple(a.get("strides", [1] * n))
    dil = tuple(a.get("dilations", [1] * n))
    _check_window_attrs(strides, dil, n)
    auto = a.get("auto_pad", "NOTSET")
    span = [d * (k - 1) + 1 for d, k in zip(dil, kernel, strict=True)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = [math.ceil(h / s) for h, s in zip(spatial, strides, strict=True)]
        total = [
            max(0, (o - 1) * s + w - h)
            for o, s, w, h in zip(out, strides, span, spatial, strict=True)
        ]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        end = [t - bg for t, bg in zip(total, begin, strict=True)]
    else:
        if auto == "VALID":
            pads = [0] * (2 * n)
        elif auto in ("NOTSET", ""):
            pads = list(a.get("pads", [0] * (2 * n)))
        else:
            raise UnsupportedNode(f"auto_pad {auto!r}")
        begin, end = pads[:n], pads[n:]
        rounding = math.ceil if ceil_mode else math.floor
        out = []
        for h, s, w, bg, en in zip(spatial, strides, span, begin, end, strict=True):
            size = rounding((h + bg + en - w) / s) + 1
            if ceil_mode and (size - 1) * s >= h + bg:  # last window must start inside
                size -= 1
            out.append(size)
    if any(o <= 0 for o in out):
        raise UnsupportedNode(f"window leaves an empty output {tuple(out)}")
    return Window(tuple(kernel), strides, dil, tuple(begin), tuple(end), tuple(out))


# -- convolution and dense layers
@_register("Conv")
def _conv(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """``Y[b,m,p,q] = sum[c,r,s] X[b,c,2p+r-1,2q+s-1] * W[m,c,r,s]``; groups add a ``g`` var
    (output channel ``g*Mg+m``, input channel ``g*Cg+c``); then a bias Einsum."""
    name = hint(node)
    x, w = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    xs, ws = b.shape(x), b.shape(w)
    groups = int(attrs(node).get("group", 1))
    batch, chans, spatial = xs[0], xs[1], xs[2:]
    m_total, c_group, kernel = ws[0], ws[1], ws[2:]
    if chans != c_group * groups or m_total % groups:
        raise UnsupportedNode(f"weight {ws} does not fit input {xs} with group={groups}")
    win = window(node, spatial, kernel)
    m_group = m_total // groups
    extents = {"b": batch, **win.extents()}
    if groups == 1:
        out_ch: IndexExpr = Affine.var("m")
        in_ch: IndexExpr = Affine.var("c")
        w_c: IndexExpr = Affine.var("c")
        extents.update(m=m_total, c=chans)
    else:
        extents.update(g=groups)
        out_ch = Affine.of([("g", m_group), ("m", 1)]) if m_group > 1 else Affine.var("g")
        if m_group > 1:
            extents["m"] = m_group
        if c_group > 1:
            in_ch, w_c = Affine.of([("g", c_group), ("c", 1)]), Affine.var("c")
            extents["c"] = c_group
        else:
            in_ch, w_c = Affine.var("g"), Affine.constant(0)
    n = len(spatial)
    reduced = (("c",) if "c" in extents else ()) + _KER_VARS[:n]
    x_acc = Access(x, (Affine.var("b"), in_ch, *(win.index(k) for k in range(n))))
    w_acc = Access(w, (out_ch, w_c, *(Affine.var(v) for v in _KER_VARS[:n])))
    out_shape = (batch, m_total, *win.out)
    ranks = ("B", "M", *("PQU"[k] for k in range(n)))
    bias = _input(node, 2)
    out = b.tensor(f"{name}_nobias" if bias else name, out_shape, b.spec(x).dtype, ranks=ranks)
    y_acc = Access(out, (Affine.var("b"), out_ch, *(Affine.var(v) for v in _OUT_VARS[:n])))
    b.einsum(name, y_acc, Binary(BinaryOp.MUL, x_acc, w_acc), extents, ReduceOp.SUM, reduced,
             op="Conv")  # fmt: skip
    if bias is None:
        return (out,)
    return (_channel_affine(b, f"{name}_bias", out, None, ctx.tensor(bias), "Conv", name),)


@_register("ConvTranspose")
def _conv_transpose(
    b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext
) -> tuple[str, ...]:
    """``Y[b,m,p] = sum[c,r] X[b,c,p+pb-d·r] * W[c,m,r]`` (stride 1).  With stride s > 1 the
    input index is ``(p+pb-d·r)//s`` times a constant phase mask ``[(p+pb-d·r) % s == 0]``,
    so the Einsum counts s× the useful MACs per strided dim."""
    a = attrs(node)
    if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
        raise UnsupportedNode("output_shape / SAME auto_pad (give explicit pads)")
    name = hint(node)
    x, w = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    xs, ws = b.shape(x), b.shape(w)
    groups = int(a.get("group", 1))
    spatial, kernel = xs[2:], ws[2:]
    n = len(spatial)
    if n > len(_OUT_VARS) or xs[1] != ws[0] or xs[1] % groups:
        raise UnsupportedNode(f"weight {ws} does not fit input {xs} with group={groups}")
    c_group, m_group = xs[1] // groups, ws[1]
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    _check_window_attrs(strides, dil, n)
    pads = [0] * (2 * n) if a.get("auto_pad") == "VALID" else list(a.get("pads", [0] * (2 * n)))
    extra = list(a.get("output_padding", [0] * n))
    out = [
        st * (h - 1) + e + d * (k - 1) + 1 - pads[j] - pads[j + n]
        for j, (st, h, e, d, k) in enumerate(zip(strides, spatial, extra, dil, kernel, strict=True))
    ]
    dtype = b.spec(x).dtype
    extents = {"b": xs[0], **{_OUT_VARS[j]: out[j] for j in range(n)}}
    extents.update({_KER_VARS[j]: kernel[j] for j in range(n)})
    if groups == 1:
        out_ch, in_ch, w_in = Affine.var("m"), Affine.var("c"), Affine.var("c")
        extents.update(m=m_group, c=c_group)
    else:
        extents.update(g=groups, m=m_group, c=c_group)
        out_ch = Affine.of([("g", m_group), ("m", 1)])
        in_ch = w_in = Affine.of([("g", c_group), ("c", 1)])
    x_idx: list[IndexExpr] = [Affine.var("b"), in_ch]
    body: Expr = Access(w, (w_in, Affine.var("m"), *(Affine.var(v) for v in _KER_VARS[:n])))
    masks: list[Expr] = []
    for j in range(n):
        p, r = _OUT_VARS[j], _KER_VARS[j]
        arg = Affine.of([(p, 1), (r, -dil[j])], pads[j])
        if strides[j] == 1:
            x_idx.append(arg)
            continue
        x_idx.append(FloorDiv(arg, strides[j]))
        pos = np.arange(out[j])[:, None] + pads[j] - dil[j] * np.arange(kernel[j])[None, :]
        phase = (pos % strides[j] == 0).astype(dtype.numpy)
        mask_name = b.tensor(f"{name}_phase{j}", phase.shape, dtype, Role.WEIGHT, data=phase)
        masks.append(var_access(mask_name, (p, r)))
    body = Binary(BinaryOp.MUL, Access(x, tuple(x_idx)), body)
    for mask in masks:
        body = Binary(BinaryOp.MUL, body, mask)
    bias = _input(node, 2)
    y = b.tensor(f"{name}_nobias" if bias else name, (xs[0], groups * m_group, *out), dtype)
    y_acc = Access(y, (Affine.var("b"), out_ch, *(Affine.var(v) for v in _OUT_VARS[:n])))
    reduced = ("c", *_KER_VARS[:n])
    b.einsum(name, y_acc, body, extents, ReduceOp.SUM, reduced, op="ConvTranspose")
    if bias is None:
        return (y,)
    return (_channel_affine(b, f"{name}_bias", y, None, ctx.tensor(bias), "ConvTranspose", name),)


def _channel_affine(
    b: CascadeBuilder,
    name: str,
    x: str,
    scale: str | None,
    shift: str | None,
    op: str,
    out_hint: str | None = None,
) -> str:
    """``Y[b,c,...] = X[b,c,...] * S[c] + T[c]`` (either term optional)."""
    shape = b.shape(x)
    out = b.tensor(out_hint or name, shape, b.spec(x).dtype)
    vs = iter_vars(len(shape))
    body: Expr = var_access(x, vs)
    if scale is not None:
        body = Binary(BinaryOp.MUL, body, _channel_access(b, scale, vs))
    if shift is not None:
        body = Binary(BinaryOp.ADD, body, _channel_access(b, shift, vs))
    b.einsum(name, var_access(out, vs), body, dict(zip(vs, shape, strict=True)), op=op)
    return out


def _channel_access(b: CascadeBuilder, t: str, vs: Sequence[str]) -> Access:
    """A per-channel parameter of shape (C,) (or (C,1,...,1)) read at channel var vs[1]."""
    shape = b.shape(t)
    if len(shape) == 1:
        return Access(t, (Affine.var(vs[1]),))
    idx = [Affine.var(vs[1])] + [Affine.constant(0)] * (len(shape) - 1)
    return Access(t, tuple(idx))


@_register("Gemm")
def _gemm(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """``Y[i,j] = sum[k] A[i,k] * B[k,j] (* alpha)``, then ``+ C (* beta)`` (transA/B swap)."""
    a = attrs(node)
    name = hint(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    ta, tb = int(a.get("transA", 0)), int(a.get("transB", 0))
    x, w = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    sa, sb = b.shape(x), b.shape(w)
    rows, inner = (sa[1], sa[0]) if ta else sa
    inner_b, cols = (sb[1], sb[0]) if tb else sb
    if inner != inner_b:
        raise UnsupportedNode(f"Gemm operands {sa} x {sb} do not match")
    acc_a = Access(
        x, (Affine.var("k"), Affine.var("i")) if ta else (Affine.var("i"), Affine.var("k"))
    )
    acc_b = Access(
        w, (Affine.var("j"), Affine.var("k")) if tb else (Affine.var("k"), Affine.var("j"))
    )
    body: Expr = Binary(BinaryOp.MUL, acc_a, acc_b)
    if alpha != 1.0:
        body = Binary(BinaryOp.MUL, body, Const(alpha))
    c = _input(node, 2)
    out = b.tensor(f"{name}_nobias" if c else name, (rows, cols), b.spec(x).dtype, ranks=("M", "N"))
    b.einsum(name, var_access(out, ("i", "j")), body, {"i": rows, "j": cols, "k": inner},
             ReduceOp.SUM, ("k",), op="Gemm")  # fmt: skip
    if c is None or beta == 0.0:
        return (out,)
    ops = _operands(b, ctx, [c])
    ops = [out, *ops]

    def bias(y: Expr, z: Expr) -> Expr:
        return Binary(BinaryOp.ADD, y, z if beta == 1.0 else Binary(BinaryOp.MUL, z, Const(beta)))

    if isinstance(ops[1], str) and b.shape(ops[1]) != (rows, cols):
        np.broadcast_shapes(b.shape(ops[1]), (rows, cols))  # unidirectional: raises if not
    final = b.tensor(name, (rows, cols), b.spec(x).dtype)
    return (elementwise(b, f"{name}_bias", ops, bias, "Gemm", out=final),)


@_register("MatMul")
def _matmul(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x, w = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    return (b.matmul(hint(node), x, w, src="MatMul"),)


# -- pooling
def _pool_access(x: str, win: Window) -> Access:
    n = len(win.out)
    return Access(x, (Affine.var("b"), Affine.var("c"), *(win.index(k) for k in range(n))))


def _pool_output(b: CascadeBuilder, name: str, x: str, win: Window) -> tuple[str, Access]:
    shape = b.shape(x)
    n = len(win.out)
    out = b.tensor(name, (shape[0], shape[1], *win.out), b.spec(x).dtype)
    return out, Access(
        out, (Affine.var("b"), Affine.var("c"), *(Affine.var(v) for v in _OUT_VARS[:n]))
    )


@_register("MaxPool")
def _max_pool(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    a = attrs(node)
    if int(a.get("storage_order", 0)) != 0:
        raise UnsupportedNode("storage_order=1")
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    win = window(node, shape[2:], a["kernel_shape"], bool(a.get("ceil_mode", 0)))
    name = hint(node)
    out, out_acc = _pool_output(b, name, x, win)
    extents = {"b": shape[0], "c": shape[1], **win.extents()}
    b.einsum(name, out_acc, _pool_access(x, win), extents, ReduceOp.MAX,
             _KER_VARS[: len(win.out)], op="MaxPool")  # fmt: skip
    return (out,)


def _window_counts(win: Window, spatial: Sequence[int], include_pad: bool) -> np.ndarray:
    """Number of window points inside the (padded, if `include_pad`) input, per output point."""
    per_dim = []
    for k, h in enumerate(spatial):
        lo, hi = (-win.pad_begin[k], h + win.pad_end[k]) if include_pad else (0, h)
        starts = np.arange(win.out[k])[:, None] * win.strides[k] - win.pad_begin[k]
        pos = starts + np.arange(win.kernel[k])[None, :] * win.dilations[k]
        per_dim.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    counts = per_dim[0]
    for c in per_dim[1:]:
        counts = np.multiply.outer(counts, c)
    return counts


@_register("AveragePool")
def _average_pool(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """``Y = sum[r,s] X[...] * (1/count)``: count is the kernel size where every window is whole
    (a constant), else a per-position weight (count_include_pad=0, ceil_mode)."""
    a = attrs(node)
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    win = window(node, shape[2:], a["kernel_shape"], bool(a.get("ceil_mode", 0)))
    name = hint(node)
    counts = _window_counts(win, shape[2:], bool(a.get("count_include_pad", 0)))
    body: Expr = _pool_access(x, win)
    n = len(win.out)
    if np.all(counts == counts.flat[0]):
        body = Binary(BinaryOp.MUL, body, Const(1.0 / float(counts.flat[0])))
    else:
        dtype = b.spec(x).dtype
        inv = b.tensor(f"{name}_inv_count", win.out, dtype, Role.WEIGHT,
                       data=(1.0 / counts).astype(dtype.numpy))  # fmt: skip
        body = Binary(BinaryOp.MUL, body, var_access(inv, _OUT_VARS[:n]))
    out, out_acc = _pool_output(b, name, x, win)
    extents = {"b": shape[0], "c": shape[1], **win.extents()}
    b.einsum(name, out_acc, body, extents, ReduceOp.SUM, _KER_VARS[:n], op="AveragePool")
    return (out,)


@_register("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    axes = list(range(2, len(shape)))
    if node.op_type == "GlobalMaxPool":
        return (b.reduce(hint(node), x, axes, ReduceOp.MAX, True, node.op_type),)
    count = math.prod(shape[2:])
    return (b.reduce(hint(node), x, axes, ReduceOp.SUM, True, node.op_type, scale=1.0 / count),)


@_register("LRN")
def _lrn(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """Sum of squares over a channel window, then ``X / (bias + alpha/size * S) ** beta``."""
    a = attrs(node)
    size = int(a["size"])
    alpha, beta, bias = (
        float(a.get("alpha", 1e-4)),
        float(a.get("beta", 0.75)),
        float(a.get("bias", 1.0)),
    )
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    name = hint(node)
    vs = iter_vars(len(shape))
    lo = (size - 1) // 2
    idx = list(var_access(x, vs).indices)
    idx[1] = Affine.of([(vs[1], 1), ("r", 1)], -lo)
    win = Access(x, tuple(idx))
    sq = b.tensor(f"{name}_sqsum", shape, b.spec(x).dtype)
    extents = dict(zip(vs, shape, strict=True))
    b.einsum(f"{name}_sqsum", var_access(sq, vs), Binary(BinaryOp.MUL, win, win),
             {**extents, "r": size}, ReduceOp.SUM, ("r",), op="LRN")  # fmt: skip

    def norm(xv: Expr, s: Expr) -> Expr:
        base = Binary(BinaryOp.ADD, Binary(BinaryOp.MUL, s, Const(alpha / size)), Const(bias))
        return Binary(BinaryOp.DIV, xv, Binary(BinaryOp.POW, base, Const(beta)))

    return (elementwise(b, name, [x, sq], norm, "LRN"),)


# -- normalisations
@_register("BatchNormalization")
def _batch_norm(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """Inference form folded to one per-channel ``X * S[c] + T[c]`` Einsum with
    ``S = gamma / sqrt(var + eps)`` and ``T = beta - mean * S`` computed at import."""
    a = attrs(node)
    if int(a.get("training_mode", 0)):
        raise UnsupportedNode("training_mode=1")
    if len([o for o in node.output if o]) > 1:
        raise UnsupportedNode("running-statistics outputs (training mode)")
    if int(a.get("spatial", 1)) != 1:
        raise UnsupportedNode("spatial=0")
    eps = float(a.get("epsilon", 1e-5))
    x = ctx.tensor(node.input[0])
    name = hint(node)
    params = [ctx.const(node.input[k]) for k in range(1, 5)]
    dtype = b.spec(x).dtype
    if all(p is not None for p in params):
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)  # type: ignore[arg-type]
        s = gamma / np.sqrt(var + eps)
        t = beta - mean * s
        scale = b.tensor(f"{name}_scale", s.shape, dtype, Role.WEIGHT, data=s.astype(dtype.numpy))
        shift = b.tensor(f"{name}_shift", t.shape, dtype, Role.WEIGHT, data=t.astype(dtype.numpy))
        return (_channel_affine(b, name, x, scale, shift, "BatchNormalization"),)
    gamma_t, beta_t, mean_t, var_t = (ctx.tensor(node.input[k]) for k in range(1, 5))
    shape = b.shape(x)
    vs = iter_vars(len(shape))
    ch = [_channel_access(b, t, vs) for t in (gamma_t, beta_t, mean_t, var_t)]
    rstd = Unary(UnaryOp.RSQRT, Binary(BinaryOp.ADD, ch[3], Const(eps)))
    body = Binary(
        BinaryOp.ADD,
        Binary(BinaryOp.MUL, Binary(BinaryOp.MUL, Binary(BinaryOp.SUB, var_access(x, vs), ch[2]),
                                    rstd), ch[0]),
        ch[1],
    )  # fmt: skip
    out = b.tensor(name, shape, dtype)
    b.einsum(name, var_access(out, vs), body, dict(zip(vs, shape, strict=True)),
             op="BatchNormalization")  # fmt: skip
    return (out,)


@_register("InstanceNormalization")
def _instance_norm(
    b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext
) -> tuple[str, ...]:
    eps = float(attrs(node).get("epsilon", 1e-5))
    x = ctx.tensor(node.input[0])
    scale, bias = ctx.tensor(node.input[1]), ctx.tensor(node.input[2])
    shape = b.shape(x)
    name = hint(node)
    axes = list(range(2, len(shape)))
    inv_n = 1.0 / math.prod(shape[2:])
    op = "InstanceNormalization"
    mean = b.reduce(f"{name}_mean", x, axes, ReduceOp.SUM, True, op, scale=inv_n)
    centred = elementwise(
        b, f"{name}_centre", [x, mean], lambda p, q: Binary(BinaryOp.SUB, p, q), op
    )
    sq = elementwise(b, f"{name}_sq", [centred], lambda p: Binary(BinaryOp.MUL, p, p), op)
    var = b.reduce(f"{name}_var", sq, axes, ReduceOp.SUM, True, op, scale=inv_n)
    rstd = elementwise(
        b, f"{name}_rstd", [var],
        lambda v: Unary(UnaryOp.RSQRT, Binary(BinaryOp.ADD, v, Const(eps))), op,
    )  # fmt: skip
    normed = elementwise(
        b, f"{name}_norm", [centred, rstd], lambda p, q: Binary(BinaryOp.MUL, p, q), op
    )
    return (_channel_affine(b, name, normed, scale, bias, op),)


@_register("LayerNormalization")
def _layer_norm(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    a = attrs(node)
    x = ctx.tensor(node.input[0])
    scale = ctx.tensor(node.input[1])
    bias = ctx.tensor(node.input[2]) if _input(node, 2) else None
    axis = int(a.get("axis", -1))
    eps = float(a.get("epsilon", 1e-5))
    return (b.layernorm(hint(node), x, scale, bias, axis, eps, src="LayerNormalization"),)


# -- softmax
def _softmax_axes(ctx: LoweringContext, node: onnx.NodeProto, rank: int) -> list[int]:
    """opset < 13 coerces to 2-D at `axis` (default 1): normalise over axes axis..rank-1;
    opset >= 13 normalises over the one `axis` (default -1)."""
    if ctx.opset < 13:
        axis = axis_in_range(int(attrs(node).get("axis", 1)), rank)
        return list(range(axis, rank))
    return [axis_in_range(int(attrs(node).get("axis", -1)), rank)]


@_register("Softmax", "LogSoftmax")
def _softmax(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """max, exp(x - max), sum, then divide (Softmax) or ``x - max - log(sum)`` (LogSoftmax)."""
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    axes = _softmax_axes(ctx, node, len(shape))
    name, op = hint(node), node.op_type
    final = b.tensor(name, shape, b.spec(x).dtype)
    m = b.reduce(f"{name}_max", x, axes, ReduceOp.MAX, True, op)
    e = elementwise(
        b, f"{name}_exp", [x, m], lambda p, q: Unary(UnaryOp.EXP, Binary(BinaryOp.SUB, p, q)), op
    )
    s = b.reduce(f"{name}_sum", e, axes, ReduceOp.SUM, True, op)
    if op == "Softmax":
        return (
            elementwise(b, name, [e, s], lambda p, q: Binary(BinaryOp.DIV, p, q), op, out=final),
        )

    def log_softmax(xv: Expr, mv: Expr, sv: Expr) -> Expr:
        return Binary(BinaryOp.SUB, Binary(BinaryOp.SUB, xv, mv), Unary(UnaryOp.LOG, sv))

    return (elementwise(b, name, [x, m, s], log_softmax, op, out=final),)


# -- reductions
_REDUCE = {
    "ReduceSum": ReduceOp.SUM, "ReduceMean": ReduceOp.SUM, "ReduceMax": ReduceOp.MAX,
    "ReduceMin": ReduceOp.MIN, "ReduceProd": ReduceOp.PROD,
}  # fmt: skip


@_register(*_REDUCE)
def _reduce(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    a = attrs(node)
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    axes_in = _const_input(ctx, node, 1, "axes")
    axes = _ints(axes_in) if axes_in is not None else list(a.get("axes", []))
    if not axes:
        if int(a.get("noop_with_empty_axes", 0)):
            return (x,)
        axes = list(range(len(shape)))
    axes = sorted({axis_in_range(k, len(shape)) for k in axes})
    keep = bool(a.get("keepdims", 1))
    scale = 1.0 / math.prod(shape[k] for k in axes) if node.op_type == "ReduceMean" else None
    return (b.reduce(hint(node), x, axes, _REDUCE[node.op_type], keep, node.op_type, scale),)


__all__ = ["Window", "window"]
