"""Incremental construction of a Cascade, shared by every frontend.

`CascadeBuilder` is the one mutable object of the IR: frontends add tensors and Einsums to it
and call `build()` for the frozen `Cascade`.  It also owns the lowering of the common tensor
operators (broadcasting elementwise ops, matmul, reductions, softmax, normalisations, views) so
the ONNX frontend and the LLM workload builder share one definition of each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from codesign.ir.cascade import Cascade, Einsum, Role, TensorSpec
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine, FloorDiv, IndexExpr, Mod, QuasiAffine
from codesign.ir.verify import RESERVED

if TYPE_CHECKING:
    import numpy as np

_BAD = re.compile(r"[^A-Za-z0-9_]")
# Default rank names and iteration variables by position from the last dimension.
_VARS = "ijklmnopqrstuvwxyz"


def sanitize(name: str) -> str:
    """An identifier made from a foreign name (ONNX names hold '/', '.', ':')."""
    clean = _BAD.sub("_", name).strip("_") or "t"
    if clean[0].isdigit():
        clean = "t" + clean
    if clean in RESERVED:
        clean += "_"
    return clean


def iter_vars(rank: int, prefix: str = "") -> tuple[str, ...]:
    """Iteration variable names for a rank-`rank` output: d0, d1, ... (or prefix+index)."""
    return tuple(f"{prefix or 'd'}{k}" for k in range(rank))


def var_access(tensor: str, variables: Sequence[str]) -> Access:
    return Access(tensor, tuple(Affine.var(v) for v in variables))


class CascadeBuilder:
    """Collects tensors and Einsums; names are sanitized and made unique on the way in."""

    def __init__(self, name: str) -> None:
        self.name = sanitize(name)
        self._tensors: dict[str, TensorSpec] = {}
        self._einsums: list[Einsum] = []
        self._einsum_names: set[str] = set()

    # -- bookkeeping
    def _unique(self, hint: str, taken: Callable[[str], bool]) -> str:
        base = sanitize(hint)
        name, k = base, 1
        while taken(name):
            name = f"{base}_{k}"
            k += 1
        return name

    def tensor(
        self,
        hint: str,
        shape: Sequence[int],
        dtype: DType = DType.F32,
        role: Role = Role.INTERMEDIATE,
        data: np.ndarray | None = None,
        ranks: Sequence[str] | None = None,
    ) -> str:
        """Declare a tensor; returns its (unique) name."""
        name = self._unique(hint, lambda n: n in self._tensors)
        shape = tuple(int(n) for n in shape)
        ranks = tuple(ranks) if ranks is not None else tuple(f"D{k}" for k in range(len(shape)))
        if data is not None:
            import numpy as np  # only constant data needs it (not a SCALE-Sim topology)

            data = np.asarray(data, dtype=dtype.numpy).reshape(shape)
        self._tensors[name] = TensorSpec(name, ranks, shape, dtype, role, data)
        return name

    def spec(self, name: str) -> TensorSpec:
        return self._tensors[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._tensors[name].shape

    def set_role(self, name: str, role: Role) -> None:
        spec = self._tensors[name]
        self._tensors[name] = TensorSpec(
            spec.name, spec.ranks, spec.shape, spec.dtype, role, spec.data
        )

    def einsum(
        self,
        hint: str,
        output: Access,
        body: Expr,
        extents: dict[str, int],
        reduce: ReduceOp | None = None,
        reduced: Sequence[str] = (),
        op: str = "",
    ) -> Einsum:
        name = self._unique(hint, lambda n: n in self._einsum_names)
        self._einsum_names.add(name)
        einsum = Einsum.build(name, output, body, extents, reduce, tuple(reduced), op)
        self._einsums.append(einsum)
        return einsum

    def build(self) -> Cascade:
        """The frozen Cascade (tensors in declaration order, einsums in insertion order)."""
        used = {e.output.tensor for e in self._einsums}
        for e in self._einsums:
            used.update(e.input_tensors)
        tensors = tuple(t for t in self._tensors.values() if t.name in used or t.role is Role.INPUT)
        return Cascade(self.name, tensors, tuple(self._einsums))

    # -- operator lowerings
    def broadcast_access(self, tensor: str, out_vars: Sequence[str], out_shape: Sequence[int]):
        """Access to `tensor` broadcast (NumPy rules) to an output indexed by `out_vars`."""
        shape = self.shape(tensor)
        offset = len(out_shape) - len(shape)
        indices: list[IndexExpr] = []
        for k, n in enumerate(shape):
            j = k + offset
            if n == out_shape[j]:
                indices.append(Affine.var(out_vars[j]))
            elif n == 1:
                indices.append(Affine.constant(0))
            else:
                raise ValueError(f"cannot broadcast {tensor}{shape} to {tuple(out_shape)}")
        return Access(tensor, tuple(indices))

    def map(
        self,
        hint: str,
        inputs: Sequence[str],
        fn: Callable[..., Expr],
        dtype: DType | None = None,
        op: str = "",
        out_name: str | None = None,
        role: Role = Role.INTERMEDIATE,
    ) -> str:
        """Elementwise op over broadcast inputs: ``Y[d...] = fn(A[...], B[...], ...)``."""
        import numpy as np

        out_shape = tuple(np.broadcast_shapes(*(self.shape(t) for t in inputs)))
        dtype = dtype or self.spec(inputs[0]).dtype
        out = out_name or self.tensor(hint, out_shape, dtype, role)
        vs = iter_vars(len(out_shape))
        body = fn(*(self.broadcast_access(t, vs, out_shape) for t in inputs))
        self.einsum(hint, var_access(out, vs), body, dict(zip(vs, out_shape, strict=True)), op=op)
        return out

    def unary(self, hint: str, x: str, op: UnaryOp, src: str = "") -> str:
        return self.map(hint, [x], lambda a: Unary(op, a), op=src or op.value)

    def binary(
        self, hint: str, a: str, b: str, op: BinaryOp, src: str = "", dtype: DType | None = None
    ) -> str:
        return self.map(
            hint, [a, b], lambda x, y: Binary(op, x, y), dtype=dtype, op=src or op.name.title()
        )

    def reduce(
        self,
        hint: str,
        x: str,
        axes: Sequence[int],
        op: ReduceOp,
        keepdims: bool = True,
        src: str = "",
        scale: float | None = None,
    ) -> str:
        """Reduce `x` over `axes`; with `scale`, the body is ``x * scale`` (ReduceMean)."""
        shape = self.shape(x)
        axes = sorted(a % len(shape) for a in axes)
        in_vars = list(iter_vars(len(shape)))
        red = [f"r{a}" for a in axes]
        for a, r in zip(axes, red, strict=True):
            in_vars[a] = r
        out_vars = [v for k, v in enumerate(in_vars) if k not in axes]
        out_shape = [n for k, n in enumerate(shape) if k not in axes]
        out_idx: list[IndexExpr] = [Affine.var(v) for v in out_vars]
        if keepdims:
            out_shape = [1 if k in axes else n for k, n in enumerate(shape)]
            out_idx = [
                Affine.constant(0) if k in axes else Affine.var(v) for k, v in enumerate(in_vars)
            ]
        out = self.tensor(hint, out_shape, self.spec(x).dtype)
        body: Expr = var_access(x, in_vars)
        if scale is not None:
            body = Binary(BinaryOp.MUL, body, Const(scale))
        extents = dict(zip(in_vars, shape, strict=True))
        self.einsum(
            hint,
            Access(out, tuple(out_idx)),
            body,
            extents,
            op,
            red,
            op=src or f"Reduce{op.value.title()}",
        )
        return out

    def matmul(
        self, hint: str, a: str, b: str, src: str = "MatMul", transpose_b: bool = False
    ) -> str:
        """NumPy matmul semantics (1-D operands promoted, batch dims broadcast)."""
        sa, sb = self.shape(a), self.shape(b)
        if transpose_b:
            sb = sb[:-2] + (sb[-1], sb[-2]) if len(sb) >= 2 else sb
        ea = sa if len(sa) > 1 else (1,) + sa
        eb = sb if len(sb) > 1 else sb + (1,)
        if ea[-1] != eb[-2]:
            raise ValueError(f"matmul {a}{sa} x {b}{sb}: inner dims differ")
        import numpy as np

        batch = tuple(np.broadcast_shapes(ea[:-2], eb[:-2]))
        full = batch + (ea[-2], eb[-1])
        vs = iter_vars(len(full))
        k = "k"
        m_var, n_var = vs[-2], vs[-1]

        def operand(
            name: str, shape: tuple[int, ...], rows: str, cols: str, vec_first: bool, tb: bool
        ) -> Access:
            idx: list[IndexExpr] = []
            nb = len(shape) - 2 if len(shape) > 1 else 0
            for j, n in enumerate(shape[:nb]):
                bj = len(batch) - nb + j
                idx.append(Affine.var(vs[bj]) if n == batch[bj] else Affine.constant(0))
            if len(shape) == 1:
                idx.append(Affine.var(k))
            elif tb:
                idx += [Affine.var(cols), Affine.var(rows)]
            else:
                idx += [Affine.var(rows), Affine.var(cols)]
            return Access(name, tuple(idx))

        acc_a = operand(a, sa, m_var, k, True, False)
        acc_b = operand(b, self.shape(b), k, n_var, False, transpose_b)
        out_shape = list(full)
        out_vars = list(vs)
        if len(sa) == 1:
            out_shape.pop(-2)
            out_vars.remove(m_var)
        if len(sb) == 1:
            out_shape.pop(-1)
            out_vars.remove(n_var)
        out = self.tensor(hint, out_shape, self.spec(a).dtype)
        extents = dict(zip(vs, full, strict=True))
        extents[k] = ea[-1]
        self.einsum(
            hint,
            var_access(out, out_vars),
            Binary(BinaryOp.MUL, acc_a, acc_b),
            extents,
            ReduceOp.SUM,
            (k,),
            op=src,
        )
        return out

    def softmax(self, hint: str, x: str, axis: int = -1, src: str = "Softmax") -> str:
        """The 3-pass cascade: max, exp(x - max), sum, divide."""
        axis = axis % len(self.shape(x))
        m = self.reduce(f"{hint}_max", x, [axis], ReduceOp.MAX, src=src)
        e = self.map(
            f"{hint}_exp",
            [x, m],
            lambda a, b: Unary(UnaryOp.EXP, Binary(BinaryOp.SUB, a, b)),
            op=src,
        )
        s = self.reduce(f"{hint}_sum", e, [axis], ReduceOp.SUM, src=src)
        return self.binary(f"{hint}_div", e, s, BinaryOp.DIV, src=src)

    def layernorm(
        self,
        hint: str,
        x: str,
        scale: str | None,
        bias: str | None,
        axis: int = -1,
        eps: float = 1e-5,
        rms: bool = False,
        src: str = "LayerNormalization",
    ) -> str:
        """LayerNorm (mean, centre, variance, normalise, affine) or RMSNorm when `rms`."""
        shape = self.shape(x)
        axes = list(range(axis % len(shape), len(shape)))
        count = math.prod(shape[a] for a in axes)
        centred = x
        if not rms:
            mean = self.reduce(f"{hint}_mean", x, axes, ReduceOp.SUM, src=src, scale=1 / count)
            centred = self.binary(f"{hint}_centre", x, mean, BinaryOp.SUB, src=src)
        sq = self.map(f"{hint}_sq", [centred], lambda a: Binary(BinaryOp.MUL, a, a), op=src)
        var = self.reduce(f"{hint}_var", sq, axes, ReduceOp.SUM, src=src, scale=1 / count)
        rstd = self.map(
            f"{hint}_rstd",
            [var],
            lambda a: Unary(UnaryOp.RSQRT, Binary(BinaryOp.ADD, a, Const(eps))),
            op=src,
        )
        y = self.binary(f"{hint}_norm", centred, rstd, BinaryOp.MUL, src=src)
        if scale is not None:
            y = self.binary(f"{hint}_scale", y, scale, BinaryOp.MUL, src=src)
        if bias is not None:
            y = self.binary(f"{hint}_bias", y, bias, BinaryOp.ADD, src=src)
        return y

    # -- views
    def transpose(self, hint: str, x: str, perm: Sequence[int], src: str = "Transpose") -> str:
        shape = self.shape(x)
        out_shape = [shape[p] for p in perm]
        out = self.tensor(hint, out_shape, self.spec(x).dtype)
        vs = iter_vars(len(shape))
        in_idx: list[str] = [""] * len(shape)
        for j, p in enumerate(perm):
            in_idx[p] = vs[j]
        self.einsum(
            hint,
            var_access(out, vs),
            var_access(x, in_idx),
            dict(zip(vs, out_shape, strict=True)),
            op=src,
        )
        return out

    def reshape(self, hint: str, x: str, shape: Sequence[int], src: str = "Reshape") -> str:
        """Rank splits and merges: affine where dims group cleanly, div/mod otherwise."""
        in_shape = self.shape(x)
        out_shape = tuple(int(n) for n in shape)
        if math.prod(in_shape) != math.prod(out_shape):
            raise ValueError(f"reshape {x}{in_shape} to {out_shape}: sizes differ")
        out = self.tensor(hint, out_shape, self.spec(x).dtype)
        vs = iter_vars(len(out_shape))
        in_idx: list[IndexExpr] = []
        for ins, outs in _reshape_groups(in_shape, out_shape):
            flat = Affine.of(
                [
                    (vs[o], math.prod(out_shape[o2] for o2 in outs if o2 > o))
                    for o in outs
                    if out_shape[o] > 1
                ]
            )
            for pos, d in enumerate(ins):
                stride = math.prod(in_shape[d2] for d2 in ins if d2 > d)
                if in_shape[d] == 1:
                    in_idx.append(Affine.constant(0))
                    continue
                expr: QuasiAffine = flat
                if stride > 1:
                    expr = FloorDiv(expr, stride)
                if pos > 0 and any(in_shape[d2] > 1 for d2 in ins[:pos]):
                    expr = Mod(expr, in_shape[d])
                in_idx.append(expr)
        self.einsum(
            hint,
            var_access(out, vs),
            Access(x, tuple(in_idx)),
            dict(zip(vs, out_shape, strict=True)),
            op=src,
        )
        return out

    def slice(
        self,
        hint: str,
        x: str,
        starts: Sequence[int],
        steps: Sequence[int],
        out_shape: Sequence[int],
        src: str = "Slice",
    ) -> str:
        """``Y[d] = X[start + step*d]`` per dimension."""
        out = self.tensor(hint, out_shape, self.spec(x).dtype)
        vs = iter_vars(len(out_shape))
        idx = tuple(Affine.of([(v, st)], s) for v, s, st in zip(vs, starts, steps, strict=True))
        self.einsum(
            hint, var_access(out, vs), Access(x, idx), dict(zip(vs, out_shape, strict=True)), op=src
        )
        return out

    def concat(self, hint: str, xs: Sequence[str], axis: int, src: str = "Concat") -> str:
        """One producer Einsum per piece, each writing its region at an offset."""
        shapes = [self.shape(x) for x in xs]
        axis = axis % len(shapes[0])
        out_shape = list(shapes[0])
        out_shape[axis] = sum(s[axis] for s in shapes)
        out = self.tensor(hint, out_shape, self.spec(xs[0]).dtype)
        vs = iter_vars(len(out_shape))
        offset = 0
        for x, s in zip(xs, shapes, strict=True):
            out_idx = tuple(
                Affine.of([(v, 1)], offset if k == axis else 0) for k, v in enumerate(vs)
            )
            self.einsum(
                f"{hint}_part",
                Access(out, out_idx),
                var_access(x, vs),
                dict(zip(vs, s, strict=True)),
                op=src,
            )
            offset += s[axis]
        return out


def _reshape_groups(a: Sequence[int], b: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Pair runs of dims of `a` and `b` with equal products (size-1 dims join a neighbour)."""
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(a) or j < len(b):
        ga, gb = [], []
        pa = pb = 1
        if i < len(a):
            ga.append(i)
            pa *= a[i]
            i += 1
        if j < len(b):
            gb.append(j)
            pb *= b[j]
            j += 1
        while pa != pb:
            if pa < pb:
                ga.append(i)
                pa *= a[i]
                i += 1
            else:
                gb.append(j)
                pb *= b[j]
                j += 1
        # absorb trailing size-1 dims into this group
        while i < len(a) and a[i] == 1 and (j >= len(b) or b[j] != 1):
            ga.append(i)
            i += 1
        while j < len(b) and b[j] == 1 and (i >= len(a) or a[i] != 1):
            gb.append(j)
            j += 1
        groups.append((ga, gb))
    return groups
