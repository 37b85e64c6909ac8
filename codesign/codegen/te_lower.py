"""Lowering of a Cascade to TVM Tensor Expressions: one PrimFunc per fused group or Einsum.

Each Einsum becomes one ``te.compute`` (a reduction over ``te.reduce_axis`` when it has one).
An Einsum outside any fused group reads fresh placeholders of the tensors it reads, so it is a
separate PrimFunc that can be scheduled and timed on its own; the members of a fused group
(`codesign.codegen.groups`) are computes of ONE PrimFunc, whose inner tensors never leave it.
Semantics follow the reference interpreter (`codesign.ir.interpreter`), which is the oracle:

* value types are NumPy's: the type of every sub-expression is found by running the
  interpreter's own NumPy function on a one-element probe, so ``int8 * f32 const`` is f32 and
  an integer sum accumulates in int64, exactly as the interpreter computes;
* a guarded point (an index outside its tensor) contributes the reduction's identity: the body
  is wrapped in a lazy ``if_then_else`` that never reads the out-of-bounds element;
* gathered indices read the index tensor, wrap negatives (ONNX) and are clamped into range;
* stores into integer tensors saturate, as the interpreter's `_cast` does;
* a tensor with several producers (concat), or a producer whose output indices are not plain
  variables, is computed into a *piece* buffer per producer and assembled by one extra
  ``combine`` PrimFunc that copies each region (an ``if_then_else`` chain over regions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codesign.codegen.groups import Group, check_groups, main_member
from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Select, Unary, UnaryOp
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
from codesign.ir.interpreter import BINARY, REDUCE, UNARY

if TYPE_CHECKING:
    from tvm.te import Tensor
    from tvm.tirx import PrimExpr, PrimFunc, Var

# Prefix of every PrimFunc symbol: an Einsum called `exp` must not shadow libm's exp.
SYMBOL_PREFIX = "cs_"
PIECE_SUFFIX = "__piece"
PAD_SUFFIX = "__pad"  # a padded copy of a tensor, made inside the kernel that reads it


@dataclass(frozen=True, slots=True)
class Buffer:
    """A buffer the compiled cascade allocates or receives (cascade tensor or piece)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # NumPy / TVM dtype name, e.g. "float32"


@dataclass(frozen=True, slots=True)
class Stage:
    """One PrimFunc: reads `inputs`, writes `output` (buffer names), in cascade order.

    `einsum` is the Einsum it computes (for a fused group: its main member, the one the kernel
    is scheduled around; `einsums` lists them all), or "" for a combine stage assembling a
    multi-producer tensor.  `block` names the TE compute block that the schedules transform;
    `loop_vars` names the IR iteration variable of each of its loops ("" for a constant output
    index), so tile sizes keyed by IR variable reach the right loop.
    """

    symbol: str
    einsum: str
    inputs: tuple[str, ...]
    output: str
    block: str
    loop_vars: tuple[str, ...]
    func: PrimFunc
    einsums: tuple[str, ...] = ()  # every Einsum the kernel computes (a fused group)


@dataclass(frozen=True, slots=True)
class LoweredCascade:
    """The cascade as PrimFuncs over named buffers."""

    name: str
    stages: tuple[Stage, ...]
    buffers: tuple[Buffer, ...]
    inputs: tuple[str, ...]  # INPUT tensors, in declaration order
    weights: tuple[str, ...]
    outputs: tuple[str, ...]

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)


def _tvm():  # noqa: ANN202 - the module object
    try:
        import tvm  # noqa: PLC0415
        from tvm import te  # noqa: F401, PLC0415
    except ImportError:
        raise InputError("TVM codegen needs apache-tvm: pip install 'codesign[tvm]'") from None
    return tvm


