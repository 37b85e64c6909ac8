"""Fusion figures of issue 11: unfused vs `fuse-elementwise` vs `fuse` on the CNN (eyeriss_like,
energy) and ResNet-18/50 (tpu_like, cycles).

    python benchmarks/bench_fusion.py [--models cnn resnet18 resnet50] [--json OUT]
                                      [--evaluations N] [--out DIR]

ResNets are generated into --out (default a temporary directory) with
``examples/models/generate.py`` (torch export, ~10 s each) unless already there.  For every
(model, pipeline) it prints total cycles, energy, the share of non-MAC Einsums (bias, ReLU,
residual add, pooling; rows of fused groups count what the epilogue adds: its ALU ops and
on-chip accesses) in cycles and energy, the same share without max-pool, the number of
groups and how many of them the fused-nest mapper priced (the rest: the block model).  The
acceptance of issue 11 is checked by tests/test_fuse.py and tests/test_fused_search.py; this script
produces the ResNet figures quoted in docs/passes.md (about 3 minutes for all models).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "cnn": ("examples/hw/eyeriss_like.yaml", "fuse{buffer_kib=100}"),
    "resnet18": ("examples/hw/tpu_like.yaml", "fuse{buffer_kib=2048}"),
    "resnet50": ("examples/hw/tpu_like.yaml", "fuse{buffer_kib=2048}"),
}


def _model(name: str, out: Path) -> Path:
    if name == "cnn":
        return ROOT / "examples" / "models" / "cnn.onnx"
    path = out / f"{name}.onnx"
    if not path.exists():
        generate = ROOT / "examples" / "models" / "generate.py"
        cmd = [sys.executable, str(generate), "--out", str(out), "--only", name]
        subprocess.run(cmd, check=True)
    return path


def _shares(doc: dict) -> dict[str, float]:
    total_cycles, total_pj = doc["total"]["cycles"], doc["total"]["energy_pj"]
    rows = [e for e in doc["einsums"] if e["kind"] != "mac"]
    no_pool = [e for e in rows if e["op"] != "MaxPool"]
    return {
        "nonmac_cycle_share": sum(e["cycles"] for e in rows) / total_cycles,
        "nonmac_energy_share": sum(e["energy_pj"] for e in rows) / total_pj,
        "nonmac_cycle_share_without_maxpool": sum(e["cycles"] for e in no_pool) / total_cycles,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="where generated models go")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="codesign_fusion_"))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.models:
        hw, fuse = CASES[name]
        model = _model(name, out)
        for pipeline in ("none", "fuse-elementwise", fuse):
            report = out / f"{name}.{pipeline.split('{')[0]}.json"
            cmd = [sys.executable, "-m", "codesign.cli.main", "map", str(model), "--hw", hw,
                   "-q", "--evaluations", str(args.evaluations), "--json", str(report)]  # fmt: skip
            if pipeline != "none":
                cmd += ["--passes", pipeline]
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            doc = json.loads(report.read_text())
            row = {"model": name, "hw": Path(hw).stem, "passes": pipeline,
                   "cycles": doc["total"]["cycles"], "energy_pj": doc["total"]["energy_pj"],
                   "groups": len(doc["groups"]),
                   "fused_nest_groups": sum(g["model"] == "fused-nest" for g in doc["groups"]),
                   **_shares(doc)}  # fmt: skip
            results.append(row)
            print(
                f"{name:9s} {row['hw']:13s} {pipeline:22s} {row['cycles']:>13,.0f} cycles "
                f"{row['energy_pj'] / 1e6:>10.1f} µJ  non-MAC cycles "
                f"{row['nonmac_cycle_share']:6.1%} (w/o max-pool "
                f"{row['nonmac_cycle_share_without_maxpool']:6.1%}) energy "
                f"{row['nonmac_energy_share']:6.1%}  groups {row['groups']} "
                f"(fused nest {row['fused_nest_groups']})"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
