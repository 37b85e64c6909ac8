"""Number-format arithmetic for the quantization passes (NumPy, float64 throughout).

* Minifloat formats (FP8 E4M3/E5M2, FP6 E2M3/E3M2, FP4 E2M1, FP3 E2M0) are enumerated exactly
  from (exponent bits, mantissa bits, bias, reserved codes); values round to nearest, ties to
  the even code, saturating at the largest finite value (OCP "satfinite").
* Every quantizer works on *blocks*: arrays whose last axis is one scale group; it returns the
  dequantized block and the scale per group (shape ``[..., 1]``).
* Scales are rounded *up* to their storage type (`round_scale_up`), so the largest element
  never clips and the INTn bound ``|w - q(w)| <= scale/2`` holds with the stored scale.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from codesign.ir.dtypes import DType

Array = np.ndarray


class Reserved(Enum):
    """Which codes a minifloat reserves for non-finite values."""

    NONE = "none"  # every code is finite (FP6, FP4, FP3)
    NAN_ONLY = "nan_only"  # S.1111.111 is NaN (OCP E4M3, "fn")
    IEEE = "ieee"  # the top exponent is inf/NaN (E5M2)


@dataclass(frozen=True, slots=True)
class FloatFormat:
    """A sign-magnitude minifloat; subnormals at exponent code 0."""

    dtype: DType
    exponent_bits: int
    mantissa_bits: int
    bias: int
    reserved: Reserved = Reserved.NONE

    @property
    def grid(self) -> Array:
        """Non-negative finite values in code order (ascending, so index parity = code LSB)."""
        return _grid(self)

    @property
    def max_value(self) -> float:
        return float(self.grid[-1])

    @property
    def emax(self) -> int:
        """Exponent of the largest finite value (OCP MX: the element format's emax)."""
        return math.floor(math.log2(self.max_value))


@functools.cache
def _grid(fmt: FloatFormat) -> Array:
    values: list[float] = []
    top = 2**fmt.exponent_bits - 1
    for e in range(top + 1):
        if e == top and fmt.reserved is Reserved.IEEE:
            break
        for m in range(2**fmt.mantissa_bits):
            if e == top and m == 2**fmt.mantissa_bits - 1 and fmt.reserved is Reserved.NAN_ONLY:
                break
            frac = m / 2**fmt.mantissa_bits
            values.append((frac if e == 0 else 1 + frac) * 2.0 ** (max(e, 1) - fmt.bias))
    grid = np.array(values, dtype=np.float64)
    grid.setflags(write=False)
    return grid


FP8_E4M3 = FloatFormat(DType.FP8_E4M3, 4, 3, 7, Reserved.NAN_ONLY)
FP8_E5M2 = FloatFormat(DType.FP8_E5M2, 5, 2, 15, Reserved.IEEE)
FP6_E2M3 = FloatFormat(DType.FP6_E2M3, 2, 3, 1)
FP6_E3M2 = FloatFormat(DType.FP6_E3M2, 3, 2, 3)
FP4_E2M1 = FloatFormat(DType.FP4_E2M1, 2, 1, 1)
FP3_E2M0 = FloatFormat(DType.FP3_E2M0, 2, 0, 1)  # {0, 1, 2, 4}: BitMoD's FP3
FLOAT_FORMATS: dict[DType, FloatFormat] = {
    f.dtype: f for f in (FP8_E4M3, FP8_E5M2, FP6_E2M3, FP6_E3M2, FP4_E2M1, FP3_E2M0)
}

INT_DTYPES: dict[int, DType] = {
    1: DType.I1, 2: DType.I2, 3: DType.I3, 4: DType.I4, 5: DType.I5, 6: DType.I6, 7: DType.I7,
    8: DType.I8,
}  # fmt: skip


def round_to_grid(x: Array, grid: Array) -> Array:
    """Round to the symmetric grid ``±grid``: nearest, ties to the even code, saturating."""
    x = np.asarray(x, dtype=np.float64)
    mag = np.minimum(np.abs(x), grid[-1])
    hi = np.clip(np.searchsorted(grid, mag, side="left"), 0, len(grid) - 1)
    lo = np.maximum(hi - 1, 0)
    d_lo, d_hi = mag - grid[lo], grid[hi] - mag
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    return np.copysign(grid[np.where(pick_hi, hi, lo)], x)


def nearest_value(x: Array, values: Array) -> Array:
    """Nearest of the ascending `values`; ties to the smaller (BitMoD artifact's argmin)."""
    x = np.asarray(x, dtype=np.float64)
    hi = np.clip(np.searchsorted(values, x, side="left"), 0, len(values) - 1)
    lo = np.maximum(hi - 1, 0)
    pick_hi = (values[hi] - x) < (x - values[lo])
    return values[np.where(pick_hi, hi, lo)]


def round_scale_up(scale: Array, dtype: DType) -> Array:
    """The smallest positive value of `dtype` >= `scale` (zero scales become 1: all-zero block).
    Saturates at the dtype's largest finite value."""
    s = np.asarray(scale, dtype=np.float64)
    s = np.where(s > 0, s, 1.0)
    if dtype is DType.F64:
        return s
    if dtype is DType.E8M0:
        return 2.0 ** np.clip(np.ceil(np.log2(s)), -127, 127)
    if dtype in FLOAT_FORMATS:
        grid = FLOAT_FORMATS[dtype].grid
        idx = np.clip(np.searchsorted(grid, s, side="left"), 1, len(grid) - 1)
        return grid[idx]
    if dtype not in (DType.F32, DType.F16):
        raise ValueError(f"scale dtype {dtype.value} is not a float format")
    holder = np.dtype(np.float32 if dtype is DType.F32 else np.float16)
    largest = float(np.finfo(np.float32).max if dtype is DType.F32 else np.finfo(np.float16).max)
    with np.errstate(over="ignore"):
        cast = np.minimum(s, largest).astype(holder)
    up = np.where(cast.astype(np.float64) < s, np.nextafter(cast, np.array(np.inf, holder)), cast)
    return np.minimum(up.astype(np.float64), largest)


# -- block quantizers: last axis = one group --------------------------------------------------
Quantized = tuple[Array, Array]  # (dequantized block, scale per group [..., 1])


def _amax(block: Array) -> Array:
    return np.max(np.abs(block), axis=-1, keepdims=True)


def int_block(block: Array, bits: int, symmetric: bool, scale_dtype: DType) -> Quantized:
    """Uniform integer quantization.  Symmetric: codes in [-2^(b-1), 2^(b-1)-1] with scale
    amax/(2^(b-1)-1); 1-bit symmetric is binary ``sign(w)*mean|w|`` (XNOR-Net).  Asymmetric:
    codes in [0, 2^b-1] over the range [min(w,0), max(w,0)] (zero exact, as PyTorch observers)
    with an integer zero point."""
    if symmetric and bits == 1:
        scale = round_scale_up(np.mean(np.abs(block), axis=-1, keepdims=True), scale_dtype)
        return np.where(block >= 0, 1.0, -1.0) * scale, scale
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = round_scale_up(_amax(block) / qmax, scale_dtype)
        return np.clip(np.rint(block / scale), -qmax - 1, qmax) * scale, scale
    lo = np.minimum(np.min(block, axis=-1, keepdims=True), 0.0)
    hi = np.maximum(np.max(block, axis=-1, keepdims=True), 0.0)
    levels = 2**bits - 1
    scale = round_scale_up((hi - lo) / levels, scale_dtype)
    zero = np.clip(np.rint(-lo / scale), 0, levels)
    codes = np.clip(np.rint(block / scale) + zero, 0, levels)
    return (codes - zero) * scale, scale


def ternary_block(block: Array, scale_dtype: DType) -> Quantized:
    """BitNet b1.58: ``clip(round(w / mean|w|), -1, 1) * mean|w|``."""
    scale = round_scale_up(np.mean(np.abs(block), axis=-1, keepdims=True), scale_dtype)
    return np.clip(np.rint(block / scale), -1, 1) * scale, scale


def float_block(block: Array, fmt: FloatFormat, scale_dtype: DType) -> Quantized:
    """Minifloat codes with a scale mapping the block's amax onto the format's max."""
    scale = round_scale_up(_amax(block) / fmt.max_value, scale_dtype)
    return round_to_grid(block / scale, fmt.grid) * scale, scale


MXINT8_GRID = np.arange(0, 129, dtype=np.float64) / 64  # magnitudes of int8 * 2^-6


def mx_block(block: Array, element: FloatFormat | None) -> Quantized:
    """OCP MX: shared scale ``2^(floor(log2 amax) - emax_elem)`` (E8M0), elements rounded to the
    element format with saturation; `element=None` is MXINT8 (int8 codes times 2^-6)."""
    emax = 0 if element is None else element.emax
    amax = _amax(block)
    exp = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - emax
    scale = 2.0 ** np.clip(exp, -127, 127)
    x = block / scale
    if element is None:
        q = np.clip(np.rint(x * 64), -128, 127) / 64
    else:
        q = round_to_grid(x, element.grid)
    return q * scale, scale


# BitMoD (HPCA'25, artifact yc2367/BitMoD-HPCA-25 awq/quantize/auto_dtype.py): the FP grid has a
# redundant code (-0) re-purposed as one extra value: "extra resolution" (ER) between the two
# largest magnitudes or "extra asymmetry" (EA) beyond them, on the positive or negative side.
# Values are in units of the 4-bit grid x2 ({0,1,2,3,4,6,8,12}) and the FP3 grid ({0,1,2,4}).
BITMOD_SPECIAL: dict[int, tuple[tuple[str, float], ...]] = {
    4: (("fp4_er_pos", 10.0), ("fp4_er_neg", -10.0), ("fp4_ea_pos", 16.0), ("fp4_ea_neg", -16.0)),
    3: (("fp3_er_pos", 3.0), ("fp3_er_neg", -3.0), ("fp3_ea_pos", 6.0), ("fp3_ea_neg", -6.0)),
}
BITMOD_DTYPE = {4: DType.FP4_E2M1, 3: DType.FP3_E2M0}


def bitmod_values(bits: int) -> tuple[tuple[str, Array], ...]:
    """The candidate value sets (ascending) of BitMoD at `bits` (3 or 4), in selection order."""
    base = FP4_E2M1.grid * 2 if bits == 4 else FP3_E2M0.grid
    symmetric = np.concatenate([-base[:0:-1], base])
    return tuple(
        (name, np.sort(np.append(symmetric, extra))) for name, extra in BITMOD_SPECIAL[bits]
    )


def bitmod_block(block: Array, bits: int, scale_dtype: DType) -> tuple[Array, Array, Array]:
    """Per group the lowest-MSE variant: (dequantized, scale [..., 1], variant index [...]).
    Each variant's scale maps the group's amax onto its largest magnitude; ties keep the
    earlier variant (the artifact's strict less-than)."""
    best = np.full(block.shape[:-1], np.inf)
    out = np.zeros_like(block, dtype=np.float64)
    scales = np.ones(block.shape[:-1] + (1,))
    choice = np.zeros(block.shape[:-1], dtype=np.int64)
    for k, (_, values) in enumerate(bitmod_values(bits)):
        scale = round_scale_up(_amax(block) / np.max(np.abs(values)), scale_dtype)
        deq = nearest_value(block / scale, values) * scale
        mse = np.mean((deq - block) ** 2, axis=-1)
        better = mse < best
        best = np.where(better, mse, best)
        out = np.where(better[..., None], deq, out)
        scales = np.where(better[..., None], scale, scales)
        choice = np.where(better, k, choice)
    return out, scales, choice


def apply_groups(
    w: Array, axis: int | None, group: int | None, fn: Callable[[Array], Quantized]
) -> Quantized:
    """Apply a block quantizer to groups of `group` consecutive elements along `axis`.

    `axis=None`: the whole tensor is one group; `group=None`: the whole axis is one group (per
    channel).  Returns (dequantized array shaped as `w`, scales ``[..., n_groups]`` with `axis`
    moved last)."""
    w = np.asarray(w, dtype=np.float64)
    if axis is None:
        deq, scale = fn(w.reshape(1, -1))
        return deq.reshape(w.shape), scale.reshape(1)
    moved = np.moveaxis(w, axis, -1)
    n = moved.shape[-1]
    g = group or n
    out = np.empty_like(moved)
    scales = []
    for start in range(0, n, g):
        out[..., start : start + g], scale = fn(moved[..., start : start + g])
        scales.append(scale)
    return np.moveaxis(out, -1, axis), np.concatenate(scales, axis=-1)
