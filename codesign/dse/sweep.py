"""Run a sweep: pick points by the space's strategy, evaluate the missing ones on an executor,
commit each to the store as it finishes, and return the rows of the sweep's points.

Strategies: ``grid`` (every point), ``random`` (``samples`` distinct points per workload,
seeded), ``optuna`` (TPE, seeded, asked in fixed rounds of ``batch`` points and told the
objectives of each round, so the sequence does not depend on how many workers run).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codesign.dse.evaluate import Outcome, make_task
from codesign.dse.executors import ExecutorOptions, executor
from codesign.dse.space import (
    OBJECTIVE_METRIC,
    ConstraintSpec,
    Objective,
    Point,
    Space,
    StrategyKind,
)
from codesign.dse.store import Row, Store, point_key
from codesign.errors import InputError

Progress = Callable[[int, int], None]  # (finished, total)


@dataclass(frozen=True, slots=True)
class SweepOptions:
    executor: str = "pool"
    workers: int = 1
    address: str | None = None


def _evaluate_points(
    space: Space,
    points: Sequence[Point],
    store: Store,
    options: SweepOptions,
    progress: Progress | None,
    done_before: int = 0,
    total: int | None = None,
) -> list[str]:
    """Evaluate the points the store lacks; returns every point's key (in `points` order)."""
    keys = [point_key(space, p) for p in points]
    have = store.keys()
    todo, seen = [], set(have)
    for point, key in zip(points, keys, strict=True):
        if key not in seen:
            seen.add(key)
            todo.append(make_task(space, point, key))
    total = total if total is not None else len(set(keys))
    finished = done_before + len(set(keys)) - len(todo)
    if progress is not None:
        progress(finished, total)
    run = executor(options.executor)
    by_key = {t.key: t.point for t in todo}
    outcome: Outcome
    for outcome in run(todo, ExecutorOptions(options.workers, options.address)):
        store.add(space.name, by_key[outcome.key], outcome)
        finished += 1
        if progress is not None:
            progress(finished, total)
    return keys


def _random_points(space: Space) -> list[Point]:
    rng = random.Random(space.strategy.seed)
    samples = space.strategy.samples or 0
    out: list[Point] = []
    grid = space.grid()
    for workload in space.workloads:
        mine = [p for p in grid if p.workload == workload.name]
        out.extend(rng.sample(mine, min(samples, len(mine))))
    return out


def _costs(
    row: Row, objectives: Sequence[Objective], constraints: Sequence[ConstraintSpec]
) -> list[float] | None:
    """Minimised cost vector of a row; None for an error or an infeasible row."""
    if row.error is not None or not feasible(row, constraints):
        return None
    values = []
    for objective in objectives:
        metric, sign = OBJECTIVE_METRIC[objective]
        value = row.metrics.get(metric)
        if value is None:
            return None
        values.append(sign * value)
    return values


def _optuna_keys(
    space: Space, store: Store, options: SweepOptions, progress: Progress | None
) -> list[str]:
    try:
        import optuna
    except ImportError:
        raise InputError("strategy optuna needs optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samples = space.strategy.samples or 0
    total = samples * len(space.workloads)
    keys: list[str] = []
    for w_index, workload in enumerate(space.workloads):
        sampler = optuna.samplers.TPESampler(seed=space.strategy.seed + w_index)
        study = optuna.create_study(
            sampler=sampler, directions=["minimize"] * len(space.objectives)
        )
        asked = 0
        while asked < samples:
            n = min(space.strategy.batch, samples - asked)
            trials = [study.ask() for _ in range(n)]
            points = []
            for trial in trials:
                values = tuple(
                    (
                        a.name,
                        a.values[trial.suggest_categorical(a.name, list(range(len(a.values))))],
                    )
                    for a in space.axes
                )
                pipe = space.pipelines[
                    trial.suggest_categorical("pipeline", list(range(len(space.pipelines))))
                ]
                points.append(Point(values, pipe, workload.name))
            done_before = len(set(keys))
            round_keys = _evaluate_points(
                space, points, store, options, progress, done_before, total
            )
            rows = {r.key: r for r in store.rows(set(round_keys))}
            for trial, key in zip(trials, round_keys, strict=True):
                costs = _costs(rows[key], space.objectives, space.constraints)
                if costs is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, costs)
            keys.extend(round_keys)
            asked += n
    return keys


def feasible(row: Row, constraints: Sequence[ConstraintSpec]) -> bool:
    for constraint in constraints:
        value = row.metrics.get(constraint.metric)
        if value is None:
            return False
        if constraint.max is not None and value > constraint.max:
            return False
        if constraint.min is not None and value < constraint.min:
            return False
    return True


def run_sweep(
    space: Space, store: Store, options: SweepOptions, progress: Progress | None = None
) -> list[Row]:
    """Evaluate the space into `store`; the rows of the points this strategy visits."""
    store.set_meta("space", space.source_path)
    store.set_meta("objectives", json.dumps([o.value for o in space.objectives]))
    store.set_meta("constraints", json.dumps([c.model_dump() for c in space.constraints]))
    store.set_meta("axes", json.dumps([a.name for a in space.axes]))
    kind = space.strategy.kind
    if kind is StrategyKind.OPTUNA:
        keys = _optuna_keys(space, store, options, progress)
    else:
        points = space.grid() if kind is StrategyKind.GRID else _random_points(space)
        keys = _evaluate_points(space, points, store, options, progress)
    wanted = set(keys)
    return list(store.rows(wanted))


def front(
    rows: Sequence[Row], objectives: Sequence[Objective], constraints: Sequence[ConstraintSpec]
) -> dict[str, list[Row]]:
    """The Pareto front per workload over `objectives` (feasible, error-free rows)."""
    from codesign.dse.pareto import pareto_indices

    out: dict[str, list[Row]] = {}
    for workload in dict.fromkeys(r.workload for r in rows):
        mine = [r for r in rows if r.workload == workload]
        scored = [(r, c) for r in mine if (c := _costs(r, objectives, constraints)) is not None]
        indices = pareto_indices([c for _, c in scored])
        out[workload] = [scored[i][0] for i in indices]
    return out
