"""Reproduce SMASH (Shivdikar 2021, arXiv 2105.14156) qualitatively: row-wise SpGEMM with
scratchpad hash tables and atomic merging is the fastest dataflow on a PIUMA-like fabric.

``C = A @ A`` for an R-MAT matrix A (tests/validation/smash.yaml pins the input) by inner,
outer and row-wise product (`codesign.sim.sparse_kernels`), each checked against scipy and
priced by both PIUMA models.  Prints the counts and cycles per dataflow, then paper vs codesign
for the published 9.4x.  ``--sweep`` repeats the comparison over R-MAT scales (docs/piuma.md).
Run: ``python examples/papers/smash.py [--sweep] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from codesign.frontends.graphs import load_graph
from codesign.hwmodels.piuma import PiumaArch, load_piuma
from codesign.sim.piuma import latency_tolerance, simulate
from codesign.sim.sparse_kernels import Dataflow, spgemm

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "validation" / "smash.yaml"


def compare(graph: str, values_seed: int, arch: PiumaArch) -> dict[str, dict[str, float]]:
    """Per dataflow: cycles under both models and the counts; results checked vs scipy."""
    a = load_graph(graph)
    a.data[:] = np.random.default_rng(values_seed).random(a.nnz)
    reference = a @ a
    rows: dict[str, dict[str, float]] = {}
    for dataflow in Dataflow:
        run = spgemm(a, a, dataflow, arch)
        error = abs(run.result - reference).max() if reference.nnz else 0.0
        if error > 1e-9 * max(1.0, abs(reference).max()):
            raise AssertionError(f"{dataflow.value}: result differs from scipy by {error}")
        little, event = latency_tolerance(run.workload, arch), simulate(run.workload, arch)
        rows[dataflow.value] = {
            "little_cycles": little.cycles,
            "event_cycles": event.cycles,
            "event_bound": event.bound.value,  # type: ignore[dict-item]
            "dram_bytes": event.traffic.dram_bytes,
            **{k: float(getattr(run.counts, k)) for k in run.counts.__slots__},
        }
    return rows


def speedups(rows: dict[str, dict[str, float]], model: str) -> dict[str, float]:
    key = f"{model}_cycles"
    mine = rows["rowwise"][key]
    return {other: rows[other][key] / mine for other in ("inner", "outer")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default=str(ROOT / "examples" / "hw" / "piuma.yaml"))
    parser.add_argument("--sweep", action="store_true", help="also sweep R-MAT scale 9..12")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    arch = load_piuma(args.hw)
    cases = {c["id"]: c for c in yaml.safe_load(CASES.read_text())["cases"]}
    case = cases["smash_speedup_vs_inner"]
    rows = compare(case["inputs"]["graph"], case["inputs"]["values_seed"], arch)
    print(f"C = A @ A, A = {case['inputs']['graph']}, on {arch.name}")
    print(f"{'dataflow':>8} {'multiplies':>11} {'DRAM MB':>8} {'probes':>9} {'atomics':>9} "
          f"{'little cyc':>11} {'event cyc':>11} bound")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:>8} {r['multiplies']:>11.0f} {r['dram_bytes'] / 1e6:>8.2f} "
              f"{r['hash_probes']:>9.0f} {r['atomics']:>9.0f} {r['little_cycles']:>11.4g} "
              f"{r['event_cycles']:>11.4g} {r['event_bound']}")  # fmt: skip
    fastest = min(rows, key=lambda k: rows[k]["event_cycles"])
    print(f"\nfastest dataflow: {fastest} (paper: rowwise)")
    out: dict[str, object] = {"rows": rows, "fastest": fastest}
    for model in ("event", "little"):
        s = speedups(rows, model)
        expected = case["expected"]["speedup"]
        err = s["inner"] / expected - 1
        print(f"{model:>6} model: rowwise vs inner {s['inner']:.2f}x (paper {expected}x, "
              f"{err:+.0%}), vs outer {s['outer']:.2f}x")  # fmt: skip
        out[f"speedup_{model}"] = s
    if args.sweep:
        print("\nscale  vs inner  vs outer   (event model, edge_factor 8)")
        for scale in (9, 10, 11, 12):
            s = speedups(compare(f"rmat:scale={scale},edge_factor=8,seed=1", 0, arch), "event")
            print(f"{scale:>5} {s['inner']:>8.2f}x {s['outer']:>8.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
