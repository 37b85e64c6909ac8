"""Sparse-aware costs: what zeros save on hardware that gates or skips (Sparseloop's notions).

A dense `Cost` of one MAC Einsum (analytical nest analysis) is adjusted for the operand
densities of the cascade's tensors and the hardware's `SparseSupport`:

* **gating** (`SparseAction.GATING`): an ineffectual MAC (a zero operand) is clock-gated; it
  costs `gated_energy_ratio` of a MAC's energy and still takes its cycle.  Storage traffic is
  unchanged.
* **skipping** (`SparseAction.SKIPPING`): ineffectual MACs are not issued; compute cycles and
  energy scale with the *effectual fraction*, and the innermost level's reads of the other
  operand and the partial-sum updates for skipped MACs disappear too.
* **compressed weights** (`compressed_weights`): the weight is stored and moved in its recorded
  format (`Sparsity`): each level's weight traffic scales by the density, and the format's
  metadata (bitmaps, coordinates, N:M positions) appears as its own tensor
  ``<weight>_metadata`` in every level that holds the weight, with its own energy.
* **N:M hardware** (`nm=(N, M)`): the array only skips within N:M groups, so the compute
  speedup is M/N (not 1/density) and only for tensors whose recorded pattern fits (at most N of
  every M); other zeros are at best gated.

Effectual fraction: *statistically* the product of the operand densities (uniform random
zeros) when a tensor has no data; *exactly* from the weight data when present, including the
load imbalance of skipping arrays: rows of the weight (output channels) run in parallel lanes,
so each group of lanes takes as long as its densest row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from codesign.hwmodels.arch import Arch, TensorRole
from codesign.hwmodels.nm_array import (
    DENSE_ARRAY,
    GATING_ARRAY,
    SKIPPING_ARRAY,
    SparseAction,
    SparseSupport,
)
from codesign.ir.cascade import Cascade, SparseFormat, Sparsity, TensorSpec
from codesign.mapper.mapping import Mapping as LoopMapping
from codesign.mapper.problem import Problem
from codesign.sim.analytical import AnalyticalModel
from codesign.sim.cost import Cost, LevelCost, TensorActions

METADATA_SUFFIX = "_metadata"


@dataclass(frozen=True, slots=True)
class OperandDensity:
    """Density of one operand and, for skipping arrays, the slowest-lane factor per lane count
    (None: statistical, perfectly balanced).  `metadata_ratio` is metadata bits per dense
    element divided by the value bits (0 for dense storage)."""

    density: float
    metadata_ratio: float
    sparse: Sparsity | None
    row_nonzeros: tuple[int, ...] | None = None  # nonzeros per output row, from the data
    row_length: int = 0

    def skip_factor(self, lanes: int) -> float:
        """Cycles of a skipping array relative to dense: rows run `lanes` at a time, each group
        as slow as its densest row (exact); the density when no data is known."""
        if self.row_nonzeros is None or not self.row_length:
            return self.density
        rows = np.asarray(self.row_nonzeros, dtype=np.float64)
        lanes = max(1, min(lanes, len(rows)))
        pad = (-len(rows)) % lanes
        chunks = np.concatenate([rows, np.zeros(pad)]).reshape(-1, lanes)
        return float(chunks.max(axis=1).sum() * lanes / (len(rows) * self.row_length))


def operand_density(spec: TensorSpec, out_dim: int | None = None) -> OperandDensity:
    """Density of a tensor from its data (exact) or its `Sparsity` record (statistical)."""
    sparse = spec.sparse
    if sparse is None and spec.data is None:
        return OperandDensity(1.0, 0.0, None)
    if spec.data is not None:
        nonzero = np.asarray(spec.data) != 0
        density = float(nonzero.mean()) if nonzero.size else 1.0
    else:
        assert sparse is not None
        density = sparse.density
    metadata = 0.0
    if sparse is not None and sparse.format is not SparseFormat.DENSE:
        metadata = sparse.metadata_bits(spec.shape) / (spec.size * spec.dtype.bits)
    rows: tuple[int, ...] | None = None
    length = 0
    if spec.data is not None and out_dim is not None:
        moved = np.moveaxis(np.asarray(spec.data) != 0, out_dim, 0).reshape(spec.shape[out_dim], -1)
        rows, length = tuple(int(n) for n in moved.sum(axis=1)), moved.shape[1]
    return OperandDensity(density, metadata, sparse, rows, length)


def nm_fits(sparse: Sparsity | None, nm: tuple[int, int]) -> bool:
    """True when the recorded pattern guarantees at most N nonzeros in every M (hardware)."""
    if sparse is None or sparse.format is not SparseFormat.NM:
        return False
    assert sparse.n is not None and sparse.m is not None
    n_hw, m_hw = nm
    if m_hw % sparse.m:
        return False
    return sparse.n * (m_hw // sparse.m) <= n_hw


def apply_sparsity(
    dense: Cost, problem: Problem, densities: Mapping[str, OperandDensity], support: SparseSupport
) -> Cost:
    """The dense cost of `problem` adjusted for operand densities on `support` hardware."""
    if not dense.valid or support == DENSE_ARRAY:
        return dense
    ones = OperandDensity(1.0, 0.0, None)
    by_role = {t.role: t for t in problem.tensors}
    weight, other = by_role[TensorRole.WEIGHT], by_role[TensorRole.INPUT]
    w, x = densities.get(weight.name, ones), densities.get(other.name, ones)
    effectual = w.density * x.density
    cycle_factor = 1.0
    if support.nm is not None:
        # N:M arrays skip exactly the pruned positions of a fitting pattern, nothing else.
        if support.compute is SparseAction.SKIPPING and nm_fits(w.sparse, support.nm):
            cycle_factor = support.nm[0] / support.nm[1]
        skipped = 1.0 - cycle_factor
    elif support.compute is SparseAction.SKIPPING:
        cycle_factor = w.skip_factor(max(dense.utilized_pes, 1)) * x.density
        skipped = 1.0 - effectual
    else:
        skipped = 0.0
    gated = max(0.0, 1.0 - effectual - skipped) if support.compute is not SparseAction.NONE else 0
    mac_energy = dense.compute_energy_pj * (
        1.0 - skipped - gated * (1 - support.gated_energy_ratio)
    )
    compute_cycles = dense.compute_cycles * cycle_factor
    levels: list[LevelCost] = []
    for index, level in enumerate(dense.levels):
        tensors: list[TensorActions] = []
        words_before = sum(t.reads + t.fills + t.updates for t in level.tensors)
        for t in level.tensors:
            scale = 1.0
            if t.tensor == weight.name and support.compressed_weights and w.sparse is not None:
                scale = w.density
                meta = w.metadata_ratio
                if meta > 0:
                    tensors.append(
                        TensorActions(t.tensor + METADATA_SUFFIX, t.reads * meta, t.fills * meta,
                                      0.0, math.ceil(t.tile_words * meta), t.energy_pj * meta)
                    )  # fmt: skip
            elif index == innermost_keeping(dense, t.tensor) and skipped > 0:
                scale = 1.0 - skipped  # operand reads / psum updates of skipped MACs vanish
            tensors.append(
                TensorActions(t.tensor, t.reads * scale, t.fills * scale, t.updates * scale,
                              t.tile_words, t.energy_pj * scale)
            )  # fmt: skip
        words_after = sum(t.reads + t.fills + t.updates for t in tensors)
        ratio = words_after / words_before if words_before else 1.0
        levels.append(replace(level, tensors=tuple(tensors), cycles=level.cycles * ratio))
    cycles = max([compute_cycles] + [lv.cycles for lv in levels])
    leak_ratio = cycles / dense.cycles if dense.cycles else 1.0
    levels = [
        replace(
            lv,
            leak_energy_pj=lv.leak_energy_pj * leak_ratio,
            energy_pj=sum(t.energy_pj for t in lv.tensors) + lv.leak_energy_pj * leak_ratio,
        )
        for lv in levels
    ]
    compute_energy = mac_energy
    energy = sum(lv.energy_pj for lv in levels) + compute_energy
    worst = max(levels, key=lambda lv: lv.cycles, default=None)
    bound = worst.name if worst is not None and worst.cycles > compute_cycles else "compute"
    return replace(
        dense, cycles=cycles, energy_pj=energy, compute_cycles=compute_cycles,
        compute_energy_pj=compute_energy, levels=tuple(levels), bound=bound,
        utilization=dense.utilization * dense.cycles / cycles if cycles else 0.0,
    )  # fmt: skip


def innermost_keeping(cost: Cost, tensor: str) -> int:
    """Index of the innermost level that holds `tensor` (-1 if none)."""
    found = -1
    for index, level in enumerate(cost.levels):
        if any(t.tensor == tensor for t in level.tensors):
            found = index
    return found


def cascade_densities(cascade: Cascade) -> dict[str, OperandDensity]:
    """Operand densities of every tensor with data or a `Sparsity` record (a weight's rows are
    its first rank: the output channel of OIHW convolutions and [out, in] linears), carried
    through views: a tensor assembled by views (a KV cache concatenated with the new token's
    row, a transpose) gets the element-weighted density of its sources."""
    out: dict[str, OperandDensity] = {}
    for spec in cascade.tensors:
        if spec.sparse is not None or spec.data is not None:
            out[spec.name] = operand_density(spec, 0 if spec.data is not None else None)
    written: dict[str, float] = {}  # nonzeros written so far; other producers count as dense
    for einsum in cascade.einsums:
        target = einsum.output.tensor
        points = math.prod(n for v, n in einsum.space if v not in einsum.reduced)
        source = einsum.input_tensors[0] if einsum.is_view else ""
        density = out[source].density if source in out else 1.0
        written[target] = written.get(target, 0.0) + points * density
        spec = cascade.tensor(target)
        if einsum.is_view and (target not in out or out[target].sparse is None):
            if written[target] / spec.size < 1.0 and source in out:
                out[target] = OperandDensity(written[target] / spec.size, 0.0, None)
    for name, total in written.items():  # a later dense producer of the same tensor
        if name in out and out[name].sparse is None and cascade.tensor(name).data is None:
            out[name] = OperandDensity(min(1.0, total / cascade.tensor(name).size), 0.0, None)
    return out


@dataclass(frozen=True, slots=True)
class SparseAnalyticalModel:
    """The analytical model with a `sparse` option: prices the dense nest, then applies
    `apply_sparsity` with the cascade's densities (a `CostModel`)."""

    support: SparseSupport
    densities: Mapping[str, OperandDensity]

    @staticmethod
    def for_cascade(cascade: Cascade, support: SparseSupport) -> SparseAnalyticalModel:
        return SparseAnalyticalModel(support, cascade_densities(cascade))

    def evaluate(self, problem: Problem, mapping: LoopMapping, arch: Arch) -> Cost:
        dense = AnalyticalModel().evaluate(problem, mapping, arch)
        return apply_sparsity(dense, problem, self.densities, self.support)


def metadata_energy_pj(cost: Cost) -> float:
    """Energy of metadata traffic over all levels (the ``*_metadata`` tensors)."""
    return sum(
        t.energy_pj for lv in cost.levels for t in lv.tensors if t.tensor.endswith(METADATA_SUFFIX)
    )


__all__ = [
    "DENSE_ARRAY", "GATING_ARRAY", "METADATA_SUFFIX", "SKIPPING_ARRAY", "OperandDensity",
    "SparseAction", "SparseAnalyticalModel", "SparseSupport", "apply_sparsity",
    "cascade_densities", "metadata_energy_pj", "nm_fits", "operand_density",
]  # fmt: skip
