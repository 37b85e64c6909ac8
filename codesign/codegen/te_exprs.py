"""Tensor-expression form of Einsum bodies: the IR's `Expr` as TVM PrimExprs.

Semantics follow the reference interpreter (`codesign.ir.interpreter`), which is the oracle:

* value types are NumPy's: the type of every sub-expression is found by running the
  interpreter's own NumPy function on a one-element probe, so ``int8 * f32 const`` is f32 and
  an integer sum accumulates in int64, exactly as the interpreter computes;
* a guarded point (an index outside its tensor) contributes the reduction's identity: the caller
  wraps the body in a lazy ``if_then_else`` over `Scope.guards`, so the out-of-bounds element is
  never read;
* gathered indices read the index tensor, wrap negatives (ONNX) and are clamped into range;
* stores into integer tensors saturate, as the interpreter's `_cast` does.

A tensor read is ``Scope.placeholders[name](*point)``: a TE tensor (a ProducerLoad, inside a
``te.compute``) or a `BufferReader` (a BufferLoad, inside hand-written TIR such as a
recurrence's loop, `codesign.codegen.te_recurrence`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codesign.codegen.te_fastmath import FAST_DTYPE, fast_unary
from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Select, Unary, UnaryOp
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
from codesign.ir.interpreter import BINARY, UNARY

if TYPE_CHECKING:
    from tvm.tirx import PrimExpr, Var

PAD_SUFFIX = "__pad"  # a padded copy of a tensor, made inside the kernel that reads it

# A tensor read: point -> value (a TE tensor, or a `BufferReader`)
Reader = Callable[..., "PrimExpr"]


@dataclass(frozen=True, slots=True)
class BufferReader:
    """Reads a TIR buffer like a TE tensor is read: ``reader(*point)`` is a BufferLoad."""

    buffer: object  # a tvm.tirx.Buffer

    def __call__(self, *point: PrimExpr) -> PrimExpr:
        from tvm import tirx  # noqa: PLC0415

        return tirx.BufferLoad(self.buffer, list(point))


@dataclass(slots=True)
class Scope:
    """Mutable state of lowering one Einsum body (local to lowering one Einsum)."""

    cascade: Cascade
    placeholders: dict[str, Reader]
    variables: dict[str, PrimExpr]
    extents: dict[str, int]
    guards: list[PrimExpr]
    # when set, a window access that can leave its tensor reads a zero/identity-padded copy
    # made inside the kernel (`PAD_SUFFIX`) instead of being guarded: see `padding_for`
    pad_value: float | None = None


# -- expressions -------------------------------------------------------------------------


def expr_value(tirx, expr: Expr, scope: Scope, reduction: bool) -> tuple[PrimExpr, np.dtype]:
    if isinstance(expr, Access):
        return _access(tirx, expr, scope, reduction)
    if isinstance(expr, Const):
        # rounded to float32 first, as the interpreter holds it: a mask constant written as
        # -3.40282347e+38 is, as a double, just below float32's lowest, which TVM refuses
        with np.errstate(over="ignore"):
            value = float(np.float32(expr.value))
        return tirx.const(value, "float32"), np.dtype(np.float32)
    if isinstance(expr, Unary):
        arg, dtype = expr_value(tirx, expr.arg, scope, reduction)
        out = UNARY[expr.op](np.ones((1,), dtype)).dtype
        if expr.op is UnaryOp.NOT:
            return tirx.Not(_truth(tirx, arg, dtype)), out
        return UNARY_TVM[expr.op](tirx, cast(tirx, arg, dtype, out), str(out)), out
    if isinstance(expr, Binary):
        lhs, ldt = expr_value(tirx, expr.lhs, scope, reduction)
        rhs, rdt = expr_value(tirx, expr.rhs, scope, reduction)
        out = BINARY[expr.op](np.ones((1,), ldt), np.ones((1,), rdt)).dtype
        if expr.op in (BinaryOp.AND, BinaryOp.OR):
            fn = tirx.And if expr.op is BinaryOp.AND else tirx.Or
            return fn(_truth(tirx, lhs, ldt), _truth(tirx, rhs, rdt)), out
        common = out if out != np.bool_ else np.result_type(np.ones(1, ldt), np.ones(1, rdt))
        a, b = cast(tirx, lhs, ldt, common), cast(tirx, rhs, rdt, common)
        return BINARY_TVM[expr.op](tirx, a, b), out
    assert isinstance(expr, Select)
    cond, cdt = expr_value(tirx, expr.cond, scope, reduction)
    then, tdt = expr_value(tirx, expr.then, scope, reduction)
    other, odt = expr_value(tirx, expr.other, scope, reduction)
    out = np.result_type(np.ones(1, tdt), np.ones(1, odt))
    return (
        tirx.Select(
            _truth(tirx, cond, cdt), cast(tirx, then, tdt, out), cast(tirx, other, odt, out)
        ),
        out,
    )


def padding_for(einsum: Einsum) -> float | None:
    """The value a padded copy may hold outside its tensor, or None (guard instead).

    Padding is used where it gives the interpreter's result: a max/min over one window access
    (pad with the identity, +-inf), and a sum of a product of accesses and constants (pad with
    0: the point then adds 0, as the interpreter's skipped point does, as long as the other
    factors are finite -- an inf or NaN weight beside the padding would give NaN here).
    Padded reads have no branch in the inner loop, so they vectorise.
    """
    body = einsum.body
    if einsum.reduce in (ReduceOp.MAX, ReduceOp.MIN) and isinstance(body, Access):
        return einsum.reduce.identity
    if einsum.reduce is ReduceOp.SUM and _is_product(body):
        return 0.0
    return None


def _is_product(expr: Expr) -> bool:
    if isinstance(expr, Access | Const):
        return True
    return (
        isinstance(expr, Binary)
        and expr.op is BinaryOp.MUL
        and all(_is_product(e) for e in (expr.lhs, expr.rhs))
    )


def _padded_access(tirx, access: Access, scope: Scope) -> tuple[PrimExpr, np.dtype] | None:
    """Read of a padded copy of the tensor when the access is a plain window that can leave
    the tensor and the Einsum allows padding; None otherwise."""
    from tvm import te  # noqa: PLC0415

    spec = scope.cascade.tensor(access.tensor)
    if scope.pad_value is None or spec.dtype.numpy.kind != "f":
        return None
    affine = [i for i in access.indices if isinstance(i, Affine)]
    if len(affine) != len(access.indices):
        return None
    bounds = [i.bounds(scope.extents) for i in affine]
    lows = [min(lo, 0) for lo, _ in bounds]
    highs = [max(hi, size - 1) for (_, hi), size in zip(bounds, spec.shape, strict=True)]
    if lows == [0] * len(lows) and highs == [n - 1 for n in spec.shape]:
        return None
    source = scope.placeholders[access.tensor]
    dtype = str(spec.dtype.numpy)
    fill = tirx.const(scope.pad_value, dtype)

    def pad(*xs: Var) -> PrimExpr:
        point = [x + lo if lo else x for x, lo in zip(xs, lows, strict=True)]
        conds = [
            c
            for x, lo, hi, size in zip(point, lows, highs, spec.shape, strict=True)
            for c in ([x >= 0] if lo < 0 else []) + ([x < size] if hi > size - 1 else [])
        ]
        return tirx.if_then_else(all_of(tirx, conds), source(*point), fill)

    shape = [hi - lo + 1 for lo, hi in zip(lows, highs, strict=True)]
    padded = te.compute(shape, pad, name=access.tensor + PAD_SUFFIX)
    point = [
        value - lo if lo else value
        for i, lo in zip(affine, lows, strict=True)
        for value in [_quasi_affine(tirx, i, scope.variables)]
    ]
    return padded(*point), spec.dtype.numpy


def _access(tirx, access: Access, scope: Scope, reduction: bool) -> tuple[PrimExpr, np.dtype]:
    padded = _padded_access(tirx, access, scope)
    if padded is not None:
        return padded
    spec = scope.cascade.tensor(access.tensor)
    point = [
        _index(tirx, index, size, scope, reduction)
        for index, size in zip(access.indices, spec.shape, strict=True)
    ]
    return scope.placeholders[access.tensor](*point), spec.dtype.numpy


def _index(tirx, index: IndexExpr, size: int, scope: Scope, reduction: bool) -> PrimExpr:
    """The index value; appends a guard when it can leave ``[0, size)``."""
    if isinstance(index, Gathered):
        table = scope.cascade.tensor(index.tensor)
        point = [
            _index(tirx, i, n, scope, reduction)
            for i, n in zip(index.indices, table.shape, strict=True)
        ]
        raw = scope.placeholders[index.tensor](*point)
        value = raw.astype("int32") if table.dtype.numpy != np.int32 else raw
        wrapped = tirx.Select(value < 0, value + size, value)
        if reduction:  # the interpreter masks out-of-range gathers in reductions
            scope.guards.append(tirx.And(wrapped >= 0, wrapped < size))
        return tirx.max(tirx.min(wrapped, size - 1), 0)
    value = _quasi_affine(tirx, index, scope.variables)
    lo, hi = index.bounds(scope.extents)
    if lo < 0:
        scope.guards.append(value >= 0)
    if hi > size - 1:
        scope.guards.append(value < size)
    return value


def _quasi_affine(tirx, index: IndexExpr, variables: dict[str, PrimExpr]) -> PrimExpr:
    if isinstance(index, Affine):
        terms = [variables[n] if c == 1 else variables[n] * c for n, c in index.terms]
        if index.const or not terms:
            terms.append(tirx.const(index.const, "int32"))
        value = terms[0]
        for term in terms[1:]:
            value = value + term
        return value
    if isinstance(index, FloorDiv):
        return tirx.floordiv(_quasi_affine(tirx, index.arg, variables), index.divisor)
    if isinstance(index, Mod):
        return tirx.floormod(_quasi_affine(tirx, index.arg, variables), index.divisor)
    raise InputError(f"gathered index inside a div/mod is not supported: {index}")


def all_of(tirx, conds: list[PrimExpr]) -> PrimExpr:
    result = conds[0]
    for c in conds[1:]:
        result = tirx.And(result, c)
    return result


def _truth(tirx, value: PrimExpr, dtype: np.dtype) -> PrimExpr:
    return value if dtype == np.bool_ else value != tirx.const(0, str(dtype))


def cast(tirx, value: PrimExpr, src: np.dtype, dst: np.dtype) -> PrimExpr:
    if src == dst:
        return value
    if dst == np.bool_:
        return value != tirx.const(0, str(src))
    return value.astype(str(dst))


def store(tirx, value: PrimExpr, src: np.dtype, dst: np.dtype) -> PrimExpr:
    """Cast to the stored type; integers saturate (the interpreter's `_cast`)."""
    if src != dst and dst.kind in "iu" and src.kind != "b":
        info = np.iinfo(dst)
        wider = src.kind == "f" or np.iinfo(src).min < info.min or np.iinfo(src).max > info.max
        if wider:
            lo, hi = tirx.const(info.min, str(src)), tirx.const(info.max, str(src))
            value = tirx.max(tirx.min(value, hi), lo)
    return cast(tirx, value, src, dst)


def identity(tirx, op: ReduceOp | None, dtype: np.dtype) -> PrimExpr:
    """The value a guarded point contributes (0 for element-wise Einsums)."""
    if op is None or op in (ReduceOp.SUM, ReduceOp.PROD) or dtype.kind == "f":
        value = 0.0 if op is None else op.identity
        if dtype.kind != "f":
            value = int(value)
        return tirx.const(value, str(dtype))
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is None:  # bool
        return tirx.const(op is ReduceOp.MIN, "bool")
    return tirx.const(info.min if op is ReduceOp.MAX else info.max, str(dtype))


def reducer(te, tirx, op: ReduceOp, dtype: np.dtype):  # noqa: ANN202 - a TVM CommReducer
    """TE reducer whose identity is the interpreter's (-inf for a float max, not -FLT_MAX)."""
    if op is ReduceOp.SUM:
        return te.sum
    start = identity(tirx, op, dtype)
    combine = {
        ReduceOp.MAX: lambda x, y: tirx.max(x, y),
        ReduceOp.MIN: lambda x, y: tirx.min(x, y),
        ReduceOp.PROD: lambda x, y: x * y,
    }[op]
    return te.comm_reducer(combine, lambda t: tirx.const(start.value, t), name=op.value)


def _exp(t, x, dt: str):  # noqa: ANN001, ANN202
    return fast_unary("exp", x) if dt == FAST_DTYPE else t.exp(x)


def _erf(t, x, dt: str):  # noqa: ANN001, ANN202
    return fast_unary("erf", x) if dt == FAST_DTYPE else t.erf(x)


def _tanh(t, x, dt: str):  # noqa: ANN001, ANN202
    return fast_unary("tanh", x) if dt == FAST_DTYPE else t.tanh(x)


def _sigmoid(t, x, dt: str):  # noqa: ANN001, ANN202
    if dt != FAST_DTYPE:
        return t.sigmoid(x)
    one = t.const(1, dt)
    return one / (one + fast_unary("exp", -x))


def _gelu(t, x, dt: str):  # noqa: ANN001, ANN202
    erf = _erf(t, x * t.const(1 / math.sqrt(2.0), dt), dt)
    return x * t.const(0.5, dt) * (t.const(1, dt) + erf)


def _gelu_tanh(t, x, dt: str):  # noqa: ANN001, ANN202
    c, k = t.const(math.sqrt(2.0 / math.pi), dt), t.const(0.044715, dt)
    return t.const(0.5, dt) * x * (t.const(1, dt) + _tanh(t, c * (x + k * x * x * x), dt))


def _sign(t, x, dt: str):  # noqa: ANN001, ANN202
    one, zero = t.const(1, dt), t.const(0, dt)
    return t.Select(x > zero, one, t.Select(x < zero, -one, zero))


# The TVM form of each IR operator: (tirx module, argument cast to the result type, its dtype).
# exp, erf, tanh (and sigmoid, GELU, SiLU through them) on float32 take TVM's vectorisable
# approximations (`codesign.codegen.te_fastmath`); other types keep the libm intrinsics.
UNARY_TVM = {
    UnaryOp.EXP: _exp, UnaryOp.LOG: lambda t, x, dt: t.log(x),
    UnaryOp.RELU: lambda t, x, dt: t.max(x, t.const(0, dt)), UnaryOp.GELU: _gelu,
    UnaryOp.GELU_TANH: _gelu_tanh, UnaryOp.TANH: _tanh,
    UnaryOp.SIGMOID: _sigmoid, UnaryOp.SQRT: lambda t, x, dt: t.sqrt(x),
    UnaryOp.RSQRT: lambda t, x, dt: t.const(1, dt) / t.sqrt(x),
    UnaryOp.RECIP: lambda t, x, dt: t.const(1, dt) / x, UnaryOp.NEG: lambda t, x, dt: -x,
    UnaryOp.ABS: lambda t, x, dt: t.abs(x), UnaryOp.ERF: _erf,
    UnaryOp.FLOOR: lambda t, x, dt: t.floor(x), UnaryOp.CEIL: lambda t, x, dt: t.ceil(x),
    UnaryOp.ROUND: lambda t, x, dt: t.nearbyint(x), UnaryOp.SIN: lambda t, x, dt: t.sin(x),
    UnaryOp.COS: lambda t, x, dt: t.cos(x), UnaryOp.SILU: lambda t, x, dt: x * _sigmoid(t, x, dt),
    UnaryOp.SIGN: _sign,
}  # fmt: skip

BINARY_TVM = {
    BinaryOp.ADD: lambda t, a, b: a + b, BinaryOp.SUB: lambda t, a, b: a - b,
    BinaryOp.MUL: lambda t, a, b: a * b, BinaryOp.DIV: lambda t, a, b: t.Div(a, b),
    BinaryOp.MAX: lambda t, a, b: t.max(a, b), BinaryOp.MIN: lambda t, a, b: t.min(a, b),
    BinaryOp.POW: lambda t, a, b: t.power(a, b), BinaryOp.EQ: lambda t, a, b: t.EQ(a, b),
    BinaryOp.NE: lambda t, a, b: t.NE(a, b), BinaryOp.LT: lambda t, a, b: t.LT(a, b),
    BinaryOp.LE: lambda t, a, b: t.LE(a, b), BinaryOp.GT: lambda t, a, b: t.GT(a, b),
    BinaryOp.GE: lambda t, a, b: t.GE(a, b),
}  # fmt: skip