def _refuse_recurrences(cascade: Cascade) -> None:
    """InputError for iterative Einsums (``attention-1pass``'s running max/sum steps): a
    tensor-expression stage computes every point of its output at once, so a step that reads
    an earlier step of the tensor it writes would read values not yet written (observed: NaNs
    that varied run to run).  Refused until recurrences are lowered as ordered loops."""
    from codesign.ir.recurrence import is_iterative

    for einsum in cascade.einsums:
        if is_iterative(einsum):
            raise InputError(
                f"einsum {einsum.name}: reads the tensor it writes ({einsum.output.tensor}, an "
                "iterative Einsum); TVM lowering of recurrences is not supported yet -- compile "
                "the cascade without attention-1pass"
            )


def lower_cascade(cascade: Cascade, groups: Sequence[Sequence[str]] = ()) -> LoweredCascade:
    """One PrimFunc per fused group (`groups`, see `codesign.codegen.groups`) and per Einsum
    outside any group, plus one per multi-producer tensor; raises InputError for index forms
    TVM cannot express (multi-variable output indices) and for invalid groups."""
    _refuse_recurrences(cascade)
    tvm = _tvm()
    checked = check_groups(cascade, groups)
    group_of = {name: g for g in checked for name in g}
    buffers: dict[str, Buffer] = {
        t.name: Buffer(t.name, t.shape, str(t.dtype.numpy)) for t in cascade.tensors
    }
    last_producer: dict[str, str] = {}
    for einsum in cascade.einsums:
        last_producer[einsum.output.tensor] = einsum.name
    stages: list[Stage] = []
    for einsum in cascade.einsums:
        tensor = einsum.output.tensor
        group = group_of.get(einsum.name)
        if group is not None:
            if einsum.name == group[-1]:  # a group runs where its last member would
                stage, dtype = _lower_group(tvm, cascade, group, buffers)
                stages.append(stage)
            continue
        producers = cascade.producers(tensor)
        direct = len(producers) == 1 and _direct_output(cascade, einsum)
        out_name = tensor if direct else einsum.name + PIECE_SUFFIX
        stage, dtype = _lower_einsum(tvm, cascade, einsum, buffers, out_name, direct)
        buffers[out_name] = Buffer(out_name, _stage_shape(cascade, einsum, direct), dtype)
        stages.append(stage)
        if not direct and last_producer[tensor] == einsum.name:
            stages.append(_combine(tvm, cascade, tensor, producers, buffers))
    inside = {g[k] for g in checked for k in range(len(g) - 1)}
    internal = {cascade.einsum(n).output.tensor for n in inside}
    return LoweredCascade(
        cascade.name,
        tuple(stages),
        tuple(b for name, b in buffers.items() if name not in internal),
        tuple(t.name for t in cascade.inputs),
        tuple(t.name for t in cascade.weights),
        tuple(t.name for t in cascade.outputs),
    )


def _out_vars(einsum: Einsum) -> list[str]:
    return [v for v, _ in einsum.space if v not in einsum.reduced]


def _direct_output(cascade: Cascade, einsum: Einsum) -> bool:
    """True when the output access is a permutation of plain variables over the whole tensor
    (constant 0 allowed on size-1 dimensions), so the compute can be shaped like the tensor."""
    shape = cascade.tensor(einsum.output.tensor).shape
    extents = einsum.extents
    seen: set[str] = set()
    for index, size in zip(einsum.output.indices, shape, strict=True):
        if not isinstance(index, Affine):
            return False
        var = index.plain_var
        if var is None:
            if index.terms or index.const != 0 or size != 1:
                return False
            continue
        if var in seen or extents[var] != size:
            return False
        seen.add(var)
    return True


def _stage_shape(cascade: Cascade, einsum: Einsum, direct: bool) -> tuple[int, ...]:
    if direct:
        return cascade.tensor(einsum.output.tensor).shape
    extents = einsum.extents
    return tuple(extents[v] for v in _out_vars(einsum))


@dataclass(slots=True)
class _Scope:
    """Mutable state of lowering one Einsum body (local to `_lower_einsum`)."""

    cascade: Cascade
    placeholders: dict[str, Tensor]
    variables: dict[str, PrimExpr]
    extents: dict[str, int]
    guards: list[PrimExpr]
    # when set, a window access that can leave its tensor reads a zero/identity-padded copy
    # made inside the kernel (`PAD_SUFFIX`) instead of being guarded: see `_pad_value`
    pad_value: float | None = None


