"""`codesign compile` (TVM build + runner) and `codesign bench` (TVM vs roofline and peers).

    codesign compile MODEL --target llvm|cuda [--schedule S | --tune TRIALS] [--cuda-arch A]
        [--passes PIPELINE] -o DIR
    codesign bench MODEL --target llvm [--tune TRIALS] [--hw host_cpu.yaml] [--repeat N]
        [--peers onnxruntime,torch] [--passes PIPELINE] [--json PATH] [--plot PNG]

With ``--passes`` (e.g. ``fuse-elementwise`` or ``fuse{buffer_kib=256}``) the pipeline runs on
the model first and each fused group it records becomes one kernel
(`codesign.codegen.groups.kernel_plan`); without it the kernels are contraction + epilogue
groups derived from the cascade.

`bench` is `codesign.codegen.compare.bench_model`: one row per kernel (a fused group), with the
roofline prediction of that group and each TVM build's time, then the whole model beside
onnxruntime and torch eager on the same ONNX file and inputs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from codesign.atomic import write_text
from codesign.cli.passes_opt import add_passes_arguments, apply_passes, parse_passes
from codesign.errors import InputError

if TYPE_CHECKING:
    from codesign.codegen.compare import BenchOptions, BenchResult
    from codesign.codegen.groups import KernelPlan
    from codesign.codegen.te_lower import Stage
    from codesign.hwmodels.gpu import Device
    from codesign.ir.cascade import Cascade

BENCH_TARGETS = ("llvm",)


def add_parser(sub, model_args: Callable[..., None]) -> None:
    p = sub.add_parser("compile", help="build a model with TVM: library + runner script")
    model_args(p)
    p.add_argument("--target", default="llvm", help="llvm | cuda")
    p.add_argument("--schedule", default="default", help="default | dlight | metaschedule")
    p.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="TRIALS",
        help="MetaSchedule tuning with TRIALS trials (database in DIR/tuning, reused)",
    )
    p.add_argument("--cuda-arch", default="sm_80", help="CUDA arch for --target cuda")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the exported sample inputs")
    p.add_argument("--json", metavar="PATH",
                   help="write the kernels and the kernels of each fused group as JSON "
                   "('-' = stdout)")  # fmt: skip
    add_passes_arguments(p, error_flag=False)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("bench", help="TVM kernels vs the host roofline, onnxruntime and torch")
    model_args(p)
    p.add_argument("--target", default="llvm", help="llvm (the host CPU)")
    p.add_argument(
        "--hw",
        metavar="HOST.yaml",
        help="family: cpu YAML (benchmarks/measure_host_cpu.py); default: measure now",
    )
    # BenchOptions' defaults (not imported here: the parser is built without numpy)
    p.add_argument("--repeat", type=int, default=4, help="timed runs per kernel per round")
    p.add_argument("--rounds", type=int, default=9,
                   help="interleaved rounds (TVM and peers; many short ones ride out a "
                        "transient slowdown of the host)")  # fmt: skip
    p.add_argument("--tune", type=int, default=0, metavar="TRIALS",
                   help="also build with MetaSchedule tuning (TRIALS trials in all)")  # fmt: skip
    p.add_argument("--tuning-dir", metavar="DIR",
                   help="tuning database, reused (default: tvm_tuning/MODEL_NAME)")  # fmt: skip
    p.add_argument("--peers", default="onnxruntime,torch",
                   help="peer runtimes on the same ONNX file ('' = none)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--threads", type=int, default=None,
                   help="worker threads of TVM and the peers (default: the CPUs this process "
                   "may use)")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="write the comparison as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="PNG", help="write a per-kernel and per-model bar chart")
    add_passes_arguments(p, error_flag=False)
    p.set_defaults(func=cmd_bench)


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=140)


def _load(args: argparse.Namespace) -> Cascade:
    """The model with the ``--passes`` pipeline applied (parsed before the model loads)."""
    from codesign.cli.commands import load_from_args

    pipeline = parse_passes(args.passes)
    return apply_passes(load_from_args(args), pipeline, measure_error=False).cascade


def _plan_lines(plan: KernelPlan) -> list[str]:
    """Where the kernels come from, and why a recorded group became several kernels."""
    if plan.source == "ir":
        head = f"kernels: one per fused group of --passes ({len(plan.groups)} multi-Einsum)"
    else:
        head = (
            f"kernels: {len(plan.groups)} contraction + epilogue groups derived from the "
            "cascade (--passes fuse-elementwise records them in the IR)"
        )
    return [head, *(f"  {note}" for note in plan.notes)]


def _groups_json(cascade: Cascade, kernels: Sequence[Sequence[str]]) -> list[dict[str, object]]:
    """Per fused group the cascade records: its Einsums and the kernels (Einsums of each
    compiled kernel, `kernels`) that compute it."""
    from codesign.codegen.groups import kernels_per_group

    return [
        {"name": g.group, "einsums": list(g.einsums), "kernels": len(g.kernels),
         "kernel_einsums": [list(k) for k in g.kernels]}
        for g in kernels_per_group(cascade, kernels)
    ]  # fmt: skip


def _compile_json(cascade: Cascade, plan: KernelPlan, stages: Sequence[Stage]) -> dict[str, object]:
    """``kernels`` (each compiled kernel: symbol, Einsums, reductions, recurrences), ``groups``
    (`_groups_json`) and where the kernels came from (``kernel_source``, ``notes``)."""
    kernels = [
        {"symbol": s.symbol, "einsums": list(s.einsums), "reductions": s.reductions,
         "recurrences": list(s.recurrences)}
        for s in stages
    ]  # fmt: skip
    groups = _groups_json(cascade, [s.einsums for s in stages])
    return {"kernel_source": plan.source, "notes": list(plan.notes), "kernels": kernels,
            "groups": groups}  # fmt: skip


# -- compile --------------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from codesign.codegen.groups import kernel_plan
    from codesign.codegen.schedules import ScheduleOptions
    from codesign.codegen.tvm import compile_cascade, cuda_source, nvcc_compile

    if args.tune < 0:
        raise InputError(f"--tune {args.tune}: must be at least 0")
    cascade = _load(args)
    plan = kernel_plan(cascade)
    schedule, options = args.schedule, None
    if args.tune:
        schedule = "metaschedule"
        options = ScheduleOptions(trials=args.tune, work_dir=Path(args.out) / "tuning")
    compiled = compile_cascade(
        cascade, args.target, schedule, cuda_arch=args.cuda_arch, options=options,
        groups=plan.groups,
    )  # fmt: skip
    out = compiled.export(args.out, seed=args.seed)
    if args.json:
        data = {"model": cascade.name, "target": args.target, "schedule": schedule}
        text = json.dumps(data | _compile_json(cascade, plan, compiled.lowered.stages), indent=1)
        if args.json == "-":
            sys.stdout.write(text + "\n")
            return 0
        write_text(args.json, text + "\n")
    console = _console()
    for line in _plan_lines(plan):
        console.print(line, soft_wrap=True)
    if args.target == "cuda":
        write_text(out / "kernels.cu", cuda_source(compiled))
    console.print(
        f"{cascade.name}: {len(compiled.lowered.stages)} kernels built for {args.target} "
        f"({schedule} schedule) into {out}/"
    )
    for path in sorted(out.iterdir()):
        if path.is_file():
            console.print(f"  {path.name:16s} {path.stat().st_size:>10,d} B")
    if args.target == "cuda":
        if shutil.which("nvcc") is None:
            console.print("nvcc not on PATH: kernels.cu not compiled")
        else:
            cubin = nvcc_compile(cuda_source(compiled), arch=args.cuda_arch, out_dir=out)
            console.print(f"nvcc -arch={args.cuda_arch}: compiled kernels.cu to {cubin.name}")
    console.print(f"run it: cd {out} && python run.py" + (" --device cuda" if
                  args.target == "cuda" else ""))  # fmt: skip
    return 0


# -- bench ----------------------------------------------------------------------------------------
def _host_device(hw: str | None) -> tuple[Device, str]:
    """The CPU roofline device and a sentence saying where it came from."""
    from codesign.hwmodels.registry import Command, load_hardware_card

    if hw is None:
        from codesign.hwmodels.host import measure_host

        device = measure_host()
        how = "measured now on this host (pass --hw host_cpu.yaml to fix the roofs)"
    else:
        device = load_hardware_card(hw, Command.BENCH).hw
        how = f"from {hw}"
    if device.family != "cpu":
        raise InputError(
            f"--hw {hw}: {device.name} is a {device.family} device; bench runs on the host CPU "
            "(give a family: cpu YAML from benchmarks/measure_host_cpu.py)"
        )
    return device, how


def _fmt_us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"


def _fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def cmd_bench(args: argparse.Namespace) -> int:
    from codesign.codegen.compare import BenchOptions, plot, result_dict
    from codesign.codegen.groups import kernel_plan

    if args.target not in BENCH_TARGETS:
        raise InputError(
            f"--target {args.target!r}: bench measures on the host CPU (known: "
            f"{', '.join(BENCH_TARGETS)})"
        )
    if args.repeat < 1:
        raise InputError(f"--repeat {args.repeat}: must be at least 1")
    if args.tune < 0:
        raise InputError(f"--tune {args.tune}: must be at least 0")
    from codesign.codegen.tvm import allowed_cpus

    threads = allowed_cpus() if args.threads is None else args.threads
    if threads < 1:
        raise InputError(f"--threads {threads}: must be at least 1")
    device, how = _host_device(args.hw)
    cascade = _load(args)
    model_path = Path(args.model) if args.model and Path(args.model).is_file() else None
    peers = tuple(p for p in args.peers.split(",") if p) if args.peers else ()
    tuning_dir = Path(args.tuning_dir) if args.tuning_dir else Path("tvm_tuning") / cascade.name
    options = BenchOptions(
        model_path=model_path, tune_trials=args.tune, tuning_dir=tuning_dir, peers=peers,
        repeat=args.repeat, rounds=args.rounds, seed=args.seed, threads=threads,
    )  # fmt: skip
    result = _bench_with_progress(cascade, device, options)
    data = result_dict(result) | {"target": args.target, "hw_source": how}
    data["groups"] = _groups_json(cascade, [k.einsums for k in result.kernels])
    if args.json:
        text = json.dumps(data, indent=1)
        if args.json == "-":
            sys.stdout.write(text + "\n")
            return 0
        write_text(args.json, text + "\n")
    console = _console()
    peaks = ", ".join(f"{p.value} {v / 1e9:,.1f} GFLOP/s" for p, v in device.vector_peaks)
    bw = device.dram.bandwidth_bytes_per_s or 0.0
    console.print(
        f"host roofline {device.name}: {peaks}, DRAM {bw / 1e9:,.1f} GB/s; {how}", soft_wrap=True
    )
    table = Table(title=f"{cascade.name}: TVM kernels (one per fused group) vs roofline")
    table.add_column("kernel (Einsums)", justify="left")
    table.add_column("predicted µs", justify="right")
    for v in result.variants:
        table.add_column(f"{v} µs", justify="right")
        table.add_column(f"{v}/pred", justify="right")
    table.add_column("bound", justify="left")
    for k in result.kernels:
        measured = dict(k.measured_s)
        cells = [_cell for v in result.variants
                 for _cell in (_fmt_us(measured[v]), _fmt_ratio(k.ratio(v)))]  # fmt: skip
        label = k.symbol.removeprefix("cs_") + (f" (+{len(k.einsums) - 1})" if len(k.einsums) > 1
                                                 else "")  # fmt: skip
        table.add_row(label, _fmt_us(k.predicted_s), *cells, k.bound)
    for line in _plan_lines(kernel_plan(cascade)):
        console.print(line, soft_wrap=True)
    console.print(table)
    models = Table(title=f"{cascade.name}: whole model on this host (same inputs)")
    for col in ("runtime", "µs per inference", "vs roofline"):
        models.add_column(col, justify="left" if col == "runtime" else "right")
    models.add_row("roofline (predicted)", _fmt_us(result.predicted_total_s), "1.00")
    notes = dict(result.peer_notes)
    for name, seconds in result.model_s:
        ratio = None if seconds is None else seconds / result.predicted_total_s
        label = name if seconds is not None else f"{name} ({notes.get(name, 'not run')})"
        models.add_row(label, _fmt_us(seconds), _fmt_ratio(ratio))
    console.print(models)
    for v in result.variants:
        console.print(
            f"{v}: median measured/predicted over kernels {result.median_ratio(v):.2f}",
            soft_wrap=True,
        )
    for line in _scaling_lines(result.core_scaling, options.threads):
        console.print(line, soft_wrap=True)
    if args.plot:
        console.print(f"plot: {plot(result, Path(args.plot))}")
    return 0


def _bench_with_progress(cascade: Cascade, device: Device, options: BenchOptions) -> BenchResult:
    """`bench_model` with a progress bar on stderr (builds, rounds, cores probes)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from codesign.codegen.compare import bench_model, bench_steps

    columns = (
        TextColumn("bench {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(cascade.name, total=bench_steps(options))

        def tick(what: str) -> None:
            bar.update(task, advance=1, description=f"{cascade.name}: {what}")

        return bench_model(cascade, device, options, tick)


def _scaling_lines(scaling: tuple[float, float] | None, threads: int | None) -> list[str]:
    """What the cores gave while bench measured (`compare.core_scaling`), and a warning when
    they were shared."""
    from codesign.codegen.compare import PROBE_GEMM, SHARED_CORES_SCALING

    if scaling is None:
        return []
    before, after = scaling
    lines = [
        f"cores: {threads} threads ran a {PROBE_GEMM}^3 GEMM {before:.2f}x faster than 1 before "
        f"the timings, {after:.2f}x after"
    ]
    if min(before, after) < SHARED_CORES_SCALING:
        lines.append(
            "codesign: warning: this process's CPUs were shared (another tenant or the host "
            "placed them on one core): the multi-thread kernels' figures are below what "
            "dedicated cores give; run again or pass --threads 1"
        )
    return lines
