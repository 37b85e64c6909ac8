"""Time ONNX import + statistics of the zoo's ResNet-50 (target: under 3 s on this machine),
and the command line's start-up.

    python benchmarks/bench_import.py [MODEL.onnx ...] [--repeat N]
    python benchmarks/bench_import.py --startup [--scalesim-python /work/peers/venv/bin/python]

MODEL defaults to ``light_resnet50.onnx`` from the onnx package's light zoo
(``onnx/backend/test/data/light``; it ships with onnx).  For each model it prints the best of
--repeat in-process runs of ``load_onnx`` + ``cascade_stats`` (after imports), split into the
two, with the Einsum count and MACs.

``--startup`` times whole processes instead, best of --repeat: ``codesign --help`` against a
bare ``python -c pass`` (target: at most 5x), and the 64x64x64 GEMM on a 32x32 weight-stationary
array as SCALE-Sim files (``codesign map topo.csv --hw scalesim.cfg --model cycle``) against
SCALE-Sim 3.0.0 running the same files in its own process (``--scalesim-python``: a peer venv
with scalesim and numpy<2.3; never a codesign dependency).  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 3.0
HELP_TARGET_RATIO = 5.0


def _zoo() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _process_s(argv: list[str], repeat: int, cwd: Path = ROOT) -> float:
    """Best wall time of `repeat` runs of a whole process (start-up, imports and exit)."""
    # bytecode caching as users have it (this machine's shells may turn it off); one warm-up run
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def startup(repeat: int, scalesim_python: str | None) -> None:
    """`codesign --help` vs bare Python; a 64^3 SCALE-Sim case vs SCALE-Sim, whole processes."""
    bare = _process_s([sys.executable, "-c", "pass"], repeat)
    help_s = _process_s([sys.executable, "-m", "codesign.cli.main", "--help"], repeat)
    ratio = help_s / bare
    verdict = "within" if ratio <= HELP_TARGET_RATIO else "OVER"
    print(f"codesign --help {help_s * 1e3:.0f} ms, python -c pass {bare * 1e3:.0f} ms: "
          f"{ratio:.1f}x ({verdict} the {HELP_TARGET_RATIO:.0f}x target)")  # fmt: skip
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scalesim_reference as reference

    case = next(c for c in reference.CASES if c.case_id == "ws32x32_gemm64")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "scalesim.cfg").write_text(reference.CFG_TEMPLATE.format(
            run_name=case.case_id, rows=case.rows, cols=case.cols, dataflow=case.dataflow))
        (work / "topology.csv").write_text(case.topology_text())
        (work / "layout.csv").write_text(reference.CONV_HEADER)  # fmt: skip
        ours = _process_s([sys.executable, "-m", "codesign.cli.main", "map",
                           str(work / "topology.csv"), "--hw", str(work / "scalesim.cfg"),
                           "--model", "cycle", "-q", "--json", os.devnull], repeat)  # fmt: skip
        line = f"SCALE-Sim case {case.case_id} (whole process): codesign {ours * 1e3:.0f} ms"
        if scalesim_python:
            worker = str(ROOT / "benchmarks/scalesim_reference.py")
            theirs = _process_s([scalesim_python, worker, "--peer-worker", str(work), "--gemm"],
                                repeat, cwd=work)  # fmt: skip
            verdict = "faster" if ours < theirs else "SLOWER"
            line += f", SCALE-Sim {theirs * 1e3:.0f} ms: codesign {theirs / ours:.1f}x {verdict}"
        else:
            line += " (give --scalesim-python to time SCALE-Sim beside it)"
        print(line)


def bench(path: Path, repeat: int) -> float:
    """Best total seconds of load + stats; prints the breakdown."""
    from codesign.frontends.onnx import load_onnx
    from codesign.ir.stats import cascade_stats

    best = (float("inf"), 0.0, 0.0)
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        cascade = load_onnx(path)
        loaded = time.perf_counter()
        stats = cascade_stats(cascade)
        done = time.perf_counter()
        if done - start < best[0]:
            best = (done - start, loaded - start, done - loaded)
    total_s, load_s, stats_s = best
    verdict = "within" if total_s < TARGET_S else "OVER"
    print(
        f"{path.name}: {len(cascade.einsums)} einsums, {stats.macs / 1e9:.2f} GMACs; "
        f"load_onnx {load_s:.2f} s + cascade_stats {stats_s:.2f} s = {total_s:.2f} s "
        f"(best of {repeat}; {verdict} the {TARGET_S:.0f} s target)"
    )
    return total_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per model (best)")
    parser.add_argument("--startup", action="store_true", help="time whole processes")
    parser.add_argument("--scalesim-python", help="python of a peer venv with scalesim")
    args = parser.parse_args()
    if args.startup:
        startup(args.repeat, args.scalesim_python)
        return 0
    for path in args.models or [_zoo() / "light_resnet50.onnx"]:
        bench(path, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
