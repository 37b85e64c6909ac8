"""`codesign graph KERNEL --hw PIUMA.yaml --graph rmat:...|FILE.mtx`: graph kernels on PIUMA."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from codesign.cli.outputs import write_text
from codesign.errors import InputError

KERNELS = ("bfs", "sssp", "spmv", "spgemm")
DATAFLOWS = ("inner", "outer", "rowwise")  # codesign.sim.sparse_kernels.Dataflow


def add_parser(sub, model_args: Callable[..., None]) -> None:
    del model_args  # graph kernels take a graph, not a model
    p = sub.add_parser(
        "graph", help="sparse/graph kernels (BFS, SSSP, SpMV, SpGEMM) on a PIUMA-like fabric"
    )
    p.add_argument("kernel", choices=KERNELS)
    p.add_argument(
        "--hw", required=True, metavar="PIUMA.yaml|piuma", help="family: piuma card or preset"
    )
    p.add_argument(
        "--graph",
        required=True,
        metavar="SPEC",
        help="rmat:scale=17,edge_factor=16,seed=1[,a=,b=,c=] or a Matrix Market .mtx file",
    )
    p.add_argument("--dataflow", choices=DATAFLOWS, default="rowwise", help="SpGEMM")
    p.add_argument("--source", type=int, default=None, help="BFS/SSSP root (default: max degree)")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON ('-' = stdout)")
    p.set_defaults(func=cmd_graph)


def _run(args: argparse.Namespace) -> dict[str, object]:
    # Imported here: the kernels need scipy, which other commands must not require.
    import numpy as np

    from codesign.frontends.graphs import load_graph
    from codesign.hwmodels.registry import Command, load_hardware_card
    from codesign.sim.graph_kernels import bfs, spmv, sssp
    from codesign.sim.piuma import latency_tolerance, simulate
    from codesign.sim.sparse_kernels import Dataflow, spgemm

    arch = load_hardware_card(args.hw, Command.GRAPH).hw
    adj = load_graph(args.graph)
    n = adj.shape[0]
    info: dict[str, object] = {"kernel": args.kernel, "graph": args.graph, "hw": arch.name,
                               "rows": n, "cols": adj.shape[1], "nnz": adj.nnz}  # fmt: skip
    if args.kernel == "spgemm":
        if adj.shape[0] != adj.shape[1]:
            raise InputError(f"graph {args.graph}: spgemm squares the matrix; it is {adj.shape}")
        run = spgemm(adj, adj, Dataflow(args.dataflow), arch)
        workload = run.workload
        info.update(
            dataflow=args.dataflow, **{k: getattr(run.counts, k) for k in run.counts.__slots__}
        )
    else:
        if adj.shape[0] != adj.shape[1]:
            raise InputError(f"graph {args.graph}: a graph needs a square matrix, got {adj.shape}")
        source = int(np.argmax(np.diff(adj.indptr))) if args.source is None else args.source
        if not 0 <= source < n:
            raise InputError(f"--source {source}: the graph has {n} vertices")
        if args.kernel == "bfs":
            g = bfs(adj, source, arch)
        elif args.kernel == "sssp":
            if adj.nnz and adj.data.min() < 0:
                raise InputError(f"graph {args.graph}: sssp needs non-negative weights")
            g = sssp(adj, source, arch)
        else:
            g = spmv(adj, np.ones(n), arch)
        workload = g.workload
        info.update(source=source, iterations=g.iterations, edges_traversed=g.edges_traversed)
    costs = {
        "little": latency_tolerance(workload, arch),
        "event": simulate(workload, arch),
    }
    info["models"] = {name: cost.as_dict() for name, cost in costs.items()}
    return info


def cmd_graph(args: argparse.Namespace) -> int:
    info = _run(args)
    models = info["models"]
    assert isinstance(models, dict)
    if args.json == "-":  # JSON alone on stdout, for pipes
        sys.stdout.write(json.dumps(info, indent=2, default=float) + "\n")
        return 0
    head = ", ".join(f"{k}={info[k]}" for k in ("kernel", "hw", "rows", "nnz"))
    print(head)
    traffic = models["event"]["traffic"]
    print(
        "traffic: "
        + ", ".join(
            f"{k}={v:.4g}"
            for k, v in traffic.items()
            if k
            in (
                "tasks",
                "phases",
                "dram_bytes",
                "local_requests",
                "remote_requests",
                "atomics",
                "scratchpad_accesses",
                "instructions",
            )
        )  # fmt: skip
    )
    for name, cost in models.items():
        print(
            f"{name:>6}: {cost['cycles']:.4g} cycles, {cost['seconds'] * 1e3:.4g} ms, "
            f"bound={cost['bound']}"
        )
    if args.json:
        write_text(args.json, json.dumps(info, indent=2, default=float) + "\n")
    return 0
