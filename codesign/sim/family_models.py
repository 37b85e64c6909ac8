"""The cost model of every built-in hardware family, behind one `HardwareModel` protocol.

`codesign.hwmodels.registry` names one of these factories per family; each takes the frozen
`CostOptions` and returns a model whose ``evaluate(einsum, cascade, hw)`` prices one Einsum:

* `SpatialModel` -- spatial arrays (`Arch`, SCALE-Sim configs, N:M arrays): searches a mapping
  of every MAC Einsum (or takes a given one) and prices it with the analytical nest model, the
  cycle-level systolic model, or -- when the card declares sparse support and the IR carries
  densities -- the Sparseloop-style sparse model;
* `FixedScheduleModel` -- hardware whose dataflow fixes the schedule (bit-serial PE arrays,
  LUT/MMA tensor-core GPUs): the family's own per-Einsum pricing, nothing searched;
* `DeviceRooflineModel` -- GPU/CPU roofline devices: time = max(compute, traffic per level);
* `PiumaRooflineModel` -- PIUMA: the same roofline over its pipelines' issue rate and DRAM;
* `AttentionArrayModel` -- FuseMax/FLAT 2D + 1D PE arrays: each Einsum one kernel, bound to
  an array as in `codesign.sim.fusemax` (`codesign.sim.attention_array`).

Views cost nothing anywhere (they fold into their consumers' addressing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch
from codesign.hwmodels.nm_array import NMArray
from codesign.hwmodels.sparse_support import SparseAction
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.stats import einsum_stats
from codesign.mapper.from_ir import problem_from_einsum
from codesign.mapper.mapping import Mapping, check_mapping
from codesign.mapper.memo import Mapper
from codesign.mapper.problem import Problem
from codesign.mapper.search_types import Constraints, SearchOptions
from codesign.sim.cost import COMPUTE_BOUND, Cost, CostModel, EinsumKind, EinsumResult, LevelCost
from codesign.sim.mapping_search import analytical_mapper
from codesign.sim.vector import VIEW_BOUND, vector_cost

if TYPE_CHECKING:
    # each family's hardware and model is imported by its factory below, on first use, so that
    # pricing one family (a SCALE-Sim .cfg) does not load the others' pydantic specs
    from codesign.hwmodels.bitserial import BitSerialArray
    from codesign.hwmodels.gpu import Device
    from codesign.hwmodels.lut_tc import TensorCoreGpu
    from codesign.hwmodels.piuma import PiumaArch
    from codesign.sim.attention_array import AttentionArrayModel
    from codesign.sim.fused_nest import FusedNestSearch

ANALYTICAL = "analytical"
CYCLE = "cycle"
SPATIAL_MODELS = (ANALYTICAL, CYCLE)

_FREE = Cost(0.0, 0.0, 0, 0.0, VIEW_BOUND, 0.0, 0.0, 0, ())


@dataclass(frozen=True, slots=True)
class CostOptions:
    """How a family's model prices a cascade.

    ``model``: the spatial arrays' mapping model (``analytical`` | ``cycle``); other families
    have one model and accept only ``analytical``.  ``ir_precision``: the IR's dtypes override
    a card's pinned precision (a bit-serial card's ``precision.weight_bits``), for pipelines that
    re-type weights.  ``sparse``: use the card's sparse support where the IR carries densities.
    ``mappings``: given mappings by Einsum name (spatial arrays only).  ``pricing``: a
    mapping-level `CostModel` instance that replaces ``model`` on spatial arrays.  ``mapper``:
    a `Mapper` whose cache of searched layers to share across calls (None: a fresh one).
    """

    model: str = ANALYTICAL
    search: SearchOptions = SearchOptions()
    constraints: Constraints = Constraints()
    mappings: tuple[tuple[str, Mapping], ...] = ()
    ir_precision: bool = False
    sparse: bool = True
    pricing: CostModel | None = None
    mapper: Mapper | None = field(default=None, compare=False)
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InputError(f"workers must be at least 1 (got {self.workers})")


class EinsumPricing(Protocol):
    """A fixed-schedule family's own pricing of one non-view Einsum (`problem` None: not a MAC
    nest, priced on the hardware's vector resources)."""

    def evaluate_einsum(
        self, einsum: Einsum, problem: Problem | None, cascade: Cascade, hardware: Any
    ) -> Cost: ...


def _view(einsum: Einsum) -> EinsumResult:
    return EinsumResult(einsum.name, einsum.op, EinsumKind.VIEW, _FREE)


