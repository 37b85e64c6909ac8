"""NumPy reference interpreter: the semantic oracle for every pass.

Each Einsum is evaluated over its iteration space with broadcasting.  Affine accesses become
zero-copy strided views (``as_strided`` over a padded copy when the access can leave the
tensor), so a convolution is an ``np.einsum`` over sliding-window views; div/mod and gathered
indices use fancy indexing.  Guarded (out-of-bounds) points contribute the reduction's identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
from codesign.ir.inputs import check_input_arrays
from codesign.ir.recurrence import RecurrenceError, recurrence_of, step_einsum
from codesign.ir.traits import product_factors

Array = np.ndarray


def _erf(x: Array) -> Array:
    """erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26), computed in float64."""
    x64 = np.asarray(x, dtype=np.float64)
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x64))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                + t * 1.061405429))))  # fmt: skip
    y = 1.0 - poly * np.exp(-x64 * x64)
    return (np.sign(x64) * y).astype(np.result_type(x, np.float32))


def _gelu(x: Array) -> Array:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: Array) -> Array:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


UNARY: dict[UnaryOp, Callable[[Array], Array]] = {
    UnaryOp.EXP: np.exp, UnaryOp.LOG: np.log, UnaryOp.RELU: lambda x: np.maximum(x, 0),
    UnaryOp.GELU: _gelu, UnaryOp.GELU_TANH: _gelu_tanh, UnaryOp.TANH: np.tanh,
    UnaryOp.SIGMOID: _sigmoid, UnaryOp.SQRT: np.sqrt, UnaryOp.RSQRT: lambda x: 1.0 / np.sqrt(x),
    UnaryOp.RECIP: lambda x: 1.0 / x, UnaryOp.NEG: np.negative, UnaryOp.ABS: np.abs,
    UnaryOp.ERF: _erf, UnaryOp.FLOOR: np.floor, UnaryOp.CEIL: np.ceil, UnaryOp.ROUND: np.rint,
    UnaryOp.SIN: np.sin, UnaryOp.COS: np.cos, UnaryOp.NOT: np.logical_not,
    UnaryOp.SILU: lambda x: x * _sigmoid(x), UnaryOp.SIGN: np.sign,
}  # fmt: skip

BINARY: dict[BinaryOp, Callable[[Array, Array], Array]] = {
    BinaryOp.ADD: np.add, BinaryOp.SUB: np.subtract, BinaryOp.MUL: np.multiply,
    BinaryOp.DIV: np.divide, BinaryOp.MAX: np.maximum, BinaryOp.MIN: np.minimum,
    BinaryOp.POW: np.power, BinaryOp.EQ: np.equal, BinaryOp.NE: np.not_equal,
    BinaryOp.LT: np.less, BinaryOp.LE: np.less_equal, BinaryOp.GT: np.greater,
    BinaryOp.GE: np.greater_equal, BinaryOp.AND: np.logical_and, BinaryOp.OR: np.logical_or,
}  # fmt: skip

REDUCE: dict[ReduceOp, Callable[..., Array]] = {
    ReduceOp.SUM: np.sum,
    ReduceOp.MAX: np.max,
    ReduceOp.MIN: np.min,
    ReduceOp.PROD: np.prod,
}


def interpret(
    cascade: Cascade,
    inputs: Mapping[str, Array],
    keep_intermediates: bool = False,
) -> dict[str, Array]:
    """Run `cascade` on `inputs` (by tensor name); return its outputs (or every tensor).

    Weights come from their `data`; an entry in `inputs` overrides it.
    """
    check_input_arrays(cascade, inputs)
    env: dict[str, Array] = {}
    for tensor in cascade.tensors:
        if tensor.role is Role.INPUT or (tensor.role is Role.WEIGHT and tensor.name in inputs):
            if tensor.name not in inputs:
                raise InputError(f"no value given for input {tensor.name}")
            value = np.asarray(inputs[tensor.name])
            if tuple(value.shape) != tensor.shape:
                raise InputError(
                    f"input {tensor.name}: shape {value.shape}, expected {tensor.shape}"
                )
            env[tensor.name] = value.astype(tensor.value_dtype, copy=False)
        elif tensor.role is Role.WEIGHT:
            if tensor.data is None:
                raise InputError(f"weight {tensor.name} has no data; pass it in inputs")
            env[tensor.name] = np.asarray(tensor.data, dtype=tensor.value_dtype)
    for einsum in cascade.einsums:
        if not _run_iterative(cascade, einsum, env):
            _run_einsum(cascade, einsum, env)
    if keep_intermediates:
        return env
    return {t.name: env[t.name] for t in cascade.outputs}


def run_einsum(cascade: Cascade, einsum: Einsum, env: Mapping[str, Array]) -> Array:
    """Evaluate one Einsum; returns its values over the output variables (space order)."""
    extents = einsum.extents
    order = [v for v, _ in einsum.space]
    fast = _contraction(einsum, env, extents, order)
    if fast is not None:
        return fast
    value, mask = _eval(einsum.body, env, extents, order)
    if einsum.reduce is None:
        return np.asarray(value)
    identity = einsum.reduce.identity
    if mask is not None:
        value = np.where(mask, value, np.asarray(identity, dtype=np.result_type(value)))
    full = tuple(extents[v] for v in order)
    value = np.broadcast_to(value, full)
    axes = tuple(range(len(order) - len(einsum.reduced), len(order)))
    return REDUCE[einsum.reduce](value, axis=axes)


def _run_einsum(cascade: Cascade, einsum: Einsum, env: dict[str, Array]) -> None:
    spec = cascade.tensor(einsum.output.tensor)
    result = np.asarray(run_einsum(cascade, einsum, env))
    out_vars = [v for v, _ in einsum.space if v not in einsum.reduced]
    extents = einsum.extents
    result = np.broadcast_to(result, tuple(extents[v] for v in out_vars))
    plain = [i.plain_var if isinstance(i, Affine) else None for i in einsum.output.indices]
    if (
        None not in plain
        and sorted(plain) == sorted(out_vars)  # type: ignore[type-var]
        and tuple(extents[v] for v in plain) == spec.shape  # type: ignore[index]
    ):
        perm = [out_vars.index(v) for v in plain]  # type: ignore[arg-type]
        # ascontiguousarray turns a 0-d array into shape (1,): reshape keeps rank-0 tensors
        value = np.ascontiguousarray(np.transpose(result, perm)).reshape(spec.shape)
        env[spec.name] = _cast(value, spec.dtype, spec.quant is not None)
        return
    target = env.get(spec.name)
    if target is None:
        target = np.zeros(spec.shape, dtype=spec.value_dtype)
        env[spec.name] = target
    index = tuple(
        _affine_values(i, extents, out_vars)  # type: ignore[arg-type]
        for i in einsum.output.indices
    )
    target[index] = _cast(result, spec.dtype, spec.quant is not None)


# -- iterative Einsums ---------------------------------------------------------------------------


def _run_iterative(cascade: Cascade, einsum: Einsum, env: dict[str, Array]) -> bool:
    """Run an iterative Einsum one step of its iterated variable at a time (each step reads
    what the previous ones wrote); False when `einsum` is not iterative."""
    try:
        rec = recurrence_of(einsum)
    except RecurrenceError as exc:
        raise InputError(f"einsum {einsum.name}: {exc}") from None
    if rec is None:
        return False
    if einsum.output.tensor not in env:
        raise InputError(f"einsum {einsum.name}: reads {einsum.output.tensor} before it is set")
    for step in range(rec.steps):
        _run_einsum(cascade, step_einsum(einsum, rec, step), env)
    return True


def _cast(values: Array, dtype: DType, quantized: bool = False) -> Array:
    """Store `values` as `dtype`.  Integers saturate to the type's range instead of wrapping;
    floats convert to integers by truncation, as NumPy and ONNX Cast do (quantisation passes
    write an explicit round).  A quantized tensor holds dequantized reals in float32."""
    if quantized:
        return values.astype(np.float32, copy=False)
    if dtype.is_int and dtype is not DType.U8:
        lo, hi = -(2 ** (dtype.bits - 1)), 2 ** (dtype.bits - 1) - 1
        values = np.clip(values, lo, hi)
    elif dtype is DType.U8:
        values = np.clip(values, 0, 255)
    return dtype.round(values)  # BF16 has no NumPy type: rounded in a float32 holder


def _affine_values(index: Affine, extents: Mapping[str, int], order: list[str]) -> Array:
    """Integer values of an affine index over the grid of `order` (broadcastable)."""
    value: Array = np.asarray(index.const, dtype=np.int64).reshape((1,) * len(order))
    for name, coeff in index.terms:
        shape = [1] * len(order)
        shape[order.index(name)] = extents[name]
        value = value + coeff * np.arange(extents[name], dtype=np.int64).reshape(shape)
    return value


def _index_values(
    index: IndexExpr, env: Mapping[str, Array], extents: Mapping[str, int], order: list[str]
) -> Array:
    if isinstance(index, Affine):
        return _affine_values(index, extents, order)
    if isinstance(index, FloorDiv):
        return _index_values(index.arg, env, extents, order) // index.divisor
    if isinstance(index, Mod):
        return _index_values(index.arg, env, extents, order) % index.divisor
    table = env[index.tensor]
    idx = tuple(_index_values(i, env, extents, order) for i in index.indices)
    return np.asarray(table[idx] if idx else table, dtype=np.int64)


def _access(
    access: Access, env: Mapping[str, Array], extents: Mapping[str, int], order: list[str]
) -> tuple[Array, Array | None]:
    """Values of an access broadcastable over the grid of `order`, and a validity mask."""
    array = env[access.tensor]
    if all(isinstance(i, Affine) for i in access.indices):
        view, mask = _strided_view(array, access.indices, extents, order)  # type: ignore[arg-type]
        return view, mask
    idx: list[Array] = []
    gather_mask: Array | None = None
    for index, size in zip(access.indices, array.shape, strict=True):
        values = _index_values(index, env, extents, order)
        if isinstance(index, Gathered):
            values = np.where(values < 0, values + size, values)
        ok = (values >= 0) & (values < size)
        if not ok.all():
            gather_mask = ok if gather_mask is None else gather_mask & ok
            values = np.clip(values, 0, size - 1)
        idx.append(values)
    if not idx:
        return array.reshape((1,) * len(order)), None
    return array[tuple(idx)], gather_mask


def _strided_view(
    array: Array, indices: tuple[Affine, ...], extents: Mapping[str, int], order: list[str]
) -> tuple[Array, Array | None]:
    pads: list[tuple[int, int]] = []
    mask: Array | None = None
    for index, size in zip(indices, array.shape, strict=True):
        lo, hi = index.bounds(extents)
        pad = (max(0, -lo), max(0, hi - (size - 1)))
        pads.append(pad)
        if pad != (0, 0):
            values = _affine_values(index, extents, order)
            ok = (values >= 0) & (values < size)
            mask = ok if mask is None else mask & ok
    if any(p != (0, 0) for p in pads):
        array = np.pad(array, pads)
    array = np.ascontiguousarray(array).reshape(array.shape)  # keep rank 0 (not (1,))
    itemsize = array.itemsize
    elem_strides = [s // itemsize for s in array.strides]
    offset = 0
    strides = {v: 0 for v in order}
    for index, (pad_lo, _), stride in zip(indices, pads, elem_strides, strict=True):
        offset += (index.const + pad_lo) * stride
        for name, coeff in index.terms:
            strides[name] += coeff * stride
    shape = tuple(extents[v] if strides[v] != 0 or _uses(indices, v) else 1 for v in order)
    view = np.lib.stride_tricks.as_strided(
        array.reshape(-1)[offset:],
        shape=shape,
        strides=tuple(strides[v] * itemsize for v in order),
        writeable=False,
    )
    return view, mask


def _uses(indices: tuple[Affine, ...], var: str) -> bool:
    return any(var in i.variables for i in indices)


def _eval(
    expr: Expr, env: Mapping[str, Array], extents: Mapping[str, int], order: list[str]
) -> tuple[Array, Array | None]:
    if isinstance(expr, Access):
        return _access(expr, env, extents, order)
    if isinstance(expr, Const):
        return np.asarray(expr.value, dtype=np.float32).reshape((1,) * len(order)), None
    if isinstance(expr, Unary):
        value, mask = _eval(expr.arg, env, extents, order)
        with np.errstate(all="ignore"):
            return UNARY[expr.op](value), mask
    if isinstance(expr, Binary):
        lhs, lmask = _eval(expr.lhs, env, extents, order)
        rhs, rmask = _eval(expr.rhs, env, extents, order)
        with np.errstate(all="ignore"):
            return BINARY[expr.op](lhs, rhs), _and(lmask, rmask)
    cond, cmask = _eval(expr.cond, env, extents, order)
    then, tmask = _eval(expr.then, env, extents, order)
    other, omask = _eval(expr.other, env, extents, order)
    return np.where(cond.astype(bool), then, other), _and(_and(cmask, tmask), omask)


def _and(a: Array | None, b: Array | None) -> Array | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _contraction(
    einsum: Einsum, env: Mapping[str, Array], extents: Mapping[str, int], order: list[str]
) -> Array | None:
    """np.einsum fast path for sum-of-products over affine accesses (zero padding is exact)."""
    if einsum.reduce is not ReduceOp.SUM or len(order) > len(_LETTERS):
        return None
    factors = product_factors(einsum.body)
    if factors is None or not any(isinstance(f, Access) for f in factors):
        return None
    scale = 1.0
    operands: list[Array] = []
    subscripts: list[str] = []
    for factor in factors:
        if isinstance(factor, Const):
            scale *= factor.value
            continue
        assert isinstance(factor, Access)
        if not all(isinstance(i, Affine) for i in factor.indices):
            return None
        view, _ = _strided_view(env[factor.tensor], factor.indices, extents, order)  # type: ignore[arg-type]
        used = [k for k, v in enumerate(order) if view.shape[k] != 1 or _uses(factor.indices, v)]  # type: ignore[arg-type]
        operand = view.reshape([view.shape[k] for k in used])
        if operand.dtype.kind in "iub":  # accumulate integers without overflow
            operand = operand.astype(np.int64)
        operands.append(operand)
        subscripts.append("".join(_LETTERS[k] for k in used))
    out_vars = [k for k, v in enumerate(order) if v not in einsum.reduced]
    # every output var must appear in some operand; broadcast the rest afterwards
    present = set("".join(subscripts))
    out_sub = "".join(_LETTERS[k] for k in out_vars if _LETTERS[k] in present)
    spec = ",".join(subscripts) + "->" + out_sub
    result = np.einsum(spec, *operands, optimize=True)
    missing_reduced = [
        v for k, v in enumerate(order) if v in einsum.reduced and _LETTERS[k] not in present
    ]
    mult = math.prod(extents[v] for v in missing_reduced) if missing_reduced else 1
    if scale != 1.0 or mult != 1:
        result = result * (scale * mult)
    shape = [extents[order[k]] if _LETTERS[k] in present else 1 for k in out_vars]
    return np.asarray(result).reshape(shape)
