"""The mapper over a fused group's shared loop nest (issue 11, item 4).

A fused group (`codesign.ir.groups.FusedGroup`) runs as one kernel.  Its mapping is

* a **shared outer nest**: loops over the group's *shared axes* -- ranks every member walks in
  step -- tiled at the backing store (DRAM).  One iteration of the shared nest is a *block*;
  the group runs ``blocks = prod(outer factors)`` of them, one after another;
* the **on-chip level** that holds the group's intermediates (`FusedGroup.on_chip`) for one
  block: a storage level with a single instance (a buffer every PE reaches) whose capacity
  holds all intermediate tiles of a block at once (conservative, as the `fuse` pass counts);
* one **inner nest per contraction member**: the member's sub-problem for one block (its dims
  on the shared axes divided by the outer factors), searched by the ordinary `Mapper` with the
  intermediates bypassing every level above the on-chip one, so the intermediate's home is
  that level: the analytical model then charges its traffic there and counts its tile against
  that level's capacity; non-MAC members (bias, ReLU, residual add, pooling) are priced per
  block by the cost room above (`codesign.sim.fused_nest`).

A shared axis comes from the intermediates: rank ``k`` of an on-chip tensor ``T`` in `T`'s
shared prefix (`codesign.passes.fuse.shared_tile_bytes`: written at a plain variable by its
producer, read at a plain, unreduced variable by every consumer) links the producer's loop
variable to each consumer's.  A connected set of (member, variable) links is an axis of the
group when it names exactly one variable of *every* member (a member that did not walk the
axis would be recomputed per block).  A conv -> conv chain through a windowed read shares only
the batch rank; a contraction with elementwise epilogues shares every output rank.

External tensors (weights, the group's input and output, a bias, a residual operand) are
re-fetched per block where the shared tiling forces it: a member's sub-problem reads its
weights once per block, so a weight re-read per outer tile is counted by the inner nest.

`outer_tilings` lists the candidate outer tilings per on-chip level (capacity-checked, ranked
by the external traffic they imply, then by the number of blocks; two per level by default:
a third moved the CNN's and ResNet-18's totals by at most 2% at 1.3-1.5x the search time);
`search_member_nests` searches the inner nests of one candidate.  Everything here is
deterministic for a seed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.groups import FusedGroup
from codesign.ir.index import Affine
from codesign.mapper.from_ir import problem_from_einsum
from codesign.mapper.mapping import default_keep
from codesign.mapper.memo import Mapper
from codesign.mapper.problem import Problem
from codesign.mapper.search_types import Constraints, SearchOptions, SearchResult

MAX_TILINGS = 4096  # outer tilings scored per on-chip level before ranking (divisor products)


@dataclass(frozen=True, slots=True)
class SharedAxis:
    """A rank all members of a group walk in step: each member's loop variable on it."""

    name: str  # the first intermediate's rank it was found on, e.g. ``D0``
    extent: int
    variables: tuple[tuple[str, str], ...]  # (member Einsum, its loop variable), member order


@dataclass(frozen=True, slots=True)
class OuterTiling:
    """The shared outer nest: an outer factor per shared axis, and where intermediates live.

    ``tile_words``: words of all intermediates one block keeps at ``level`` (one word per
    element, as the analytical model counts tiles); ``external_words``: words of the group's
    external tensors the backing store moves over all blocks (re-fetches included), the
    ranking key; both per the whole group.
    """

    level: int  # arch level index holding the intermediates
    factors: tuple[tuple[str, int], ...]  # (axis name, outer factor), factors > 1 only
    blocks: int
    tile_words: int
    capacity_words: int
    external_words: float


@dataclass(frozen=True, slots=True)
class MemberNest:
    """A contraction member's inner nest for one block."""

    einsum: str
    problem: Problem  # the block's sub-problem
    result: SearchResult


