"""Time a 100k-node R-MAT BFS on the PIUMA models (issue 6: under a minute on the 2-core host).

Generates R-MAT scale 17 (131,072 vertices, edge factor 16, seed 1), runs the level-synchronous
BFS from the highest-degree vertex (building the per-level PIUMA workload), then prices it with
the Little's-law model and the event-driven simulator.  Prints the wall time of each step and
the modelled cycles.  Run: ``python benchmarks/bench_piuma_bfs.py [--scale 17]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from codesign.frontends.graphs import RmatSpec, rmat
from codesign.hwmodels.piuma import load_piuma
from codesign.sim.graph_kernels import bfs
from codesign.sim.piuma import latency_tolerance, simulate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=17)
    parser.add_argument("--edge-factor", type=int, default=16)
    parser.add_argument("--hw", default=str(ROOT / "examples" / "hw" / "piuma.yaml"))
    args = parser.parse_args()
    arch = load_piuma(args.hw)
    start = time.perf_counter()
    graph = rmat(RmatSpec(scale=args.scale, edge_factor=args.edge_factor, seed=1))
    t_gen = time.perf_counter() - start
    source = int(np.argmax(np.diff(graph.indptr)))
    start = time.perf_counter()
    run = bfs(graph, source, arch)
    t_bfs = time.perf_counter() - start
    start = time.perf_counter()
    little = latency_tolerance(run.workload, arch)
    t_little = time.perf_counter() - start
    start = time.perf_counter()
    event = simulate(run.workload, arch)
    t_event = time.perf_counter() - start
    print(f"R-MAT scale {args.scale}: {graph.shape[0]} vertices, {graph.nnz} edges "
          f"(generated in {t_gen:.2f} s)")  # fmt: skip
    reached = int((run.values >= 0).sum())
    print(f"BFS: {run.iterations} levels, {reached} reached, {run.edges_traversed} edges, "
          f"{sum(p.tasks for p in run.workload.phases)} tasks "
          f"({t_bfs:.2f} s)")  # fmt: skip
    print(f"little: {little.cycles:.4g} cycles, {little.seconds * 1e3:.3f} ms, "
          f"bound={little.bound.value} ({t_little:.3f} s)")  # fmt: skip
    print(f" event: {event.cycles:.4g} cycles, {event.seconds * 1e3:.3f} ms, "
          f"bound={event.bound.value} ({t_event:.2f} s)")  # fmt: skip
    print(f"total model time: {t_bfs + t_little + t_event:.2f} s (+{t_gen:.2f} s generation)")


if __name__ == "__main__":
    main()
