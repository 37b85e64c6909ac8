"""Time ONNX import + statistics of the zoo's ResNet-50 (target: under 3 s on this machine),
and the command line's start-up.

    python benchmarks/bench_import.py [MODEL.onnx ...] [--repeat N]
    python benchmarks/bench_import.py --startup [--scalesim-python /work/peers/venv/bin/python]

MODEL defaults to ``light_resnet50.onnx`` from the onnx package's light zoo
(``onnx/backend/test/data/light``; it ships with onnx).  For each model it prints the best of
--repeat in-process runs of ``load_onnx`` + ``cascade_stats`` (after imports), split into the
two, with the Einsum count and MACs.

``--startup`` times whole processes instead, the median of --repeat interleaved runs each
(default 10; the load average is printed, for a shared machine): ``codesign --help`` against
a bare ``python -c pass`` (target: at most 5x), and the 64x64x64 GEMM on a 32x32 weight-stationary
array as SCALE-Sim files (``codesign map topo.csv --hw scalesim.cfg --model cycle``) against
SCALE-Sim 3.0.0 running the same files in its own process (``--scalesim-python``: a peer venv
with scalesim and numpy<2.3; never a codesign dependency).  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def _env() -> dict[str, str]:
    # bytecode caching as users have it (this machine's shells may turn it off)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _interleaved_ms(commands: dict[str, tuple[list[str], Path]], repeat: int) -> dict[str, float]:
    """Median wall time (ms) of whole processes (start-up, imports and exit), the commands run
    round-robin `repeat` times after one warm-up round, so that load on a shared machine falls
    on all of them alike."""
    env = _env()
    for argv, cwd in commands.values():
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(1, repeat)):
        for name, (argv, cwd) in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def startup(repeat: int, scalesim_python: str | None) -> None:
    """`codesign --help` vs bare Python; a 64^3 SCALE-Sim case vs SCALE-Sim, whole processes."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scalesim_reference as reference

    case = next(c for c in reference.CASES if c.case_id == "ws32x32_gemm64")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"median of {repeat} interleaved runs each")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "scalesim.cfg").write_text(reference.CFG_TEMPLATE.format(
            run_name=case.case_id, rows=case.rows, cols=case.cols, dataflow=case.dataflow))
        (work / "topology.csv").write_text(case.topology_text())
        (work / "layout.csv").write_text(reference.CONV_HEADER)  # fmt: skip
        commands = {
            "bare": ([sys.executable, "-c", "pass"], ROOT),
            "help": ([sys.executable, "-m", "codesign.cli.main", "--help"], ROOT),
            "ours": ([sys.executable, "-m", "codesign.cli.main", "map",
                      str(work / "topology.csv"), "--hw", str(work / "scalesim.cfg"),
                      "--model", "cycle", "-q", "--json", os.devnull], ROOT),
        }  # fmt: skip
        if scalesim_python:
            worker = str(ROOT / "benchmarks/scalesim_reference.py")
            commands["theirs"] = ([scalesim_python, worker, "--peer-worker", str(work), "--gemm"],
                                  work)  # fmt: skip
        ms = _interleaved_ms(commands, repeat)
    ratio = ms["help"] / ms["bare"]
    verdict = "within" if ratio <= HELP_TARGET_RATIO else "OVER"
    print(f"codesign --help {ms['help']:.0f} ms, python -c pass {ms['bare']:.0f} ms: "
          f"{ratio:.1f}x ({verdict} the {HELP_TARGET_RATIO:.0f}x target)")  # fmt: skip
    line = f"SCALE-Sim case {case.case_id} (whole process): codesign {ms['ours']:.0f} ms"
    if "theirs" in ms:
        speedup = ms["theirs"] / ms["ours"]
        verdict = "faster" if speedup > 1 else "SLOWER"
        line += (f", SCALE-Sim {ms['theirs']:.0f} ms: SCALE-Sim/codesign = {speedup:.2f}"
                 f" (codesign {verdict})")  # fmt: skip
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
    parser.add_argument("--repeat", type=int, help="repetitions (default: 3 per model, best;"
                        " 10 interleaved runs for --startup, median)")
    parser.add_argument("--startup", action="store_true", help="time whole processes")
    parser.add_argument("--scalesim-python", help="python of a peer venv with scalesim")
    args = parser.parse_args()
    if args.scalesim_python and not Path(args.scalesim_python).is_file():
        parser.error(
            f"--scalesim-python {args.scalesim_python}: no such interpreter "
            "(benchmarks/scalesim_reference.py says how to make the peer venv)"
        )
    if args.startup:
        startup(args.repeat or 10, args.scalesim_python)
        return 0
    for path in args.models or [_zoo() / "light_resnet50.onnx"]:
        bench(path, args.repeat or 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
