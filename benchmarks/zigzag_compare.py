"""Side by side: ZigZag 3.9 and codesign on the same GEMMs and ResNet-18 layers (VALIDATION §3).

    python benchmarks/zigzag_compare.py --zigzag-python /tmp/peers-zigzag/bin/python \\
        [--model examples/models/resnet18.onnx] [--presets tpu_like eyeriss_like] [--json out.json]
        [--jobs N] [--full-budget-check] [--repeat N]

ZigZag is never a codesign dependency: it lives in a peer virtual environment
(``python -m venv /tmp/peers-zigzag && /tmp/peers-zigzag/bin/pip install zigzag-dse six``) and
runs as a subprocess of this script (``--worker``, which imports only ZigZag). The peer's python
comes from ``--zigzag-python`` or, failing that, the ``ZIGZAG_PYTHON`` environment variable.

Hardware: ZigZag's bundled ``tpu_like`` and ``eyeriss_like`` (from its package) against
codesign's ``examples/hw/tpu_like.yaml`` (the same numbers) and
``benchmarks/zigzag_eyeriss_like.yaml`` (ZigZag's eyeriss_like transcribed; the Timeloop-derived
``examples/hw/eyeriss_like.yaml`` is a different design). ZigZag uses its bundled ``tpu_like``
mapping (spatial K|C 32x32) for the TPU and generates spatial mappings itself for eyeriss_like;
codesign searches both freely, keeping every operand in each level the arch assigns it (as
ZigZag does). Both optimise EDP. Layers: the MAC Einsums of the codesign cascade, handed to
ZigZag as its own workload dicts, so both tools see identical loop bounds (non-MAC Einsums are
left out of both).
See docs/zigzag_comparison.md for measured numbers and the modelling differences.

Timing: ZigZag's per-layer wall time excludes its interpreter start-up and imports, so
codesign's excludes them too (the search modules are imported before the clock starts).
codesign maps each workload ``--repeat`` times (default 3, each with a fresh layer cache), half
before the ZigZag run and half after it, and the run with the median total is reported, with its
real (not cache-hit) evaluations/s; the load average is printed before and after, as the machine
this was written on is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEMMS = ((512, 512, 512), (128, 256, 512), (1024, 1024, 64), (64, 4096, 1024))
CODESIGN_HW = {
    "tpu_like": ROOT / "examples/hw/tpu_like.yaml",
    "eyeriss_like": ROOT / "benchmarks/zigzag_eyeriss_like.yaml",
}
ZIGZAG_MAPPING = {"tpu_like": "tpu_like", "eyeriss_like": None}  # None: ZigZag's own search


# --------------------------------------------------------------------------- ZigZag worker
def _worker(job_path: str, out_path: str) -> None:
    """Runs inside the peer venv: map each layer with ZigZag, write per-layer results as JSON."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    import zigzag
    from zigzag.api import get_hardware_performance_zigzag

    job = json.loads(Path(job_path).read_text())
    package = Path(zigzag.__file__).parent
    hardware = package / "inputs/hardware" / f"{job['preset']}.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        if job["mapping"] is None:
            mapping = Path(tmp) / "mapping.yaml"
            links = "  memory_operand_links: {O: O, W: I2, I: I1}\n"
            mapping.write_text("- name: default\n" + links)
        else:
            mapping = package / "inputs/mapping" / f"{job['mapping']}.yaml"
        results = []
        for layer in job["layers"]:
            start, cpu_start = time.perf_counter(), time.process_time()
            energy, latency, _ = get_hardware_performance_zigzag(
                [layer],
                str(hardware),
                str(mapping),
                opt="EDP",
                dump_folder=f"{tmp}/out",
                loma_show_progress_bar=False,
            )
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            results.append(
                {"name": layer["name"], "cycles": latency, "energy_pj": energy, "wall_s": wall,
                 "cpu_s": cpu}  # fmt: skip
            )
    Path(out_path).write_text(json.dumps({"version": _zigzag_version(), "layers": results}))


def _zigzag_version() -> str:
    from importlib.metadata import version

    return version("zigzag-dse")


