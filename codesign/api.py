"""The library entry point: map a cascade onto any hardware card with frozen options.

The ``codesign map`` command, the examples and the paper scripts all call `map_model`::

    import codesign
    report = codesign.map_model(codesign.load("examples/models/cnn.onnx"), "eyeriss_like",
                                passes="prune-nm{n=2,m=8}")
    print(report.result.cycles, report.result.energy_pj)

``hw`` is a card path, a preset name (``a100``, ``eyeriss_like``, ``sat_like``) or an already
built hardware object (an `Arch`, `BitSerialArray`, `Device` ...); its family, looked up in
`codesign.hwmodels.registry`, supplies the cost model.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codesign.hwmodels.registry import (
    Command,
    Family,
    LoadedHardware,
    family_of,
    load_hardware_card,
)
from codesign.ir.cascade import Cascade
from codesign.mapper.mapping import Mapping
from codesign.mapper.memo import Mapper
from codesign.mapper.search_types import Constraints, Objective, SearchOptions
from codesign.sim.cascade import CascadeResult, map_cascade
from codesign.sim.cost import CostModel
from codesign.sim.family_models import ANALYTICAL, CostOptions

if TYPE_CHECKING:
    # the pass library is imported where a pipeline runs: a command without passes (a
    # SCALE-Sim .cfg run) never loads it
    import numpy as np

    from codesign.passes import PassReport, Pipeline


@dataclass(frozen=True, slots=True)
class PassOptions:
    """How the pipeline runs: ``measure_error`` interprets the model twice per pass;
    ``sample_inputs`` are the inputs it measures on (None: seeded random)."""

    measure_error: bool = False
    sample_inputs: MappingOf[str, np.ndarray] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Report:
    """What `map_model` returns: the per-Einsum costs, the cascade they were computed on (after
    the passes), the pass reports, the hardware and its family, and notes for the user (e.g. a
    card setting the IR overrode)."""

    result: CascadeResult
    cascade: Cascade
    hw: Any
    family: Family
    pass_reports: tuple[PassReport, ...] = ()
    error_measured: bool = False
    notes: tuple[str, ...] = ()

    @property
    def cycles(self) -> float:
        return self.result.cycles

    @property
    def energy_pj(self) -> float:
        return self.result.energy_pj


def resolve_hardware(hw: Any, command: Command = Command.MAP) -> LoadedHardware:
    """A card path / preset name loaded, or a built hardware object with its family."""
    if isinstance(hw, LoadedHardware):
        hw.family.require(command, str(hw.path))
        return hw
    if isinstance(hw, str | Path):
        return load_hardware_card(hw, command)
    entry = family_of(hw)
    entry.require(command, getattr(hw, "name", type(hw).__name__))
    return LoadedHardware(hw, entry, Path(getattr(hw, "source_path", "") or "."))


def retypes_weights(reports: tuple[PassReport, ...]) -> bool:
    """Whether a pipeline re-typed weights: then the IR's dtypes override a card's pinned
    precision (`CostOptions.ir_precision`)."""
    return any(r.dtype_changes for r in reports)


def run_passes(
    cascade: Cascade, passes: str | Pipeline | None, options: PassOptions, seed: int
) -> tuple[Cascade, tuple[PassReport, ...]]:
    """`cascade` after the pipeline (text or parsed; identity when None) and its reports."""
    if passes is None:
        return cascade, ()
    from codesign.passes import parse_pipeline, run_pipeline

    pipeline = parse_pipeline(passes) if isinstance(passes, str) else passes
    result, reports = run_pipeline(
        cascade, pipeline, sample_inputs=options.sample_inputs,
        measure_error=options.measure_error, seed=seed,
    )  # fmt: skip
    return result, tuple(reports)


def map_model(
    cascade: Cascade,
    hw: Any,
    *,
    passes: str | Pipeline | None = None,
    pass_options: PassOptions | None = None,
    cost_model: str = ANALYTICAL,
    objective: Objective | str = Objective.EDP,
    seed: int = 0,
    search: SearchOptions | None = None,
    constraints: Constraints | None = None,
    mappings: MappingOf[str, Mapping] | None = None,
    ir_precision: bool | None = None,
    sparse: bool = True,
    pricing: CostModel | None = None,
    mapper: Mapper | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int = 1,
) -> Report:
    """Run `passes` on `cascade`, then price every Einsum on `hw` with its family's model.

    ``cost_model``: ``analytical`` or (spatial arrays) ``cycle``.  ``search``: the mapper's
    budget (default: `SearchOptions` with ``objective`` and ``seed``).  ``ir_precision``: the
    IR's dtypes override a card's pinned precision; None decides it from the pipeline (on when
    a pass re-typed weights).  ``sparse``: use the card's sparse support where the IR carries
    densities.  ``pricing``: a mapping-level `CostModel` instance for spatial arrays in place of
    ``cost_model``.  ``mapper``: share a `Mapper`'s layer cache across calls.  ``workers``:
    processes that search the distinct MAC Einsums of a spatial array's cascade before pricing,
    and the fused groups' inner nests before pricing the groups (`Mapper.prefetch`,
    `codesign.sim.fused_nest.prefetch_nests`; each search is seeded, so the results equal
    ``workers=1``).
    """
    loaded = resolve_hardware(hw)
    pass_options = pass_options or PassOptions()
    out, reports = run_passes(cascade, passes, pass_options, seed)
    if ir_precision is None:
        ir_precision = retypes_weights(reports)
    if search is None:
        search = SearchOptions(objective=Objective(objective), seed=seed)
    options = CostOptions(
        model=cost_model, search=search, constraints=constraints or Constraints(),
        mappings=tuple((mappings or {}).items()), ir_precision=ir_precision, sparse=sparse,
        pricing=pricing, mapper=mapper, workers=workers,
    )  # fmt: skip
    model = loaded.family.model(options)
    result = map_cascade(
        out, loaded.hw, model, name=loaded.hw.name, clock_ghz=loaded.hw.clock_ghz,
        family=loaded.family.name, progress=progress,
    )  # fmt: skip
    notes = tuple(model.notes(loaded.hw, out))
    return Report(result, out, loaded.hw, loaded.family, reports, pass_options.measure_error, notes)


__all__ = [
    "Constraints", "Objective", "PassOptions", "Report", "SearchOptions", "map_model",
    "resolve_hardware", "retypes_weights", "run_passes",
]  # fmt: skip
