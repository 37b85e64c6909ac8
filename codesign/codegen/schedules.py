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

from codesign.codegen.cpu_schedule import micro_for, schedule_stage, snap_tile
from codesign.codegen.te_lower import LoweredCascade
from codesign.errors import InputError

if TYPE_CHECKING:
    from tvm.ir import IRModule
    from tvm.target import Target

@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    """Knobs of the schedules.

    `tiles` maps an Einsum name to ``{iteration variable: tile size}``; a size is snapped down
    to a divisor of the loop extent (so no tail loops).  `trials` is MetaSchedule's global trial
    budget and `builder_timeout_s` its per-candidate build timeout (TVM builds are slow on small
    hosts).  `work_dir` holds MetaSchedule's tuning database: records found there are reused,
    and a kernel that already has one is not tuned again.
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
    """A new module: the CPU schedule of every stage (`cpu_schedule`; dlight on GPU targets)."""
    import tvm  # noqa: PLC0415

    if _is_gpu(target):
        return dlight_schedule(mod, lowered, target, options)
    tiles = options.tiles or {}
    micro = micro_for(target)
    return tvm.IRModule(
        {
            stage.symbol: schedule_stage(stage, tiles.get(stage.einsum, {}), micro)
            for stage in lowered.stages
        }
    )


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
