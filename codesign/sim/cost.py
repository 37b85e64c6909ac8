"""The cost protocols and the immutable Cost record they return.

Two levels, one record:

* `HardwareModel` -- ``evaluate(einsum, cascade, hw) -> EinsumResult``: what every hardware
  family registered in `codesign.hwmodels.registry` answers with.  A spatial array searches
  its mappings inside it; fixed-schedule families (bit-serial arrays, LUT/MMA tensor cores)
  and roofline devices (GPUs, CPUs, PIUMA) price the Einsum directly.
* `CostModel` -- ``evaluate(problem, mapping, arch) -> Cost``: prices one mapping of a loop
  nest on a spatial `Arch` (the analytical nest analysis, the cycle-level systolic model).

Constructors never compute; Cost is a value.  The record itself lives in
`codesign.mapper.cost_record` (the mapper ranks Costs; a value type two rooms share sits below
both) and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade, Einsum
from codesign.mapper.cost_record import COMPUTE_BOUND, Cost, LevelCost, TensorActions
from codesign.mapper.mapping import Mapping
from codesign.mapper.problem import Problem

if TYPE_CHECKING:
    from codesign.sim.fused_nest import FusedNestSearch


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

    def notes(self, hw: Any, cascade: Cascade) -> tuple[str, ...]:
        """What the user should know about how `cascade` was priced on `hw` (one line each)."""
        ...



@runtime_checkable
class SearchesFusedNests(Protocol):
    """A `HardwareModel` that also maps a fused group over its shared loop nest
    (`codesign.sim.fused_nest`); a model without it prices groups with the block model
    of `codesign.sim.fused` only.  None: no search for this cascade on `hw`."""

    def fused_nest_search(self, cascade: Cascade, hw: Any) -> FusedNestSearch | None: ...


__all__ = [
    "COMPUTE_BOUND", "Cost", "CostModel", "EinsumKind", "EinsumResult", "HardwareModel",
    "LevelCost", "SearchesFusedNests", "TensorActions",
]  # fmt: skip
