"""The mapper's search bound to the analytical model: what every spatial-array mapping uses.

`codesign.mapper.search` takes its vectorised cost model as a `BatchEvaluator` so that the
mapper does not import the sim room above it; this module supplies the analytical one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from codesign.hwmodels.arch import Arch
from codesign.mapper.mapping import MappingArrays
from codesign.mapper.memo import Mapper
from codesign.mapper.problem import Problem
from codesign.mapper.search_types import BatchScores, Constraints, SearchOptions, SearchResult
from codesign.sim.cost import Cost

if TYPE_CHECKING:
    # the vectorised model (NumPy-heavy) loads on the first search: a cycle-model run, which
    # builds a mapper but never searches, does not import it
    from codesign.sim.analytical import BatchCost


@dataclass(frozen=True, slots=True)
class AnalyticalBatch:
    """`BatchEvaluator` over the vectorised analytical nest model."""

    def evaluate_batch(self, problem: Problem, arrays: MappingArrays, arch: Arch) -> BatchCost:
        from codesign.sim.analytical import evaluate_batch

        return evaluate_batch(problem, arrays, arch)

    def cost(self, batch: BatchScores, index: int, problem: Problem, arch: Arch) -> Cost:
        from codesign.sim.analytical import BatchCost, cost_from_batch

        assert isinstance(batch, BatchCost)  # what evaluate_batch returned
        return cost_from_batch(batch, index, problem, arch)


ANALYTICAL_BATCH = AnalyticalBatch()


def analytical_mapper() -> Mapper:
    """A `Mapper` (with its own layer cache) pricing candidates analytically."""
    return Mapper(ANALYTICAL_BATCH)


def search(
    problem: Problem,
    arch: Arch,
    constraints: Constraints | None = None,
    options: SearchOptions | None = None,
) -> SearchResult:
    """`codesign.mapper.search.search` with the analytical model."""
    from codesign.mapper.search import search as _search  # NumPy: where a search runs

    return _search(problem, arch, constraints, options, evaluator=ANALYTICAL_BATCH)


__all__ = ["ANALYTICAL_BATCH", "AnalyticalBatch", "analytical_mapper", "search"]
