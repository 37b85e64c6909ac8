"""A whole Cascade on one piece of hardware: every Einsum through the family's `HardwareModel`,
layer after layer; the totals assume layer-by-layer execution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codesign.ir.cascade import Cascade
from codesign.mapper.memo import SearchStats
from codesign.sim.cost import EinsumKind, EinsumResult, HardwareModel, SearchesFusedNests
from codesign.sim.fused import GroupResult, price_groups


@dataclass(frozen=True, slots=True)
class CascadeResult:
    """Per-Einsum costs of one cascade on one piece of hardware.  ``area_mm2``: the hardware's
    area where its family knows it."""

    model: str
    arch: str
    clock_ghz: float
    einsums: tuple[EinsumResult, ...]
    family: str = ""
    area_mm2: float | None = None
    groups: tuple[GroupResult, ...] = ()  # fused groups (sim/fused.py), one block each
    # the mapper's work on the groups' shared nests (sim/fused_nest.py); None: no such search
    fused_nest_stats: SearchStats | None = field(default=None, compare=False)

    @property
    def cycles(self) -> float:
        """Blocks run one after another: ungrouped Einsums, then each fused group as one."""
        grouped = {n for g in self.groups for n in g.einsums}
        alone = sum(e.cost.cycles for e in self.einsums if e.name not in grouped)
        return alone + sum(g.cycles for g in self.groups)

    @property
    def energy_pj(self) -> float:
        return sum(e.cost.energy_pj for e in self.einsums)

    @property
    def macs(self) -> int:
        return sum(e.cost.macs for e in self.einsums)

    @property
    def latency_s(self) -> float:
        return self.cycles / (self.clock_ghz * 1e9)

    @property
    def utilization(self) -> float:
        """MAC-weighted utilization over the Einsums that do MACs (0 without any)."""
        busy = sum(e.cost.utilization * e.cost.cycles for e in self.einsums if e.cost.macs)
        cycles = sum(e.cost.cycles for e in self.einsums if e.cost.macs)
        return busy / cycles if cycles else 0.0

    def energy_by_level_pj(self) -> dict[str, float]:
        """Energy summed per storage level, plus ``compute`` for the MACs/ALU ops."""
        totals: dict[str, float] = {}
        for e in self.einsums:
            for level in e.cost.levels:
                totals[level.name] = totals.get(level.name, 0.0) + level.energy_pj
            totals["compute"] = totals.get("compute", 0.0) + e.cost.compute_energy_pj
        return totals

    def of_kind(self, kind: EinsumKind) -> tuple[EinsumResult, ...]:
        return tuple(e for e in self.einsums if e.kind is kind)


def map_cascade(
    cascade: Cascade,
    hw: Any,
    model: HardwareModel,
    *,
    name: str,
    clock_ghz: float,
    family: str = "",
    progress: Callable[[str], None] | None = None,
) -> CascadeResult:
    """Price every Einsum of `cascade` on `hw` with its family's `model`, then its fused
    groups.  ``progress``: called with each Einsum's, then each priced group's name."""
    results: list[EinsumResult] = []
    for einsum in cascade.einsums:
        if progress is not None:
            progress(einsum.name)
        results.append(model.evaluate(einsum, cascade, hw))
    area = model.area_mm2(hw)
    if not cascade.groups:
        return CascadeResult(cascade.name, name, clock_ghz, tuple(results), family, area)
    # fused groups, one block each; a model that searches mappings also maps their shared nest
    nest = model.fused_nest_search(cascade, hw) if isinstance(model, SearchesFusedNests) else None
    before = nest.mapper.stats if nest is not None else None
    priced, groups = price_groups(cascade, results, hw, nest, progress)
    spent = nest.mapper.stats.minus(before) if nest is not None and before is not None else None
    return CascadeResult(cascade.name, name, clock_ghz, priced, family, area, groups, spent)
