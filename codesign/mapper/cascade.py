"""Map a whole Cascade onto an Arch: every MAC Einsum through the mapper (or a given mapping),
every other Einsum through the vector model; layers run one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from enum import Enum

from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade
from codesign.mapper.from_ir import problem_from_einsum
from codesign.mapper.mapping import Mapping, check_mapping
from codesign.mapper.search import Constraints, Mapper, SearchOptions
from codesign.sim.analytical import AnalyticalModel
from codesign.sim.cost import Cost, CostModel
from codesign.sim.systolic_cost import SystolicCostModel
from codesign.sim.vector import vector_cost


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
        arch: Arch,
        given: MappingOf[str, Mapping] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> CascadeResult:
        """Cost every Einsum; MAC Einsums use `given[name]` if present, else the mapper."""
        given = given or {}
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
            if isinstance(self.model, SystolicCostModel):  # the dataflow fixes the schedule
                cost = self.model.evaluate(problem, None, arch)
                results.append(EinsumResult(einsum.name, einsum.op, EinsumKind.MAC, cost))
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
