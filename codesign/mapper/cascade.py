"""Map a whole Cascade onto an Arch: every MAC Einsum through the mapper (or a given mapping),
every other Einsum through the vector model; layers run one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade, Einsum
from codesign.mapper.from_ir import problem_from_einsum
from codesign.mapper.mapping import Mapping, check_mapping
from codesign.mapper.problem import Problem
from codesign.mapper.search import Constraints, Mapper, SearchOptions
from codesign.sim.analytical import AnalyticalModel
from codesign.sim.cost import Cost, CostModel
from codesign.sim.vector import vector_cost


@runtime_checkable
class FixedScheduleModel(Protocol):
    """A cost model whose hardware fixes the schedule, so nothing is searched: it prices every
    non-view Einsum itself, a MAC Einsum from its `problem`, any other (``problem`` None) on the
    hardware's vector resources.  Hardware families that are not spatial `Arch`es (bit-serial
    PE arrays, LUT tensor cores) bring such a model with them (`family_model`)."""

    def evaluate_einsum(
        self, einsum: Einsum, problem: Problem | None, cascade: Cascade, hardware: Any
    ) -> Cost: ...


def family_model(hardware: Any) -> FixedScheduleModel:
    """The model of a non-`Arch` hardware family, by its ``family`` name."""
    from codesign.sim.bitserial import BitSerialModel
    from codesign.sim.lut_tc import TensorCoreModel

    models: dict[str, type] = {"bitserial": BitSerialModel, "tensor_core": TensorCoreModel}
    family = getattr(hardware, "family", None)
    if family not in models:
        raise InputError(
            f"{getattr(hardware, 'name', hardware)!r}: no cost model for hardware family "
            f"{family!r} (known: {', '.join(models)})"
        )
    return models[family]()


class EinsumKind(Enum):
    MAC = "mac"  # a loop nest of MACs, mapped onto the array
    VECTOR = "vector"  # elementwise / reduction ops on the PEs
    VIEW = "view"  # data movement folded into the consumer's addressing


@dataclass(frozen=True, slots=True)
class EinsumResult:
    name: str
    op: str
    kind: EinsumKind
    cost: Cost
    mapping: Mapping | None = None
    evaluations: int = 0


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """Per-Einsum costs of one cascade on one arch; totals assume layer-by-layer execution."""

    model: str
    arch: str
    clock_ghz: float
    einsums: tuple[EinsumResult, ...]

    @property
    def cycles(self) -> float:
        return sum(e.cost.cycles for e in self.einsums)

    @property
    def energy_pj(self) -> float:
        return sum(e.cost.energy_pj for e in self.einsums)

    @property
    def macs(self) -> int:
        return sum(e.cost.macs for e in self.einsums)

    @property
    def latency_s(self) -> float:
        return self.cycles / (self.clock_ghz * 1e9)

    def energy_by_level_pj(self) -> dict[str, float]:
        """Energy summed per storage level, plus ``compute`` for the MACs/ALU ops."""
        totals: dict[str, float] = {}
        for e in self.einsums:
            for level in e.cost.levels:
                totals[level.name] = totals.get(level.name, 0.0) + level.energy_pj
            totals["compute"] = totals.get("compute", 0.0) + e.cost.compute_energy_pj
        return totals


@dataclass
class CascadeMapper:
    """Maps cascades; the inner `Mapper` caches identical layers across calls."""

    constraints: Constraints = field(default_factory=Constraints)
    options: SearchOptions = field(default_factory=SearchOptions)
    model: CostModel = field(default_factory=AnalyticalModel)
    mapper: Mapper = field(default_factory=Mapper)

    def map(
        self,
        cascade: Cascade,
        arch: Arch | Any,
        given: MappingOf[str, Mapping] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> CascadeResult:
        """Cost every Einsum; MAC Einsums use `given[name]` if present, else the mapper.

        A non-`Arch` hardware (``family: bitserial``, ``family: tensor_core``) is priced by its
        family's `FixedScheduleModel`, as is any arch when `model` is one.
        """
        given = given or {}
        fixed: FixedScheduleModel | None = None
        if not isinstance(arch, Arch):
            fixed = family_model(arch)
        elif isinstance(self.model, FixedScheduleModel):
            fixed = self.model
        results: list[EinsumResult] = []
        for einsum in cascade.einsums:
            if progress is not None:
                progress(einsum.name)
            if einsum.is_view:
                results.append(
                    EinsumResult(
                        einsum.name, einsum.op, EinsumKind.VIEW, vector_cost(einsum, cascade, arch)
                    )
                )
                continue
            problem = problem_from_einsum(einsum, cascade)
            if fixed is not None:  # the hardware fixes the schedule: nothing to search
                kind = EinsumKind.VECTOR if problem is None else EinsumKind.MAC
                cost = fixed.evaluate_einsum(einsum, problem, cascade, arch)
                results.append(EinsumResult(einsum.name, einsum.op, kind, cost))
                continue
            if problem is None:
                results.append(
                    EinsumResult(
                        einsum.name,
                        einsum.op,
                        EinsumKind.VECTOR,
                        vector_cost(einsum, cascade, arch),
                    )
                )
                continue
            if einsum.name in given:
                mapping = given[einsum.name]
                check_mapping(mapping, problem, arch, where=f"mapping of {einsum.name}")
                evaluations = 0
            else:
                found = self.mapper.map(problem, arch, self.constraints, self.options)
                mapping, evaluations = found.mapping, found.evaluations
            cost = self.model.evaluate(problem, mapping, arch)
            results.append(
                EinsumResult(einsum.name, einsum.op, EinsumKind.MAC, cost, mapping, evaluations)
            )
        return CascadeResult(cascade.name, arch.name, arch.clock_ghz, tuple(results))
