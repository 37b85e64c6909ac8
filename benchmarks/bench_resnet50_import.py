"""Time ResNet-50 import + statistics (the issue's "under 3 s on this machine" target).

    python benchmarks/bench_resnet50_import.py [MODEL.onnx] [--repeat N]

MODEL defaults to ``examples/models/resnet50.onnx``, which is generated first (needs torch:
``python examples/models/generate.py --only resnet50``) when missing.  Two figures are printed,
never asserted:

* in-process: ``load_onnx`` + ``cascade_stats`` (best of --repeat runs, after imports);
* end to end: ``codesign stats MODEL`` as a subprocess, the wall time a user waits, Python
  start-up, imports and table printing included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "examples" / "models" / "resnet50.onnx"
TARGET_S = 3.0


def _ensure_model(path: Path) -> None:
    if path.exists():
        return
    if path != DEFAULT:
        raise SystemExit(f"{path}: no such file")
    print(f"{path} missing; generating it (torch export, ~15 s)")
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "models" / "generate.py"), "--only", "resnet50"],
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3, help="in-process repetitions (best)")
    args = parser.parse_args()
    _ensure_model(args.model)

    from codesign.frontends.onnx import load_onnx
    from codesign.ir.stats import cascade_stats

    best_s = float("inf")
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        cascade = load_onnx(args.model)
        stats = cascade_stats(cascade)
        best_s = min(best_s, time.perf_counter() - start)
    params = sum(t.size for t in cascade.weights)
    print(
        f"{cascade.name}: {len(cascade.einsums)} einsums, {stats.macs / 1e9:.2f} GMACs, "
        f"{params / 1e6:.2f} M parameters"
    )
    print(f"in-process load_onnx + cascade_stats: {best_s:.2f} s (best of {args.repeat})")

    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "codesign.cli.main", "stats", str(args.model)],
        capture_output=True,
        text=True,
    )
    cli_s = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        return done.returncode
    verdict = "within" if cli_s < TARGET_S else "OVER"
    print(f"end to end `codesign stats`: {cli_s:.2f} s ({verdict} the {TARGET_S:.0f} s target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
