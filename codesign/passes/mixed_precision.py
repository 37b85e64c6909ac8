"""`mixed-precision`: per-layer INT bit widths by a budgeted greedy allocation on sensitivity.

Sensitivity of layer (weight) w at b bits = relative L2 error of the cascade's outputs when only
w is quantized to b bits (group-wise INT), measured with the reference interpreter on the
calibration inputs.  Allocation starts every layer at the widest candidate and repeatedly lowers
the layer whose next-narrower candidate costs the least added error per bit saved
(``Δerror / (elements · Δbits)``) until the element-weighted average code width is within
`budget`; then raises layers back, most error removed per bit first, while the budget holds.
Scale bytes are not part of the budget (they depend on `group`, not on the choice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade
from codesign.ir.dtypes import DType
from codesign.ir.interpreter import interpret
from codesign.passes.pipeline import PassContext, register_pass
from codesign.passes.quantize import (
    Granularity,
    QuantizeOptions,
    WeightFormat,
    quantizable_weights,
    quantize_weight,
    replace_tensors,
)
from codesign.passes.report import NumericalError


@dataclass(frozen=True, slots=True)
class MixedPrecisionOptions:
    budget: float = 4.0  # average code bits per weight element (element-weighted)
    candidates: tuple[int, ...] = (2, 3, 4, 8)
    group: int = 128  # 0: per channel
    symmetric: bool = True
    scale: DType = DType.F16
    einsums: str = ""  # regex on consumer Einsum names

    def __post_init__(self) -> None:
        if not self.candidates or any(not 1 <= b <= 8 for b in self.candidates):
            raise ValueError(f"candidates={list(self.candidates)} must be bit widths in 1..8")
        if self.budget <= 0:
            raise ValueError(f"budget={self.budget} must be positive")

    def quantize_options(self, bits: int) -> QuantizeOptions:
        return QuantizeOptions(
            WeightFormat.INT, bits, self.group, Granularity.CHANNEL, self.symmetric, self.scale,
            self.einsums,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BitAllocation:
    """Chosen bits per weight, the sensitivities behind them and the resulting average."""

    bits: tuple[tuple[str, int], ...]  # weight -> code bits, cascade order
    sensitivity: tuple[tuple[str, tuple[tuple[int, float], ...]], ...]  # weight -> (bits, rel L2)
    elements: tuple[tuple[str, int], ...]
    average_bits: float

    def as_dict(self) -> dict[str, int]:
        return dict(self.bits)


def sensitivities(
    cascade: Cascade, options: MixedPrecisionOptions, inputs: Mapping[str, np.ndarray]
) -> dict[str, dict[int, float]]:
    """weight -> {bits: relative L2 output error with only that weight quantized}."""
    weights = quantizable_weights(cascade, options.einsums)
    reference = interpret(cascade, inputs)
    table: dict[str, dict[int, float]] = {}
    for name, axis in weights.items():
        spec = cascade.tensor(name)
        table[name] = {}
        for bits in sorted(set(options.candidates)):
            quantized = quantize_weight(spec, axis, options.quantize_options(bits))
            outputs = interpret(replace_tensors(cascade, {name: quantized}), inputs)
            table[name][bits] = NumericalError.between(reference, outputs).rel_l2
    return table


def allocate_bits(
    cascade: Cascade, options: MixedPrecisionOptions, inputs: Mapping[str, np.ndarray]
) -> BitAllocation:
    """Greedy lowering under the average-bits budget (see module docstring)."""
    if any(t.data is None for t in cascade.weights):
        raise InputError(f"mixed-precision: cascade {cascade.name} has weights without data")
    table = sensitivities(cascade, options, inputs)
    if not table:
        raise InputError(f"mixed-precision: cascade {cascade.name} has no contraction weights")
    ladder = sorted(set(options.candidates))
    sizes = {name: cascade.tensor(name).size for name in table}
    total = sum(sizes.values())
    level = {name: len(ladder) - 1 for name in table}

    def average() -> float:
        return sum(sizes[n] * ladder[level[n]] for n in table) / total

    while average() > options.budget + 1e-9:
        best, best_cost = None, np.inf
        for name in table:
            if level[name] == 0:
                continue
            hi, lo = ladder[level[name]], ladder[level[name] - 1]
            cost = (table[name][lo] - table[name][hi]) / (sizes[name] * (hi - lo))
            if cost < best_cost:
                best, best_cost = name, cost
        if best is None:
            raise InputError(
                f"mixed-precision: budget {options.budget} bits is below the narrowest "
                f"candidate {ladder[0]}"
            )
        level[best] -= 1
    # Lowering can overshoot (a large layer's last step); give bits back where they fit, most
    # error removed per bit first.
    while True:
        gains = []
        for name in table:
            if level[name] == len(ladder) - 1:
                continue
            lo, hi = ladder[level[name]], ladder[level[name] + 1]
            if average() + sizes[name] * (hi - lo) / total <= options.budget + 1e-9:
                gains.append(
                    ((table[name][lo] - table[name][hi]) / (sizes[name] * (hi - lo)), name)
                )
        if not gains:
            break
        level[max(gains)[1]] += 1
    return BitAllocation(
        tuple((n, ladder[level[n]]) for n in table),
        tuple((n, tuple(sorted(table[n].items()))) for n in table),
        tuple(sizes.items()),
        average(),
    )


@register_pass("mixed-precision", MixedPrecisionOptions)
def mixed_precision(
    cascade: Cascade, options: MixedPrecisionOptions, context: PassContext
) -> Cascade:
    """Per-layer INT bits by greedy sensitivity allocation under an average-bits budget."""
    allocation = allocate_bits(cascade, options, context.inputs_for(cascade))
    axes = quantizable_weights(cascade, options.einsums)
    new = {
        name: quantize_weight(cascade.tensor(name), axes[name], options.quantize_options(bits))
        for name, bits in allocation.bits
    }
    return replace_tensors(cascade, new)
