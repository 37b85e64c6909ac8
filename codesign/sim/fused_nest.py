"""Price a fused group by the mapper over its shared loop nest (`codesign.mapper.fused_search`).

For every candidate outer tiling (shared axes tiled at the backing store, intermediates at a
single-instance on-chip level whose capacity holds their tiles) the contraction members' inner
nests are searched for one block with the intermediates homed at that level, and each member
is priced over all blocks:

* a contraction: its block's analytical `Cost` times ``blocks`` (the weights and other external
  tensors a block reads are re-read by every block: the inner nest counts them per block);
* a non-MAC member (bias, ReLU, residual add, pooling): `vector_cost` of the whole Einsum with
  its intermediates' traffic moved to the on-chip level (converted to that level's words, at
  its per-word energies, against its bandwidth), and every external tensor's traffic times the
  outer factors of the shared axes its access is not indexed by (a bias vector re-read per
  spatial tile);
* a view costs nothing, unless the group keeps its result on chip (a flatten in front of a
  classifier): then its input is read from the backing store once per block where the tiling
  forces it and its result written to the on-chip level (the consumer's inner nest finds it
  there and never loads it).

The candidate with the best score for the search objective (EDP, latency or energy of the
group: cycles = TeAAL's max over components within a block, summed over the blocks) is
returned with the member costs; `codesign.sim.fused` compares it with the block model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.groups import FusedGroup
from codesign.ir.index import Affine
from codesign.ir.stats import einsum_stats
from codesign.mapper.fused_search import (
    OuterTiling,
    SharedAxis,
    member_jobs,
    outer_tilings,
    search_member_nests,
    shared_axes,
)
from codesign.mapper.mapping import Mapping
from codesign.mapper.memo import Mapper
from codesign.mapper.search_types import Constraints, SearchOptions, objective_score
from codesign.sim.cost import COMPUTE_BOUND, Cost, LevelCost, TensorActions
from codesign.sim.vector import array_words, vector_cost


@dataclass(frozen=True, slots=True)
class FusedNestSearch:
    """What the fused-nest mapper searches with: the spatial model's mapper (and its layer
    cache), the user's constraints and the search options (budget, seed, objective)."""

    mapper: Mapper
    constraints: Constraints
    options: SearchOptions
    candidates_per_level: int = 2  # outer tilings searched per on-chip level
    workers: int = 1  # processes `prefetch_nests` searches the groups' sub-problems over


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """What a group's fused-nest search walks: its shared axes and candidate outer tilings,
    or why it has none."""

    axes: tuple[SharedAxis, ...]
    tilings: tuple[OuterTiling, ...]
    reason: str


def plan_group(
    cascade: Cascade, group: FusedGroup, arch: Arch, search: FusedNestSearch
) -> GroupPlan:
    """The shared axes and candidate outer tilings of ``group`` (`search_group` walks them)."""
    axes = shared_axes(cascade, group)
    tilings, reason = outer_tilings(cascade, group, axes, arch, search.candidates_per_level)
    return GroupPlan(axes, tilings, reason)


def prefetch_nests(
    cascade: Cascade,
    plans: Sequence[tuple[FusedGroup, GroupPlan]],
    arch: Arch,
    search: FusedNestSearch,
) -> None:
    """Search every inner nest the groups' candidate tilings need over ``search.workers``
    processes at once (`Mapper.prefetch_each`), so that `search_group` finds them in the
    mapper's cache.  Each search is seeded as `search_group`'s own, so the results equal a
    run with one worker; a tiling whose earlier member fails is still searched in full here
    (counted in the mapper's statistics), which changes no result."""
    if search.workers < 2:
        return
    jobs = [
        (job.problem, job.constraints)
        for group, plan in plans
        for tiling in plan.tilings
        for job in member_jobs(cascade, group, plan.axes, tiling, arch, search.constraints)
    ]
    search.mapper.prefetch_each(jobs, arch, search.options, search.workers)


