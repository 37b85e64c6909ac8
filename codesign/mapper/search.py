"""The mapper: search tilings, loop orders, spatial unrollings and bypass of one problem on an arch.

Small mapspaces are enumerated (every tiling and spatial split, with one canonical loop order per
level and tensor: the dims that do not index it innermost); large ones are sampled at random in
batches, then improved by local moves around the best mappings found. Every candidate is priced
by a vectorised cost model the caller hands in (`BatchEvaluator`; `codesign.sim.mapping_search`
binds the analytical one), so the mapper never imports the sim room above it. The search is
seeded and deterministic under an evaluation budget (a time budget may stop it earlier) and
always returns the best valid mapping found.
"""

from __future__ import annotations

import enum
import itertools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch, Dataflow
from codesign.mapper.cost_record import Cost
from codesign.mapper.mapping import Mapping, MappingArrays, default_keep, from_arrays
from codesign.mapper.problem import Problem


class BatchScores(Protocol):
    """Costs of a batch of mappings, arrays of shape (B,); invalid rows have infinite cost."""

    @property
    def cycles(self) -> np.ndarray: ...

    @property
    def energy_pj(self) -> np.ndarray: ...

    @property
    def valid(self) -> np.ndarray: ...


class BatchEvaluator(Protocol):
    """A vectorised cost model: prices a batch of mappings, then one row as a `Cost`."""

    def evaluate_batch(self, problem: Problem, arrays: MappingArrays, arch: Arch) -> BatchScores:
        ...

    def cost(self, batch: BatchScores, index: int, problem: Problem, arch: Arch) -> Cost: ...


class Objective(enum.Enum):
    LATENCY = "latency"
    ENERGY = "energy"
    EDP = "edp"


@dataclass(frozen=True, slots=True)
class Constraints:
    """User constraints; the mapper rejects infeasible ones with an InputError, never relaxes them.

    ``fixed_orders``: (level, dims outer to inner) for a level's temporal loops.
    ``max_factors``: (level, dim, largest temporal factor of dim at level).
    ``bypass``: (level, tensor) pairs that must not be kept; ``keep_fixed`` stops the mapper from
    bypassing tensors the arch lets a level keep. ``dataflow``: the innermost temporal loop must
    not index the stationary tensor (None: the arch's hint).
    """

    fixed_orders: tuple[tuple[str, tuple[str, ...]], ...] = ()
    max_factors: tuple[tuple[str, str, int], ...] = ()
    min_utilization: float = 0.0
    bypass: tuple[tuple[str, str], ...] = ()
    keep_fixed: bool = False
    dataflow: Dataflow | None = None
    ignore_arch_dataflow: bool = False
    imperfect: bool = True


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """How long and for what the mapper searches.

    ``patience_evaluations``: a sampled search phase (random sampling, then local moves) ends
    once its best score has not improved for this many evaluations (None: run the budget out).
    On ResNet-18 the best mappings are found within the first few thousand evaluations, so
    this stops most layers well before ``max_evaluations`` without a worse result.
    """

    objective: Objective = Objective.EDP
    seed: int = 0
    max_evaluations: int = 20_000
    time_budget_s: float | None = None
    batch_size: int = 1024
    exhaustive_limit: int = 20_000
    patience_evaluations: int | None = 2048

    def __post_init__(self) -> None:
        for name in ("max_evaluations", "batch_size", "exhaustive_limit", "patience_evaluations"):
            value = getattr(self, name)
            if name == "patience_evaluations" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"mapper {name}={value!r}: must be a positive integer")
        budget = self.time_budget_s
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise InputError(f"mapper time budget {budget!r} s: must be a positive number")


@dataclass(frozen=True, slots=True)
class SearchResult:
    mapping: Mapping
    cost: Cost
    evaluations: int
    valid_evaluations: int
    exhaustive: bool
    elapsed_s: float


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out + ([n] if n > 1 else [])


@dataclass(frozen=True, slots=True)
class _Space:
    """Resolved constraints as index arrays; built once per search."""

    problem: Problem
    arch: Arch
    slots: tuple[tuple[int, int], ...]  # (level, 0 temporal / 1 x / 2 y)
    caps: np.ndarray  # (L, D) max temporal factor
    fixed_orders: dict[int, tuple[int, ...]]
    may_keep: np.ndarray  # (L, T)
    must_keep: np.ndarray  # (L, T)
    stationary: int | None  # tensor index for the dataflow hint
    constraints: Constraints
    relevant: np.ndarray  # (T, D) whether tensor t is indexed by dim d
    slot_level: np.ndarray  # (S,) level of each slot
    slot_kind: np.ndarray  # (S,) 0 temporal, 1 spatial x, 2 spatial y
    slot_room: np.ndarray  # (S,) fan-out of spatial slots (unused for temporal ones)
    can_pad: np.ndarray  # (D,) whether the generator may pad the dim's bound
    variant_primes: np.ndarray  # (D, V, P) prime factors of the bound and its padded variants
    prime_set: np.ndarray  # (K,) every prime of any variant (for mutation moves)