def _only_analytical(options: CostOptions, family: str) -> None:
    if options.model != ANALYTICAL:
        raise InputError(
            f"--model {options.model!r}: {family} hardware is priced by its own model "
            f"(only spatial arrays take {', '.join(SPATIAL_MODELS)})"
        )
    if options.mappings:
        raise InputError(
            f"--mapping: {family} hardware fixes its own schedule; mappings apply to spatial "
            "arrays only"
        )


def _estimated_area_mm2(hw: Any, family: str) -> float:
    """Total of the area estimators' per-component breakdown (hwmodels.estimators), so a
    result's ``area_mm2`` and the breakdown `map`/`dse` print are one figure."""
    from codesign.hwmodels.estimators import area_breakdown_mm2

    return sum(area_breakdown_mm2(hw, family).values())


@dataclass
class SpatialModel:
    """A spatial array: searched (or given) mappings priced by a mapping-level model."""

    options: CostOptions
    mapper: Mapper
    _densities: dict[int, tuple[Cascade, CostModel]] = field(default_factory=dict)
    _prefetched: dict[int, Cascade] = field(default_factory=dict)

    def _prefetch(self, cascade: Cascade, arch: Arch) -> None:
        """Search the cascade's distinct MAC Einsums over ``options.workers`` processes, once."""
        if self.options.workers < 2 or self._prefetched.get(id(cascade)) is cascade:
            return
        self._prefetched[id(cascade)] = cascade
        given = {name for name, _ in self.options.mappings}
        problems = [
            problem
            for einsum in cascade.einsums
            if not einsum.is_view and einsum.name not in given
            for problem in (problem_from_einsum(einsum, cascade),)
            if problem is not None
        ]
        self.mapper.prefetch(
            problems, arch, self.options.constraints, self.options.search, self.options.workers
        )

    def _pricing(self, cascade: Cascade, arch: Arch) -> CostModel:
        if self.options.pricing is not None:
            return self.options.pricing
        if self.options.model == CYCLE:
            from codesign.sim.systolic_cost import SystolicCostModel

            return SystolicCostModel()
        from codesign.sim.analytical import AnalyticalModel  # not loaded by a cycle-model run

        dense_card = arch.sparse.compute is SparseAction.NONE and not arch.sparse.compressed_weights
        if dense_card or not self.options.sparse:
            return AnalyticalModel()
        cached = self._densities.get(id(cascade))
        if cached is not None and cached[0] is cascade:
            return cached[1]
        from codesign.sim.sparse_cost import SparseAnalyticalModel, cascade_densities

        densities = cascade_densities(cascade)
        model: CostModel = AnalyticalModel()
        if any(d.density < 1.0 or d.sparse is not None for d in densities.values()):
            model = SparseAnalyticalModel(arch.sparse, densities)
        self._densities[id(cascade)] = (cascade, model)
        return model

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: Arch | NMArray) -> EinsumResult:
        arch = dataclasses.replace(hw.arch, sparse=hw.support) if isinstance(hw, NMArray) else hw
        if einsum.is_view:
            return _view(einsum)
        problem = problem_from_einsum(einsum, cascade)
        pricing = self._pricing(cascade, arch)
        fixed = getattr(pricing, "evaluate_einsum", None)
        if fixed is not None:  # the model fixes the schedule (cycle-level systolic array)
            kind = EinsumKind.VECTOR if problem is None else EinsumKind.MAC
            return EinsumResult(einsum.name, einsum.op, kind, fixed(einsum, problem, cascade, arch))
        if problem is None:
            cost = vector_cost(einsum, cascade, arch)
            return EinsumResult(einsum.name, einsum.op, EinsumKind.VECTOR, cost)
        given = dict(self.options.mappings)
        if einsum.name in given:
            mapping = given[einsum.name]
            check_mapping(mapping, problem, arch, where=f"mapping of {einsum.name}")
            evaluations = 0
        else:
            self._prefetch(cascade, arch)
            found = self.mapper.map(problem, arch, self.options.constraints, self.options.search)
            mapping, evaluations = found.mapping, found.evaluations
        cost = pricing.evaluate(problem, mapping, arch)
        return EinsumResult(einsum.name, einsum.op, EinsumKind.MAC, cost, mapping, evaluations)

    def fused_nest_search(self, cascade: Cascade, hw: Arch | NMArray) -> FusedNestSearch | None:
        """The mapper over fused groups' shared nests (`codesign.sim.fused_nest`) where this
        model searches analytically priced dense mappings; None (the block model alone) with
        given mappings, the cycle-level or sparse model, or a pricing override."""
        from codesign.sim.analytical import AnalyticalModel
        from codesign.sim.fused_nest import FusedNestSearch

        if not isinstance(hw, Arch) or self.options.mappings:
            return None
        if type(self._pricing(cascade, hw)) is not AnalyticalModel:
            return None
        return FusedNestSearch(self.mapper, self.options.constraints, self.options.search,
                               workers=self.options.workers)  # fmt: skip

    def area_mm2(self, hw: Arch | NMArray) -> float | None:
        arch = hw.arch if isinstance(hw, NMArray) else hw
        return arch.area_um2 * 1e-6 if arch.area_um2 > 0 else None  # None: no areas in its table

    def notes(self, hw: Arch | NMArray, cascade: Cascade) -> tuple[str, ...]:
        from codesign.sim.vector import word_note

        note = word_note(cascade, hw.arch if isinstance(hw, NMArray) else hw)
        return (note,) if note else ()


