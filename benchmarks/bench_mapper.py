"""Mapper throughput: evaluated mappings per second, end to end (generation + cost model),
beside the vectorised cost model alone.  A benchmark, never a test assertion.

    python benchmarks/bench_mapper.py
"""

from __future__ import annotations

import time
from pathlib import Path

from codesign.hwmodels import load_arch
from codesign.mapper.problem import Problem
from codesign.mapper.search import SearchOptions
from codesign.sim.mapping_search import search

HW = Path(__file__).resolve().parent.parent / "examples" / "hw"


def main() -> None:
    for preset in ("eyeriss_like", "tpu_like", "simba_like"):
        arch = load_arch(HW / f"{preset}.yaml")
        problem = Problem.conv(1, 64, 64, 56, 56, 3, 3)
        search(problem, arch, options=SearchOptions(max_evaluations=2048, seed=0))  # warm up
        start = time.perf_counter()
        result = search(problem, arch, options=SearchOptions(max_evaluations=20_000, seed=0))
        wall = time.perf_counter() - start
        print(f"{preset:14s} {result.evaluations / wall:9,.0f} mappings/s end to end; best "
              f"{result.cost.cycles:,.0f} cycles, {result.cost.energy_pj / 1e6:.2f} uJ")


if __name__ == "__main__":
    main()
