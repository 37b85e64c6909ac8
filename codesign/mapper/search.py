"""The mapper: search tilings, loop orders, spatial unrollings and bypass of one problem on an arch.

Small mapspaces are enumerated (every tiling and spatial split, with one canonical loop order per
level and tensor: the dims that do not index it innermost); large ones are sampled at random in
batches, then improved by local moves around the best mappings found. Every candidate is priced
by the vectorised analytical model. The search is seeded and deterministic under an evaluation
budget (a time budget may stop it earlier) and always returns the best valid mapping found.
"""

from __future__ import annotations

import enum
import itertools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch, Dataflow
from codesign.mapper.mapping import Mapping, MappingArrays, default_keep, from_arrays
from codesign.mapper.problem import Problem
from codesign.sim.analytical import BatchCost, cost_from_batch, evaluate_batch
from codesign.sim.cost import Cost


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
    objective: Objective = Objective.EDP
    seed: int = 0
    max_evaluations: int = 20_000
    time_budget_s: float | None = None
    batch_size: int = 1024
    exhaustive_limit: int = 20_000


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
    for level, tensor in c.bypass:
        index = level_of(level, "bypass")
        if tensor not in tensors:
            raise InputError(f"constraints.bypass: unknown tensor {tensor!r}")
        if index == 0:
            raise InputError(f"constraints.bypass: {level} is the backing store; it keeps all")
        may_keep[index, tensors[tensor]] = False
    must_keep = may_keep.copy() if c.keep_fixed else np.zeros_like(may_keep)
    must_keep[0] = True
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
            int(min(caps[lv, dims[dim]], bound)) if kind == 0
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
        if stationary is not None and problem.tensors[stationary].dims() >= set(dims):
            raise InputError(
                f"constraints.dataflow: {dataflow.value} impossible: tensor "
                f"{problem.tensors[stationary].name} is indexed by every dim"
            )
    return _Space(problem, arch, tuple(slots), caps, fixed, may_keep, must_keep, stationary, c)


def _score(batch: BatchCost, objective: Objective) -> np.ndarray:
    if objective is Objective.LATENCY:
        return batch.cycles + 1e-9 * np.nan_to_num(batch.energy_pj, posinf=np.inf)
    if objective is Objective.ENERGY:
        return batch.energy_pj + 1e-9 * batch.cycles
    return batch.energy_pj * batch.cycles


def _acceptable(space: _Space, arrays: MappingArrays, batch: BatchCost) -> np.ndarray:
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


def _empty(n: int, space: _Space) -> MappingArrays:
    n_l, n_d = len(space.arch.levels), len(space.problem.dims)
    return MappingArrays(
        temporal=np.ones((n, n_l, n_d), dtype=np.int64),
        spatial_x=np.ones((n, n_l, n_d), dtype=np.int64),
        spatial_y=np.ones((n, n_l, n_d), dtype=np.int64),
        order=np.tile(np.arange(n_d), (n, n_l, 1)),
        keep=np.zeros((n, n_l, len(space.problem.tensors)), dtype=bool),
    )


def _set_orders_and_keep(space: _Space, arrays: MappingArrays, rng: np.random.Generator) -> None:
    n, n_l, n_d = arrays.temporal.shape
    arrays.order[:] = np.argsort(rng.random((n, n_l, n_d)), axis=2)
    for level, order in space.fixed_orders.items():
        arrays.order[:, level] = order
    free = space.may_keep & ~space.must_keep
    coin = rng.random(arrays.keep.shape) < 0.75
    arrays.keep[:] = space.must_keep[None] | (free[None] & coin)