# --------------------------------------------------------------------------- codesign side
@dataclass(frozen=True)
class LayerResult:
    name: str
    macs: int
    cycles: float
    energy_pj: float
    wall_s: float
    cpu_s: float  # CPU time of the mapping process (codesign: of its main process)


def _zigzag_layer(problem, index: int) -> dict:
    """ZigZag's workload dict for a GEMM or conv Problem (dims classified by tensor use)."""
    inputs, weights = problem.tensors[0], problem.tensors[1]
    output = problem.output
    windows = [terms for terms in inputs.projection if len(terms) == 2]
    window_out = [terms[0][0] for terms in windows]  # p, q
    window_filter = [terms[1][0] for terms in windows]  # r, s
    names: dict[str, str] = {}
    for dim in problem.dim_names:
        in_w, in_i, in_o = dim in weights.dims(), dim in inputs.dims(), dim in output.dims()
        if dim in window_out:
            names[dim] = ("OY", "OX")[window_out.index(dim)]
        elif dim in window_filter:
            names[dim] = ("FY", "FX")[window_filter.index(dim)]
        elif in_w and in_o and not in_i:
            names[dim] = "K"
        elif in_w and in_i and not in_o:
            names[dim] = "C"
        elif in_i and in_o and not in_w:
            names[dim] = "B"
        else:
            raise ValueError(f"{problem.name}: cannot classify dim {dim} for ZigZag")
    layer = {
        "id": index,
        "name": problem.name,
        "loop_dims": [names[d] for d in problem.dim_names],
        "loop_sizes": list(problem.bounds),
        "operand_precision": {"I": 8, "W": 8, "O": 16, "O_final": 8},
    }
    if windows:
        stride = [terms[0][1] for terms in windows]
        dilation = [terms[1][1] for terms in windows]
        layer.update(
            operator_type="Conv",
            equation="O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
            dimension_relations=[
                f"iy={stride[0]}*oy+{dilation[0]}*fy",
                f"ix={stride[1]}*ox+{dilation[1]}*fx",
            ],
        )
        for dim in ("B", "K", "C", "OY", "OX", "FY", "FX"):
            if dim not in layer["loop_dims"]:
                layer["loop_dims"].append(dim)
                layer["loop_sizes"].append(1)
    else:
        layer.update(operator_type="Gemm", equation="O[b][k]+=I[b][c]*W[c][k]")
    return layer


