"""Mapper throughput: evaluated mappings per second, end to end (generation + cost model),
beside the vectorised cost model alone; and what early stopping buys.
A benchmark, never a test assertion.

    python benchmarks/bench_mapper.py [--cascade examples/models/resnet18.onnx]

The second part maps a whole cascade (default: the bundled CNN; ResNet-18 after
``python examples/models/generate.py --only resnet18``) on ``tpu_like`` two ways, in the same
run, through ``codesign.map_model``: the full 20k budget per layer
(``patience_evaluations=None``) and the default early stopping; it prints real (not cache-hit)
evaluations, wall time, evaluations/s and the energy of each against the full budget.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from codesign.hwmodels import load_arch
from codesign.mapper.problem import Problem
from codesign.mapper.search import SearchOptions
from codesign.sim.mapping_search import analytical_mapper, search

ROOT = Path(__file__).resolve().parent.parent
HW = ROOT / "examples" / "hw"


def throughput() -> None:
    for preset in ("eyeriss_like", "tpu_like", "simba_like"):
        arch = load_arch(HW / f"{preset}.yaml")
        problem = Problem.conv(1, 64, 64, 56, 56, 3, 3)
        search(problem, arch, options=SearchOptions(max_evaluations=2048, seed=0))  # warm up
        start = time.perf_counter()
        options = SearchOptions(max_evaluations=20_000, seed=0, patience_evaluations=None)
        result = search(problem, arch, options=options)
        wall = time.perf_counter() - start
        print(f"{preset:14s} {result.evaluations / wall:9,.0f} mappings/s end to end; best "
              f"{result.cost.cycles:,.0f} cycles, {result.cost.energy_pj / 1e6:.2f} uJ")


def cascade_modes(path: str) -> None:
    import codesign

    cascade = codesign.load(path)
    modes = (("full 20k budget", SearchOptions(patience_evaluations=None)),
             ("early stopping", SearchOptions()))  # fmt: skip
    reference = None
    for title, options in modes:
        mapper = analytical_mapper()
        start = time.perf_counter()
        result = codesign.map_model(cascade, "tpu_like", search=options, mapper=mapper).result
        wall = time.perf_counter() - start
        stats = mapper.stats
        reference = reference or result.energy_pj
        print(f"{cascade.name} {title:16s}: {stats.evaluations:7,d} real evaluations "
              f"({stats.cache_hits} cache hits), {wall:6.2f} s wall, "
              f"{stats.evaluations_per_s:8,.0f} evaluations/s; energy "
              f"{result.energy_pj / 1e9:.4f} mJ ({result.energy_pj / reference:.3f}x full)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cascade", default=str(ROOT / "examples/models/cnn.onnx"))
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput()
    cascade_modes(args.cascade)


if __name__ == "__main__":
    main()
