"""`Mapper`: searches memoised per (problem shape, arch, constraints, options), optionally in
parallel over processes, with statistics of the real searches apart from cache hits.

The vectorised search (NumPy) loads on the first real search, so building a `Mapper` costs
nothing to a command that never searches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from codesign.hwmodels.arch import Arch
from codesign.mapper.problem import Problem
from codesign.mapper.search_types import BatchEvaluator, Constraints, SearchOptions, SearchResult


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

    def plus(self, other: SearchStats) -> SearchStats:
        return SearchStats(
            self.searches + other.searches,
            self.cache_hits + other.cache_hits,
            self.evaluations + other.evaluations,
            self.search_s + other.search_s,
            self.wall_s + other.wall_s,
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
) -> SearchResult | None:
    """One search in a worker; None where it finds no mapping (`Mapper.map` then searches
    again in the caller's process and raises the error there, as a sequential run does)."""
    from codesign.errors import InputError
    from codesign.mapper.search import search

    problem, arch, constraints, options, evaluator = job
    try:
        return search(problem, arch, constraints, options, evaluator=evaluator)
    except InputError:
        return None


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
            from codesign.mapper.search import search  # NumPy: on the first real search

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
        self.prefetch_each([(p, constraints) for p in problems], arch, options, workers)

    def prefetch_each(
        self,
        jobs: Sequence[tuple[Problem, Constraints]],
        arch: Arch,
        options: SearchOptions,
        workers: int,
    ) -> None:
        """`prefetch` with constraints of their own per problem (the fused-nest mapper's
        sub-problems bypass levels per group).  A search that finds no mapping is not cached:
        `map` repeats it and raises, as without workers."""
        todo: dict[tuple[object, ...], tuple[Problem, Constraints, list[str], list[str]]] = {}
        for problem, constraints in jobs:
            key, names, anonymous = self._key(problem, arch, constraints, options)
            if key not in self.cache and key not in todo:
                todo[key] = (problem, constraints, names, anonymous)
        if workers < 2 or len(todo) < 2:
            return  # `map` searches them one by one, in order
        import concurrent.futures
        import multiprocessing

        import codesign.mapper.search  # noqa: F401  loaded (NumPy too) once, before the fork

        start = time.perf_counter()
        work = [(problem, arch, constraints, options, self.evaluator)
                for problem, constraints, _, _ in todo.values()]  # fmt: skip
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(work)), context) as pool:
            results = list(pool.map(_search_job, work))
        for (key, (_, _, names, anonymous)), result in zip(todo.items(), results, strict=True):
            if result is not None:
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
