"""Fusion figures of issue 11: unfused vs `fuse-elementwise` vs `fuse` on the CNN (eyeriss_like,
energy) and ResNet-18/50 (tpu_like, cycles), and what the fusion costs in map time.

    python benchmarks/bench_fusion.py [--models cnn resnet18 resnet50] [--json OUT]
                                      [--evaluations N] [--jobs N] [--repeat N] [--out DIR]

ResNets are generated into --out (default a temporary directory) with
``examples/models/generate.py`` (torch export, ~10 s each) unless already there.  For every
(model, pipeline) it prints total cycles, energy, the share of non-MAC Einsums (bias, ReLU,
residual add, pooling; rows of fused groups count what the epilogue adds: its ALU ops and
on-chip accesses) in cycles and energy, the same share without max-pool, the number of
groups and how many of them the fused-nest mapper priced (the rest: the block model).  The
acceptance of issue 11 is checked by tests/test_fuse.py and tests/test_fused_search.py; this script
produces the ResNet figures quoted in docs/passes.md (about 3 minutes for all models).

**Timing** (issue 12): every `map` runs as its own process; per (model, pipeline) it prints the
process's wall time, the mapper's wall time (`--json` ``mapper.wall_s``) and the part the
fused groups' shared nests took (``mapper.fused_nest``), then as ratios: each fused pipeline's
map time over the unfused one's, and with ``--jobs N`` (default 2; 1 skips it) the fused
pipelines again over N processes: the speedup of one job over N, and whether the two JSON
reports are identical apart from the timings.  ``--repeat`` runs every command that often,
the runs of one model interleaved, and keeps each one's fastest time (a shared machine is
noisy).  ``--evaluations 0`` searches with the mapper's default budget, as `map` does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
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


def _map(model: Path, hw: str, pipeline: str, evaluations: int, jobs: int,
         report: Path) -> tuple[dict, float]:  # fmt: skip
    """One `map` process: its JSON report and its wall time in seconds."""
    cmd = [sys.executable, "-m", "codesign.cli.main", "map", str(model), "--hw", hw, "-q",
           "--json", str(report), "--jobs", str(jobs)]  # fmt: skip
    if evaluations:
        cmd += ["--evaluations", str(evaluations)]
    if pipeline != "none":
        cmd += ["--passes", pipeline]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads(report.read_text()), time.perf_counter() - start


def _without_timings(doc: dict) -> dict:
    """``doc`` less what differs from run to run: the mapper's times, the passes' seconds."""
    doc = json.loads(json.dumps(doc))
    doc.pop("mapper", None)
    for entry in doc.get("passes", []):
        entry.pop("seconds", None)
    return doc


def _timed(runs: list[tuple[dict, float]]) -> dict[str, float]:
    """The fastest of repeated runs of one command: process, mapper and fused-nest seconds."""
    mapper = [doc.get("mapper", {}) for doc, _ in runs]
    return {
        "process_s": min(wall for _, wall in runs),
        "mapper_s": min(m.get("wall_s", 0.0) for m in mapper),
        "fused_nest_s": min(m.get("fused_nest", {}).get("wall_s", 0.0) for m in mapper),
        "fused_nest_searches": mapper[0].get("fused_nest", {}).get("searches", 0),
        "fused_nest_cache_hits": mapper[0].get("fused_nest", {}).get("cache_hits", 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--evaluations", type=int, default=300,
                        help="mapper budget per layer (0: the mapper's default)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="processes to time against one")
    parser.add_argument("--repeat", type=int, default=1, help="runs per command (fastest kept)")
    parser.add_argument("--out", type=Path, default=None, help="where generated models go")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.jobs < 1 or args.repeat < 1 or args.evaluations < 0:
        parser.error("--jobs and --repeat must be at least 1, --evaluations at least 0")
    out = args.out or Path(tempfile.mkdtemp(prefix="codesign_fusion_"))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.models:
        hw, fuse = CASES[name]
        model = _model(name, out)
        pipelines = ("none", "fuse-elementwise", fuse)
        commands = [(p, 1) for p in pipelines]
        if args.jobs > 1:
            commands += [(p, args.jobs) for p in pipelines[1:]]
        runs: dict[tuple[str, int], list[tuple[dict, float]]] = {c: [] for c in commands}
        for _ in range(args.repeat):  # interleaved: each repeat runs every command once
            for pipeline, jobs in commands:
                report = out / f"{name}.{pipeline.split('{')[0]}.jobs{jobs}.json"
                runs[pipeline, jobs].append(
                    _map(model, hw, pipeline, args.evaluations, jobs, report)
                )
        unfused = _timed(runs["none", 1])
        for pipeline in pipelines:
            doc = runs[pipeline, 1][0][0]
            timing = _timed(runs[pipeline, 1])
            row = {"model": name, "hw": Path(hw).stem, "passes": pipeline,
                   "cycles": doc["total"]["cycles"], "energy_pj": doc["total"]["energy_pj"],
                   "groups": len(doc["groups"]),
                   "fused_nest_groups": sum(g["model"] == "fused-nest" for g in doc["groups"]),
                   **_shares(doc), **timing,
                   "map_time_vs_unfused": timing["process_s"] / unfused["process_s"],
                   "mapper_time_vs_unfused": timing["mapper_s"] / unfused["mapper_s"]}  # fmt: skip
            line = ""
            if pipeline != "none" and args.jobs > 1:
                parallel = _timed(runs[pipeline, args.jobs])
                same = all(_without_timings(d) == _without_timings(doc)
                           for d, _ in runs[pipeline, args.jobs])  # fmt: skip
                speedup = timing["process_s"] / parallel["process_s"]
                mapper_speedup = timing["mapper_s"] / parallel["mapper_s"]
                nest_speedup = timing["fused_nest_s"] / max(parallel["fused_nest_s"], 1e-9)
                row.update({f"jobs{args.jobs}": parallel, "jobs_identical": same,
                            "jobs_speedup_process": speedup,
                            "jobs_speedup_mapper": mapper_speedup,
                            "jobs_speedup_fused_nest": nest_speedup})  # fmt: skip
                line = (
                    f"\n{'':9s} --jobs 1 vs {args.jobs}: process {speedup:.2f}x, "
                    f"mapper {mapper_speedup:.2f}x, fused nests {nest_speedup:.2f}x faster; "
                    f"results {'identical' if same else 'DIFFERENT'}"
                )
            results.append(row)
            print(
                f"{name:9s} {row['hw']:13s} {pipeline:22s} {row['cycles']:>13,.0f} cycles "
                f"{row['energy_pj'] / 1e6:>10.1f} µJ  non-MAC cycles "
                f"{row['nonmac_cycle_share']:6.1%} (w/o max-pool "
                f"{row['nonmac_cycle_share_without_maxpool']:6.1%}) energy "
                f"{row['nonmac_energy_share']:6.1%}  groups {row['groups']} "
                f"(fused nest {row['fused_nest_groups']})\n"
                f"{'':9s} map {timing['process_s']:.2f} s ({row['map_time_vs_unfused']:.2f}x "
                f"unfused), mapper {timing['mapper_s']:.2f} s "
                f"({row['mapper_time_vs_unfused']:.2f}x), of it fused nests "
                f"{timing['fused_nest_s']:.2f} s ({timing['fused_nest_searches']} searches, "
                f"{timing['fused_nest_cache_hits']} cache hits)" + line
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
