"""Quantization passes: `quantize` (weights) and `quantize-activations` (inserted fake-quant).

Simulated quantization: a quantized weight keeps float values — the dequantized values of its
quantized representation — and records the storage type of its codes in `dtype` plus a
`Quantization` (format, axis, group, scale dtype, zero point), so the interpreter computes what
the quantized model computes and cost models count code and scale bytes.

Which weights: those read as a factor of a sum-reduced product (matmul, conv, linear); biases,
norm scales and gathered tables stay.  Scales run along the weight's *reduction* axis (the
dimension indexed by a reduced variable; the largest if several, the first on ties): per channel
is one scale per output element's slice, group-wise one per `group` consecutive reduction
elements.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, QuantFormat, Quantization, Role, TensorSpec
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine
from codesign.ir.interpreter import interpret
from codesign.passes import numerics as nm
from codesign.passes.pipeline import PassContext, register_pass


class WeightFormat(Enum):
    INT = "int"
    TERNARY = "ternary"
    FP8_E4M3 = "fp8e4m3"
    FP8_E5M2 = "fp8e5m2"
    FP6_E2M3 = "fp6e2m3"
    FP6_E3M2 = "fp6e3m2"
    FP4_E2M1 = "fp4e2m1"
    MXFP8 = "mxfp8"  # E4M3 elements
    MXFP8_E5M2 = "mxfp8e5m2"
    MXFP6 = "mxfp6"  # E2M3 elements
    MXFP6_E3M2 = "mxfp6e3m2"
    MXFP4 = "mxfp4"
    MXINT8 = "mxint8"
    BITMOD = "bitmod"
    FP16 = "fp16"  # IEEE half: a plain cast, no scale
    BF16 = "bf16"  # bfloat16: a plain cast, no scale


class Granularity(Enum):
    TENSOR = "tensor"
    CHANNEL = "channel"
    GROUP = "group"


_FP = {
    WeightFormat.FP8_E4M3: nm.FP8_E4M3, WeightFormat.FP8_E5M2: nm.FP8_E5M2,
    WeightFormat.FP6_E2M3: nm.FP6_E2M3, WeightFormat.FP6_E3M2: nm.FP6_E3M2,
    WeightFormat.FP4_E2M1: nm.FP4_E2M1,
}  # fmt: skip
_MX = {
    WeightFormat.MXFP8: nm.FP8_E4M3, WeightFormat.MXFP8_E5M2: nm.FP8_E5M2,
    WeightFormat.MXFP6: nm.FP6_E2M3, WeightFormat.MXFP6_E3M2: nm.FP6_E3M2,
    WeightFormat.MXFP4: nm.FP4_E2M1, WeightFormat.MXINT8: None,
}  # fmt: skip
_CAST = {WeightFormat.FP16: DType.F16, WeightFormat.BF16: DType.BF16}
MX_BLOCK = 32  # OCP MX v1.0 block size
BITMOD_GROUP = 128


@dataclass(frozen=True, slots=True)
class QuantizeOptions:
    """`quantize` options.  `group` > 0 means group-wise with that size (overrides
    `granularity`); MX formats default to blocks of 32, BitMoD to groups of 128."""

    format: WeightFormat = WeightFormat.INT
    bits: int = 8  # INT: 1..8; BitMoD: 3 or 4; other formats fix their width
    group: int = 0
    granularity: Granularity = Granularity.CHANNEL
    symmetric: bool = True  # INT only: False adds a zero point per group
    scale: DType = DType.F16  # scale storage type (MX always uses e8m0)
    einsums: str = ""  # regex (re.search) on consumer Einsum names; "" = every contraction

    def __post_init__(self) -> None:
        if self.format is WeightFormat.INT and not 1 <= self.bits <= 8:
            raise ValueError(f"bits={self.bits}: INT quantization takes 1..8 bits")
        if self.format is WeightFormat.BITMOD and self.bits not in (3, 4):
            raise ValueError(f"bits={self.bits}: BitMoD takes 3 or 4 bits")
        if self.group < 0:
            raise ValueError(f"group={self.group} must be >= 0")
        if self.granularity is Granularity.GROUP and self.group == 0:
            raise ValueError("granularity=group needs group=N")
        if not self.scale.is_float:
            raise ValueError(f"scale={self.scale.value} must be a float type")
        try:
            re.compile(self.einsums)
        except re.error as exc:
            raise ValueError(f"einsums={self.einsums!r} is not a regex: {exc}") from None


def _product_factors(expr: Expr) -> list[Expr]:
    if isinstance(expr, Binary) and expr.op is BinaryOp.MUL:
        return _product_factors(expr.lhs) + _product_factors(expr.rhs)
    return [expr]


def contractions(cascade: Cascade, pattern: str = "") -> tuple[Einsum, ...]:
    """Sum-reduced products (MAC Einsums) whose name matches `pattern` (re.search)."""
    regex = re.compile(pattern)
    return tuple(
        e for e in cascade.einsums
        if e.reduce is ReduceOp.SUM and isinstance(e.body, Binary) and e.body.op is BinaryOp.MUL
        and regex.search(e.name)
    )  # fmt: skip


def reduction_axis(einsum: Einsum, access: Access, shape: tuple[int, ...]) -> int | None:
    """The weight dimension indexed by a reduced variable (largest; the first on ties, which is
    the input channel of OIHW convolution weights)."""
    best: int | None = None
    for dim, index in enumerate(access.indices):
        var = index.plain_var if isinstance(index, Affine) else None
        if var is None and isinstance(index, Affine) and len(index.terms) == 1:
            var = index.terms[0][0]
        if var in einsum.reduced and (best is None or shape[dim] > shape[best]):
            best = dim
    return best


def contraction_weights(
    cascade: Cascade, pattern: str, accept: Callable[[TensorSpec], bool]
) -> dict[str, int | None]:
    """Float weights read as a factor of a matching contraction and accepted by `accept` ->
    their reduction axis (what the quantization and pruning passes may rewrite)."""
    found: dict[str, int | None] = {}
    for einsum in contractions(cascade, pattern):
        for factor in _product_factors(einsum.body):
            if not isinstance(factor, Access) or factor.tensor in found:
                continue
            spec = cascade.tensor(factor.tensor)
            if spec.role is Role.WEIGHT and spec.dtype.is_float and accept(spec):
                found[spec.name] = reduction_axis(einsum, factor, spec.shape)
    return found


def quantizable_weights(cascade: Cascade, pattern: str = "") -> dict[str, int | None]:
    """Float weights read as a factor of a matching contraction -> their reduction axis."""
    return contraction_weights(cascade, pattern, lambda spec: spec.quant is None)


def _layout(options: QuantizeOptions, axis: int | None) -> tuple[int | None, int | None]:
    """(axis, group size) of the scales."""
    if options.format in _MX:
        return axis, options.group or MX_BLOCK
    if options.format is WeightFormat.BITMOD:
        return axis, options.group or BITMOD_GROUP
    if options.group > 0:
        return axis, options.group
    if options.granularity is Granularity.TENSOR or axis is None:
        return None, None
    return axis, None


def quantize_weight(spec: TensorSpec, axis: int | None, options: QuantizeOptions) -> TensorSpec:
    """The weight with dequantized data, code dtype and `Quantization` record.

    FP16/BF16 are storage casts, not scaled codes: the weight becomes an F16/BF16 tensor (no
    `Quantization` record, no scale bytes) holding its values rounded to nearest-even.
    """
    if options.format in _CAST:
        dtype = _CAST[options.format]
        data, sparse = spec.data, spec.sparse
        if data is not None:
            data = dtype.round(data)
            if sparse is not None:  # underflow may zero kept weights of a pruned tensor
                sparse = replace(sparse, density=float(np.count_nonzero(data)) / data.size)
        return replace(spec, dtype=dtype, quant=None, data=data, sparse=sparse)
    q_axis, group = _layout(options, axis)
    if q_axis is None:
        group = None
    scale_dtype = options.scale
    fmt = options.format
    block: Callable[[np.ndarray], nm.Quantized]
    if fmt is WeightFormat.INT:
        dtype, qformat = nm.INT_DTYPES[options.bits], QuantFormat.INT

        def block(b: np.ndarray) -> nm.Quantized:
            return nm.int_block(b, options.bits, options.symmetric, scale_dtype)
    elif fmt is WeightFormat.TERNARY:
        dtype, qformat = DType.I2, QuantFormat.TERNARY

        def block(b: np.ndarray) -> nm.Quantized:
            return nm.ternary_block(b, scale_dtype)
    elif fmt in _FP:
        float_format = _FP[fmt]
        dtype, qformat = float_format.dtype, QuantFormat.FP

        def block(b: np.ndarray) -> nm.Quantized:
            return nm.float_block(b, float_format, scale_dtype)
    elif fmt in _MX:
        element = _MX[fmt]
        dtype = DType.I8 if element is None else element.dtype
        qformat, scale_dtype = QuantFormat.MX, DType.E8M0

        def block(b: np.ndarray) -> nm.Quantized:
            return nm.mx_block(b, element)
    else:
        dtype, qformat = nm.BITMOD_DTYPE[options.bits], QuantFormat.BITMOD

        def block(b: np.ndarray) -> nm.Quantized:
            deq, scale, _ = nm.bitmod_block(b, options.bits, scale_dtype)
            return deq, scale

    zero_point = fmt is WeightFormat.INT and not options.symmetric
    quant = Quantization(qformat, q_axis, group, scale_dtype, zero_point)
    data, sparse = spec.data, spec.sparse
    if data is not None:
        deq, _ = nm.apply_groups(data, q_axis, group, block)
        data = deq.astype(np.float32)
        if sparse is not None:  # rounding may zero kept weights of a pruned tensor
            sparse = replace(sparse, density=float(np.count_nonzero(data)) / data.size)
    return replace(spec, dtype=dtype, quant=quant, data=data, sparse=sparse)


def replace_tensors(cascade: Cascade, new: dict[str, TensorSpec]) -> Cascade:
    tensors = tuple(new.get(t.name, t) for t in cascade.tensors)
    return Cascade(cascade.name, tensors, cascade.einsums)


@register_pass("quantize", QuantizeOptions)
def quantize(cascade: Cascade, options: QuantizeOptions, context: PassContext) -> Cascade:
    """Quantize contraction weights (INTn, ternary, FP8/6/4, MX, BitMoD; FP16/BF16 casts)."""
    weights = quantizable_weights(cascade, options.einsums)
    if options.einsums and not weights:  # a pattern that selects nothing is a typo, not a no-op
        raise InputError(
            f"pass quantize: einsums={options.einsums!r} matches no contraction weight of "
            f"{cascade.name}"
        )
    new = {
        name: quantize_weight(cascade.tensor(name), axis, options) for name, axis in weights.items()
    }
    return replace_tensors(cascade, new)


# -- activations -------------------------------------------------------------------------------
class Calibration(Enum):
    MAX = "max"
    PERCENTILE = "percentile"


@dataclass(frozen=True, slots=True)
class ActivationOptions:
    """`quantize-activations`: per-tensor INTn fake-quant of every non-weight contraction
    operand, scale calibrated on the sample inputs."""

    bits: int = 8
    symmetric: bool = True
    calibration: Calibration = Calibration.MAX
    percentile: float = 99.99  # of |x| (symmetric) or of x at both tails (asymmetric)
    einsums: str = ""  # regex on consumer Einsum names

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 8:
            raise ValueError(f"bits={self.bits}: activation quantization takes 2..8 bits")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile={self.percentile} must be in (50, 100]")


def activation_range(values: np.ndarray, options: ActivationOptions) -> tuple[float, float, float]:
    """(scale, lowest code, highest code) of the fake-quant, from calibration values."""
    x = np.asarray(values, dtype=np.float64).ravel()
    p = 100.0 if options.calibration is Calibration.MAX else options.percentile
    if options.symmetric:
        qmax = 2 ** (options.bits - 1) - 1
        amax = float(np.percentile(np.abs(x), p)) if x.size else 0.0
        scale = amax / qmax if amax > 0 else 1.0
        return scale, float(-qmax - 1), float(qmax)
    lo = min(float(np.percentile(x, 100.0 - p)), 0.0)
    hi = max(float(np.percentile(x, p)), 0.0)
    levels = 2**options.bits - 1
    scale = (hi - lo) / levels if hi > lo else 1.0
    zero = float(np.clip(np.rint(-lo / scale), 0, levels))
    return scale, -zero, levels - zero


def fake_quant_body(source: Access, scale: float, lo: float, hi: float) -> Expr:
    """``round(min(max(x / s, lo), hi)) * s``."""
    clipped = Binary(
        BinaryOp.MIN, Binary(BinaryOp.MAX, Binary(BinaryOp.DIV, source, Const(scale)), Const(lo)),
        Const(hi),
    )  # fmt: skip
    return Binary(BinaryOp.MUL, Unary(UnaryOp.ROUND, clipped), Const(scale))


def _unique(taken: set[str], base: str) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


@register_pass("quantize-activations", ActivationOptions)
def quantize_activations(
    cascade: Cascade, options: ActivationOptions, context: PassContext
) -> Cascade:
    """Insert calibrated fake-quant Einsums round(clip(x/s))*s before contractions."""
    targets = contractions(cascade, options.einsums)
    if options.einsums and not targets:
        raise InputError(
            f"pass quantize-activations: einsums={options.einsums!r} matches no contraction of "
            f"{cascade.name}"
        )
    operands: list[str] = []
    for einsum in targets:
        for factor in _product_factors(einsum.body):
            if isinstance(factor, Access) and factor.tensor not in operands:
                spec = cascade.tensor(factor.tensor)
                if spec.role is not Role.WEIGHT and spec.dtype.is_float and spec.quant is None:
                    operands.append(spec.name)
    if not operands:
        return cascade
    if any(t.data is None for t in cascade.weights):
        raise InputError(
            f"quantize-activations: cascade {cascade.name} has weights without data to calibrate"
        )
    values = interpret(cascade, context.inputs_for(cascade), keep_intermediates=True)
    taken = {t.name for t in cascade.tensors} | {e.name for e in cascade.einsums}
    tensors = list(cascade.tensors)
    renamed: dict[str, str] = {}
    inserted: dict[str, Einsum] = {}
    for name in operands:
        spec = cascade.tensor(name)
        scale, lo, hi = activation_range(values[name], options)
        q_name = _unique(taken, f"{name}_q")
        asymmetric = not options.symmetric
        quant = Quantization(QuantFormat.INT, scale_dtype=DType.F32, zero_point=asymmetric)
        tensors.append(
            TensorSpec(q_name, spec.ranks, spec.shape, nm.INT_DTYPES[options.bits],
                       Role.INTERMEDIATE, quant=quant)
        )  # fmt: skip
        vs = tuple(f"d{k}" for k in range(len(spec.shape)))
        access = Access(name, tuple(Affine.var(v) for v in vs))
        inserted[name] = Einsum.build(
            _unique(taken, f"{name}_fq"), Access(q_name, access.indices),
            fake_quant_body(access, scale, lo, hi), dict(zip(vs, spec.shape, strict=True)),
            op="FakeQuant",
        )  # fmt: skip
        renamed[name] = q_name
    einsums: list[Einsum] = []
    placed: set[str] = set()
    for einsum in cascade.einsums:
        if einsum in targets:
            for factor in _product_factors(einsum.body):
                if isinstance(factor, Access) and factor.tensor in renamed:
                    if factor.tensor not in placed:
                        einsums.append(inserted[factor.tensor])
                        placed.add(factor.tensor)
            einsum = replace(einsum, body=_rename_factors(einsum.body, renamed))
        einsums.append(einsum)
    return Cascade(cascade.name, tuple(tensors), tuple(einsums))


def _rename_factors(expr: Expr, renamed: dict[str, str]) -> Expr:
    if isinstance(expr, Binary) and expr.op is BinaryOp.MUL:
        return Binary(BinaryOp.MUL, _rename_factors(expr.lhs, renamed),
                      _rename_factors(expr.rhs, renamed))  # fmt: skip
    if isinstance(expr, Access) and expr.tensor in renamed:
        return Access(renamed[expr.tensor], expr.indices)
    return expr