def _einsum_compute(
    cascade: Cascade, einsum: Einsum, tensors: dict[str, Tensor], direct: bool
) -> tuple[Tensor, str, tuple[str, ...]]:
    """The TE compute of `einsum` reading `tensors` (placeholders, or computes of the same
    kernel); returns (result, stored dtype, IR variable of each loop of its main block)."""
    from tvm import te, tirx  # noqa: PLC0415

    extents = einsum.extents
    out_spec = cascade.tensor(einsum.output.tensor)
    out_dtype = out_spec.dtype.numpy
    shape = _stage_shape(cascade, einsum, direct)
    out_vars = _out_vars(einsum)
    raxes = {v: te.reduce_axis((0, extents[v]), name=v) for v in einsum.reduced}

    def bind(xs: tuple[Var, ...]) -> dict[str, PrimExpr]:
        if not direct:
            return dict(zip(out_vars, xs, strict=True))
        bound: dict[str, PrimExpr] = {}
        for index, x in zip(einsum.output.indices, xs, strict=True):
            var = index.plain_var if isinstance(index, Affine) else None
            if var is not None:
                bound[var] = x
        return bound

    def body_value(xs: tuple[Var, ...]) -> tuple[PrimExpr, np.dtype]:
        variables: dict[str, PrimExpr] = bind(xs)
        variables.update({v: ax.var for v, ax in raxes.items()})
        scope = _Scope(cascade, tensors, variables, extents, [], _pad_value(einsum))
        value, dtype = _expr(tirx, einsum.body, scope, einsum.reduce is not None)
        if einsum.reduce is not None:
            acc = REDUCE[einsum.reduce](np.ones((1,), dtype)).dtype
            value, dtype = _cast(tirx, value, dtype, acc), acc
        if scope.guards:
            identity = _identity(tirx, einsum.reduce, dtype)
            value = tirx.if_then_else(_all(tirx, scope.guards), value, identity)
        return value, dtype

    probe: dict[str, np.dtype] = {}

    def compute(*xs: Var) -> PrimExpr:
        value, dtype = body_value(xs)
        probe["dtype"] = dtype
        if einsum.reduce is None:
            return _store(tirx, value, dtype, out_dtype)
        return _reducer(te, tirx, einsum.reduce, dtype)(value, axis=list(raxes.values()))

    name = einsum.name
    result = te.compute(shape, compute, name=name)
    acc_dtype = probe["dtype"]
    if einsum.reduce is not None:
        acc_dtype = REDUCE[einsum.reduce](np.ones((1,), acc_dtype)).dtype
        if acc_dtype != out_dtype:  # a reduction must be the top of its compute: cast after
            acc = result
            result = te.compute(
                shape, lambda *xs: _store(tirx, acc(*xs), acc_dtype, out_dtype), name=name + "_cast"
            )
    if direct:
        names = [i.plain_var if isinstance(i, Affine) else None for i in einsum.output.indices]
        spatial = [n or "" for n in names]
    else:
        spatial = out_vars
    return result, str(out_dtype), (*spatial, *einsum.reduced)


def _lower_einsum(
    tvm, cascade: Cascade, einsum: Einsum, buffers: dict[str, Buffer], out: str, direct: bool
) -> tuple[Stage, str]:
    from tvm import te  # noqa: PLC0415

    placeholders = {
        name: te.placeholder(buffers[name].shape, buffers[name].dtype, name=name)
        for name in einsum.input_tensors
    }
    result, dtype, loop_vars = _einsum_compute(cascade, einsum, dict(placeholders), direct)
    symbol = SYMBOL_PREFIX + einsum.name
    func = te.create_prim_func([*placeholders.values(), result])
    func = func.with_attr("global_symbol", symbol)
    name = einsum.name
    stage = Stage(symbol, name, tuple(placeholders), out, name, loop_vars, func, (name,))
    return stage, dtype


