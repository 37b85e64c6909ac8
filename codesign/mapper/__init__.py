"""Mapper: Timeloop-style problems, mappings and the mapspace search.

The search itself is the submodule `codesign.mapper.search` (``search.search``); it is not
imported here, so that naming the mapper's types does not load NumPy and the vectorised search
(a cycle-model SCALE-Sim run never searches).
"""

from codesign.mapper.mapping import LevelMapping, Loop, Mapping, check_mapping, load_mapping
from codesign.mapper.memo import Mapper
from codesign.mapper.problem import Problem, ProblemTensor
from codesign.mapper.search_types import (
    BatchEvaluator,
    Constraints,
    Objective,
    SearchOptions,
    SearchResult,
)

__all__ = [
    "BatchEvaluator",
    "Constraints",
    "LevelMapping",
    "Loop",
    "Mapper",
    "Mapping",
    "Objective",
    "Problem",
    "ProblemTensor",
    "SearchOptions",
    "SearchResult",
    "check_mapping",
    "load_mapping",
]