@dataclass(frozen=True, slots=True)
class NestChoice:
    """The best fused-nest mapping of a group: its outer tiling, each member's cost over all
    blocks (group order), the contraction members' inner nests and the evaluations spent."""

    tiling: OuterTiling
    level: str
    costs: tuple[tuple[str, Cost], ...]
    nests: tuple[tuple[str, Mapping], ...]
    evaluations: int
    cycles: float
    energy_pj: float


def group_cycles(costs: list[Cost]) -> float:
    """TeAAL's block: the maximum over components (compute, each level) of the members' sum,
    never below the slowest member."""
    components: dict[str, float] = {COMPUTE_BOUND: sum(c.compute_cycles for c in costs)}
    for c in costs:
        for lv in c.levels:
            components[lv.name] = components.get(lv.name, 0.0) + lv.cycles
    return max(max(components.values()), max((c.cycles for c in costs), default=0.0))


def search_group(
    cascade: Cascade,
    group: FusedGroup,
    arch: Arch,
    search: FusedNestSearch,
    plan: GroupPlan | None = None,
) -> tuple[NestChoice | None, str]:
    """The best legal fused-nest mapping of ``group``, or None and why there is none.
    ``plan``: `plan_group`'s, where the caller made it already."""
    plan = plan or plan_group(cascade, group, arch, search)
    axes, tilings = plan.axes, plan.tilings
    if not tilings:
        return None, plan.reason
    best: NestChoice | None = None
    reasons: list[str] = []
    for tiling in tilings:
        nests, why = search_member_nests(
            cascade, group, axes, tiling, arch, search.mapper, search.constraints, search.options
        )
        if why:
            reasons.append(why)
            continue
        block = {n.einsum: n for n in nests}
        costs: list[tuple[str, Cost]] = []
        for name in group.einsums:
            einsum = cascade.einsum(name)
            if name in block:
                costs.append((name, times(block[name].result.cost, tiling.blocks)))
            elif not einsum.is_view or einsum.output.tensor in group.on_chip:
                costs.append((name, _vector_total(einsum, cascade, arch, group, axes, tiling)))
        member_costs = [c for _, c in costs]
        cycles = group_cycles(member_costs)
        energy = sum(c.energy_pj for c in member_costs)
        choice = NestChoice(
            tiling, arch.levels[tiling.level].name, tuple(costs),
            tuple((n.einsum, n.result.mapping) for n in nests),
            sum(n.result.evaluations for n in nests), cycles, energy,
        )  # fmt: skip
        objective = search.options.objective
        if best is None or objective_score(cycles, energy, objective) < objective_score(
            best.cycles, best.energy_pj, objective
        ):
            best = choice
    if best is None:
        return None, f"no legal inner nest ({reasons[0]})"
    return best, ""


def times(cost: Cost, blocks: int) -> Cost:
    """``cost`` of one block repeated ``blocks`` times (one after another)."""
    if blocks == 1:
        return cost
    levels = tuple(
        replace(
            lv,
            cycles=lv.cycles * blocks,
            energy_pj=lv.energy_pj * blocks,
            leak_energy_pj=lv.leak_energy_pj * blocks,
            tensors=tuple(
                replace(
                    a,
                    reads=a.reads * blocks,
                    fills=a.fills * blocks,
                    updates=a.updates * blocks,
                    energy_pj=a.energy_pj * blocks,
                )
                for a in lv.tensors
            ),  # fmt: skip
        )
        for lv in cost.levels
    )
    return replace(
        cost, cycles=cost.cycles * blocks, energy_pj=cost.energy_pj * blocks,
        macs=cost.macs * blocks, compute_cycles=cost.compute_cycles * blocks,
        compute_energy_pj=cost.compute_energy_pj * blocks, levels=levels,
    )  # fmt: skip


def _refetch(einsum: Einsum, tensor: str, axes: tuple[SharedAxis, ...],
             tiling: OuterTiling) -> int:  # fmt: skip
    """How often the blocks move ``tensor`` in full: the product of the outer factors of the
    tiled axes whose variable does not index the member's access to it."""
    factors = dict(tiling.factors)
    access = next((a for a in (einsum.output, *einsum.inputs) if a.tensor == tensor), None)
    if access is None:
        return 1
    used = {v for i in access.indices if isinstance(i, Affine) for v, _ in i.terms}
    return math.prod(
        factors[a.name]
        for a in axes
        if a.name in factors and dict(a.variables)[einsum.name] not in used
    )