def _lower_group(
    tvm, cascade: Cascade, group: Group, buffers: dict[str, Buffer]
) -> tuple[Stage, str]:
    """One PrimFunc computing every member of `group`; only the last member's output is an
    argument, the others are buffers inside the kernel."""
    from tvm import te  # noqa: PLC0415

    tensors: dict[str, Tensor] = {}
    placeholders: dict[str, Tensor] = {}
    main = main_member(cascade, group)
    loop_vars: tuple[str, ...] = ()
    dtype = ""
    result = None
    for name in group:
        einsum = cascade.einsum(name)
        for tensor in einsum.input_tensors:
            if tensor not in tensors:
                buf = buffers[tensor]
                placeholders[tensor] = te.placeholder(buf.shape, buf.dtype, name=tensor)
                tensors[tensor] = placeholders[tensor]
        result, dtype, member_vars = _einsum_compute(cascade, einsum, tensors, direct=True)
        tensors[einsum.output.tensor] = result
        if name == main:
            loop_vars = member_vars
    assert result is not None
    symbol = SYMBOL_PREFIX + main
    func = te.create_prim_func([*placeholders.values(), result])
    func = func.with_attr("global_symbol", symbol)
    out = cascade.einsum(group[-1]).output.tensor
    stage = Stage(symbol, main, tuple(placeholders), out, main, loop_vars, func, group)
    return stage, dtype


def _combine(tvm, cascade: Cascade, tensor: str, producers, buffers: dict[str, Buffer]) -> Stage:
    """``T[x] = piece_p[(x - c) / a]`` in the region of the producer p that covers x."""
    from tvm import te, tirx  # noqa: PLC0415

    spec = cascade.tensor(tensor)
    dtype = str(spec.dtype.numpy)
    pieces = {
        p.name + PIECE_SUFFIX: te.placeholder(
            buffers[p.name + PIECE_SUFFIX].shape, dtype, name=p.name + PIECE_SUFFIX
        )
        for p in producers
    }

    def compute(*xs: Var) -> PrimExpr:
        value: PrimExpr = tirx.const(0, dtype)
        for p in reversed(producers):
            conds, point = _region(tirx, p, xs, spec.shape)
            read = pieces[p.name + PIECE_SUFFIX](*point)
            value = read if not conds else tirx.if_then_else(_all(tirx, conds), read, value)
        return value

    result = te.compute(spec.shape, compute, name=tensor + "_combine")
    func = te.create_prim_func([*pieces.values(), result])
    symbol = SYMBOL_PREFIX + tensor + "_combine"
    func = func.with_attr("global_symbol", symbol)
    loop_vars = ("",) * len(spec.shape)
    return Stage(symbol, "", tuple(pieces), tensor, tensor + "_combine", loop_vars, func, ())


def _region(tirx, einsum: Einsum, xs, shape) -> tuple[list, list]:
    """Conditions for output point `xs` to lie in `einsum`'s region, and the piece point."""
    extents = einsum.extents
    conds: list = []
    bound: dict[str, object] = {}
    for index, x, size in zip(einsum.output.indices, xs, shape, strict=True):
        assert isinstance(index, Affine)
        if not index.terms:
            conds.append(x == index.const)
            continue
        if len(index.terms) > 1:
            raise InputError(
                f"einsum {einsum.name}: output index with several variables is not supported by "
                "the TVM codegen"
            )
        var, coeff = index.terms[0]
        shifted = x - index.const if index.const else x
        if coeff < 0:
            raise InputError(f"einsum {einsum.name}: negative output stride not supported")
        value = shifted if coeff == 1 else tirx.floordiv(shifted, coeff)
        lo, hi = index.bounds(extents)
        if lo > 0:
            conds.append(shifted >= 0)
        if hi < size - 1:
            conds.append(value < extents[var])
        if coeff != 1:
            conds.append(tirx.floormod(shifted, coeff) == 0)
        if var in bound:
            conds.append(bound[var] == value)
        else:
            bound[var] = value
    return conds, [bound[v] for v in _out_vars(einsum)]


