"""A design space: a base hardware card, parameter axes, compression pipelines, workloads and
objectives, validated once at the boundary (pydantic) into frozen values.

Space YAML (paths relative to the space file)::

    name: systolic_resnet18
    hardware: ../hw/tpu_like.yaml        # any family codesign loads
    set: {technology_nm: 16}             # fixed edits of the card, for every point
    axes:
      - {name: array, paths: [levels.1.fanout.x, levels.1.fanout.y], values: [8, 16, 32]}
      - {name: glb, paths: [levels.1.size_bytes], log_range: {start: 65536, stop: 1048576}}
      - {name: clock, paths: [clock_ghz], range: {start: 0.5, stop: 1.0, step: 0.25}}
    compression: [["none", "quantize{bits=4}"], ["none", "prune_structured{n=2,m=4}"]]
    workloads:
      - {name: resnet18, model: ../models/resnet18.onnx}
      - {name: llama-decode, llm: llama-2-7b, phase: decode, seq: 1, kv_len: 1024}
    objectives: [latency, energy, area]
    constraints: [{metric: area_mm2, max: 50}]
    strategy: {kind: grid}               # or random / optuna, with samples and seed
    mapper: {evaluations: 300, objective: edp}

An axis sets every one of its ``paths`` (dotted keys into the hardware YAML mapping; integers
index lists) to the same value, so linked parameters (a square array) are one axis.  A path
may go through a file reference (``host`` of a tensor-core card): the referenced YAML is
edited as a mapping too.  ``compression`` is a product of pipeline fragments joined in order
(``none`` contributes nothing).
"""

from __future__ import annotations

import enum
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codesign.errors import InputError
from codesign.hwmodels.yamlio import input_error, load_validated

Scalar = int | float | str | bool

MAX_AXIS_POINTS = 10_000
"""Most values one range axis may expand to (a grid over several is their product)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RangeSpec(_Strict):
    """``start, start+step, ...`` up to and including ``stop``."""

    start: float
    stop: float
    step: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _some_points(self) -> RangeSpec:
        _check_count((self.stop - self.start) / self.step, self.start, self.stop)
        return self


class LogRangeSpec(_Strict):
    """``start, start*base, ...`` up to and including ``stop``."""

    start: Annotated[float, Field(gt=0)]
    stop: Annotated[float, Field(gt=0)]
    base: Annotated[float, Field(gt=1)] = 2.0

    @model_validator(mode="after")
    def _some_points(self) -> LogRangeSpec:
        _check_count(math.log(self.stop / self.start, self.base), self.start, self.stop)
        return self


def _check_count(steps: float, start: float, stop: float) -> None:
    """A range of ``steps + 1`` values must hold at least one and at most `MAX_AXIS_POINTS`."""
    if stop < start:
        raise ValueError(f"empty range: stop {stop} is below start {start}")
    if steps + 1 > MAX_AXIS_POINTS:
        raise ValueError(f"about {steps + 1:.3g} values, more than {MAX_AXIS_POINTS:,} per axis")


class AxisSpec(_Strict):
    name: str = Field(min_length=1)
    paths: tuple[str, ...] = Field(min_length=1)
    values: tuple[Scalar, ...] | None = None
    range: RangeSpec | None = None
    log_range: LogRangeSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> AxisSpec:
        given = [k for k in ("values", "range", "log_range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"axis {self.name}: give exactly one of values, range, log_range")
        if self.values is not None and not self.values:
            raise ValueError(f"axis {self.name}: values is empty")
        for path in self.paths:
            if any(not part for part in path.split(".")):
                raise ValueError(f"axis {self.name}: bad path {path!r}")
        return self

    def points(self) -> tuple[Scalar, ...]:
        """The axis's values in order (integers stay integers)."""
        if self.values is not None:
            return self.values
        out: list[float] = []
        if self.range is not None:
            r = self.range
            n = int(math.floor((r.stop - r.start) / r.step + 1e-9)) + 1
            out = [r.start + i * r.step for i in range(max(n, 0))]
        elif self.log_range is not None:
            g = self.log_range
            n = int(math.floor(math.log(g.stop / g.start, g.base) + 1e-9)) + 1
            out = [g.start * g.base**i for i in range(max(n, 0))]
        return tuple(int(v) if float(v).is_integer() else v for v in out)