def _union_find(
    pairs: list[tuple[tuple[str, str], tuple[str, str]]],
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return groups


def shared_axes(cascade: Cascade, group: FusedGroup) -> tuple[SharedAxis, ...]:
    """The group's shared axes (module docstring), in the order their intermediates appear."""
    from codesign.passes.fuse import shared_tile_bytes  # the pass's own definition of the nest

    members = set(group.einsums)
    links: list[tuple[tuple[str, str], tuple[str, str]]] = []
    labels: dict[tuple[str, str], str] = {}
    for tensor in group.on_chip:
        producers = [e for e in cascade.producers(tensor) if e.name in members]
        if len(producers) != 1:
            continue
        producer = producers[0]
        _, ranks = shared_tile_bytes(cascade, tensor)
        for k, rank in enumerate(ranks):
            index = producer.output.indices[k]
            assert isinstance(index, Affine) and index.plain_var is not None
            source = (producer.name, index.plain_var)
            labels.setdefault(source, rank)
            for consumer in cascade.consumers(tensor):
                for access in consumer.inputs:
                    if access.tensor == tensor:
                        read = access.indices[k]
                        assert isinstance(read, Affine) and read.plain_var is not None
                        links.append((source, (consumer.name, read.plain_var)))
    order = {name: i for i, name in enumerate(group.einsums)}
    axes: list[SharedAxis] = []
    for _, nodes in sorted(_union_find(links).items(), key=lambda kv: kv[0]):
        owners = [member for member, _ in nodes]
        if sorted(owners) != sorted(members):  # not every member, or one member twice
            continue
        extents = {cascade.einsum(m).extents[v] for m, v in nodes}
        if len(extents) != 1:
            continue
        label = next(labels[n] for n in sorted(nodes) if n in labels)
        variables = tuple(sorted(nodes, key=lambda n: order[n[0]]))
        axes.append(SharedAxis(label, extents.pop(), variables))
    return tuple(axes)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _indexed_by(access_vars: set[str], member: str, axes: tuple[SharedAxis, ...]) -> list[bool]:
    """Per axis: whether the member's variable on it indexes the access."""
    return [dict(a.variables)[member] in access_vars for a in axes]


def _access_vars(indices) -> set[str]:
    return {v for i in indices if isinstance(i, Affine) for v, _ in i.terms}


@dataclass(frozen=True, slots=True)
class _Footprint:
    """One tensor a member moves: its words, and per axis whether the member's access to it
    is indexed by that axis (tiling an axis that does not index it re-fetches it per block)."""

    words: int
    indexed: tuple[bool, ...]


def _footprints(
    cascade: Cascade, group: FusedGroup, axes: tuple[SharedAxis, ...]
) -> tuple[list[_Footprint], list[_Footprint]]:
    """(on-chip tensors as their producers write them, external tensors as members move them)."""
    on_chip: list[_Footprint] = []
    external: list[_Footprint] = []
    for name in group.einsums:
        einsum = cascade.einsum(name)
        out = einsum.output
        if einsum.is_view and out.tensor not in group.on_chip:
            continue  # folded into its consumer's addressing
        out_fp = _Footprint(cascade.tensor(out.tensor).size,
                            tuple(_indexed_by(_access_vars(out.indices), name, axes)))  # fmt: skip
        (on_chip if out.tensor in group.on_chip else external).append(out_fp)
        for access in einsum.inputs:
            if access.tensor in group.on_chip or not cascade.has_tensor(access.tensor):
                continue
            indexed = tuple(_indexed_by(_access_vars(access.indices), name, axes))
            external.append(_Footprint(cascade.tensor(access.tensor).size, indexed))
    return on_chip, external


def _scaled(fp: _Footprint, factors: tuple[int, ...], blocks: int) -> float:
    """Words of ``fp`` moved over all blocks: the per-block tile times the blocks."""
    divide = math.prod(f for f, hit in zip(factors, fp.indexed, strict=True) if hit)
    return fp.words / divide * blocks


def holding_levels(cascade: Cascade, group: FusedGroup, arch: Arch) -> tuple[int, ...]:
    """Levels below the backing store that can hold the group's intermediates: one instance
    (every PE reaches it), a capacity, and keeping each intermediate's role in every
    contraction member that touches it."""
    levels = []
    problems = [
        (p, cascade.einsum(n))
        for n in group.einsums
        for p in (problem_from_einsum(cascade.einsum(n), cascade),)
        if p is not None
    ]
    for index in range(1, len(arch.levels)):
        level = arch.levels[index]
        if arch.instances(index) != 1 or level.size_words is None:
            continue
        keeps = True
        for problem, _ in problems:
            may = default_keep(problem, arch, index)
            for tensor in problem.tensors:
                if _base(tensor.name) in group.on_chip and tensor.name not in may:
                    keeps = False
        if keeps:
            levels.append(index)
    return tuple(levels)


def outer_tilings(
    cascade: Cascade,
    group: FusedGroup,
    axes: tuple[SharedAxis, ...],
    arch: Arch,
    per_level: int = 2,
) -> tuple[tuple[OuterTiling, ...], str]:
    """Up to ``per_level`` candidate outer tilings per holding level whose intermediate tiles
    fit the level, fewest external words first (then fewest blocks); and, when there is none,
    why (the smallest tile against the largest capacity)."""
    levels = holding_levels(cascade, group, arch)
    if not levels:
        return (), "no single-instance level below the backing store keeps the intermediates"
    on_chip, external = _footprints(cascade, group, axes)
    choices = [_divisors(a.extent) for a in axes]
    combos = list(itertools.islice(itertools.product(*choices), MAX_TILINGS))
    scored = []
    for factors in combos:
        blocks = math.prod(factors)
        tile = math.ceil(sum(_scaled(fp, factors, 1) for fp in on_chip))
        moved = sum(_scaled(fp, factors, blocks) for fp in external)
        scored.append((moved, blocks, tile, factors))
    scored.sort()
    smallest = min((s[2] for s in scored), default=0)
    out: list[OuterTiling] = []
    for index in levels:
        capacity = arch.levels[index].size_words
        assert capacity is not None
        fitting = [s for s in scored if s[2] <= capacity][:per_level]
        for moved, blocks, tile, factors in fitting:
            named = tuple((a.name, f) for a, f in zip(axes, factors, strict=True) if f > 1)
            out.append(OuterTiling(index, named, blocks, tile, capacity, moved))
    if not out:
        largest = max(levels, key=lambda i: arch.levels[i].size_words or 0)
        level = arch.levels[largest]
        return (), (
            f"intermediates need {smallest:,} words per block at best; {level.name} holds "
            f"{level.size_words:,}"
        )
    return tuple(out), ""


def _base(tensor: str) -> str:
    """The IR tensor a problem tensor stands for (`problem_from_einsum` suffixes ``_out``)."""
    return tensor[: -len("_out")] if tensor.endswith("_out") else tensor


def sub_problem(problem: Problem, member: str, axes: tuple[SharedAxis, ...],
                tiling: OuterTiling) -> Problem:  # fmt: skip
    """``problem`` for one block: its dims on tiled shared axes divided by the outer factors."""
    factors = dict(tiling.factors)
    divide = {dict(a.variables)[member]: factors[a.name] for a in axes if a.name in factors}
    dims = tuple((d, b // divide.get(d, 1)) for d, b in problem.dims)
    return replace(problem, dims=dims)


@dataclass(frozen=True, slots=True)
class MemberJob:
    """A contraction member's search for one block: its sub-problem, and the user's
    constraints with the group's intermediates bypassing every level above the on-chip one."""

    einsum: str
    problem: Problem
    constraints: Constraints


def member_jobs(
    cascade: Cascade,
    group: FusedGroup,
    axes: tuple[SharedAxis, ...],
    tiling: OuterTiling,
    arch: Arch,
    constraints: Constraints,
) -> tuple[MemberJob, ...]:
    """The searches `search_member_nests` runs for ``tiling``, in member order (what
    `codesign.sim.fused_nest.prefetch_nests` hands to the mapper's workers up front)."""
    above = [lv.name for lv in arch.levels[: tiling.level]]
    jobs: list[MemberJob] = []
    for name in group.einsums:
        einsum: Einsum = cascade.einsum(name)
        problem = problem_from_einsum(einsum, cascade)
        if problem is None:
            continue
        block = sub_problem(problem, name, axes, tiling)
        chip = [t.name for t in block.tensors if _base(t.name) in group.on_chip]
        bypass = tuple((lv, t) for t in chip for lv in above)
        mine = replace(constraints, bypass=constraints.bypass + bypass)
        jobs.append(MemberJob(name, block, mine))
    return tuple(jobs)


def search_member_nests(
    cascade: Cascade,
    group: FusedGroup,
    axes: tuple[SharedAxis, ...],
    tiling: OuterTiling,
    arch: Arch,
    mapper: Mapper,
    constraints: Constraints,
    options: SearchOptions,
) -> tuple[tuple[MemberNest, ...], str]:
    """The inner nest of every contraction member for one block of ``tiling``, with the
    group's intermediates homed at ``tiling.level``; or () and why no legal mapping exists
    (a member's search failed, or the intermediates plus a member's own tiles overflow the
    level)."""
    level = arch.levels[tiling.level]
    nests: list[MemberNest] = []
    for job in member_jobs(cascade, group, axes, tiling, arch, constraints):
        name, block = job.einsum, job.problem
        try:
            found = mapper.map(block, arch, job.constraints, options)
        except InputError as error:
            return (), f"{name}: {error}"
        used = found.cost.levels[tiling.level]
        own_chip = sum(a.tile_words for a in used.tensors if _base(a.tensor) in group.on_chip)
        need = tiling.tile_words + used.capacity_words_used - own_chip
        assert level.size_words is not None
        if need > level.size_words:
            return (), (
                f"{name}: intermediates {tiling.tile_words:,} + its own tiles "
                f"{used.capacity_words_used - own_chip:,} words > {level.name} "
                f"{level.size_words:,}"
            )
        nests.append(MemberNest(name, block, found))
    return tuple(nests), ""


__all__ = [
    "MemberJob", "MemberNest", "OuterTiling", "SharedAxis", "holding_levels", "member_jobs",
    "outer_tilings", "search_member_nests", "shared_axes", "sub_problem",
]  # fmt: skip
