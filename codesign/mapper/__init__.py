"""Mapper: Timeloop-style problems, mappings and the mapspace search."""

from codesign.mapper.mapping import LevelMapping, Loop, Mapping, check_mapping, load_mapping
from codesign.mapper.problem import Problem, ProblemTensor
from codesign.mapper.search import (
    BatchEvaluator,
    Constraints,
    Mapper,
    Objective,
    SearchOptions,
    SearchResult,
    search,
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
    "search",
]
