"""Dense vs N:M-sparse training step on a spatial array (SAT / BDWP).

Per layer, `codesign.frontends.training.training_cascade` gives the forward (FF),
backward-data (BP) and weight-gradient (WU) contractions and the weight update.  The mapper maps
the dense step once; the sparse step reuses those mappings (SAT schedules offline) and prices
each contraction through `apply_sparsity` with the N:M array's support:

* FF reads ``W_ff`` pruned N:M along the input channel (its reduction), BP reads ``W_bp``
  pruned N:M along the output channel (BP's reduction) — BDWP's two directions;
* WU multiplies two dense activations/gradients and stays dense, as does the update;
* a layer whose reduction rank is not a multiple of M (the 3-channel stem) stays dense.

The step time is the sum over layers and Einsums (layer by layer, no overlap).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codesign.frontends.training import ConvLayer, training_cascade
from codesign.hwmodels.nm_array import NMArray
from codesign.ir.cascade import Cascade, SparseFormat, Sparsity
from codesign.mapper.from_ir import problem_from_einsum
from codesign.mapper.search_types import SearchOptions
from codesign.sim.cascade import map_cascade
from codesign.sim.cost import EinsumKind
from codesign.sim.family_models import CostOptions, spatial_model
from codesign.sim.sparse_cost import apply_sparsity, cascade_densities

PASSES = ("FF", "BP", "WU", "update")


@dataclass(frozen=True, slots=True)
class PassCycles:
    """Cycles of one training Einsum of one layer, dense and on the N:M array."""

    layer: str
    name: str  # FF, BP, WU or update
    dense_cycles: float
    sparse_cycles: float
    dense_energy_pj: float
    sparse_energy_pj: float
    metadata_energy_pj: float


@dataclass(frozen=True, slots=True)
class TrainingComparison:
    passes: tuple[PassCycles, ...]

    @property
    def dense_cycles(self) -> float:
        return sum(p.dense_cycles for p in self.passes)

    @property
    def sparse_cycles(self) -> float:
        return sum(p.sparse_cycles for p in self.passes)

    @property
    def speedup(self) -> float:
        return self.dense_cycles / self.sparse_cycles

    def fraction(self, name: str, sparse: bool = False) -> float:
        """Share of the (dense or sparse) step time spent in pass `name`."""
        total = self.sparse_cycles if sparse else self.dense_cycles
        part = sum(p.sparse_cycles if sparse else p.dense_cycles
                   for p in self.passes if p.name == name)  # fmt: skip
        return part / total

    def pass_speedup(self, name: str) -> float:
        dense = sum(p.dense_cycles for p in self.passes if p.name == name)
        return dense / sum(p.sparse_cycles for p in self.passes if p.name == name)


def sparse_training_cascade(layer: ConvLayer, n: int, m: int) -> Cascade:
    """The training cascade with BDWP's N:M records: W_ff along C, W_bp along M (statistical,
    no data), each only when that rank splits into groups of m."""
    cascade = training_cascade(layer)
    marked = []
    for t in cascade.tensors:
        axis = {"W_ff": 1, "W_bp": 0}.get(t.name)
        if axis is not None and t.shape[axis] % m == 0:
            t = replace(t, sparse=Sparsity(SparseFormat.NM, n / m, n, m, axis))
        marked.append(t)
    return Cascade(cascade.name, tuple(marked), cascade.einsums)


def compare_training(
    layers: tuple[ConvLayer, ...], array: NMArray, search: SearchOptions | None = None
) -> TrainingComparison:
    """Dense vs N:M-sparse step cycles per layer and pass on `array`: each pass mapped once,
    dense, and that mapping priced dense and with N:M skipping."""
    assert array.support.nm is not None
    n, m = array.support.nm
    model = spatial_model(CostOptions(search=search or SearchOptions(), sparse=False))
    rows: list[PassCycles] = []
    for layer in layers:
        dense = map_cascade(
            training_cascade(layer), array.arch, model, name=array.name, clock_ghz=array.clock_ghz
        )
        sparse_cascade = sparse_training_cascade(layer, n, m)
        densities = cascade_densities(sparse_cascade)
        for result in dense.einsums:
            if result.kind is EinsumKind.VIEW:
                continue
            cost = result.cost
            if result.kind is EinsumKind.MAC:
                problem = problem_from_einsum(sparse_cascade.einsum(result.name), sparse_cascade)
                assert problem is not None
                cost = apply_sparsity(result.cost, problem, densities, array.support)
            meta = sum(t.energy_pj for lv in cost.levels for t in lv.tensors
                       if t.tensor.endswith("_metadata"))  # fmt: skip
            rows.append(PassCycles(layer.name, result.name, result.cost.cycles, cost.cycles,
                                   result.cost.energy_pj, cost.energy_pj, meta))  # fmt: skip
    return TrainingComparison(tuple(rows))


__all__ = [
    "PASSES", "PassCycles", "TrainingComparison", "compare_training", "sparse_training_cascade",
]  # fmt: skip