_PAD_MULTIPLES = (2, 4, 8, 16)
_ELITE = 32  # best distinct mappings kept as parents of the local search
_RANDOM_SHARE = 0.5  # of the evaluation budget sampled at random before local search


def _fanout(arch: Arch, level: int, kind: int) -> int:
    """Fan-out of a spatial slot (kind 1: x, 2: y); temporal slots (kind 0) have none."""
    return (0, arch.levels[level].fanout_x, arch.levels[level].fanout_y)[kind]


def _variant_primes(bounds: tuple[int, ...], multiples: tuple[int, ...]) -> np.ndarray:
    """(D, V, P): primes of each bound, then of the bound padded up to each of ``multiples``
    (1-padded on the last axis)."""
    table = [
        [_primes(bound)] + [_primes(-(-bound // m) * m) for m in multiples] for bound in bounds
    ]
    width = max(1, max(len(p) for variants in table for p in variants))
    out = np.ones((len(bounds), 1 + len(multiples), width), dtype=np.int64)
    for d, variants in enumerate(table):
        for v, primes in enumerate(variants):
            out[d, v, : len(primes)] = primes
    return out


def _resolve(problem: Problem, arch: Arch, c: Constraints) -> _Space:
    levels = {lv.name: i for i, lv in enumerate(arch.levels)}
    dims = {d: i for i, d in enumerate(problem.dim_names)}
    tensors = {t.name: i for i, t in enumerate(problem.tensors)}
    n_l, n_d = len(arch.levels), len(dims)

    def level_of(name: str, what: str) -> int:
        if name not in levels:
            raise InputError(f"constraints.{what}: unknown level {name!r}; known {list(levels)}")
        return levels[name]

    caps = np.full((n_l, n_d), np.iinfo(np.int64).max, dtype=np.int64)
    for level, dim, cap in c.max_factors:
        if dim not in dims or cap < 1:
            raise InputError(f"constraints.max_factors: bad dim or factor ({level}, {dim}, {cap})")
        caps[level_of(level, "max_factors"), dims[dim]] = cap
    fixed: dict[int, tuple[int, ...]] = {}
    for level, order in c.fixed_orders:
        if len(set(order)) != len(order) or any(d not in dims for d in order):
            raise InputError(f"constraints.fixed_orders: {level}: bad dims {list(order)}")
        listed = [dims[d] for d in order]
        fixed[level_of(level, "fixed_orders")] = tuple(
            [d for d in range(n_d) if d not in listed] + listed
        )
    may_keep = np.array(
        [[t.name in default_keep(problem, arch, i) for t in problem.tensors] for i in range(n_l)]
    )
    for level, alias in c.bypass:
        index = level_of(level, "bypass")
        resolved = problem.resolve(alias)  # own name or Timeloop's Weights/Inputs/Outputs
        if resolved is None:
            raise InputError(f"constraints.bypass: unknown tensor {alias!r}")
        may_keep[index, tensors[resolved.name]] = False
    must_keep = may_keep.copy() if c.keep_fixed else np.zeros_like(may_keep)
    # Every tensor's home (outermost keeping level) is fixed: DRAM, or for a tensor bypassing
    # DRAM (a fused group's on-chip intermediate) the next level that may keep it.
    for t_index, tensor in enumerate(problem.tensors):
        homes = np.flatnonzero(may_keep[:, t_index])
        if homes.size == 0:
            raise InputError(f"constraints.bypass: tensor {tensor.name} is kept at no level")
        must_keep[homes[0], t_index] = True
    if not 0.0 <= c.min_utilization <= 1.0:
        raise InputError(f"constraints.min_utilization: {c.min_utilization} not in [0, 1]")
    # A level too small for any mapping: even 1-word tiles of its mandatory tensors overflow.
    for index, hw in enumerate(arch.levels):
        need = int(must_keep[index].sum())
        if hw.size_words is not None and need > hw.size_words:
            raise InputError(
                f"{arch.source_path}: levels[{index}] {hw.name}: too small for any mapping "
                f"({need} kept tensors, {hw.size_words} words)"
            )
    slots = []
    for index, hw in enumerate(arch.levels):
        slots.append((index, 0))
        if hw.fanout_x > 1:
            slots.append((index, 1))
        if hw.fanout_y > 1:
            slots.append((index, 2))
    for dim, bound in problem.dims:
        reach = math.prod(
            int(min(caps[lv, dims[dim]], bound))
            if kind == 0
            else (arch.levels[lv].fanout_x if kind == 1 else arch.levels[lv].fanout_y)
            for lv, kind in slots
        )
        if reach < bound:
            raise InputError(
                f"constraints.max_factors: dim {dim} of bound {bound} cannot be covered "
                f"(at most {reach} iterations fit the caps and fan-outs)"
            )
    dataflow = c.dataflow or (None if c.ignore_arch_dataflow else arch.dataflow)
    stationary = None
    if dataflow is not None:
        role = dataflow.stationary_role
        stationary = next((i for i, t in enumerate(problem.tensors) if t.role is role), None)
        looped = {dim for dim, bound in problem.dims if bound > 1}
        if stationary is not None and problem.tensors[stationary].dims() >= looped:
            # No loop can keep the tensor stationary (a GEMV's weights under ws): an explicit
            # constraint is infeasible; the arch's hint simply does not apply to this problem.
            if c.dataflow is not None:
                raise InputError(
                    f"constraints.dataflow: {dataflow.value} impossible: tensor "
                    f"{problem.tensors[stationary].name} is indexed by every dim"
                )
            stationary = None
    relevant = np.array([[d in t.dims() for d in problem.dim_names] for t in problem.tensors])
    # Padding to a multiple of a fan-out lets power-of-two dims fill a 14x12 array.
    fanouts = {f for hw in arch.levels for f in (hw.fanout_x, hw.fanout_y) if f > 1}
    variant_primes = _variant_primes(problem.bounds, tuple(sorted(set(_PAD_MULTIPLES) | fanouts)))
    prime_set = np.unique(variant_primes)
    return _Space(
        problem,
        arch,
        tuple(slots),
        caps,
        fixed,
        may_keep,
        must_keep,
        stationary,
        c,
        relevant=relevant.reshape(len(problem.tensors), n_d),
        slot_level=np.array([lv for lv, _ in slots], dtype=np.int64),
        slot_kind=np.array([kind for _, kind in slots], dtype=np.int64),
        slot_room=np.array([_fanout(arch, lv, kind) for lv, kind in slots], dtype=np.int64),
        can_pad=np.array(problem.bounds) > 4,
        variant_primes=variant_primes,
        prime_set=prime_set[prime_set > 1],
    )


def _score(batch: BatchScores, objective: Objective) -> np.ndarray:
    if objective is Objective.LATENCY:
        return batch.cycles + 1e-9 * np.nan_to_num(batch.energy_pj, posinf=np.inf)
    if objective is Objective.ENERGY:
        return batch.energy_pj + 1e-9 * batch.cycles
    return batch.energy_pj * batch.cycles


def _acceptable(space: _Space, arrays: MappingArrays, batch: BatchScores) -> np.ndarray:
    """Rows that are valid and meet every constraint the generator does not guarantee."""
    problem, arch, c = space.problem, space.arch, space.constraints
    ok = batch.valid.copy()
    ok &= np.all(arrays.temporal <= space.caps[None], axis=(1, 2))
    # Exact coverage: padding must be less than one iteration of each dim's outermost loop.
    stacked = np.stack([arrays.temporal, arrays.spatial_x, arrays.spatial_y], axis=2)
    flat = stacked.reshape(arrays.batch, -1, stacked.shape[-1])  # (B, 3L, D) in nest order
    total = np.prod(flat, axis=1)
    first = np.argmax(flat > 1, axis=1)
    outer = np.take_along_axis(flat, first[:, None, :], axis=1)[:, 0]
    bounds = np.array(problem.bounds)[None, :]
    covers = (total >= bounds) & ((total // outer) * (outer - 1) < bounds)
    ok &= np.all(covers | (total == bounds), axis=1)
    ok &= np.all(arrays.keep >= space.must_keep[None], axis=(1, 2))
    ok &= np.all(arrays.keep <= (space.may_keep | space.must_keep)[None], axis=(1, 2))
    for level, order in space.fixed_orders.items():
        ok &= np.all(arrays.order[:, level] == np.array(order)[None], axis=1)
    if c.min_utilization > 0:
        util = problem.macs / (batch.cycles * arch.compute.count)
        ok &= util >= c.min_utilization - 1e-12
    if space.stationary is not None:
        n_b, n_l, n_d = arrays.temporal.shape
        seq_dim = arrays.order.reshape(n_b, -1)
        seq_bound = np.take_along_axis(arrays.temporal, arrays.order, axis=2).reshape(n_b, -1)
        pos = np.where(seq_bound > 1, np.arange(n_l * n_d), -1).max(axis=1)
        dim = seq_dim[np.arange(n_b), np.maximum(pos, 0)]
        rel = np.array([d in problem.tensors[space.stationary].dims() for d in problem.dim_names])
        ok &= (pos < 0) | ~rel[dim]
    return ok


_FIELDS = ("temporal", "spatial_x", "spatial_y", "order", "keep")


def _rows(arrays: MappingArrays, index: np.ndarray | slice) -> MappingArrays:
    return MappingArrays(*(getattr(arrays, f)[index] for f in _FIELDS))


def _concat(first: MappingArrays, second: MappingArrays) -> MappingArrays:
    return MappingArrays(
        *(np.concatenate([getattr(first, f), getattr(second, f)]) for f in _FIELDS)
    )


def _from_factors(
    space: _Space, factors: np.ndarray, order: np.ndarray, keep: np.ndarray
) -> MappingArrays:
    """factors (B, 3, L, D): temporal, spatial_x, spatial_y loop bounds."""
    return MappingArrays(
        temporal=np.ascontiguousarray(factors[:, 0]),
        spatial_x=np.ascontiguousarray(factors[:, 1]),
        spatial_y=np.ascontiguousarray(factors[:, 2]),
        order=order,
        keep=keep,
    )


def _random_orders(space: _Space, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random loop orders (B, L, D); under a dataflow hint, the innermost loop of the deepest
    level that has temporal loops is one that does not index the stationary tensor, if any."""
    n, _, n_l, n_d = factors.shape
    keys = rng.random((n, n_l, n_d))
    if space.stationary is not None:
        real = np.asarray(factors[:, 0] > 1)  # (B, L, D)
        has_loops = np.asarray(real.any(axis=2))  # (B, L)
        deepest = n_l - 1 - np.argmax(has_loops[:, ::-1], axis=1)  # (B,)
        rows = np.arange(n)
        candidates = real[rows, deepest] & ~space.relevant[space.stationary][None, :]
        dim, found = _random_true(candidates, rng)
        keys[rows[found], deepest[found], dim[found]] += 2.0
    order = np.argsort(keys, axis=2)
    for level, fixed in space.fixed_orders.items():
        order[:, level] = fixed
    return order


def _random_keep(space: _Space, n: int, rng: np.random.Generator) -> np.ndarray:
    free = space.may_keep & ~space.must_keep
    coin = rng.random((n, *space.may_keep.shape)) < 0.75
    return space.must_keep[None] | (free[None] & coin)


def _pad_outermost(space: _Space, factors: np.ndarray, padded: np.ndarray) -> None:
    """Where a dim was padded, shrink its outermost loop to ceil(bound / inner): the padding is
    then less than one iteration of that loop (the imperfect-factor rule)."""
    n, _, n_l, n_d = factors.shape
    nest = factors.transpose(0, 2, 1, 3).reshape(n, 3 * n_l, n_d)  # nest order, outer first
    first = np.argmax(nest > 1, axis=1)  # (B, D)
    rows, dims = np.nonzero(padded)
    if rows.size == 0:
        return
    pos = first[rows, dims]
    outer = nest[rows, pos, dims]
    inner = np.prod(nest[rows, :, dims], axis=1) // outer
    bounds = np.asarray(space.problem.bounds)[dims]
    level, kind = pos // 3, pos % 3
    factors[rows, kind, level, dims] = np.maximum(1, -(-bounds // inner))


def _random_batch(space: _Space, n: int, rng: np.random.Generator) -> MappingArrays:
    """Random tilings: each prime factor of each (maybe padded) bound goes to a random slot;
    a prime that does not fit the fan-out left in a spatial slot goes to a random temporal one.

    Vectorised over the batch; the loop runs over (dim, prime position) only.
    """
    n_l, n_d = len(space.arch.levels), len(space.problem.dims)
    rows = np.arange(n)
    variant = np.zeros((n, n_d), dtype=np.int64)
    if space.constraints.imperfect:
        pad = (rng.random((n, n_d)) < 0.3) & space.can_pad[None, :]
        variant = np.where(
            pad, 1 + rng.integers(space.variant_primes.shape[1] - 1, size=(n, n_d)), 0
        )
    primes = space.variant_primes[np.arange(n_d)[None, :], variant]  # (B, D, P)
    factors = np.ones((n, 3, n_l, n_d), dtype=np.int64)
    room = np.tile(space.slot_room, (n, 1))
    n_s = len(space.slots)
    for d in range(n_d):
        for p in range(primes.shape[2]):
            prime = primes[:, d, p]
            if not (prime > 1).any():
                break
            slot = rng.integers(n_s, size=n)
            kind, level = space.slot_kind[slot], space.slot_level[slot]
            spatial = kind > 0
            fits = room[rows, slot] >= prime
            redirect = spatial & ~fits
            level = np.where(redirect, rng.integers(n_l, size=n), level)
            kind = np.where(redirect, 0, kind)
            room[rows, slot] //= np.where(spatial & fits, prime, 1)
            factors[rows, kind, level, d] *= prime
    _pad_outermost(space, factors, variant > 0)
    order = _random_orders(space, factors, rng)
    return _from_factors(space, factors, order, _random_keep(space, n, rng))


def _outermost_batch(space: _Space, n: int, rng: np.random.Generator) -> MappingArrays:
    """The least demanding tilings: every factor as far out as the caps allow (the backing
    store first), no spatial unrolling, only the tensors each level must keep -- the tiles
    are the smallest there are, so a mapping exists whenever one fits at all.  Random loop
    orders (under the dataflow hint) make the `n` rows differ."""
    n_l, n_d = len(space.arch.levels), len(space.problem.dims)
    factors = np.ones((n, 3, n_l, n_d), dtype=np.int64)
    for d, bound in enumerate(space.problem.bounds):
        for prime in _primes(bound):
            level = next(
                (lv for lv in range(n_l) if factors[0, 0, lv, d] * prime <= space.caps[lv, d]),
                0,
            )
            factors[:, 0, level, d] *= prime
    order = _random_orders(space, factors, rng)
    keep = np.repeat(space.must_keep[None], n, axis=0)
    return _from_factors(space, factors, order, keep)


def _canonical_orders(space: _Space) -> list[tuple[int, ...]]:
    n_d = len(space.problem.dims)
    orders = {tuple(range(n_d))}
    for tensor in space.problem.tensors:
        rel = tensor.dims()
        idx = list(range(n_d))
        orders.add(tuple(sorted(idx, key=lambda d: space.problem.dim_names[d] not in rel)))
    return sorted(orders)


def _exhaustive(space: _Space, limit: int) -> MappingArrays | None:
    """Every tiling (perfect factors) x canonical order per level, or None if above ``limit``."""
    slots, n_l = space.slots, len(space.arch.levels)
    per_dim: list[np.ndarray] = []
    for bound in space.problem.bounds:
        primes = _primes(bound)
        if len(slots) ** len(primes) > limit:
            return None
        combos = list(itertools.product(range(len(slots)), repeat=len(primes)))
        assign = np.array(combos, dtype=np.int64).reshape(len(combos), len(primes))
        vec = np.ones((assign.shape[0], len(slots)), dtype=np.int64)
        for j, prime in enumerate(primes):
            vec[np.arange(assign.shape[0]), assign[:, j]] *= prime
        per_dim.append(np.unique(vec, axis=0))  # sorted rows, as sorted(set(tuples))
    orders = np.array(_canonical_orders(space), dtype=np.int64)
    free_levels = [lv for lv in range(n_l) if lv not in space.fixed_orders]
    n_tilings = math.prod(len(c) for c in per_dim)
    n_order_sets = len(orders) ** len(free_levels)
    if n_tilings * n_order_sets > limit:
        return None
    n_rows = n_tilings * n_order_sets
    grid = np.indices([len(c) for c in per_dim]).reshape(len(per_dim), -1).T  # (tilings, D)
    factors = np.ones((n_tilings, 3, n_l, len(per_dim)), dtype=np.int64)
    for d, choices in enumerate(per_dim):
        factors[:, space.slot_kind, space.slot_level, d] = choices[grid[:, d]]
    factors = np.repeat(factors, n_order_sets, axis=0)  # tiling outer, order set inner
    order = np.tile(np.arange(len(per_dim)), (n_rows, n_l, 1))
    if free_levels:
        sets = np.indices([len(orders)] * len(free_levels)).reshape(len(free_levels), -1).T
        order[:, free_levels] = np.tile(orders[sets], (n_tilings, 1, 1))
    for lv, fixed in space.fixed_orders.items():
        order[:, lv] = fixed
    keep = np.tile((space.may_keep | space.must_keep)[None], (n_rows, 1, 1))
    return _from_factors(space, factors, order, keep)


def _random_true(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``mask`` (B, K), a uniformly random True column, and whether there was one."""
    pick = np.argmax(np.where(mask, rng.random(mask.shape), -1.0), axis=1)
    return pick, np.asarray(mask.any(axis=1))


def _mutate(space: _Space, best: MappingArrays, n: int, rng: np.random.Generator) -> MappingArrays:
    """Local moves around ``best`` rows, one per row and never a no-op where a move exists:
    move a prime factor of some loop to another slot (60%), swap two loops of a level that has
    at least two (30%), toggle a bypass (10%)."""
    pick = rng.integers(best.batch, size=n)
    factors = np.stack([best.temporal[pick], best.spatial_x[pick], best.spatial_y[pick]], axis=1)
    order, keep = best.order[pick].copy(), best.keep[pick].copy()
    n_l, n_d = order.shape[1:]
    n_s = len(space.slots)
    rows = np.arange(n)
    move = rng.random(n)

    per_slot = factors[:, space.slot_kind, space.slot_level]  # (B, S, D)
    src_dim, has_loop = _random_true((per_slot > 1).reshape(n, n_s * n_d), rng)
    src, d = src_dim // n_d, src_dim % n_d
    dst = (src + 1 + rng.integers(max(1, n_s - 1), size=n)) % n_s  # another slot
    f = per_slot[rows, src, d]
    choice, _ = _random_true(f[:, None] % space.prime_set[None, :] == 0, rng)
    prime = np.where((move < 0.6) & has_loop & (f > 1), space.prime_set[choice], 1)
    factors[rows, space.slot_kind[src], space.slot_level[src], d] //= prime
    factors[rows, space.slot_kind[dst], space.slot_level[dst], d] *= prime

    fixed = np.array([lv in space.fixed_orders for lv in range(n_l)])
    real = np.take_along_axis(factors[:, 0], order, axis=2) > 1  # (B, L, D) in loop order
    swappable = (real.sum(axis=2) >= 2) & ~fixed[None, :]
    level, can_swap = _random_true(swappable, rng)
    real_at = real[rows, level]  # (B, D)
    i, _ = _random_true(real_at, rng)
    real_at[rows, i] = False
    j, _ = _random_true(real_at, rng)
    swap = (move >= 0.6) & (move < 0.9) & can_swap
    first, second = order[rows, level, i], order[rows, level, j]
    order[rows[swap], level[swap], i[swap]] = second[swap]
    order[rows[swap], level[swap], j[swap]] = first[swap]

    free = np.argwhere(space.may_keep & ~space.must_keep)
    if len(free):
        which = free[rng.integers(len(free), size=n)]
        toggle = move >= 0.9
        keep[rows[toggle], which[toggle, 0], which[toggle, 1]] ^= True
    return _from_factors(space, factors, order, keep)


@dataclass(frozen=True, slots=True)
class SearchStats:
    """What a `Mapper` really searched: cache hits cost no evaluations.

    ``search_s`` sums the searches' own times (over all worker processes), so
    ``evaluations_per_s`` is the throughput of one core; ``wall_s`` is the wall-clock time.
    """

    searches: int = 0
    cache_hits: int = 0
    evaluations: int = 0
    search_s: float = 0.0
    wall_s: float = 0.0

    @property
    def evaluations_per_s(self) -> float:
        return self.evaluations / self.search_s if self.search_s > 0 else 0.0

    def minus(self, earlier: SearchStats) -> SearchStats:
        return SearchStats(
            self.searches - earlier.searches,
            self.cache_hits - earlier.cache_hits,
            self.evaluations - earlier.evaluations,
            self.search_s - earlier.search_s,
            self.wall_s - earlier.wall_s,
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "searches": self.searches, "cache_hits": self.cache_hits,
            "evaluations": self.evaluations, "search_s": round(self.search_s, 6),
            "wall_s": round(self.wall_s, 6),
            "evaluations_per_s": round(self.evaluations_per_s, 1),
        }  # fmt: skip


def _search_job(
    job: tuple[Problem, Arch, Constraints, SearchOptions, BatchEvaluator],
) -> SearchResult:
    problem, arch, constraints, options, evaluator = job
    return search(problem, arch, constraints, options, evaluator=evaluator)


@dataclass
class Mapper:
    """Maps problems onto archs; identical (problem, arch, constraints, options) are mapped once.

    The memo cache lives in the instance (no module state). Problem and tensor names are ignored
    in the key (tensors count by position), so the same layer shape with other weight names is a
    hit; the returned mapping and cost carry the caller's names.  `stats` counts the real
    searches apart from cache hits.
    """

    evaluator: BatchEvaluator
    cache: dict[tuple[object, ...], SearchResult] = field(default_factory=dict)
    stats: SearchStats = field(default_factory=SearchStats)
    # keys `prefetch` searched that `map` has not handed out yet (their first use is no hit)
    prefetched: set[tuple[object, ...]] = field(default_factory=set)

    def _key(
        self, problem: Problem, arch: Arch, constraints: Constraints, options: SearchOptions
    ) -> tuple[tuple[object, ...], list[str], list[str]]:
        names = [t.name for t in problem.tensors]
        anonymous = [f"#{i}" for i in range(len(names))]
        key = (
            _renamed_problem(problem, anonymous),
            arch,
            replace(constraints, bypass=_renamed_bypass(constraints.bypass, names, anonymous)),
            options,
        )
        return key, names, anonymous

    def _store(self, key: tuple[object, ...], result: SearchResult, names: list[str],
               anonymous: list[str]) -> None:  # fmt: skip
        self.cache[key] = _renamed_result(result, dict(zip(names, anonymous, strict=True)))
        self.stats = replace(
            self.stats,
            searches=self.stats.searches + 1,
            evaluations=self.stats.evaluations + result.evaluations,
            search_s=self.stats.search_s + result.elapsed_s,
        )

    def map(
        self,
        problem: Problem,
        arch: Arch,
        constraints: Constraints | None = None,
        options: SearchOptions | None = None,
    ) -> SearchResult:
        constraints = constraints or Constraints()
        options = options or SearchOptions()
        key, names, anonymous = self._key(problem, arch, constraints, options)
        if key in self.prefetched:
            self.prefetched.discard(key)
        elif key in self.cache:
            self.stats = replace(self.stats, cache_hits=self.stats.cache_hits + 1)
        else:
            start = time.perf_counter()
            found = search(problem, arch, constraints, options, evaluator=self.evaluator)
            self._store(key, found, names, anonymous)
            self.stats = replace(self.stats, wall_s=self.stats.wall_s + time.perf_counter() - start)
        result = _renamed_result(self.cache[key], dict(zip(anonymous, names, strict=True)))
        return replace(result, mapping=replace(result.mapping, problem=problem.name))

    def prefetch(
        self,
        problems: list[Problem],
        arch: Arch,
        constraints: Constraints,
        options: SearchOptions,
        workers: int,
    ) -> None:
        """Search the distinct, not yet cached `problems` in `workers` processes and cache the
        results (each search is seeded, so the results equal sequential ones)."""
        todo: dict[tuple[object, ...], tuple[Problem, list[str], list[str]]] = {}
        for problem in problems:
            key, names, anonymous = self._key(problem, arch, constraints, options)
            if key not in self.cache and key not in todo:
                todo[key] = (problem, names, anonymous)
        if workers < 2 or len(todo) < 2:
            return  # `map` searches them one by one, in order
        import concurrent.futures
        import multiprocessing

        start = time.perf_counter()
        jobs = [(problem, arch, constraints, options, self.evaluator)
                for problem, _, _ in todo.values()]  # fmt: skip
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), context) as pool:
            results = list(pool.map(_search_job, jobs))
        for (key, (_, names, anonymous)), result in zip(todo.items(), results, strict=True):
            self._store(key, result, names, anonymous)
            self.prefetched.add(key)
        self.stats = replace(self.stats, wall_s=self.stats.wall_s + time.perf_counter() - start)


def _renamed_problem(problem: Problem, names: list[str]) -> Problem:
    tensors = tuple(replace(t, name=n) for t, n in zip(problem.tensors, names, strict=True))
    return replace(problem, name="", tensors=tensors)


def _renamed_bypass(
    bypass: tuple[tuple[str, str], ...], old: list[str], new: list[str]
) -> tuple[tuple[str, str], ...]:
    rename = dict(zip(old, new, strict=True))
    return tuple((level, rename.get(tensor, tensor)) for level, tensor in bypass)


def _renamed_result(result: SearchResult, rename: dict[str, str]) -> SearchResult:
    mapping = replace(
        result.mapping,
        levels=tuple(
            replace(level, keep=frozenset(rename[t] for t in level.keep))
            for level in result.mapping.levels
        ),
    )
    cost = replace(
        result.cost,
        levels=tuple(
            replace(
                level,
                tensors=tuple(replace(t, tensor=rename[t.tensor]) for t in level.tensors),
            )
            for level in result.cost.levels
        ),
    )
    return replace(result, mapping=mapping, cost=cost)


def search(
    problem: Problem,
    arch: Arch,
    constraints: Constraints | None = None,
    options: SearchOptions | None = None,
    *,
    evaluator: BatchEvaluator,
) -> SearchResult:
    """Best mapping of ``problem`` on ``arch`` under ``constraints`` for ``options.objective``,
    every candidate priced by ``evaluator``.

    Raises InputError when the constraints are infeasible or no valid mapping was found.
    """
    constraints = constraints or Constraints()
    options = options or SearchOptions()
    space = _resolve(problem, arch, constraints)
    rng = np.random.default_rng(options.seed)
    start = time.perf_counter()
    best_rows: MappingArrays | None = None
    best_scores = np.empty(0)
    evaluations = valid_count = 0

    def consider(arrays: MappingArrays) -> None:
        nonlocal best_rows, best_scores, evaluations, valid_count
        batch = evaluator.evaluate_batch(problem, arrays, arch)
        ok = _acceptable(space, arrays, batch)
        evaluations += arrays.batch
        valid_count += int(ok.sum())
        scores = np.where(ok, _score(batch, options.objective), np.inf)
        if best_rows is not None:
            arrays = _concat(best_rows, arrays)
            scores = np.concatenate([best_scores, scores])
        # Elite: the best distinct scores (equal scores are almost always the same mapping, and
        # duplicates would starve the local search of diversity).
        _, first = np.unique(scores, return_index=True)  # sorted by score, first of each
        top = first[np.isfinite(scores[first])][:_ELITE]
        if top.size:
            best_rows = _rows(arrays, top)
            best_scores = scores[top]

    def out_of_budget() -> bool:
        if evaluations >= options.max_evaluations:
            return True
        return options.time_budget_s is not None and (
            time.perf_counter() - start > options.time_budget_s
        )

    exhaustive = _exhaustive(space, min(options.exhaustive_limit, options.max_evaluations))
    seeded = False  # the outermost tilings, tried once if random sampling found nothing
    if exhaustive is not None:
        for lo in range(0, exhaustive.batch, options.batch_size):
            consider(_rows(exhaustive, slice(lo, lo + options.batch_size)))
    else:
        patience = options.patience_evaluations or options.max_evaluations
        local = False  # random sampling first, then local moves around the elite
        phase_start = improved_at = 0
        best_score = math.inf
        while not out_of_budget():
            n = min(options.batch_size, options.max_evaluations - evaluations)
            if best_rows is None and not seeded and (
                evaluations >= _RANDOM_SHARE * options.max_evaluations
            ):
                seeded = True
                consider(_outermost_batch(space, min(n, _ELITE), rng))
                continue
            stalled = evaluations - max(improved_at, phase_start) >= patience
            if not local and best_rows is not None and (
                evaluations >= _RANDOM_SHARE * options.max_evaluations or stalled
            ):
                local, phase_start = True, evaluations
                stalled = False
            if local and stalled:
                break
            if local:
                assert best_rows is not None
                consider(_mutate(space, best_rows, n, rng))
            else:
                consider(_random_batch(space, n, rng))
            if best_scores.size and best_scores[0] < best_score:
                best_score, improved_at = float(best_scores[0]), evaluations
    if best_rows is None and exhaustive is None and not seeded:
        consider(_outermost_batch(space, min(options.batch_size, _ELITE), rng))
    if best_rows is None:
        raise InputError(
            f"no valid mapping of {problem.name} on {arch.name} after {evaluations} evaluations "
            f"satisfies the constraints (min_utilization {constraints.min_utilization}, "
            f"capacities of {[lv.name for lv in arch.levels]})"
        )
    batch = evaluator.evaluate_batch(problem, best_rows, arch)
    return SearchResult(
        mapping=from_arrays(best_rows, 0, problem, arch),
        cost=evaluator.cost(batch, 0, problem, arch),
        evaluations=evaluations,
        valid_evaluations=valid_count,
        exhaustive=exhaustive is not None,
        elapsed_s=time.perf_counter() - start,
    )
