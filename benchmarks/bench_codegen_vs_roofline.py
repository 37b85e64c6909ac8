"""TVM-compiled kernels on this host vs. the host CPU roofline: median measured/predicted.

    python benchmarks/bench_codegen_vs_roofline.py [--model examples/models/mlp.onnx]
        [--hw host_cpu.yaml] [--repeat 20] [--json out.json]

Runs ``codesign bench MODEL --target llvm`` (default schedule; ``--tune N`` adds a tuned build)
and prints its tables and the median over kernels of measured/predicted time; the README
records that number for the bundled GEMM-heavy model (the MLP).  Without ``--hw`` the host's
roofs are measured first (``codesign.hwmodels.host.measure_host``, a few seconds).  A timing,
never a test assertion: on a loaded or shared machine it moves from run to run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from codesign.cli.main import main as codesign_main

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "examples" / "models" / "mlp.onnx"))
    parser.add_argument("--hw", help="family: cpu YAML (default: measure this host now)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tune", type=int, default=0, help="also a MetaSchedule-tuned build")
    parser.add_argument("--json", help="also keep the bench JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.json or Path(tmp) / "bench.json")
        argv = ["bench", args.model, "--target", "llvm", "--repeat", str(args.repeat)]
        argv += ["--tune", str(args.tune)] if args.tune else []
        argv += ["--json", str(out)] + (["--hw", args.hw] if args.hw else [])
        code = codesign_main(argv)
        if code:
            return code
        data = json.loads(out.read_text())
    for variant in data["variants"]:
        ratios = sorted(r for k in data["kernels"] if (r := k["ratio"][variant]) is not None)
        print(
            f"{data['model']} on {data['hw']} ({data['hw_source']}), {variant}: median "
            f"measured/predicted {data['median_ratio'][variant]:.2f} over {len(ratios)} kernels "
            f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f}); model "
            f"{data['model_s'][variant] * 1e6:.1f} us measured vs "
            f"{data['predicted_total_s'] * 1e6:.1f} us predicted"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
