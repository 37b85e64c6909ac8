"""Evaluate one design point: build its hardware, load and compress its workload, map it, and
derive the metrics (latency, energy, area, EDP, perf/area, perf/W, accuracy proxy).

`map_design` is the one adapter onto the mapper: it is the only function that knows how a
cascade is mapped onto hardware, so moving to ``codesign.api.map_model`` changes it alone.
Workloads, compressed cascades and accuracy figures are memoised per process (pure functions
of frozen keys), so a worker pays for each model once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from codesign.dse.hardware import load_point_hardware
from codesign.dse.space import MapperSpec, Objective, Point, Space, Workload
from codesign.errors import InputError
from codesign.ir.cascade import Cascade
from codesign.sim.cascade import CascadeResult


@dataclass(frozen=True, slots=True)
class Task:
    """Everything a worker needs to evaluate one point (picklable, no open handles)."""

    key: str
    point: Point
    hardware_path: str
    settings: tuple[tuple[tuple[str | int, ...], Any, str], ...]
    workload: Workload
    mapper: MapperSpec
    seed: int
    want_accuracy: bool
    want_area: bool = False  # an objective or constraint reads the area


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished point: metrics by name (None where not applicable) or the error text."""

    key: str
    metrics: tuple[tuple[str, float | None], ...]
    error: str | None
    seconds: float


def make_task(space: Space, point: Point, key: str) -> Task:
    values = dict(point.values)
    fixed = tuple((path, value, f"{space.source_path}: set") for path, value in space.fixed)
    settings = fixed + tuple(
        (path, values[axis.name], f"{space.source_path}: axis {axis.name}")
        for axis in space.axes
        for path in axis.paths
    )
    return Task(
        key=key,
        point=point,
        hardware_path=space.hardware_path,
        settings=settings,
        workload=space.workload(point.workload),
        mapper=space.mapper,
        seed=space.strategy.seed,
        want_accuracy=Objective.ACCURACY in space.objectives,
        want_area=Objective.AREA in space.objectives
        or any(c.metric in _AREA_METRICS for c in space.constraints),
    )


_AREA_METRICS = frozenset({"area_mm2", "perf_per_area_inf_per_s_mm2"})


# -- workloads ------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def load_workload(workload: Workload) -> Cascade:
    if workload.llm is not None:
        from codesign.frontends.llm import llm_from_spec

        return llm_from_spec(
            workload.llm, workload.batch, workload.seq, workload.phase, workload.kv_len
        )
    from codesign.frontends import load_model

    assert workload.model_path is not None
    return load_model(workload.model_path)


@lru_cache(maxsize=32)
def compressed(workload: Workload, pipeline: str, seed: int) -> tuple[Cascade, bool]:
    """The workload after the point's pass pipeline (no error measurement: shapes only), and
    whether the pipeline re-typed weights (then the IR's dtypes override a card's pinned
    precision, as in ``codesign map --passes``)."""
    cascade = load_workload(workload)
    if not pipeline:
        return cascade, False
    from codesign.api import retypes_weights
    from codesign.passes.report import run_pipeline

    result, reports = run_pipeline(cascade, pipeline, measure_error=False, seed=seed)
    return result, retypes_weights(tuple(reports))


def _accuracy_cascade(workload: Workload) -> Cascade:
    """A small cascade with weight data the interpreter can run for the accuracy proxy."""
    if workload.llm is None:
        return load_workload(workload)
    from codesign.frontends.llm import attach_random_weights, build_llm
    from codesign.frontends.llm_config import Phase, preset
    from codesign.frontends.llm_config import Workload as LLMWorkload

    shape = LLMWorkload(1, workload.accuracy_seq, Phase.PREFILL)
    if workload.weights == "smollm2":
        from codesign.frontends.gguf import load_gguf_llm, smollm2_gguf_path

        return load_gguf_llm(smollm2_gguf_path(), shape, layers=workload.accuracy_layers)
    cascade = build_llm(preset(workload.llm), shape, layers=workload.accuracy_layers)
    return attach_random_weights(cascade, seed=0)


@lru_cache(maxsize=32)
def accuracy_cosine(workload: Workload, pipeline: str, seed: int) -> float:
    """Cosine similarity of the compressed model's outputs to the original's on seeded sample
    inputs, run by the reference interpreter (1.0 for no compression)."""
    if not pipeline:
        return 1.0
    from codesign.passes.report import run_pipeline

    cascade = _accuracy_cascade(workload)
    if any(t.data is None for t in cascade.weights):
        raise InputError(f"workload {workload.name}: accuracy needs weight data in the model")
    _, reports = run_pipeline(cascade, pipeline, measure_error=True, seed=seed)
    error = reports[-1].error if reports else None
    if error is None:
        raise InputError(f"workload {workload.name}: the interpreter could not run {pipeline!r}")
    return float(error.cosine)


# -- the adapter ----------------------------------------------------------------------------------
def map_design(
    workload: Workload, pipeline: str, hardware: Any, mapper: MapperSpec, seed: int
) -> CascadeResult:
    """Map the workload after the point's pipeline onto `hardware` exactly as ``codesign map
    --passes`` does (`codesign.api.map_model`, the card's family model)."""
    from codesign.api import map_model
    from codesign.mapper.search import Objective as MapObjective
    from codesign.mapper.search import SearchOptions

    options = SearchOptions(
        objective=MapObjective(mapper.objective), seed=seed, max_evaluations=mapper.evaluations
    )
    cascade, ir_precision = compressed(workload, pipeline, seed)
    report = map_model(
        cascade, hardware, cost_model=mapper.cost_model, search=options, seed=seed,
        ir_precision=ir_precision,
    )  # fmt: skip
    return report.result


def metrics_of(result: CascadeResult, area_by_component_mm2: dict[str, float] | None) -> dict:
    """A point's metrics: totals and ``sim.report.figures_of_merit`` flattened (area None
    where the hardware has no area model)."""
    from codesign.sim.report import figures_of_merit

    merit = figures_of_merit(result, area_by_component_mm2)
    area = merit["area_mm2"]
    return {
        "cycles": result.cycles,
        "latency_s": result.latency_s,
        "energy_pj": result.energy_pj,
        "area_mm2": None if area is None else area["total"],
        "edp_js": merit["edp_js"],
        "power_w": merit["power_w"],
        "perf_per_area_inf_per_s_mm2": merit["perf_per_area_inf_per_s_mm2"],
        "perf_per_w_inf_per_j": merit["perf_per_w_inf_per_j"],
    }


def evaluate(task: Task) -> Outcome:
    """One point, start to finish; an input problem becomes the outcome's error, not a raise."""
    from codesign.hwmodels.estimators import area_breakdown_mm2, has_area_model

    start = time.perf_counter()
    try:
        hardware = load_point_hardware(task.hardware_path, task.settings)
        has_area = has_area_model(hardware)
        if task.want_area and not has_area:
            raise InputError(
                f"{task.hardware_path}: {hardware.name} has no area model (its energy table "
                "gives no component areas), so the area objective/constraint cannot be scored"
            )
        result = map_design(
            task.workload, task.point.pipeline, hardware, task.mapper, task.seed
        )
        metrics = metrics_of(result, area_breakdown_mm2(hardware) if has_area else None)
        metrics["accuracy_cosine"] = (
            accuracy_cosine(task.workload, task.point.pipeline, task.seed)
            if task.want_accuracy
            else None
        )
    except InputError as exc:
        return Outcome(task.key, (), str(exc).splitlines()[0], time.perf_counter() - start)
    return Outcome(task.key, tuple(sorted(metrics.items())), None, time.perf_counter() - start)