def spatial_model(options: CostOptions) -> SpatialModel:
    if options.model not in SPATIAL_MODELS:
        raise InputError(f"--model {options.model!r}: unknown (known: {', '.join(SPATIAL_MODELS)})")
    return SpatialModel(options, options.mapper or analytical_mapper())


@dataclass(frozen=True, slots=True)
class FixedScheduleModel:
    """Hardware whose dataflow fixes the schedule: every non-view Einsum priced by `pricing`."""

    pricing: EinsumPricing
    options: CostOptions

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: Any) -> EinsumResult:
        if einsum.is_view:
            return _view(einsum)
        problem = problem_from_einsum(einsum, cascade)
        kind = EinsumKind.VECTOR if problem is None else EinsumKind.MAC
        cost = self.pricing.evaluate_einsum(einsum, problem, cascade, hw)
        return EinsumResult(einsum.name, einsum.op, kind, cost)

    def area_mm2(self, hw: Any) -> float | None:
        return None

    def notes(self, hw: Any, cascade: Cascade) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class BitSerialFamilyModel:
    """Bit-serial PE arrays; with ``ir_precision`` a card's pinned ``weight_bits`` gives way to
    the weights' IR dtypes (so a quantize pipeline decides the serial latency)."""

    inner: FixedScheduleModel

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: BitSerialArray) -> EinsumResult:
        if self.inner.options.ir_precision and hw.weight_bits is not None:
            hw = dataclasses.replace(hw, weight_bits=None)
        return self.inner.evaluate(einsum, cascade, hw)

    def area_mm2(self, hw: BitSerialArray) -> float | None:
        return _estimated_area_mm2(hw, "bitserial")

    def notes(self, hw: BitSerialArray, cascade: Cascade) -> tuple[str, ...]:
        if not self.inner.options.ir_precision or hw.weight_bits is None:
            return ()
        return (
            f"{hw.source_path or hw.name}: precision.weight_bits={hw.weight_bits:g} replaced by "
            "the weight dtypes the passes set",
        )


def bitserial_model(options: CostOptions) -> BitSerialFamilyModel:
    from codesign.sim.bitserial import BitSerialModel

    _only_analytical(options, "bitserial")
    return BitSerialFamilyModel(FixedScheduleModel(BitSerialModel(), options))


@dataclass(frozen=True, slots=True)
class TensorCoreFamilyModel:
    inner: FixedScheduleModel

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: TensorCoreGpu) -> EinsumResult:
        return self.inner.evaluate(einsum, cascade, hw)

    def area_mm2(self, hw: TensorCoreGpu) -> float | None:
        """Tensor-core area of the whole GPU (the synthesis fit times the SMs, scaled to the
        card's tile shape), from the same estimator `map` and `dse` break down."""
        return _estimated_area_mm2(hw, "tensor_core")

    def notes(self, hw: TensorCoreGpu, cascade: Cascade) -> tuple[str, ...]:
        return ()


def tensor_core_model(options: CostOptions) -> TensorCoreFamilyModel:
    from codesign.sim.lut_tc import TensorCoreModel

    _only_analytical(options, "tensor_core")
    return TensorCoreFamilyModel(FixedScheduleModel(TensorCoreModel(), options))


