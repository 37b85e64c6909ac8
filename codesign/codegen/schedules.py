"""Schedules for the lowered cascade, registered by name.

* ``default`` — on CPU, `codesign.codegen.cpu_schedule` per kernel (register-blocked
  micro-kernel for contractions, vectorised parallel loops otherwise), tile sizes from
  `ScheduleOptions.tiles` (per Einsum, per iteration variable; the mapper's tiling feeds it)
  or from the target's vector width; on GPU, TVM's dlight default rules (GPU kernels need thread
  binding, which the CPU tiling does not do).
* ``dlight`` — TVM's dlight default rules (GPU: Matmul, GEMV, Reduction, GeneralReduction,
  Fallback; CPU: GEMV, Reduction).
* ``metaschedule`` — MetaSchedule tuning with a trial budget (`ScheduleOptions.trials`); per
  kernel, the faster of the tuned and the ``default`` schedule is kept (measured); the tuning
  database in `ScheduleOptions.work_dir` is reused across runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codesign.codegen.cpu_parallel import costs_for, target_cores
from codesign.codegen.cpu_plan import micro_for
from codesign.codegen.cpu_schedule import schedule_stage
from codesign.codegen.group_kernels import with_multi_stage
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
    and a kernel that already has one is not tuned again.  `threads` is the worker count the
    kernels will run on (the default schedule decides per kernel whether parallelism pays,
    `codesign.codegen.cpu_parallel`); None: the target's core count.
    """

    tiles: Mapping[str, Mapping[str, int]] | None = None
    trials: int = 64
    work_dir: Path | None = None
    builder_timeout_s: float = 180.0
    threads: int | None = None


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
    costs = costs_for(target, options.threads or target_cores(target))
    weights = frozenset(lowered.weights)
    return tvm.IRModule(
        {
            stage.symbol: schedule_stage(stage, tiles.get(stage.einsum, {}), micro, weights, costs)
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
    """Tune every PrimFunc within `options.trials` trials, then keep, per kernel, the faster of
    the tuned and the default schedule (measured here).

    With `options.work_dir`, the tuning database lives there and is reused: a kernel that has a
    record is not tuned again, and the per-kernel choice (``choices.json``) is kept, so a second
    run builds the same kernels without tuning.  Without it a temporary directory is used.
    """
    import tvm  # noqa: PLC0415
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415

    gpu = _is_gpu(target)
    fallback = dlight_schedule(mod, lowered, target, options) if gpu else None
    default = default_schedule(mod, lowered, target, options) if not gpu else fallback
    assert default is not None
    with tempfile.TemporaryDirectory(prefix="codesign_ms_") as tmp:
        work_dir = Path(options.work_dir or tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        database = ms.database.JSONDatabase(work_dir=str(work_dir))
        untuned = [
            s.symbol for s in lowered.stages if _record(database, mod[s.symbol], target) is None
        ]
        if untuned and options.trials > 0:
            database = ms.tune_tir(
                tvm.IRModule({name: mod[name] for name in untuned}),
                target,
                str(work_dir),
                max_trials_global=options.trials,
                num_trials_per_iter=trials_per_round(options.trials, len(untuned)),
                builder=ms.builder.LocalBuilder(timeout_sec=options.builder_timeout_s),
            )
        tuned = tvm.IRModule()
        for stage in lowered.stages:
            sch = ms.tir_integration.compile_tir(database, mod[stage.symbol], target)
            func = default[stage.symbol] if sch is None else sch.mod["main"]
            tuned[stage.symbol] = func.with_attr("global_symbol", stage.symbol)
        if gpu:
            return tuned
        choices = _choose(default, tuned, lowered, target, work_dir / CHOICES_FILE)
    return tvm.IRModule(
        {name: (tuned if pick == "tuned" else default)[name] for name, pick in choices.items()}
    )


CHOICES_FILE = "choices.json"


def trials_per_round(trials: int, kernels: int) -> int:
    """MetaSchedule's batch per task round: the global budget shared by the kernels, so its
    round-robin warm-up (one round per task) reaches every kernel instead of spending a small
    budget on the first one; at least 2 (an evolutionary batch), at most 64."""
    return max(2, min(64, -(-trials // max(1, kernels))))


def _record(database, func, target):  # noqa: ANN001, ANN202 - TVM objects
    """The best tuning record of `func` in `database`, or None."""
    from tvm.s_tir.meta_schedule.tir_integration import _normalize_mod  # noqa: PLC0415

    return database.query_tuning_record(_normalize_mod(func), target, "main")


def _choose(
    default: IRModule, tuned: IRModule, lowered: LoweredCascade, target: Target, path: Path
) -> dict[str, str]:
    """Per kernel symbol, "tuned" or "default": the one measured faster (3 interleaved rounds
    of 5 runs each, median), read from `path` when it holds a choice for every kernel made
    between these very two kernels (their structural hashes: a changed default schedule or
    a new tuning record is measured again), else measured and written with the medians."""
    import json  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import tvm  # noqa: PLC0415
    from tvm_ffi import structural_hash  # noqa: PLC0415

    from codesign.codegen import runner  # noqa: PLC0415
    from codesign.codegen.manifest import manifest  # noqa: PLC0415

    symbols = [s.symbol for s in lowered.stages]
    hashes = {name: [str(structural_hash(m[name])) for m in (default, tuned)] for name in symbols}
    if path.exists():
        saved = json.loads(path.read_text())
        if all(
            isinstance(saved.get(name), dict)
            and saved[name].get("pick") in ("tuned", "default")
            and saved[name].get("hashes") == hashes[name]
            for name in symbols
        ):
            return {name: saved[name]["pick"] for name in symbols}
    rng = np.random.default_rng(0)
    values = {
        b.name: rng.standard_normal(b.shape).astype(b.dtype)
        for b in lowered.buffers
        if b.name in (*lowered.inputs, *lowered.weights)
    }
    modules = {"default": default, "tuned": tuned}
    built = {label: tvm.compile(module, target=target) for label, module in modules.items()}
    # the default one may pre-pack weights: each build gets its own manifest
    kernels = {label: manifest(lowered, "llvm", module) for label, module in modules.items()}
    runs: dict[str, dict[str, list[float]]] = {label: {} for label in modules}
    for _ in range(3):  # interleaved, so a load change hits both alike
        for label in modules:
            got = runner.time_stages(built[label].mod, kernels[label], values, tvm.cpu(0), 5)
            for name, times in got.items():
                runs[label].setdefault(name, []).extend(times)
    medians = {label: {n: float(np.median(t)) for n, t in r.items()} for label, r in runs.items()}
    choices = {
        name: "tuned" if medians["tuned"][name] < medians["default"][name] else "default"
        for name in symbols
    }
    record = {
        name: {
            "pick": choices[name],
            "hashes": hashes[name],
            "default_s": medians["default"][name],
            "tuned_s": medians["tuned"][name],
        }
        for name in symbols
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    return choices


# multi-stage kernels (several reductions, recurrences) are scheduled by `group_kernels`
SCHEDULES: dict[str, ScheduleFn] = {
    "default": with_multi_stage(default_schedule),
    "dlight": with_multi_stage(dlight_schedule),
    "metaschedule": with_multi_stage(metaschedule),
}
