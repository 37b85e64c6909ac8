"""The immutable Cost record every cost model returns and the mapper ranks.

``bound`` is ``"compute"`` or the limiting level's name; units are in the names (cycles, pJ,
words).  `codesign.sim.cost` re-exports these next to the cost-model protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

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
