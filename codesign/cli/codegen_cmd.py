"""`codesign compile` (TVM build + runner) and `codesign bench` (kernel times vs. the roofline).

    codesign compile MODEL --target llvm|cuda [--schedule S] [--cuda-arch sm_80] -o DIR
    codesign bench MODEL --target llvm [--hw host_cpu.yaml] [--repeat N] [--json PATH]

`bench` joins each measured kernel to the roofline row of the Einsum it computes
(``KernelTime.einsum``); kernels that assemble a concatenated tensor (einsum ``""``) and
kernels of Einsums the roofline treats as free views have no prediction and are listed apart.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from codesign.errors import InputError

if TYPE_CHECKING:
    from codesign.codegen.tvm import KernelTime
    from codesign.hwmodels.gpu import Device
    from codesign.sim.roofline import RooflineRow

BENCH_TARGETS = ("llvm",)


def add_parser(sub, model_args: Callable[..., None]) -> None:
    p = sub.add_parser("compile", help="build a model with TVM: library + runner script")
    model_args(p)
    p.add_argument("--target", default="llvm", help="llvm | cuda")
    p.add_argument("--schedule", default="default", help="default | dlight | metaschedule")
    p.add_argument("--cuda-arch", default="sm_80", help="CUDA arch for --target cuda")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="seed of the exported sample inputs")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("bench", help="measure TVM kernel times beside the host roofline")
    model_args(p)
    p.add_argument("--target", default="llvm", help="llvm (the host CPU)")
    p.add_argument("--schedule", default="default", help="default | dlight | metaschedule")
    p.add_argument(
        "--hw",
        metavar="HOST.yaml",
        help="family: cpu YAML (benchmarks/measure_host_cpu.py); default: measure now",
    )
    p.add_argument("--repeat", type=int, default=10, help="timed runs per kernel (median)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", metavar="PATH", help="write the comparison as JSON ('-' = stdout)")
    p.set_defaults(func=cmd_bench)


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=140)


# -- compile --------------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from codesign.cli.commands import load_from_args
    from codesign.codegen.tvm import compile_cascade, cuda_source, nvcc_compile

    cascade = load_from_args(args)
    compiled = compile_cascade(
        cascade, target=args.target, schedule=args.schedule, cuda_arch=args.cuda_arch
    )
    out = compiled.export(args.out, seed=args.seed)
    console = _console()
    if args.target == "cuda":
        (out / "kernels.cu").write_text(cuda_source(compiled))
    console.print(
        f"{cascade.name}: {len(compiled.lowered.stages)} kernels built for {args.target} "
        f"({args.schedule} schedule) into {out}/"
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
@dataclass(frozen=True, slots=True)
class KernelComparison:
    """One measured kernel beside its roofline prediction (None: the roofline has no kernel)."""

    symbol: str
    einsum: str
    measured_s: float
    predicted_s: float | None
    bound: str

    @property
    def ratio(self) -> float | None:
        """measured / predicted (None without a prediction)."""
        if not self.predicted_s:
            return None
        return self.measured_s / self.predicted_s


def compare_kernels(
    times: Sequence[KernelTime], rows: Sequence[RooflineRow]
) -> tuple[KernelComparison, ...]:
    """Join measured kernels to roofline rows by Einsum name, in kernel order."""
    by_einsum = {e: r for r in rows for e in r.einsums}
    out = []
    for t in times:
        row = by_einsum.get(t.einsum) if t.einsum else None
        out.append(
            KernelComparison(
                symbol=t.symbol,
                einsum=t.einsum,
                measured_s=t.median_s,
                predicted_s=row.time_s if row is not None else None,
                bound=row.bound if row is not None else ("combine" if not t.einsum else "view"),
            )
        )
    return tuple(out)


def median_ratio(comparisons: Sequence[KernelComparison]) -> float:
    """Median of measured/predicted over the kernels with a prediction (nan if none)."""
    ratios = [c.ratio for c in comparisons if c.ratio is not None]
    return statistics.median(ratios) if ratios else math.nan


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


def cmd_bench(args: argparse.Namespace) -> int:
    from codesign.cli.commands import load_from_args
    from codesign.codegen.tvm import benchmark, compile_cascade
    from codesign.ir.inputs import sample_inputs
    from codesign.sim.roofline import analyze

    if args.target not in BENCH_TARGETS:
        raise InputError(
            f"--target {args.target!r}: bench measures on the host CPU (known: "
            f"{', '.join(BENCH_TARGETS)})"
        )
    if args.repeat < 1:
        raise InputError(f"--repeat {args.repeat}: must be at least 1")
    device, how = _host_device(args.hw)
    cascade = load_from_args(args)
    compiled = compile_cascade(cascade, target=args.target, schedule=args.schedule)
    times = benchmark(compiled, sample_inputs(cascade, args.seed), repeat=args.repeat)
    rows = analyze(cascade, device).rows
    comparisons = compare_kernels(times, rows)
    joined = [c for c in comparisons if c.ratio is not None]
    others = [c for c in comparisons if c.ratio is None]
    median = median_ratio(comparisons)
    measured_total = sum(c.measured_s for c in joined)
    predicted_total = sum(c.predicted_s or 0.0 for c in joined)
    result = {
        "model": cascade.name,
        "target": args.target,
        "schedule": args.schedule,
        "hw": device.name,
        "hw_source": how,
        "kernels": [
            {
                "einsum": c.einsum,
                "symbol": c.symbol,
                "measured_s": c.measured_s,
                "predicted_s": c.predicted_s,
                "ratio": c.ratio,
                "bound": c.bound,
            }
            for c in comparisons
        ],  # fmt: skip
        "median_ratio": None if math.isnan(median) else median,
        "measured_total_s": measured_total,
        "predicted_total_s": predicted_total,
    }
    if args.json:
        text = json.dumps(result, indent=1)
        if args.json == "-":
            sys.stdout.write(text + "\n")
            return 0
        Path(args.json).write_text(text + "\n")
    console = _console()
    peaks = ", ".join(f"{p.value} {v / 1e9:,.1f} GFLOP/s" for p, v in device.vector_peaks)
    bw = device.dram.bandwidth_bytes_per_s or 0.0
    console.print(
        f"host roofline {device.name}: {peaks}, DRAM {bw / 1e9:,.1f} GB/s; {how}", soft_wrap=True
    )
    table = Table(title=f"{cascade.name}: TVM {args.target} ({args.schedule}) vs roofline")
    for col in ("Einsum", "measured µs", "predicted µs", "measured/predicted", "bound"):
        table.add_column(col, justify="left" if col in ("Einsum", "bound") else "right")
    for c in joined:
        table.add_row(c.einsum, _fmt_us(c.measured_s), _fmt_us(c.predicted_s), f"{c.ratio:.2f}",
                      c.bound)  # fmt: skip
    console.print(table)
    if others:
        console.print("kernels without a roofline prediction (concat assembly, views):")
        for c in others:
            console.print(f"  {c.symbol} ({c.bound}): measured {_fmt_us(c.measured_s)} µs")
    console.print(
        f"median measured/predicted over {len(joined)} Einsums: {median:.2f}; total measured "
        f"{_fmt_us(measured_total)} µs vs predicted {_fmt_us(predicted_total)} µs",
        soft_wrap=True,
    )
    return 0
