"""The mapspace of one problem on one arch: constraints resolved into index arrays once per
search, the candidate generators (every tiling of a small space; random tilings, loop orders and
bypasses; local moves around the best) and the check a candidate must pass to count.

Candidates are `MappingArrays` batches, vectorised over the batch; `codesign.mapper.search`
drives the generators and keeps the best.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch
from codesign.mapper.mapping import MappingArrays, default_keep
from codesign.mapper.problem import Problem
from codesign.mapper.search_types import BatchScores, Constraints
from codesign.mapper.short_axes import fold


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out + ([n] if n > 1 else [])


@dataclass(frozen=True, slots=True)
class MapSpace:
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
ELITE = 32  # best distinct mappings kept as parents of the local search
RANDOM_SHARE = 0.5  # of the evaluation budget sampled at random before local search


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


def resolve_space(problem: Problem, arch: Arch, c: Constraints) -> MapSpace:
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
    return MapSpace(
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


def acceptable(space: MapSpace, arrays: MappingArrays, batch: BatchScores) -> np.ndarray:
    """Rows that are valid and meet every constraint the generator does not guarantee."""
    problem, arch, c = space.problem, space.arch, space.constraints
    ok = batch.valid.copy()
    ok &= fold(np.logical_and, arrays.temporal <= space.caps[None], (1, 2))
    # Exact coverage: padding must be less than one iteration of each dim's outermost loop.
    stacked = np.stack([arrays.temporal, arrays.spatial_x, arrays.spatial_y], axis=2)
    flat = stacked.reshape(arrays.batch, -1, stacked.shape[-1])  # (B, 3L, D) in nest order
    total = fold(np.multiply, flat, 1)
    first = np.argmax(flat > 1, axis=1)
    outer = np.take_along_axis(flat, first[:, None, :], axis=1)[:, 0]
    bounds = np.array(problem.bounds)[None, :]
    covers = (total >= bounds) & ((total // outer) * (outer - 1) < bounds)
    ok &= fold(np.logical_and, covers | (total == bounds), 1)
    ok &= fold(np.logical_and, arrays.keep >= space.must_keep[None], (1, 2))
    ok &= fold(np.logical_and, arrays.keep <= (space.may_keep | space.must_keep)[None], (1, 2))
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


def take_rows(arrays: MappingArrays, index: np.ndarray | slice) -> MappingArrays:
    return MappingArrays(*(getattr(arrays, f)[index] for f in _FIELDS))


def concat_batches(first: MappingArrays, second: MappingArrays) -> MappingArrays:
    return MappingArrays(
        *(np.concatenate([getattr(first, f), getattr(second, f)]) for f in _FIELDS)
    )


def _from_factors(
    space: MapSpace, factors: np.ndarray, order: np.ndarray, keep: np.ndarray
) -> MappingArrays:
    """factors (B, 3, L, D): temporal, spatial_x, spatial_y loop bounds."""
    return MappingArrays(
        temporal=np.ascontiguousarray(factors[:, 0]),
        spatial_x=np.ascontiguousarray(factors[:, 1]),
        spatial_y=np.ascontiguousarray(factors[:, 2]),
        order=order,
        keep=keep,
    )


def _random_orders(space: MapSpace, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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


def _random_keep(space: MapSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    free = space.may_keep & ~space.must_keep
    coin = rng.random((n, *space.may_keep.shape)) < 0.75
    return space.must_keep[None] | (free[None] & coin)


def _pad_outermost(space: MapSpace, factors: np.ndarray, padded: np.ndarray) -> None:
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
    inner = fold(np.multiply, nest[rows, :, dims], 1) // outer
    bounds = np.asarray(space.problem.bounds)[dims]
    level, kind = pos // 3, pos % 3
    factors[rows, kind, level, dims] = np.maximum(1, -(-bounds // inner))


def random_batch(space: MapSpace, n: int, rng: np.random.Generator) -> MappingArrays:
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
    # one element per row is updated at a time: flat indices into flat views are ~6x cheaper
    # than NumPy's multi-axis fancy indexing on these shapes
    flat_factors, flat_room = factors.reshape(-1), room.reshape(-1)
    factor_row, room_row = rows * (3 * n_l * n_d), rows * n_s
    for d in range(n_d):
        for p in range(primes.shape[2]):
            prime = primes[:, d, p]
            if not (prime > 1).any():
                break
            slot = rng.integers(n_s, size=n)
            kind, level = space.slot_kind[slot], space.slot_level[slot]
            spatial = kind > 0
            at_room = room_row + slot
            fits = flat_room[at_room] >= prime
            redirect = spatial & ~fits
            level = np.where(redirect, rng.integers(n_l, size=n), level)
            kind = np.where(redirect, 0, kind)
            flat_room[at_room] //= np.where(spatial & fits, prime, 1)
            flat_factors[factor_row + (kind * n_l + level) * n_d + d] *= prime
    _pad_outermost(space, factors, variant > 0)
    order = _random_orders(space, factors, rng)
    return _from_factors(space, factors, order, _random_keep(space, n, rng))


def outermost_batch(space: MapSpace, n: int, rng: np.random.Generator) -> MappingArrays:
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


def _canonical_orders(space: MapSpace) -> list[tuple[int, ...]]:
    n_d = len(space.problem.dims)
    orders = {tuple(range(n_d))}
    for tensor in space.problem.tensors:
        rel = tensor.dims()
        idx = list(range(n_d))
        orders.add(tuple(sorted(idx, key=lambda d: space.problem.dim_names[d] not in rel)))
    return sorted(orders)


def exhaustive_batch(space: MapSpace, limit: int) -> MappingArrays | None:
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


def mutate_batch(
    space: MapSpace, best: MappingArrays, n: int, rng: np.random.Generator
) -> MappingArrays:
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
