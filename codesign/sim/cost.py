"""The cost protocols and the immutable Cost record they return.

Two levels, one record:

* `HardwareModel` -- ``evaluate(einsum, cascade, hw) -> EinsumResult``: what every hardware
  family registered in `codesign.hwmodels.registry` answers with.  A spatial array searches
  its mappings inside it; fixed-schedule families (bit-serial arrays, LUT/MMA tensor cores)
  and roofline devices (GPUs, CPUs, PIUMA) price the Einsum directly.
* `CostModel` -- ``evaluate(problem, mapping, arch) -> Cost``: prices one mapping of a loop
  nest on a spatial `Arch` (the analytical nest analysis, the cycle-level systolic model).

Constructors never compute; Cost is a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade, Einsum
from codesign.mapper.mapping import Mapping
from codesign.mapper.problem import Problem

COMPUTE_BOUND = "compute"


@dataclass(frozen=True, slots=True)
class TensorActions:
    """Actions on one tensor at one level, summed over the level's utilized instances."""

    tensor: str
    reads: float
    fills: float  # writes from the parent level
    updates: float  # partial-sum writes from the child level
    tile_words: int  # per instance
    energy_pj: float


@dataclass(frozen=True, slots=True)
class LevelCost:
    name: str
    utilized_instances: int
    capacity_words_used: int  # per instance, all kept tensors
    cycles: float  # traffic / bandwidth at this level
    energy_pj: float  # actions plus leakage
    leak_energy_pj: float
    tensors: tuple[TensorActions, ...]


@dataclass(frozen=True, slots=True)
class Cost:
    """Result of evaluating one mapping. ``bound`` is ``"compute"`` or the limiting level's name.

    ``valid`` is False for an over-capacity or otherwise illegal mapping; ``reason`` says why and
    ``cycles``/``energy_pj`` are then infinite.
    """

    cycles: float
    energy_pj: float
    macs: int
    utilization: float  # macs / (cycles * compute instances)
    bound: str
    compute_cycles: float
    compute_energy_pj: float
    utilized_pes: int
    levels: tuple[LevelCost, ...]
    valid: bool = True
    reason: str = ""

    @property
    def edp(self) -> float:
        """Energy-delay product in pJ * cycles."""
        return self.energy_pj * self.cycles

    def energy_per_mac_fj(self) -> dict[str, float]:
        """fJ per MAC per level and for the MACs themselves (Timeloop's summary breakdown)."""
        breakdown = {level.name: level.energy_pj * 1000 / self.macs for level in self.levels}
        breakdown[COMPUTE_BOUND] = self.compute_energy_pj * 1000 / self.macs
        return breakdown


class CostModel(Protocol):
    """Anything that can price a mapping of a problem on an arch."""

    def evaluate(self, problem: Problem, mapping: Mapping, arch: Arch) -> Cost: ...


class EinsumKind(Enum):
    """How an Einsum runs on the hardware."""

    MAC = "mac"  # a loop nest of MACs, on the array / tensor units
    VECTOR = "vector"  # elementwise / reduction ops on the PEs or vector units
    VIEW = "view"  # data movement folded into the consumer's addressing


@dataclass(frozen=True, slots=True)
class EinsumResult:
    """One Einsum's `Cost` on one piece of hardware, with the mapping it was reached by (spatial
    arrays) and the mapper evaluations spent finding it."""

    name: str
    op: str
    kind: EinsumKind
    cost: Cost
    mapping: Mapping | None = None
    evaluations: int = 0


class HardwareModel(Protocol):
    """A hardware family's cost model: prices any Einsum of a cascade on that family's
    hardware (searching mappings itself where the hardware leaves the schedule open)."""

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: Any) -> EinsumResult: ...

    def area_mm2(self, hw: Any) -> float | None:
        """Silicon area of `hw` where the family knows it."""
        ...

    def notes(self, hw: Any) -> tuple[str, ...]:
        """What the user should know about how `hw` was priced (one line each)."""
        ...