class WorkloadSpec(_Strict):
    """A model file (relative to the space file) or an LLM preset with its phase."""

    name: str = Field(min_length=1)
    model: str | None = None
    llm: str | None = None
    batch: Annotated[int, Field(gt=0)] = 1
    seq: Annotated[int, Field(gt=0)] = 128
    phase: Literal["prefill", "decode"] = "prefill"
    kv_len: Annotated[int, Field(gt=0)] | None = None
    # accuracy proxy: weights of an LLM preset ("random": seeded; "smollm2": the real GGUF
    # weights of SmolLM2-135M) and how much of the model the interpreter runs
    weights: Literal["random", "smollm2"] = "random"
    accuracy_layers: Annotated[int, Field(gt=0)] | None = 2
    accuracy_seq: Annotated[int, Field(gt=0)] = 16

    @model_validator(mode="after")
    def _one_source(self) -> WorkloadSpec:
        if (self.model is None) == (self.llm is None):
            raise ValueError(f"workload {self.name}: give exactly one of model, llm")
        return self


class Objective(enum.Enum):
    """What a sweep minimises (accuracy is maximised)."""

    LATENCY = "latency"
    ENERGY = "energy"
    AREA = "area"
    EDP = "edp"
    ACCURACY = "accuracy"


# objective -> (metric key in a point's results, +1 minimise / -1 maximise)
OBJECTIVE_METRIC: dict[Objective, tuple[str, int]] = {
    Objective.LATENCY: ("latency_s", 1),
    Objective.ENERGY: ("energy_pj", 1),
    Objective.AREA: ("area_mm2", 1),
    Objective.EDP: ("edp_js", 1),
    Objective.ACCURACY: ("accuracy_cosine", -1),
}

METRICS = (
    "latency_s", "energy_pj", "area_mm2", "edp_js", "accuracy_cosine", "cycles",
    "perf_per_area_inf_per_s_mm2", "perf_per_w_inf_per_j", "power_w",
)  # fmt: skip


class ConstraintSpec(_Strict):
    metric: str
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _check(self) -> ConstraintSpec:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r} (known: {', '.join(METRICS)})")
        if self.max is None and self.min is None:
            raise ValueError(f"constraint on {self.metric}: give max or min")
        return self


class StrategyKind(enum.Enum):
    GRID = "grid"
    RANDOM = "random"
    OPTUNA = "optuna"


class StrategySpec(_Strict):
    kind: StrategyKind = StrategyKind.GRID
    samples: Annotated[int, Field(gt=0)] | None = None  # random / optuna: points per workload
    seed: int = 0
    batch: Annotated[int, Field(gt=0)] = 4  # optuna: points asked per round (fixed, so results
    # do not depend on the number of workers)


class MapperSpec(_Strict):
    evaluations: Annotated[int, Field(gt=0)] = 200
    objective: Literal["edp", "energy", "latency"] = "edp"
    cost_model: Literal["analytical", "cycle"] = "analytical"


class SpaceSpec(_Strict):
    name: str = Field(min_length=1)
    hardware: str = Field(min_length=1)
    set: dict[str, Scalar | None] = {}  # fixed edits of the base card, path -> value
    axes: tuple[AxisSpec, ...] = ()
    compression: tuple[tuple[str, ...], ...] = ()
    workloads: tuple[WorkloadSpec, ...] = Field(min_length=1)
    objectives: tuple[Objective, ...] = (Objective.LATENCY, Objective.ENERGY)
    constraints: tuple[ConstraintSpec, ...] = ()
    strategy: StrategySpec = StrategySpec()
    mapper: MapperSpec = MapperSpec()

    @model_validator(mode="after")
    def _check(self) -> SpaceSpec:
        names = [a.name for a in self.axes] + [w.name for w in self.workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate axis/workload names {dupes}")
        if not self.objectives:
            raise ValueError("objectives is empty")
        if self.strategy.kind is not StrategyKind.GRID and self.strategy.samples is None:
            raise ValueError(f"strategy {self.strategy.kind.value} needs samples")
        return self


# -- frozen values past the boundary ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    model_path: str | None
    llm: str | None
    batch: int
    seq: int
    phase: str
    kv_len: int | None
    weights: str
    accuracy_layers: int | None
    accuracy_seq: int


@dataclass(frozen=True, slots=True)
class Axis:
    name: str
    paths: tuple[tuple[str | int, ...], ...]
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Point:
    """One design: a value per axis, a compression pipeline text ('' = none), a workload."""

    values: tuple[tuple[str, Scalar], ...]
    pipeline: str
    workload: str

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in self.values]
        if self.pipeline:
            parts.append(self.pipeline)
        return " ".join(parts) or "base"


