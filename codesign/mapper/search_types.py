"""What a mapspace search takes and returns, and the contract of the cost model it calls.

NumPy-free on purpose: a command that never searches (a cycle-model SCALE-Sim run) names these
types without loading the vectorised search (`codesign.mapper.search`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch, Dataflow
from codesign.mapper.cost_record import Cost
from codesign.mapper.mapping import Mapping, MappingArrays
from codesign.mapper.problem import Problem

if TYPE_CHECKING:
    import numpy as np


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


def objective_score(cycles: Any, energy_pj: Any, objective: Objective) -> Any:
    """The figure a search minimises for `objective` (floats or NumPy arrays alike): cycles
    or energy with the other as a 1e-9 tie-break, or their product (EDP).  One rule for the
    per-Einsum mapper and the fused-nest search, so both rank mappings the same way."""
    if objective is Objective.LATENCY:
        return cycles + 1e-9 * energy_pj
    if objective is Objective.ENERGY:
        return energy_pj + 1e-9 * cycles
    return energy_pj * cycles


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
