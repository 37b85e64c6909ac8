"""ONNX lowerings of data-movement ops to view Einsums: Reshape, Flatten, Squeeze, Unsqueeze,
Transpose, Concat, Slice, Split, Gather, Expand, Pad.  Registered into `onnx_ops.OPS`.

Shapes, axes, starts/ends and pads must be constants (after folding); a view whose output equals
its input (Reshape to the same shape, identity Transpose) is an alias, not an Einsum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx

from codesign.frontends.onnx_ops import (
    LoweringContext,
    UnsupportedNode,
    _const_input,
    _ints,
    _register,
    attrs,
    axis_in_range,
    hint,
)
from codesign.ir.builder import CascadeBuilder, iter_vars, var_access
from codesign.ir.expr import Access, Binary, BinaryOp, Const, ReduceOp
from codesign.ir.index import Affine, Gathered, IndexExpr


def _reshape_to(b: CascadeBuilder, name: str, x: str, shape: Sequence[int], op: str) -> str:
    if tuple(shape) == b.shape(x):
        return x
    return b.reshape(name, x, shape, src=op)


def _axes(ctx: LoweringContext, node: onnx.NodeProto, k: int) -> list[int] | None:
    """Axes from input `k` (newer opsets) or the ``axes`` attribute (older ones)."""
    value = _const_input(ctx, node, k, "axes")
    if value is not None:
        return _ints(value)
    a = attrs(node)
    return list(a["axes"]) if "axes" in a else None


@_register("Reshape")
def _reshape(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """0 copies the input dim (unless allowzero), -1 takes what is left."""
    x = ctx.tensor(node.input[0])
    in_shape = b.shape(x)
    a = attrs(node)
    value = _const_input(ctx, node, 1, "shape")
    target = _ints(value) if value is not None else list(a.get("shape", []))
    allow_zero = int(a.get("allowzero", 0))
    shape = [in_shape[k] if n == 0 and not allow_zero else n for k, n in enumerate(target)]
    if shape.count(-1) > 1:
        raise UnsupportedNode(f"shape {target} has more than one -1")
    if -1 in shape:
        known = math.prod(n for n in shape if n != -1)
        shape[shape.index(-1)] = math.prod(in_shape) // known if known else 0
    if math.prod(shape) != math.prod(in_shape) or any(n <= 0 for n in shape):
        raise UnsupportedNode(f"cannot reshape {in_shape} to {target}")
    return (_reshape_to(b, hint(node), x, shape, "Reshape"),)


@_register("Flatten")
def _flatten(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    axis = int(attrs(node).get("axis", 1)) % (len(shape) + 1) if shape else 0
    out = (math.prod(shape[:axis]), math.prod(shape[axis:]))
    return (_reshape_to(b, hint(node), x, out, "Flatten"),)


@_register("Squeeze")
def _squeeze(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    axes = _axes(ctx, node, 1)
    drop = (
        {axis_in_range(k, len(shape)) for k in axes}
        if axes
        else {k for k, n in enumerate(shape) if n == 1}
    )
    if any(shape[k] != 1 for k in drop):
        raise UnsupportedNode(f"cannot squeeze axes {sorted(drop)} of {shape}")
    out = [n for k, n in enumerate(shape) if k not in drop]
    return (_reshape_to(b, hint(node), x, out, "Squeeze"),)


@_register("Unsqueeze")
def _unsqueeze(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    shape = list(b.shape(x))
    axes = _axes(ctx, node, 1)
    if not axes:
        raise UnsupportedNode("no axes")
    rank = len(shape) + len(axes)
    for k in sorted(axis_in_range(a, rank) for a in axes):
        shape.insert(k, 1)
    return (_reshape_to(b, hint(node), x, shape, "Unsqueeze"),)


@_register("Transpose")
def _transpose(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    rank = len(b.shape(x))
    perm = [
        axis_in_range(int(p), rank, "perm entry")
        for p in attrs(node).get("perm", range(rank - 1, -1, -1))
    ]
    if sorted(perm) != list(range(rank)):
        raise UnsupportedNode(f"perm {perm} is not a permutation of 0..{rank - 1}")
    if perm == list(range(rank)):
        return (x,)
    return (b.transpose(hint(node), x, perm, src="Transpose"),)


@_register("Concat")
def _concat(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    names = [n for n in node.input if n]
    nonempty = [n for n in names if ctx.const(n) is None or ctx.const(n).size > 0]  # type: ignore[union-attr]
    xs = [ctx.tensor(n) for n in nonempty]
    if len(xs) == 1:
        return (xs[0],)
    shapes = [b.shape(x) for x in xs]
    axis = axis_in_range(int(attrs(node)["axis"]), len(shapes[0]))
    for x, shape in zip(xs, shapes, strict=True):
        if len(shape) != len(shapes[0]) or any(
            n != m for k, (n, m) in enumerate(zip(shape, shapes[0], strict=True)) if k != axis
        ):
            raise UnsupportedNode(
                f"input {x} {tuple(shape)} does not fit {tuple(shapes[0])} off axis {axis}"
            )
    return (b.concat(hint(node), xs, axis, src="Concat"),)


def _slice_axis(dim: int, start: int, end: int, step: int) -> tuple[int, int, int]:
    """ONNX clamping of (start, end, step) on a dim of size `dim`: (first, step, count)."""
    if step == 0:
        raise UnsupportedNode("slice step 0")
    indices = range(*slice(start, end, step).indices(dim))
    return indices.start, step, len(indices)


@_register("Slice")
def _slice(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    if ctx.opset < 10:
        a = attrs(node)
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = _ints(_const_input(ctx, node, 1, "starts"))
        ends = _ints(_const_input(ctx, node, 2, "ends"))
        axes_v = _const_input(ctx, node, 3, "axes")
        steps_v = _const_input(ctx, node, 4, "steps")
        axes = _ints(axes_v) if axes_v is not None else list(range(len(starts)))
        steps = _ints(steps_v) if steps_v is not None else [1] * len(starts)
    first, stride, count = [0] * len(shape), [1] * len(shape), list(shape)
    for axis, st, en, sp in zip(axes, starts, ends, steps, strict=True):
        k = axis_in_range(axis, len(shape))
        first[k], stride[k], count[k] = _slice_axis(shape[k], st, en, sp)
    if any(n <= 0 for n in count):
        raise UnsupportedNode(f"slice of {shape} is empty")
    if count == list(shape) and all(s == 1 for s in stride):
        return (x,)
    return (b.slice(hint(node), x, first, stride, count, src="Slice"),)


@_register("Split")
def _split(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    a = attrs(node)
    axis = axis_in_range(int(a.get("axis", 0)), len(shape))
    sizes_v = _const_input(ctx, node, 1, "split") if ctx.opset >= 13 else None
    sizes = _ints(sizes_v) if sizes_v is not None else list(a.get("split", []))
    n_out = len(node.output)
    if not sizes:
        n_out = int(a.get("num_outputs", n_out))
        chunk = -(-shape[axis] // n_out)
        sizes = [min(chunk, shape[axis] - k * chunk) for k in range(n_out)]
    if sum(sizes) != shape[axis] or any(s <= 0 for s in sizes):
        raise UnsupportedNode(f"split sizes {sizes} do not partition dim {axis} of {shape}")
    outs: list[str] = []
    offset = 0
    for k, size in enumerate(sizes):
        starts = [offset if d == axis else 0 for d in range(len(shape))]
        count = [size if d == axis else n for d, n in enumerate(shape)]
        name = node.output[k] if k < len(node.output) and node.output[k] else f"{hint(node)}_{k}"
        outs.append(b.slice(name, x, starts, [1] * len(shape), count, src="Split"))
        offset += size
    return tuple(outs)


@_register("Gather")
def _gather(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """``Y[d..., i..., e...] = X[d..., I[i...], e...]``; a constant scalar index is a view."""
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    axis = axis_in_range(int(attrs(node).get("axis", 0)), len(shape))
    const = ctx.const(node.input[1])
    if const is not None and const.ndim == 0:
        k = axis_in_range(int(const), shape[axis], "index")
        out_shape = [n for d, n in enumerate(shape) if d != axis]
        vs = iter_vars(len(out_shape))
        idx: list[IndexExpr] = [Affine.var(v) for v in vs]
        idx.insert(axis, Affine.constant(k))
        return (_view(b, hint(node), x, out_shape, vs, idx, "Gather"),)
    ind = ctx.tensor(node.input[1])
    ind_shape = b.shape(ind)
    out_shape = list(shape[:axis]) + list(ind_shape) + list(shape[axis + 1 :])
    vs = iter_vars(len(out_shape))
    ivs = vs[axis : axis + len(ind_shape)]
    idx = [Affine.var(v) for v in vs[:axis]]
    idx.append(Gathered(ind, tuple(Affine.var(v) for v in ivs)))
    idx += [Affine.var(v) for v in vs[axis + len(ind_shape) :]]
    return (_view(b, hint(node), x, out_shape, vs, idx, "Gather"),)


def _view(
    b: CascadeBuilder,
    name: str,
    x: str,
    out_shape: Sequence[int],
    vs: Sequence[str],
    idx: Sequence[IndexExpr],
    op: str,
) -> str:
    out = b.tensor(name, out_shape, b.spec(x).dtype)
    b.einsum(name, var_access(out, vs), Access(x, tuple(idx)),
             dict(zip(vs, out_shape, strict=True)), op=op)  # fmt: skip
    return out


@_register("Expand")
def _expand(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    x = ctx.tensor(node.input[0])
    target = _ints(_const_input(ctx, node, 1, "shape"))
    out_shape = tuple(np.broadcast_shapes(b.shape(x), tuple(target)))
    if out_shape == b.shape(x):
        return (x,)
    vs = iter_vars(len(out_shape))
    acc = b.broadcast_access(x, vs, out_shape)
    return (_view(b, hint(node), x, out_shape, vs, acc.indices, "Expand"),)


@_register("Pad")
def _pad(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    """Constant mode: ``Y[d] = sum[z:1] X[d - pad]`` reads the guard value 0 outside X
    (a one-point reduction is how the IR writes a guarded copy); a nonzero value v is
    ``sum[z:1] (X[d - pad] - v)`` then ``+ v``."""
    a = attrs(node)
    mode = a.get("mode", "constant")
    if mode != "constant":
        raise UnsupportedNode(f"mode {mode!r} (only 'constant')")
    x = ctx.tensor(node.input[0])
    shape = b.shape(x)
    rank = len(shape)
    if ctx.opset < 11:
        pads, value = list(a["pads"]), float(a.get("value", 0.0))
        axes = list(range(rank))
    else:
        pads = _ints(_const_input(ctx, node, 1, "pads"))
        v = _const_input(ctx, node, 2, "constant_value")
        value = float(np.asarray(v).reshape(-1)[0]) if v is not None and v.size else 0.0
        ax = _const_input(ctx, node, 3, "axes")
        axes = [axis_in_range(k, rank) for k in _ints(ax)] if ax is not None else list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for j, k in enumerate(axes):
        begin[k], end[k] = pads[j], pads[j + len(axes)]
    out_shape = [n + p + q for n, p, q in zip(shape, begin, end, strict=True)]
    if any(n <= 0 for n in out_shape):
        raise UnsupportedNode(f"pads {pads} leave an empty tensor")
    name = hint(node)
    vs = iter_vars(len(out_shape))
    body = Access(x, tuple(Affine.of([(v, 1)], -p) for v, p in zip(vs, begin, strict=True)))
    extents = {**dict(zip(vs, out_shape, strict=True)), "z": 1}
    dtype = b.spec(x).dtype
    if value == 0.0:
        out = b.tensor(name, out_shape, dtype)
        b.einsum(name, var_access(out, vs), body, extents, ReduceOp.SUM, ("z",), op="Pad")
        return (out,)
    shifted = b.tensor(f"{name}_shifted", out_shape, dtype)
    b.einsum(f"{name}_shifted", var_access(shifted, vs), Binary(BinaryOp.SUB, body, Const(value)),
             extents, ReduceOp.SUM, ("z",), op="Pad")  # fmt: skip
    out = b.tensor(name, out_shape, dtype)
    b.einsum(name, var_access(out, vs), Binary(BinaryOp.ADD, var_access(shifted, vs), Const(value)),
             dict(zip(vs, out_shape, strict=True)), op="Pad")  # fmt: skip
    return (out,)


__all__: list[str] = []