def _codesign(
    cascade, arch, workers: int = 1, full_budget: bool = False
) -> tuple[list[LayerResult], list, float]:
    """Map with `map_model`; per-layer wall time from the progress callback's timestamps (with
    ``workers`` > 1 the parallel search of the distinct layers is charged to the first).
    ``full_budget``: the whole 20k evaluations per layer, no early stopping (the reference).
    Also returns the real (not cache-hit) evaluations per second of search."""
    import codesign.sim.analytical  # noqa: F401  (imports before the clock, as ZigZag's are)
    from codesign.api import map_model
    from codesign.mapper.from_ir import problem_from_einsum
    from codesign.mapper.search import Constraints, SearchOptions
    from codesign.sim.cost import EinsumKind
    from codesign.sim.mapping_search import analytical_mapper

    stamps: list[tuple[str, float, float]] = []  # (Einsum, wall s, CPU s) as each one starts
    search = SearchOptions(patience_evaluations=None) if full_budget else SearchOptions()
    mapper = analytical_mapper()  # a fresh layer cache for every run
    # keep_fixed: every operand passes through each level the arch assigns it, as in ZigZag's
    # memory hierarchy (codesign may otherwise bypass a level, Timeloop-style).
    start = (time.perf_counter(), time.process_time())
    result = map_model(
        cascade, arch, constraints=Constraints(keep_fixed=True), search=search,
        progress=lambda n: stamps.append((n, time.perf_counter(), time.process_time())),
        workers=workers, mapper=mapper,
    ).result  # fmt: skip
    end = (time.perf_counter(), time.process_time())
    # an Einsum lasts until the next one starts; the first one also carries the set-up
    times: dict[str, float] = {}
    cpu_times: dict[str, float] = {}
    for i, (name, _, _) in enumerate(stamps):
        begin = start if i == 0 else stamps[i][1:]
        finish = stamps[i + 1][1:] if i + 1 < len(stamps) else end
        times[name], cpu_times[name] = finish[0] - begin[0], finish[1] - begin[1]
    einsums = {e.name: e for e in cascade.einsums}
    layers, problems = [], []
    for e in result.einsums:
        if e.kind is not EinsumKind.MAC:
            continue
        layers.append(
            LayerResult(e.name, e.cost.macs, e.cost.cycles, e.cost.energy_pj, times[e.name],
                        cpu_times[e.name])  # fmt: skip
        )
        problems.append(problem_from_einsum(einsums[e.name], cascade))
    return layers, problems, mapper.stats.evaluations_per_s


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run_zigzag(python: str, preset: str, layers: list[dict]) -> tuple[list[LayerResult], str]:
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(
            json.dumps({"preset": preset, "mapping": ZIGZAG_MAPPING[preset], "layers": layers})
        )
        subprocess.run(
            [python, str(Path(__file__).resolve()), "--worker", str(job), str(out)],
            check=True,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        data = json.loads(out.read_text())
    macs = {layer["name"]: _macs(layer) for layer in layers}
    return [
        LayerResult(r["name"], macs[r["name"]], r["cycles"], r["energy_pj"], r["wall_s"],
                    r["cpu_s"])  # fmt: skip
        for r in data["layers"]
    ], data["version"]


def _macs(layer: dict) -> int:
    total = 1
    for size in layer["loop_sizes"]:
        total *= size
    return total


def _table(title: str, ours: list[LayerResult], theirs: list[LayerResult]) -> dict:
    print(f"\n## {title}")
    head = (
        f"{'layer':28s} {'MACs':>11s} {'cs cycles':>11s} {'zz cycles':>11s} {'lat x':>6s} "
        f"{'cs pJ':>10s} {'zz pJ':>10s} {'E x':>6s} {'cs s':>6s} {'zz s':>6s}"
    )
    print(head)
    rows = []
    for a, b in zip(ours, theirs, strict=True):
        print(
            f"{a.name[:28]:28s} {a.macs:11d} {a.cycles:11.0f} {b.cycles:11.0f} "
            f"{a.cycles / b.cycles:6.2f} {a.energy_pj:10.3e} {b.energy_pj:10.3e} "
            f"{a.energy_pj / b.energy_pj:6.2f} {a.wall_s:6.2f} {b.wall_s:6.2f}"
        )
        rows.append({"layer": a.name, "macs": a.macs, "codesign": a.__dict__, "zigzag": b.__dict__})
    total = {
        k: (sum(getattr(r, k) for r in ours), sum(getattr(r, k) for r in theirs))
        for k in ("cycles", "energy_pj", "wall_s", "cpu_s")
    }
    print(
        f"{'TOTAL':28s} {sum(r.macs for r in ours):11d} {total['cycles'][0]:11.0f} "
        f"{total['cycles'][1]:11.0f} {total['cycles'][0] / total['cycles'][1]:6.2f} "
        f"{total['energy_pj'][0]:10.3e} {total['energy_pj'][1]:10.3e} "
        f"{total['energy_pj'][0] / total['energy_pj'][1]:6.2f} "
        f"{total['wall_s'][0]:6.2f} {total['wall_s'][1]:6.2f}"
    )
    print(
        f"speed-up of codesign over ZigZag (wall): {total['wall_s'][1] / total['wall_s'][0]:.1f}x"
        f"; (CPU time, less sensitive to other load: {total['cpu_s'][0]:.2f} s vs "
        f"{total['cpu_s'][1]:.2f} s, {total['cpu_s'][1] / total['cpu_s'][0]:.1f}x)"
    )
    return {"title": title, "layers": rows, "total": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("JOB", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--zigzag-python", default=os.environ.get("ZIGZAG_PYTHON"))
    parser.add_argument("--model", default=str(ROOT / "examples/models/resnet18.onnx"))
    parser.add_argument("--presets", nargs="+", default=["tpu_like", "eyeriss_like"])
    parser.add_argument("--no-resnet", action="store_true", help="GEMMs only")
    parser.add_argument("--no-gemms", action="store_true", help="ResNet-18 only")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--jobs", type=int, default=1, help="codesign's map_model workers")
    parser.add_argument(
        "--repeat", type=int, default=3,
        help="codesign runs per workload, around the ZigZag run (the median is reported)",
    )  # fmt: skip
    parser.add_argument(
        "--full-budget-check", action="store_true",
        help="also map with the full 20k evaluations per layer (no early stopping) and print "
        "the energy of the timed run relative to it",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.zigzag_python:
        parser.error("give --zigzag-python (or ZIGZAG_PYTHON): the peer venv's python")
    if not Path(args.zigzag_python).is_file():
        parser.error(
            f"--zigzag-python {args.zigzag_python}: no such interpreter (make the peer "
            "venv first: docs/zigzag_comparison.md)"
        )

    # The editable install can resolve `codesign` as a namespace package when this script's
    # folder leads sys.path; put the repository first.
    sys.path.insert(0, str(ROOT))
    import codesign
    from codesign.frontends import layers as layer_specs
    from codesign.hwmodels import load_arch

    workloads = [] if args.no_gemms else [
        (f"gemm {m}x{n}x{k}", layer_specs.gemm(m, n, k)) for m, n, k in GEMMS
    ]
    if not args.no_resnet:
        if not Path(args.model).exists():
            parser.error(
                f"{args.model} missing: python examples/models/generate.py --only resnet18"
            )
        workloads.append(("resnet18", codesign.load(args.model)))
    report = []
    for preset in args.presets:
        arch = load_arch(CODESIGN_HW[preset])
        gemm_ours: list[LayerResult] = []
        gemm_theirs: list[LayerResult] = []
        for title, cascade in workloads:
            print(f"{preset} {title}: load average {_load()}")
            runs = [_codesign(cascade, arch, args.jobs) for _ in range((args.repeat + 1) // 2)]
            problems = runs[0][1]
            if args.full_budget_check:
                full, _, _ = _codesign(cascade, arch, args.jobs, full_budget=True)
                ratio = sum(r.energy_pj for r in runs[0][0]) / sum(r.energy_pj for r in full)
                wall = sum(r.wall_s for r in full)
                print(f"{preset} {title}: energy {ratio:.4f}x the full-budget search's "
                      f"({sum(r.energy_pj for r in full):.4e} pJ, {wall:.1f} s)")  # fmt: skip
            zz_layers = [_zigzag_layer(p, i) for i, p in enumerate(problems)]
            theirs, version = _run_zigzag(args.zigzag_python, preset, zz_layers)
            runs += [_codesign(cascade, arch, args.jobs) for _ in range(args.repeat // 2)]
            walls = [sum(r.wall_s for r in layers) for layers, _, _ in runs]
            median = statistics.median_low(walls)
            ours, _, per_s = runs[walls.index(median)]
            listed = ", ".join(f"{w:.2f}" for w in walls)
            print(f"{preset} {title}: codesign {len(runs)} runs {listed} s (median {median:.2f} s,"
                  f" {per_s:,.0f} real evaluations/s); load average {_load()}")  # fmt: skip
            if title.startswith("gemm"):
                gemm_ours += [
                    LayerResult(title, r.macs, r.cycles, r.energy_pj, r.wall_s, r.cpu_s)
                    for r in ours
                ]
                gemm_theirs += [
                    LayerResult(title, r.macs, r.cycles, r.energy_pj, r.wall_s, r.cpu_s)
                    for r in theirs
                ]
                continue
            report.append(_table(f"{preset}: {title} (ZigZag {version})", ours, theirs))
        if gemm_ours:
            report.append(_table(f"{preset}: GEMMs", gemm_ours, gemm_theirs))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
