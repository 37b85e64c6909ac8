"""Price fused groups (`codesign.ir.groups`) from the per-Einsum costs of any cost model.

Every cost model returns a `Cost` whose first level is the backing store (DRAM) with one
`TensorActions` per tensor.  A fused group is priced in three steps, the first model of
issue 11 (TeAAL's block model):

1. **On-chip intermediates.**  Each member's backing-store actions on a tensor of the group's
   `on_chip` list are removed and charged instead at the *on-chip level*: on a spatial `Arch`
   the outermost level below DRAM at which the anchor contraction's mapping keeps that tensor
   (the level the mapping chooses; the first level below DRAM when no mapping keeps it), priced
   at that level's per-word read/write energy after converting DRAM words to its word width;
   on a fixed-schedule family the cost's own second level (its buffers) at the energy per unit
   it charged there, or nothing when the family prices no on-chip level (register epilogues).
2. **The group's backing-store traffic belongs to the kernel.**  What non-anchor members
   still move to or from the backing store (the group's result written by a final ReLU, a bias
   vector, a residual operand) is charged to the anchor row (the group's first contraction,
   else its first member), so an epilogue row says what the epilogue adds to the kernel: its
   ALU ops and on-chip accesses.  Totals are unchanged by the move; `GroupResult.epilogue_
   loads_pj` keeps the share that epilogue operands (bias, residual) load.
3. **One block per group.**  The group's cycles are the maximum over its components (the
   compute units, each storage level) of the sum over members, never below its slowest
   member alone; blocks (groups and ungrouped Einsums) run one after another, so the cascade's
   cycles are the sum over blocks.  Energy is the sum over members.

The backing-store cycles of a member shrink in proportion to the traffic units removed.

On a spatial `Arch` priced analytically, `price_groups` also receives a `FusedNestSearch`
(`SpatialModel.fused_nest_search`) and maps each group over its shared loop nest
(`codesign.sim.fused_nest`, `codesign.mapper.fused_search`): the shared outer loops tiled at
DRAM, the intermediates homed at a capacity-checked on-chip level, each contraction's inner
nest searched for one block.  The group is priced by that mapping when one is legal and it
scores no worse than the block model for the search objective; otherwise by the block model,
which is also the only model of the fixed-schedule families, the cycle-level and sparse models
and given mappings.  `GroupResult.model` and ``reason`` say which model priced a group and why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade
from codesign.ir.groups import FusedGroup
from codesign.mapper.mapping import Mapping
from codesign.mapper.search_types import objective_score
from codesign.sim.cost import Cost, LevelCost, TensorActions
from codesign.sim.fused_nest import (
    FusedNestSearch,
    GroupPlan,
    NestChoice,
    group_cycles,
    plan_group,
    prefetch_nests,
    search_group,
)

REGISTERS = "registers"  # the on-chip level of a family that prices none
BLOCK = "block"  # GroupResult.model: TeAAL's block model over the members' own mappings
FUSED_NEST = "fused-nest"  # GroupResult.model: the mapper over the group's shared loop nest
NO_SEARCH = (
    "no fused-nest search: the cost model fixes its schedule (a fixed-schedule family, "
    "--model cycle, the sparse model or given mappings)"
)


@dataclass(frozen=True, slots=True)
class GroupResult:
    """One fused group priced as one kernel (block).

    ``backing_accesses`` counts the backing-store actions left (reads + fills + updates, in
    the cost model's DRAM unit: words on spatial arrays); ``saved_energy_pj`` is the energy
    of the intermediates' backing-store traffic removed minus what it costs on chip.
    """

    name: str
    kind: str
    einsums: tuple[str, ...]
    on_chip: tuple[str, ...]
    on_chip_level: str
    cycles: float
    energy_pj: float
    macs: int
    backing_accesses: float
    saved_energy_pj: float
    epilogue_loads_pj: float = 0.0  # backing-store energy of non-anchor members, now the anchor's
    model: str = BLOCK  # which model priced the group: BLOCK or FUSED_NEST
    reason: str = ""  # why that model (the objective of both, or why no fused nest exists)
    shared_loops: tuple[tuple[str, int], ...] = ()  # fused nest: (shared axis, outer factor)
    blocks: int = 1  # fused nest: iterations of the shared outer nest
    tile_words: int = 0  # fused nest: words of intermediates one block keeps on chip
    capacity_words: int = 0  # fused nest: capacity of the on-chip level
    nests: tuple[tuple[str, Mapping], ...] = ()  # fused nest: each contraction's block mapping

    @property
    def loops_text(self) -> str:
        """The shared outer loops, ``P/2, M/4`` (axis / outer factor), or ``-`` for none."""
        return ", ".join(f"{axis}/{factor}" for axis, factor in self.shared_loops) or "-"

    @property
    def reuse(self) -> float:
        """MACs per backing-store access (higher: more reuse on chip)."""
        return self.macs / self.backing_accesses if self.backing_accesses else float("inf")


@dataclass(frozen=True, slots=True)
class _OnChip:
    """Where a group's intermediates live and what one backing-store unit costs there."""

    name: str
    read_pj_per_unit: float
    write_pj_per_unit: float


def price_groups(
    cascade: Cascade,
    members: Sequence[Any],
    hardware: Any,
    nest: FusedNestSearch | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[tuple[Any, ...], tuple[GroupResult, ...]]:
    """Adjusted per-Einsum results (`EinsumResult`s, same order) and one result per group.

    With ``nest`` (a spatial `Arch` priced analytically) each group is also mapped over its
    shared loop nest (`codesign.sim.fused_nest`) and priced that way when it finds a legal
    mapping that scores no worse than the block model for the search objective; the group's
    ``model`` and ``reason`` say which model priced it and why.  ``progress``: called with each
    group's name before it is priced."""
    by_name = {r.name: r for r in members}
    adjusted = dict(by_name)
    results: list[GroupResult] = []
    groups = [g for g in cascade.groups if any(n in by_name for n in g.einsums)]
    plans: dict[str, GroupPlan] = {}
    if nest is not None:  # every group's inner nests searched over the workers at once
        plans = {g.name: plan_group(cascade, g, hardware, nest) for g in groups}
        prefetch_nests(cascade, [(g, plans[g.name]) for g in groups], hardware, nest)
    for group in groups:
        if progress is not None:
            progress(group.name)
        rows = [by_name[n] for n in group.einsums if n in by_name]
        chosen, result = _block_model(cascade, group, rows, hardware)
        if nest is None:
            result = replace(result, reason=NO_SEARCH)
        else:
            chosen, result = _best_of(cascade, group, rows, hardware, nest, chosen, result,
                                      plans[group.name])  # fmt: skip
        adjusted.update(chosen)
        results.append(result)
    return tuple(adjusted[r.name] for r in members), tuple(results)


def _block_model(
    cascade: Cascade, group: FusedGroup, rows: list[Any], hardware: Any
) -> tuple[dict[str, Any], GroupResult]:
    """TeAAL's block model from the members' own mappings (module docstring)."""
    adjusted = {}
    anchor = next((r for r in rows if r.mapping is not None or r.cost.macs), rows[0])
    level = _on_chip_levels(cascade, group, [r.cost for r in rows], hardware)
    moved: list[TensorActions] = []
    moved_cycles = 0.0
    saved = 0.0
    outputs = {cascade.einsum(r.name).output.tensor for r in rows}
    for r in rows:
        if r is anchor:
            continue
        cost, out, out_cycles, delta = _adjust(r.cost, set(group.on_chip), True, level)
        adjusted[r.name] = replace(r, cost=cost)
        moved += out
        moved_cycles += out_cycles
        saved += delta
    cost, _, _, delta = _adjust(anchor.cost, set(group.on_chip), False, level)
    adjusted[anchor.name] = replace(anchor, cost=_add_stores(cost, moved, moved_cycles))
    saved += delta
    loads = sum(a.energy_pj for a in moved if _base(a.tensor) not in outputs)
    costs = [adjusted[r.name].cost for r in rows]
    result = replace(_group_result(group, costs, level, saved), epilogue_loads_pj=loads)
    return adjusted, result


def _best_of(
    cascade: Cascade,
    group: FusedGroup,
    rows: list[Any],
    arch: Arch,
    nest: FusedNestSearch,
    block_rows: dict[str, Any],
    block: GroupResult,
    plan: GroupPlan,
) -> tuple[dict[str, Any], GroupResult]:
    """The fused-nest pricing of ``group`` when legal and no worse than ``block`` (the block
    model) for the search objective; else the block model, with the reason."""
    choice, why = search_group(cascade, group, arch, nest, plan)
    objective = nest.options.objective
    if choice is None:
        return block_rows, replace(block, reason=f"no fused nest: {why}")
    nest_rows, result = _nest_model(cascade, group, rows, choice)
    ours = objective_score(result.cycles, result.energy_pj, objective)
    theirs = objective_score(block.cycles, block.energy_pj, objective)
    if ours <= theirs:
        why = f"fused nest {objective.value} {ours:.4g} <= block model {theirs:.4g}"
        return nest_rows, replace(result, reason=why)
    why = f"block model {objective.value} {theirs:.4g} < fused nest {ours:.4g}"
    return block_rows, replace(block, reason=why)


def _nest_model(
    cascade: Cascade, group: FusedGroup, rows: list[Any], choice: NestChoice
) -> tuple[dict[str, Any], GroupResult]:
    """The members priced by the fused nest ``choice``; as in the block model, what non-anchor
    members still move to or from the backing store is charged to the anchor row."""
    costs = dict(choice.costs)
    by_name = {r.name: r for r in rows}
    priced = [replace(r, cost=costs[r.name]) if r.name in costs else r for r in rows]
    anchor = next((r for r in priced if r.mapping is not None or r.cost.macs), priced[0])
    adjusted: dict[str, Any] = {}
    moved: list[TensorActions] = []
    moved_cycles = 0.0
    for r in priced:
        if r is anchor:
            continue
        cost, out, out_cycles, _ = _adjust(r.cost, set(), True, {})
        adjusted[r.name] = replace(r, cost=cost)
        moved += out
        moved_cycles += out_cycles
    adjusted[anchor.name] = replace(anchor, cost=_add_stores(anchor.cost, moved, moved_cycles))
    outputs = {cascade.einsum(r.name).output.tensor for r in rows}
    loads = sum(a.energy_pj for a in moved if _base(a.tensor) not in outputs)
    member_costs = [adjusted[r.name].cost for r in rows]
    backing = sum(_units(a) for c in member_costs if c.levels for a in c.levels[0].tensors)
    before = sum(by_name[r.name].cost.energy_pj for r in rows)
    energy = sum(c.energy_pj for c in member_costs)
    tiling = choice.tiling
    result = GroupResult(
        group.name, group.kind.value, group.einsums, group.on_chip, choice.level,
        group_cycles(member_costs), energy, sum(c.macs for c in member_costs), backing,
        before - energy, loads, model=FUSED_NEST, shared_loops=tiling.factors,
        blocks=tiling.blocks, tile_words=tiling.tile_words,
        capacity_words=tiling.capacity_words, nests=choice.nests,
    )  # fmt: skip
    return adjusted, result


def _on_chip_levels(
    cascade: Cascade, group: FusedGroup, costs: list[Cost], hardware: Any
) -> dict[str, _OnChip]:
    """Per on-chip tensor: the outermost level below the backing store at which some member's
    mapping keeps it (the level the mapping chooses) among those whose instances together hold
    the tile of the group's shared nest (`shared_tile_bytes`); else the outermost level below
    DRAM that holds it; else the first level below DRAM."""
    if isinstance(hardware, Arch) and len(hardware.levels) > 1:
        dram = hardware.levels[0]
        kept: dict[str, set[int]] = {t: set() for t in group.on_chip}
        for cost in costs:
            for cost_level in cost.levels[1:]:
                for a in cost_level.tensors:
                    if _base(a.tensor) in kept:
                        kept[_base(a.tensor)].add(hardware.level_index(cost_level.name))
        # imported here: only cascades with fused groups need it, and importing the pass
        # library up front would cost every unfused run (a SCALE-Sim .cfg) its start-up
        from codesign.passes.fuse import shared_tile_bytes

        out = {}
        for t, where in kept.items():
            tile_bits = shared_tile_bytes(cascade, t)[0] * 8
            holds = [i for i in range(1, len(hardware.levels)) if _holds(hardware, i, tile_bits)]
            index = min((i for i in holds if i in where), default=min(holds, default=1))
            level = hardware.levels[index]
            ratio = dram.word_bits / level.word_bits
            out[t] = _OnChip(level.name, level.read_energy_pj * ratio,
                             level.write_energy_pj * ratio)  # fmt: skip
        return out
    anchor = next((c for c in costs if len(c.levels) > 1), None)
    if anchor is not None:
        buffers = anchor.levels[1]
        units = sum(_units(a) for a in buffers.tensors)
        per_unit = buffers.energy_pj / units if units else 0.0
        return {t: _OnChip(buffers.name, per_unit, per_unit) for t in group.on_chip}
    return {t: _OnChip(REGISTERS, 0.0, 0.0) for t in group.on_chip}


def _holds(arch: Arch, index: int, bits: int) -> bool:
    level = arch.levels[index]
    if level.size_words is None:
        return True
    return level.size_words * level.word_bits * arch.instances(index) >= bits


def _base(tensor: str) -> str:
    """The IR tensor a cost-model action is on (mapper suffixes `_out`; sparse `_meta`)."""
    for suffix in ("_out", "_meta", "_metadata"):
        if tensor.endswith(suffix):
            return tensor[: -len(suffix)]
    return tensor


def _units(action: TensorActions) -> float:
    return action.reads + action.fills + action.updates


def _share(actions: list[TensorActions], total: float) -> float:
    """The fraction of a level's traffic units that `actions` make up."""
    return sum(_units(a) for a in actions) / total if total else 0.0


def _adjust(
    cost: Cost, on_chip: set[str], move_rest: bool, level: dict[str, _OnChip]
) -> tuple[Cost, list[TensorActions], float, float]:
    """`cost` with on-chip tensors moved to `level` and, with `move_rest`, every other
    backing-store action taken out (returned, with its backing-store cycles), and the energy
    saved on the backing store net of on chip."""
    if not cost.levels:
        return cost, [], 0.0, 0.0
    backing = cost.levels[0]
    total = sum(_units(a) for a in backing.tensors)
    kept, removed, out = [], [], []
    for a in backing.tensors:
        if _base(a.tensor) in on_chip:
            removed.append(a)
        elif move_rest:
            out.append(a)
        else:
            kept.append(a)
    if not removed and not out:
        return cost, [], 0.0, 0.0
    removed_cycles = backing.cycles * _share(removed, total)
    out_cycles = backing.cycles * _share(out, total)
    chip: dict[str, list[TensorActions]] = {}
    for a in removed:
        at = level[_base(a.tensor)]
        pj = a.reads * at.read_pj_per_unit + (a.fills + a.updates) * at.write_pj_per_unit
        chip.setdefault(at.name, []).append(replace(a, energy_pj=pj))
    removed_pj = sum(a.energy_pj for a in removed)
    out_pj = sum(a.energy_pj for a in out)
    chip_pj = sum(a.energy_pj for acts in chip.values() for a in acts)
    new_backing = replace(
        backing,
        cycles=backing.cycles - removed_cycles - out_cycles,
        energy_pj=backing.energy_pj - removed_pj - out_pj,
        tensors=tuple(kept),
    )
    levels = [new_backing, *cost.levels[1:]]
    for name, acts in chip.items():
        pj = sum(a.energy_pj for a in acts)
        names = [lv.name for lv in levels]
        if name in names:
            lv = levels[names.index(name)]
            levels[names.index(name)] = replace(
                lv, energy_pj=lv.energy_pj + pj, tensors=lv.tensors + tuple(acts)
            )
        else:
            levels.append(LevelCost(name, 1, 0, 0.0, pj, 0.0, tuple(acts)))
    cycles = _cycles(cost, backing.cycles, new_backing.cycles, levels)
    energy = cost.energy_pj - removed_pj - out_pj + chip_pj
    bound = cost.bound if cycles == cost.cycles else _bound(cost, levels, cycles)
    adjusted = replace(cost, cycles=cycles, energy_pj=energy, levels=tuple(levels), bound=bound)
    return adjusted, out, out_cycles, removed_pj - chip_pj


def _cycles(cost: Cost, old_backing: float, new_backing: float, levels: list[LevelCost]) -> float:
    """Cycles after the backing-store time changed: a member bound there speeds up to its next
    component; any other keeps its cycles unless the backing store now exceeds them."""
    others = max([cost.compute_cycles] + [lv.cycles for lv in levels[1:]])
    if cost.bound == cost.levels[0].name:
        return max(cost.cycles - (old_backing - new_backing), others, new_backing, 1.0)
    return max(cost.cycles, new_backing)


def _bound(cost: Cost, levels: list[LevelCost], cycles: float) -> str:
    for lv in levels:
        if lv.cycles >= cycles and lv.cycles > cost.compute_cycles:
            return lv.name
    return "compute"


def _add_stores(cost: Cost, moved: list[TensorActions], moved_cycles: float) -> Cost:
    """The anchor with the group's stores charged to its backing store."""
    if not moved:
        return cost
    if not cost.levels:
        return cost
    backing = cost.levels[0]
    pj = sum(a.energy_pj for a in moved)
    new_backing = replace(
        backing,
        cycles=backing.cycles + moved_cycles,
        energy_pj=backing.energy_pj + pj,
        tensors=backing.tensors + tuple(moved),
    )
    return replace(
        cost,
        cycles=max(cost.cycles, new_backing.cycles),
        energy_pj=cost.energy_pj + pj,
        levels=(new_backing, *cost.levels[1:]),
    )


def _group_result(
    group: FusedGroup, costs: list[Cost], level: dict[str, _OnChip], saved_pj: float
) -> GroupResult:
    cycles = group_cycles(costs)
    backing = sum(_units(a) for c in costs if c.levels for a in c.levels[0].tensors)
    where = "+".join(dict.fromkeys(level[t].name for t in group.on_chip)) or "-"
    return GroupResult(
        group.name, group.kind.value, group.einsums, group.on_chip, where, cycles,
        sum(c.energy_pj for c in costs), sum(c.macs for c in costs), backing, saved_pj,
    )  # fmt: skip