def _vector_total(
    einsum: Einsum,
    cascade: Cascade,
    arch: Arch,
    group: FusedGroup,
    axes: tuple[SharedAxis, ...],
    tiling: OuterTiling,
) -> Cost:
    """A non-MAC member over all blocks (module docstring)."""
    price = _view_copy if einsum.is_view else vector_cost
    cost = price(einsum, cascade, arch)
    dram, chip = arch.levels[0], arch.levels[tiling.level]
    ratio = dram.word_bits / chip.word_bits
    backing: list[TensorActions] = []
    on_chip: list[TensorActions] = []
    for a in cost.levels[0].tensors:
        if a.tensor in group.on_chip:
            reads, fills = a.reads * ratio, a.fills * ratio
            pj = reads * chip.read_energy_pj + fills * chip.write_energy_pj
            on_chip.append(TensorActions(a.tensor, reads, fills, 0.0, 0, pj))
        else:
            k = _refetch(einsum, a.tensor, axes, tiling)
            backing.append(replace(a, reads=a.reads * k, fills=a.fills * k,
                                   energy_pj=a.energy_pj * k))  # fmt: skip
    levels = (
        _level(dram.name, backing, dram.read_bandwidth_words_per_cycle,
               dram.write_bandwidth_words_per_cycle),
        _level(chip.name, on_chip, chip.read_bandwidth_words_per_cycle,
               chip.write_bandwidth_words_per_cycle),
    )  # fmt: skip
    cycles = max([cost.compute_cycles, 1.0] + [lv.cycles for lv in levels])
    bound = COMPUTE_BOUND
    for lv in levels:
        if lv.cycles >= cycles and lv.cycles > cost.compute_cycles:
            bound = lv.name
            break
    energy = cost.compute_energy_pj + sum(lv.energy_pj for lv in levels)
    utilization = cost.utilization * cost.cycles / cycles if cycles else 0.0
    return replace(cost, cycles=cycles, energy_pj=energy, utilization=utilization, bound=bound,
                   levels=levels)  # fmt: skip


def _view_copy(einsum: Einsum, cascade: Cascade, arch: Arch) -> Cost:
    """A view whose result a group keeps on chip (a flatten in front of a classifier): no ops,
    its inputs read and its result written once, as `vector_cost` counts them at the backing
    store (the caller moves the on-chip part to the buffer)."""
    dram = arch.levels[0]
    actions = []
    for tensor, nbytes in einsum_stats(einsum, cascade).tensor_bytes:
        words = array_words(cascade, tensor, nbytes, dram.word_bits)
        if tensor == einsum.output.tensor:
            actions.append(TensorActions(tensor, 0.0, words, 0.0, 0, words * dram.write_energy_pj))
        else:
            actions.append(TensorActions(tensor, words, 0.0, 0.0, 0, words * dram.read_energy_pj))
    level = LevelCost(dram.name, 1, 0, 0.0, sum(a.energy_pj for a in actions), 0.0, tuple(actions))
    return Cost(1.0, level.energy_pj, 0, 0.0, COMPUTE_BOUND, 0.0, 0.0, 0, (level,))


def _level(
    name: str, actions: list[TensorActions], read_bw: float | None, write_bw: float | None
) -> LevelCost:
    reads = sum(a.reads for a in actions)
    writes = sum(a.fills + a.updates for a in actions)
    write_bw = write_bw or read_bw
    cycles = max(reads / read_bw if read_bw else 0.0, writes / write_bw if write_bw else 0.0)
    return LevelCost(name, 1, 0, cycles, sum(a.energy_pj for a in actions), 0.0, tuple(actions))


__all__ = [
    "FusedNestSearch", "GroupPlan", "NestChoice", "group_cycles", "plan_group", "prefetch_nests",
    "search_group", "times",
]  # fmt: skip