# -- expressions -------------------------------------------------------------------------


def _expr(tirx, expr: Expr, scope: _Scope, reduction: bool) -> tuple[PrimExpr, np.dtype]:
    if isinstance(expr, Access):
        return _access(tirx, expr, scope, reduction)
    if isinstance(expr, Const):
        return tirx.const(expr.value, "float32"), np.dtype(np.float32)
    if isinstance(expr, Unary):
        arg, dtype = _expr(tirx, expr.arg, scope, reduction)
        out = UNARY[expr.op](np.ones((1,), dtype)).dtype
        if expr.op is UnaryOp.NOT:
            return tirx.Not(_truth(tirx, arg, dtype)), out
        return UNARY_TVM[expr.op](tirx, _cast(tirx, arg, dtype, out), str(out)), out
    if isinstance(expr, Binary):
        lhs, ldt = _expr(tirx, expr.lhs, scope, reduction)
        rhs, rdt = _expr(tirx, expr.rhs, scope, reduction)
        out = BINARY[expr.op](np.ones((1,), ldt), np.ones((1,), rdt)).dtype
        if expr.op in (BinaryOp.AND, BinaryOp.OR):
            fn = tirx.And if expr.op is BinaryOp.AND else tirx.Or
            return fn(_truth(tirx, lhs, ldt), _truth(tirx, rhs, rdt)), out
        common = out if out != np.bool_ else np.result_type(np.ones(1, ldt), np.ones(1, rdt))
        a, b = _cast(tirx, lhs, ldt, common), _cast(tirx, rhs, rdt, common)
        return BINARY_TVM[expr.op](tirx, a, b), out
    assert isinstance(expr, Select)
    cond, cdt = _expr(tirx, expr.cond, scope, reduction)
    then, tdt = _expr(tirx, expr.then, scope, reduction)
    other, odt = _expr(tirx, expr.other, scope, reduction)
    out = np.result_type(np.ones(1, tdt), np.ones(1, odt))
    return (
        tirx.Select(
            _truth(tirx, cond, cdt), _cast(tirx, then, tdt, out), _cast(tirx, other, odt, out)
        ),
        out,
    )


def _pad_value(einsum: Einsum) -> float | None:
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


def _padded_access(tirx, access: Access, scope: _Scope) -> tuple[PrimExpr, np.dtype] | None:
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
        return tirx.if_then_else(_all(tirx, conds), source(*point), fill)

    shape = [hi - lo + 1 for lo, hi in zip(lows, highs, strict=True)]
    padded = te.compute(shape, pad, name=access.tensor + PAD_SUFFIX)
    point = [
        value - lo if lo else value
        for i, lo in zip(affine, lows, strict=True)
        for value in [_quasi_affine(tirx, i, scope.variables)]
    ]
    return padded(*point), spec.dtype.numpy


def _access(tirx, access: Access, scope: _Scope, reduction: bool) -> tuple[PrimExpr, np.dtype]:
    padded = _padded_access(tirx, access, scope)
    if padded is not None:
        return padded
    spec = scope.cascade.tensor(access.tensor)
    point = [
        _index(tirx, index, size, scope, reduction)
        for index, size in zip(access.indices, spec.shape, strict=True)
    ]
    return scope.placeholders[access.tensor](*point), spec.dtype.numpy


def _index(tirx, index: IndexExpr, size: int, scope: _Scope, reduction: bool) -> PrimExpr:
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


def _all(tirx, conds: list[PrimExpr]) -> PrimExpr:
    result = conds[0]
    for c in conds[1:]:
        result = tirx.And(result, c)
    return result


def _truth(tirx, value: PrimExpr, dtype: np.dtype) -> PrimExpr:
    return value if dtype == np.bool_ else value != tirx.const(0, str(dtype))


