"""Schedules for the lowered cascade, registered by name.

* ``default`` — on CPU, a tiled schedule per Einsum whose tile sizes come from
  `ScheduleOptions.tiles` (per Einsum, per iteration variable; the mapper's tiling feeds it)
  or from a small heuristic; on GPU, TVM's dlight default rules (GPU kernels need thread
  binding, which the CPU tiling does not do).
* ``dlight`` — TVM's dlight default rules (GPU: Matmul, GEMV, Reduction, GeneralReduction,
  Fallback; CPU: GEMV, Reduction).
* ``metaschedule`` — MetaSchedule tuning with a trial budget (`ScheduleOptions.trials`); any
  PrimFunc it has no record for keeps the ``default`` schedule.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codesign.codegen.te_lower import LoweredCascade, Stage
from codesign.errors import InputError

if TYPE_CHECKING:
    from tvm.ir import IRModule
    from tvm.target import Target

# Default tile sizes (elements) when no mapping gives one: the innermost output loop is
# vectorised (16 f32 = two AVX2 registers), the next one is blocked for register reuse, and
# the innermost reduced loop is blocked for L1.
INNER_SPATIAL_TILE = 16
OUTER_SPATIAL_TILE = 4
INNER_REDUCE_TILE = 8


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    """Knobs of the schedules.

    `tiles` maps an Einsum name to ``{iteration variable: tile size}``; a size is snapped down
    to a divisor of the loop extent (so no tail loops), 1 leaves the loop untiled-outer and the
    full extent leaves it untiled-inner.  `trials` is MetaSchedule's global trial budget and
    `builder_timeout_s` its per-candidate build timeout (TVM builds are slow on small hosts).
    """

    tiles: Mapping[str, Mapping[str, int]] | None = None
    trials: int = 64
    work_dir: Path | None = None
    builder_timeout_s: float = 180.0


ScheduleFn = Callable[["IRModule", LoweredCascade, "Target", ScheduleOptions], "IRModule"]


def apply_schedule(
    name: str, mod: IRModule, lowered: LoweredCascade, target: Target, options: ScheduleOptions
) -> IRModule:
    """The module with every PrimFunc scheduled by the schedule called `name`."""
    if name not in SCHEDULES:
        known = ", ".join(sorted(SCHEDULES))
        raise InputError(f"unknown TVM schedule {name!r} (known: {known})")
    return SCHEDULES[name](mod, lowered, target, options)


def _is_gpu(target: Target) -> bool:
    return "gpu" in [str(k) for k in target.keys]


# -- default: tiled CPU schedule -----------------------------------------------------------


def default_schedule(
    mod: IRModule, lowered: LoweredCascade, target: Target, options: ScheduleOptions
) -> IRModule:
    """A new module: the tiled CPU schedule of every stage (dlight on GPU targets)."""
    import tvm  # noqa: PLC0415

    if _is_gpu(target):
        return dlight_schedule(mod, lowered, target, options)
    tiles = options.tiles or {}
    return tvm.IRModule(
        {stage.symbol: tiled(stage, tiles.get(stage.einsum, {})) for stage in lowered.stages}
    )


def snap_tile(extent: int, tile: int) -> int:
    """Largest divisor of `extent` not above `tile` (at least 1)."""
    tile = max(1, min(tile, extent))
    while extent % tile:
        tile -= 1
    return tile


def tiled(stage: Stage, tiles: Mapping[str, int]):  # noqa: ANN201 - a tvm PrimFunc
    """Tile the stage's compute block: spatial outer loops (fused, parallel), reduced outer,
    reduced inner, spatial inner loops; the innermost spatial loop is vectorised."""
    import tvm  # noqa: PLC0415

    sch = tvm.s_tir.Schedule(stage.func)
    block = sch.get_sblock(stage.block)
    loops = sch.get_loops(block)
    iters = sch.get(block).iter_vars
    names = _loop_names(stage, len(loops))
    spatial = [k for k, it in enumerate(iters) if int(it.iter_type) == 0]
    reduced = [k for k, it in enumerate(iters) if int(it.iter_type) != 0]
    extents = [int(it.dom.extent) for it in iters]
    defaults = {k: 0 for k in range(len(loops))}
    if spatial:
        defaults[spatial[-1]] = INNER_SPATIAL_TILE
    if len(spatial) > 1 and reduced:
        defaults[spatial[-2]] = OUTER_SPATIAL_TILE
    if reduced:
        defaults[reduced[-1]] = INNER_REDUCE_TILE
    outer, inner = {}, {}
    for k, loop in enumerate(loops):
        want = tiles.get(names[k], defaults[k]) if names[k] else defaults[k]
        tile = snap_tile(extents[k], want) if want else 1
        if tile == 1:
            outer[k] = loop
        elif tile == extents[k]:
            inner[k] = loop
        else:
            outer[k], inner[k] = sch.split(loop, [None, tile])
    order = (
        [outer[k] for k in spatial if k in outer]
        + [outer[k] for k in reduced if k in outer]
        + [inner[k] for k in reduced if k in inner]
        + [inner[k] for k in spatial if k in inner]
    )
    if len(order) > 1:
        sch.reorder(*order)
    par = [outer[k] for k in spatial if k in outer]
    if par:
        fused = sch.fuse(*par) if len(par) > 1 else par[0]
        sch.parallel(fused)
    if spatial and spatial[-1] in inner and extents[spatial[-1]] > 1:
        sch.vectorize(inner[spatial[-1]])
    if reduced:
        first = next((outer[k] for k in reduced if k in outer), None)
        first = first or next((inner[k] for k in reduced if k in inner), None)
        if first is not None:
            sch.decompose_reduction(block, first)
    return sch.mod["main"].with_attr("global_symbol", stage.symbol)


def _loop_names(stage: Stage, count: int) -> tuple[str, ...]:
    names = stage.loop_vars
    return names if len(names) == count else ("",) * count


# -- dlight ----------------------------------------------------------------------------------


def dlight_schedule(
    mod: IRModule, lowered: LoweredCascade, target: Target, options: ScheduleOptions
) -> IRModule:
    from tvm.s_tir import dlight  # noqa: PLC0415

    if _is_gpu(target):
        rules = [
            dlight.gpu.Matmul(),
            dlight.gpu.GEMV(),
            dlight.gpu.Reduction(),
            dlight.gpu.GeneralReduction(),
            dlight.gpu.Fallback(),
        ]
    else:
        rules = [dlight.cpu.GEMV(), dlight.cpu.Reduction()]
    with target:
        return dlight.ApplyDefaultSchedule(*rules)(mod)


# -- MetaSchedule ----------------------------------------------------------------------------


def metaschedule(
    mod: IRModule, lowered: LoweredCascade, target: Target, options: ScheduleOptions
) -> IRModule:
    """Tune every PrimFunc within `options.trials` trials; untuned ones keep the default."""
    import tvm  # noqa: PLC0415
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415

    scheduled = default_schedule(mod, lowered, target, options) if not _is_gpu(target) else None
    if not _is_gpu(target) and "num-cores" not in target.attrs:
        # MetaSchedule sizes its thread pool from the target; the host's cores are the default
        cores = max(1, (os.cpu_count() or 2) // 2)
        target = tvm.target.Target({"kind": "llvm", "num-cores": cores})
    with tempfile.TemporaryDirectory(prefix="codesign_ms_") as tmp:
        work_dir = str(options.work_dir or tmp)
        database = ms.tune_tir(
            mod,
            target,
            work_dir,
            max_trials_global=options.trials,
            num_trials_per_iter=min(options.trials, 64),
            builder=ms.builder.LocalBuilder(timeout_sec=options.builder_timeout_s),
        )
        for stage in lowered.stages:
            sch = ms.tir_integration.compile_tir(database, mod[stage.symbol], target)
            if sch is not None:
                mod[stage.symbol] = sch.mod["main"].with_attr("global_symbol", stage.symbol)
            elif scheduled is not None:
                mod[stage.symbol] = scheduled[stage.symbol]
            else:
                raise InputError(f"MetaSchedule found no schedule for {stage.symbol} on {target}")
    return mod


SCHEDULES: dict[str, ScheduleFn] = {
    "default": default_schedule,
    "dlight": dlight_schedule,
    "metaschedule": metaschedule,
}