@dataclass(frozen=True, slots=True)
class Space:
    name: str
    source_path: str
    hardware_path: str
    fixed: tuple[tuple[tuple[str | int, ...], Scalar | None], ...]
    axes: tuple[Axis, ...]
    pipelines: tuple[str, ...]
    workloads: tuple[Workload, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[ConstraintSpec, ...]
    strategy: StrategySpec
    mapper: MapperSpec

    def workload(self, name: str) -> Workload:
        return next(w for w in self.workloads if w.name == name)

    def grid(self) -> list[Point]:
        """Every point of the space, in a fixed order (workload outermost)."""
        value_sets = [a.values for a in self.axes]
        points = []
        for workload in self.workloads:
            for pipeline in self.pipelines:
                for combo in itertools.product(*value_sets):
                    named = tuple((a.name, v) for a, v in zip(self.axes, combo, strict=True))
                    points.append(Point(named, pipeline, workload.name))
        return points


def _path(text: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def _pipelines(stages: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    if not stages:
        return ("",)
    out = []
    for combo in itertools.product(*stages):
        parts = [p.strip() for p in combo if p.strip() and p.strip() != "none"]
        out.append(",".join(parts))
    return tuple(dict.fromkeys(out))


def _check_compression(path: Path, stages: tuple[tuple[str, ...], ...]) -> None:
    """A pipeline fragment that does not parse is an error of the space file, not of a point."""
    from codesign.passes.pipeline import parse_pipeline

    for i, stage in enumerate(stages):
        for j, fragment in enumerate(stage):
            if fragment.strip() in ("", "none"):
                continue
            try:
                parse_pipeline(fragment)
            except InputError as exc:
                raise input_error(path, ("compression", i, j), str(exc)) from None


def load_space(path: str | Path) -> Space:
    """Validate a space YAML; InputError ``file:line: field: message`` on the first problem."""
    path = Path(path)
    spec = load_validated(path, SpaceSpec)
    base = path.parent
    workloads = tuple(
        Workload(
            w.name, str((base / w.model).resolve()) if w.model else None, w.llm,
            w.batch, w.seq, w.phase, w.kv_len, w.weights, w.accuracy_layers, w.accuracy_seq,
        )
        for w in spec.workloads
    )  # fmt: skip
    if not Path(base / spec.hardware).is_file():
        raise input_error(path, ("hardware",), f"no such hardware card {base / spec.hardware}")
    for index, w in enumerate(workloads):
        if w.llm is not None:
            from codesign.frontends.llm import resolve_llm

            try:
                resolve_llm(w.llm)
            except InputError as exc:
                raise input_error(path, ("workloads", index, "llm"), str(exc)) from None
        if w.model_path is not None and not w.model_path.startswith(("gemm:", "conv:")):
            if not Path(w.model_path).is_file():
                raise input_error(
                    path, ("workloads", index, "model"),
                    f"no such model file {w.model_path} (the bundled example models are "
                    "generated by examples/models/generate.py)",
                )  # fmt: skip
    _check_compression(path, spec.compression)
    axes = tuple(Axis(a.name, tuple(_path(p) for p in a.paths), a.points()) for a in spec.axes)
    return Space(
        name=spec.name,
        source_path=str(path),
        hardware_path=str((base / spec.hardware).resolve()),
        fixed=tuple((_path(k), v) for k, v in spec.set.items()),
        axes=axes,
        pipelines=_pipelines(spec.compression),
        workloads=workloads,
        objectives=spec.objectives,
        constraints=spec.constraints,
        strategy=spec.strategy,
        mapper=spec.mapper,
    )