def _cast(tirx, value: PrimExpr, src: np.dtype, dst: np.dtype) -> PrimExpr:
    if src == dst:
        return value
    if dst == np.bool_:
        return value != tirx.const(0, str(src))
    return value.astype(str(dst))


def _store(tirx, value: PrimExpr, src: np.dtype, dst: np.dtype) -> PrimExpr:
    """Cast to the stored type; integers saturate (the interpreter's `_cast`)."""
    if src != dst and dst.kind in "iu" and src.kind != "b":
        info = np.iinfo(dst)
        wider = src.kind == "f" or np.iinfo(src).min < info.min or np.iinfo(src).max > info.max
        if wider:
            lo, hi = tirx.const(info.min, str(src)), tirx.const(info.max, str(src))
            value = tirx.max(tirx.min(value, hi), lo)
    return _cast(tirx, value, src, dst)


def _identity(tirx, op: ReduceOp | None, dtype: np.dtype) -> PrimExpr:
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


def _reducer(te, tirx, op: ReduceOp, dtype: np.dtype):  # noqa: ANN202 - a TVM CommReducer
    """TE reducer whose identity is the interpreter's (-inf for a float max, not -FLT_MAX)."""
    if op is ReduceOp.SUM:
        return te.sum
    identity = _identity(tirx, op, dtype)
    combine = {
        ReduceOp.MAX: lambda x, y: tirx.max(x, y),
        ReduceOp.MIN: lambda x, y: tirx.min(x, y),
        ReduceOp.PROD: lambda x, y: x * y,
    }[op]
    return te.comm_reducer(combine, lambda t: tirx.const(identity.value, t), name=op.value)


def _gelu(t, x, dt: str):  # noqa: ANN001, ANN202
    return x * t.const(0.5, dt) * (t.const(1, dt) + t.erf(x * t.const(1 / math.sqrt(2.0), dt)))


def _gelu_tanh(t, x, dt: str):  # noqa: ANN001, ANN202
    c, k = t.const(math.sqrt(2.0 / math.pi), dt), t.const(0.044715, dt)
    return t.const(0.5, dt) * x * (t.const(1, dt) + t.tanh(c * (x + k * x * x * x)))


def _sign(t, x, dt: str):  # noqa: ANN001, ANN202
    one, zero = t.const(1, dt), t.const(0, dt)
    return t.Select(x > zero, one, t.Select(x < zero, -one, zero))


# The TVM form of each IR operator: (tirx module, argument cast to the result type, its dtype).
UNARY_TVM = {
    UnaryOp.EXP: lambda t, x, dt: t.exp(x), UnaryOp.LOG: lambda t, x, dt: t.log(x),
    UnaryOp.RELU: lambda t, x, dt: t.max(x, t.const(0, dt)), UnaryOp.GELU: _gelu,
    UnaryOp.GELU_TANH: _gelu_tanh, UnaryOp.TANH: lambda t, x, dt: t.tanh(x),
    UnaryOp.SIGMOID: lambda t, x, dt: t.sigmoid(x), UnaryOp.SQRT: lambda t, x, dt: t.sqrt(x),
    UnaryOp.RSQRT: lambda t, x, dt: t.const(1, dt) / t.sqrt(x),
    UnaryOp.RECIP: lambda t, x, dt: t.const(1, dt) / x, UnaryOp.NEG: lambda t, x, dt: -x,
    UnaryOp.ABS: lambda t, x, dt: t.abs(x), UnaryOp.ERF: lambda t, x, dt: t.erf(x),
    UnaryOp.FLOOR: lambda t, x, dt: t.floor(x), UnaryOp.CEIL: lambda t, x, dt: t.ceil(x),
    UnaryOp.ROUND: lambda t, x, dt: t.nearbyint(x), UnaryOp.SIN: lambda t, x, dt: t.sin(x),
    UnaryOp.COS: lambda t, x, dt: t.cos(x), UnaryOp.SILU: lambda t, x, dt: x * t.sigmoid(x),
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
