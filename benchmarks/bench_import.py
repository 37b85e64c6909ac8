"""Time ONNX import + statistics of the zoo's ResNet-50 (target: under 3 s on this machine).

    python benchmarks/bench_import.py [MODEL.onnx ...] [--repeat N]

MODEL defaults to ``light_resnet50.onnx`` from the onnx package's light zoo
(``onnx/backend/test/data/light``; it ships with onnx).  For each model it prints the best of
--repeat in-process runs of ``load_onnx`` + ``cascade_stats`` (after imports), split into the
two, with the Einsum count and MACs.  Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import onnx

from codesign.frontends.onnx import load_onnx
from codesign.ir.stats import cascade_stats

ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
TARGET_S = 3.0


def bench(path: Path, repeat: int) -> float:
    """Best total seconds of load + stats; prints the breakdown."""
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
    parser.add_argument("models", nargs="*", type=Path, default=[ZOO / "light_resnet50.onnx"])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per model (best)")
    args = parser.parse_args()
    for path in args.models:
        bench(path, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
