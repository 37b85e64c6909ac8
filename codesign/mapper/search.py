"""The mapper: search tilings, loop orders, spatial unrollings and bypass of one problem on an arch.

Small mapspaces are enumerated (every tiling and spatial split, with one canonical loop order per
level and tensor: the dims that do not index it innermost); large ones are sampled at random in
batches, then improved by local moves around the best mappings found. Every candidate is priced
by a vectorised cost model the caller hands in (`BatchEvaluator`; `codesign.sim.mapping_search`
binds the analytical one), so the mapper never imports the sim room above it. The search is
seeded and deterministic under an evaluation budget (a time budget may stop it earlier) and
always returns the best valid mapping found.

The mapspace (constraints resolved, candidate generators) is `codesign.mapper.mapspace`; the
memoising `Mapper` is `codesign.mapper.memo`; the types are `codesign.mapper.search_types`.
"""

from __future__ import annotations

import math
import time

import numpy as np

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch
from codesign.mapper.mapping import MappingArrays, from_arrays
from codesign.mapper.mapspace import (
    ELITE,
    RANDOM_SHARE,
    acceptable,
    concat_batches,
    exhaustive_batch,
    mutate_batch,
    outermost_batch,
    random_batch,
    resolve_space,
    take_rows,
)
from codesign.mapper.memo import Mapper, SearchStats
from codesign.mapper.problem import Problem
from codesign.mapper.search_types import (
    BatchEvaluator,
    BatchScores,
    Constraints,
    Objective,
    SearchOptions,
    SearchResult,
    objective_score,
)

# The public names of the mapper's search live in the modules above (split by concept); this
# module keeps them importable from where they always were.
__all__ = [
    "BatchEvaluator", "BatchScores", "Constraints", "Mapper", "Objective", "SearchOptions",
    "SearchResult", "SearchStats", "search",
]  # fmt: skip


def _score(batch: BatchScores, objective: Objective) -> np.ndarray:
    energy = batch.energy_pj
    if objective is Objective.LATENCY:  # an invalid row's NaN energy must not hide its cycles
        energy = np.nan_to_num(energy, posinf=np.inf)
    return objective_score(batch.cycles, energy, objective)


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
    space = resolve_space(problem, arch, constraints)
    rng = np.random.default_rng(options.seed)
    start = time.perf_counter()
    best_rows: MappingArrays | None = None
    best_scores = np.empty(0)
    evaluations = valid_count = 0

    def consider(arrays: MappingArrays) -> None:
        nonlocal best_rows, best_scores, evaluations, valid_count
        batch = evaluator.evaluate_batch(problem, arrays, arch)
        ok = acceptable(space, arrays, batch)
        evaluations += arrays.batch
        valid_count += int(ok.sum())
        scores = np.where(ok, _score(batch, options.objective), np.inf)
        if best_rows is not None:
            arrays = concat_batches(best_rows, arrays)
            scores = np.concatenate([best_scores, scores])
        # Elite: the best distinct scores (equal scores are almost always the same mapping, and
        # duplicates would starve the local search of diversity).
        _, first = np.unique(scores, return_index=True)  # sorted by score, first of each
        top = first[np.isfinite(scores[first])][:ELITE]
        if top.size:
            best_rows = take_rows(arrays, top)
            best_scores = scores[top]

    def out_of_budget() -> bool:
        if evaluations >= options.max_evaluations:
            return True
        return options.time_budget_s is not None and (
            time.perf_counter() - start > options.time_budget_s
        )

    exhaustive = exhaustive_batch(space, min(options.exhaustive_limit, options.max_evaluations))
    seeded = False  # the outermost tilings, tried once if random sampling found nothing
    if exhaustive is not None:
        for lo in range(0, exhaustive.batch, options.batch_size):
            consider(take_rows(exhaustive, slice(lo, lo + options.batch_size)))
    else:
        patience = options.patience_evaluations or options.max_evaluations
        local = False  # random sampling first, then local moves around the elite
        phase_start = improved_at = 0
        best_score = math.inf
        while not out_of_budget():
            n = min(options.batch_size, options.max_evaluations - evaluations)
            if best_rows is None and not seeded and (
                evaluations >= RANDOM_SHARE * options.max_evaluations
            ):
                seeded = True
                consider(outermost_batch(space, min(n, ELITE), rng))
                continue
            stalled = evaluations - max(improved_at, phase_start) >= patience
            if not local and best_rows is not None and (
                evaluations >= RANDOM_SHARE * options.max_evaluations or stalled
            ):
                local, phase_start = True, evaluations
                stalled = False
            if local and stalled:
                break
            if local:
                assert best_rows is not None
                consider(mutate_batch(space, best_rows, n, rng))
            else:
                consider(random_batch(space, n, rng))
            if best_scores.size and best_scores[0] < best_score:
                best_score, improved_at = float(best_scores[0]), evaluations
    if best_rows is None and exhaustive is None and not seeded:
        consider(outermost_batch(space, min(options.batch_size, ELITE), rng))
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