def _random_batch(space: _Space, n: int, rng: np.random.Generator) -> MappingArrays:
    """Random tilings: each prime factor of each (maybe padded) bound goes to a random slot."""
    arrays = _empty(n, space)
    arch, slots = space.arch, space.slots
    targets = (arrays.temporal, arrays.spatial_x, arrays.spatial_y)
    caps = [
        (arch.levels[lv].fanout_x if kind == 1 else arch.levels[lv].fanout_y) if kind else 0
        for lv, kind in slots
    ]
    for b in range(n):
        room = list(caps)
        for d, bound in enumerate(space.problem.bounds):
            padded = bound
            if space.constraints.imperfect and bound > 4 and rng.random() < 0.3:
                m = int(rng.choice((2, 4, 8, 16)))
                padded = -(-bound // m) * m
            for prime in _primes(padded):
                s = int(rng.integers(len(slots)))
                lv, kind = slots[s]
                if kind and room[s] < prime:  # no room left in that fan-out: go temporal
                    lv, kind = int(rng.integers(len(arch.levels))), 0
                if kind:
                    room[s] //= prime
                targets[kind][b, lv, d] *= prime
            if padded != bound:
                inner = int(np.prod(arrays.temporal[b, 1:, d]) * np.prod(arrays.spatial_x[b, :, d])
                            * np.prod(arrays.spatial_y[b, :, d]))
                arrays.temporal[b, 0, d] = max(1, -(-bound // inner))
    _set_orders_and_keep(space, arrays, rng)
    return arrays


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
    per_dim: list[list[tuple[int, ...]]] = []
    for bound in space.problem.bounds:
        choices: set[tuple[int, ...]] = set()
        primes = _primes(bound)
        if len(slots) ** len(primes) > limit:
            return None
        for assign in itertools.product(range(len(slots)), repeat=len(primes)):
            vec = [1] * len(slots)
            for prime, s in zip(primes, assign, strict=True):
                vec[s] *= prime
            choices.add(tuple(vec))
        per_dim.append(sorted(choices))
    orders = _canonical_orders(space)
    free_levels = [lv for lv in range(n_l) if lv not in space.fixed_orders]
    size = math.prod(len(c) for c in per_dim) * len(orders) ** len(free_levels)
    if size > limit:
        return None
    tilings = list(itertools.product(*per_dim))
    order_sets = list(itertools.product(orders, repeat=len(free_levels)))
    arrays = _empty(len(tilings) * len(order_sets), space)
    row = 0
    for tiling in tilings:
        for order_set in order_sets:
            for d, vec in enumerate(tiling):
                for (lv, kind), f in zip(slots, vec, strict=True):
                    (arrays.temporal, arrays.spatial_x, arrays.spatial_y)[kind][row, lv, d] = f
            for lv, order in zip(free_levels, order_set, strict=True):
                arrays.order[row, lv] = order
            for lv, order in space.fixed_orders.items():
                arrays.order[row, lv] = order
            row += 1
    arrays.keep[:] = (space.may_keep | space.must_keep)[None]
    return arrays


def _mutate(space: _Space, best: MappingArrays, n: int, rng: np.random.Generator) -> MappingArrays:
    """Local moves around ``best`` rows: move a prime factor, swap two loops, toggle a bypass."""
    pick = rng.integers(best.batch, size=n)
    arrays = MappingArrays(*(getattr(best, f)[pick].copy() for f in
                             ("temporal", "spatial_x", "spatial_y", "order", "keep")))
    targets = (arrays.temporal, arrays.spatial_x, arrays.spatial_y)
    n_d = arrays.temporal.shape[2]
    free = space.may_keep & ~space.must_keep
    for b in range(n):
        move = rng.random()
        if move < 0.6:
            d = int(rng.integers(n_d))
            src = space.slots[int(rng.integers(len(space.slots)))]
            dst = space.slots[int(rng.integers(len(space.slots)))]
            f = int(targets[src[1]][b, src[0], d])
            if f > 1:
                prime = _primes(f)[int(rng.integers(len(_primes(f))))]
                targets[src[1]][b, src[0], d] //= prime
                targets[dst[1]][b, dst[0], d] *= prime
        elif move < 0.9:
            lv = int(rng.integers(len(space.arch.levels)))
            if lv not in space.fixed_orders:
                i, j = rng.integers(n_d, size=2)
                arrays.order[b, lv, [i, j]] = arrays.order[b, lv, [j, i]]
        elif free.any():
            lv, t = np.argwhere(free)[int(rng.integers(int(free.sum())))]
            arrays.keep[b, lv, t] = ~arrays.keep[b, lv, t]
    return arrays


@dataclass
class Mapper:
    """Maps problems onto archs; identical (problem, arch, constraints, options) are mapped once.

    The memo cache lives in the instance (no module state); problem names are ignored in the key.
    """

    cache: dict[tuple[object, ...], SearchResult] = field(default_factory=dict)

    def map(
        self,
        problem: Problem,
        arch: Arch,
        constraints: Constraints | None = None,
        options: SearchOptions | None = None,
    ) -> SearchResult:
        constraints = constraints or Constraints()
        options = options or SearchOptions()
        key = (replace(problem, name=""), arch, constraints, options)
        if key not in self.cache:
            self.cache[key] = search(problem, arch, constraints, options)
        result = self.cache[key]
        return replace(result, mapping=replace(result.mapping, problem=problem.name))


def search(
    problem: Problem,
    arch: Arch,
    constraints: Constraints | None = None,
    options: SearchOptions | None = None,
) -> SearchResult:
    """Best mapping of ``problem`` on ``arch`` under ``constraints`` for ``options.objective``.

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
        batch = evaluate_batch(problem, arrays, arch)
        ok = _acceptable(space, arrays, batch)
        evaluations += arrays.batch
        valid_count += int(ok.sum())
        scores = np.where(ok, _score(batch, options.objective), np.inf)
        if best_rows is not None:
            arrays = MappingArrays(*(np.concatenate([getattr(best_rows, f), getattr(arrays, f)])
                                     for f in ("temporal", "spatial_x", "spatial_y", "order",
                                               "keep")))
            scores = np.concatenate([best_scores, scores])
        top = np.argsort(scores, kind="stable")[:32]
        top = top[np.isfinite(scores[top])]
        if top.size:
            best_rows = MappingArrays(*(getattr(arrays, f)[top] for f in
                                        ("temporal", "spatial_x", "spatial_y", "order", "keep")))
            best_scores = scores[top]

    def out_of_budget() -> bool:
        if evaluations >= options.max_evaluations:
            return True
        return options.time_budget_s is not None and (
            time.perf_counter() - start > options.time_budget_s
        )

    exhaustive = _exhaustive(space, min(options.exhaustive_limit, options.max_evaluations))
    if exhaustive is not None:
        for lo in range(0, exhaustive.batch, options.batch_size):
            consider(MappingArrays(*(getattr(exhaustive, f)[lo:lo + options.batch_size] for f in
                                     ("temporal", "spatial_x", "spatial_y", "order", "keep"))))
    else:
        while not out_of_budget():
            n = min(options.batch_size, options.max_evaluations - evaluations)
            if best_rows is not None and evaluations >= options.max_evaluations // 2:
                consider(_mutate(space, best_rows, n, rng))
            else:
                consider(_random_batch(space, n, rng))
    if best_rows is None:
        raise InputError(
            f"no valid mapping of {problem.name} on {arch.name} after {evaluations} evaluations "
            f"satisfies the constraints (min_utilization {constraints.min_utilization}, "
            f"capacities of {[lv.name for lv in arch.levels]})"
        )
    batch = evaluate_batch(problem, best_rows, arch)
    return SearchResult(
        mapping=from_arrays(best_rows, 0, problem, arch),
        cost=cost_from_batch(batch, 0, problem, arch),
        evaluations=evaluations,
        valid_evaluations=valid_count,
        exhaustive=exhaustive is not None,
        elapsed_s=time.perf_counter() - start,
    )