def _roofline_cost(
    einsum: Einsum,
    compute_s: float,
    levels: tuple[tuple[str, float, float], ...],
    ops: int,
    macs: int,
    clock_ghz: float,
    peak_ops_per_s: float,
) -> Cost:
    """A roofline Cost: ``levels`` are (name, bytes, seconds); energy unknown (0)."""
    time_s, bound = compute_s, COMPUTE_BOUND
    for name, _, seconds in levels:
        if seconds > time_s:
            time_s, bound = seconds, name
    cycles = time_s * clock_ghz * 1e9
    level_costs = tuple(
        LevelCost(name, 1, 0, seconds * clock_ghz * 1e9, 0.0, 0.0, ())
        for name, _, seconds in levels
    )
    utilization = ops / (time_s * peak_ops_per_s) if time_s and peak_ops_per_s else 0.0
    return Cost(
        cycles=cycles, energy_pj=0.0, macs=macs, utilization=min(utilization, 1.0), bound=bound,
        compute_cycles=compute_s * clock_ghz * 1e9, compute_energy_pj=0.0, utilized_pes=0,
        levels=level_costs,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeviceRooflineModel:
    """GPU/CPU devices: each Einsum one kernel on the roofline (`codesign.sim.roofline`);
    cycles at the device clock; the devices carry no energy model (energy 0)."""

    options: CostOptions

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: Device) -> EinsumResult:
        from codesign.sim.roofline import einsum_row

        if einsum.is_view:
            return _view(einsum)
        row = einsum_row(einsum, cascade, hw)
        levels = tuple((lt.level, float(lt.memory_bytes), lt.time_s) for lt in row.levels)
        stats = einsum_stats(einsum, cascade)
        cost = _roofline_cost(
            einsum, row.compute_s, levels, row.ops, stats.macs, hw.clock_ghz, row.peak_ops_per_s
        )
        kind = EinsumKind.MAC if stats.macs else EinsumKind.VECTOR
        return EinsumResult(einsum.name, einsum.op, kind, cost)

    def area_mm2(self, hw: Device) -> float | None:
        return None

    def notes(self, hw: Device, cascade: Cascade) -> tuple[str, ...]:
        return (f"{hw.name}: a roofline device has no energy model; energy is reported as 0",)


def device_model(options: CostOptions) -> DeviceRooflineModel:
    _only_analytical(options, "gpu/cpu")
    return DeviceRooflineModel(options)


@dataclass(frozen=True, slots=True)
class PiumaRooflineModel:
    """PIUMA on dense Einsums: a roofline over the pipelines' aggregate issue rate (one
    operation per issue slot) and the DRAM bandwidth, traffic = each tensor's compulsory
    bytes.  Graph kernels with irregular access have their own model (`codesign graph`)."""

    options: CostOptions

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: PiumaArch) -> EinsumResult:
        if einsum.is_view:
            return _view(einsum)
        stats = einsum_stats(einsum, cascade)
        issue_per_s = hw.issue_per_cycle * hw.clock_ghz * 1e9
        compute_s = stats.flops / issue_per_s
        moved = float(sum(n for _, n in stats.tensor_bytes))
        dram_s = moved / (hw.dram_bandwidth_gbps * 1e9)
        cost = _roofline_cost(
            einsum, compute_s, (("DRAM", moved, dram_s),), stats.flops, stats.macs,
            hw.clock_ghz, issue_per_s,
        )  # fmt: skip
        kind = EinsumKind.MAC if stats.macs else EinsumKind.VECTOR
        return EinsumResult(einsum.name, einsum.op, kind, cost)

    def area_mm2(self, hw: PiumaArch) -> float | None:
        return None

    def notes(self, hw: PiumaArch, cascade: Cascade) -> tuple[str, ...]:
        return (
            f"{hw.name}: dense Einsums on PIUMA are priced on its issue/DRAM roofline, with no "
            "energy model (energy 0); graph kernels: codesign graph",
        )


def piuma_model(options: CostOptions) -> PiumaRooflineModel:
    _only_analytical(options, "piuma")
    return PiumaRooflineModel(options)


def attention_array_model(options: CostOptions) -> AttentionArrayModel:
    from codesign.sim.attention_array import AttentionArrayModel

    _only_analytical(options, "attention_array")
    return AttentionArrayModel()


__all__ = [
    "ANALYTICAL", "CYCLE", "CostOptions", "DeviceRooflineModel", "FixedScheduleModel",
    "PiumaRooflineModel", "SpatialModel", "attention_array_model", "bitserial_model",
    "device_model", "piuma_model", "spatial_model", "tensor_core_model",
]  # fmt: skip
