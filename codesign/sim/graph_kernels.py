"""SpMV, BFS and SSSP as semiring Einsums: in the IR for small graphs, on scipy.sparse for large.

Per iteration (``A[u, v]`` is the weight of edge ``u -> v``, pull form over sources ``j``):

* SpMV (plus-times):  ``y[i] = sum[j] A[i, j] * x[j]``
* BFS (or-and):       ``y[i] = max[j] and(A[j, i], f[j])``; ``f'[i] = and(y[i], not(seen[i]))``
* SSSP (min-plus):    ``t[i] = min[j] W[j, i] + d[j]``; ``d'[i] = min(d[i], t[i])``, where W
  is the dense-shaped adjacency with +inf for a missing edge.

`*_cascade` builds one iteration with `CascadeBuilder`; `codesign.ir.interpret` of it equals
one step of the sparse kernel (tests).  The sparse kernels run top-down over the frontier
(vectorised per level) and record, per level, a `Phase` of the PIUMA workload: a task per
(frontier vertex, chunk of at most `EDGE_GRAIN` edges) on the vertex's owner core
(vertex ``v`` lives on core ``v % cores``), one blocking request for its row pointer, its edge
list by DMA, one blocking request per neighbour's state (remote when the neighbour lives on
another core) and a posted memory-side atomic per update (BFS visit, SSSP atomic min).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from codesign.hwmodels.piuma import PiumaArch
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine
from codesign.sim.piuma import Phase, Workload

EDGE_GRAIN = 64  # edges per task: a hub vertex's edges are shared by threads
WORD_BYTES = 8
INSTR_PER_EDGE = 4.0
INSTR_PER_TASK = 10.0


# -- the per-iteration Einsums in the IR --------------------------------------------------------
def _vec(i: str) -> tuple[Affine, ...]:
    return (Affine.var(i),)


def spmv_cascade(n: int) -> Cascade:
    """``y[i] = sum[j] A[i, j] * x[j]`` over an ``n x n`` dense-shaped A."""
    bld = CascadeBuilder("spmv")
    a = bld.tensor("A", (n, n), DType.F64, Role.INPUT, ranks=("I", "J"))
    x = bld.tensor("x", (n,), DType.F64, Role.INPUT, ranks=("J",))
    y = bld.tensor("y", (n,), DType.F64, Role.OUTPUT, ranks=("I",))
    body = Binary(BinaryOp.MUL, Access(a, (Affine.var("i"), Affine.var("j"))), Access(x, _vec("j")))
    bld.einsum("spmv", Access(y, _vec("i")), body, {"i": n, "j": n}, ReduceOp.SUM, ("j",), "SpMV")
    return bld.build()


def bfs_step_cascade(n: int) -> Cascade:
    """One BFS level in the or-and semiring: inputs A (0/1), frontier f, seen; output next."""
    bld = CascadeBuilder("bfs_step")
    a = bld.tensor("A", (n, n), DType.BOOL, Role.INPUT, ranks=("J", "I"))
    f = bld.tensor("f", (n,), DType.BOOL, Role.INPUT, ranks=("J",))
    seen = bld.tensor("seen", (n,), DType.BOOL, Role.INPUT, ranks=("I",))
    y = bld.tensor("y", (n,), DType.BOOL, ranks=("I",))
    nxt = bld.tensor("next", (n,), DType.BOOL, Role.OUTPUT, ranks=("I",))
    reach = Binary(
        BinaryOp.AND, Access(a, (Affine.var("j"), Affine.var("i"))), Access(f, _vec("j"))
    )
    # max over {0, 1} is logical or: the or-and semiring with the IR's reductions.
    bld.einsum("reach", Access(y, _vec("i")), reach, {"i": n, "j": n}, ReduceOp.MAX, ("j",), "BFS")
    fresh = Binary(BinaryOp.AND, Access(y, _vec("i")), Unary(UnaryOp.NOT, Access(seen, _vec("i"))))
    bld.einsum("fresh", Access(nxt, _vec("i")), fresh, {"i": n}, op="BFS")
    return bld.build()


def sssp_step_cascade(n: int) -> Cascade:
    """One Bellman-Ford relaxation in the min-plus semiring: inputs W (+inf = no edge), d."""
    bld = CascadeBuilder("sssp_step")
    w = bld.tensor("W", (n, n), DType.F64, Role.INPUT, ranks=("J", "I"))
    d = bld.tensor("d", (n,), DType.F64, Role.INPUT, ranks=("J",))
    t = bld.tensor("t", (n,), DType.F64, ranks=("I",))
    body = Binary(BinaryOp.ADD, Access(w, (Affine.var("j"), Affine.var("i"))), Access(d, _vec("j")))
    bld.einsum("relax", Access(t, _vec("i")), body, {"i": n, "j": n}, ReduceOp.MIN, ("j",), "SSSP")
    dn = bld.tensor("d_next", (n,), DType.F64, Role.OUTPUT, ranks=("I",))
    keep = Binary(BinaryOp.MIN, Access(d, _vec("i")), Access(t, _vec("i")))
    bld.einsum("keep", Access(dn, _vec("i")), keep, {"i": n}, op="SSSP")
    return bld.build()


def dense_min_plus(adjacency: sp.spmatrix) -> np.ndarray:
    """The dense-shaped W of `sssp_step_cascade`: edge weights, +inf where there is no edge."""
    dense = np.full(adjacency.shape, np.inf)
    coo = sp.coo_matrix(adjacency)
    dense[coo.row, coo.col] = coo.data
    return dense


# -- sparse kernels -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class GraphRun:
    kernel: str
    values: np.ndarray  # y (SpMV), levels (BFS, -1 = unreached), distances (SSSP, inf)
    iterations: int
    edges_traversed: int
    workload: Workload


def _edges_of(adj: sp.csr_matrix, frontier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source, edge position) of every out-edge of `frontier`, vectorised."""
    deg = np.diff(adj.indptr)[frontier]
    src = np.repeat(frontier, deg)
    start = np.repeat(adj.indptr[frontier] - (np.cumsum(deg) - deg), deg)
    return src, start + np.arange(len(src))


def _level_phase(
    name: str,
    adj: sp.csr_matrix,
    frontier: np.ndarray,
    dst: np.ndarray,
    updates: np.ndarray,
    arch: PiumaArch,
    bytes_per_edge: int = WORD_BYTES,
) -> Phase:
    """The PIUMA tasks of one frontier sweep; `updates[e]` marks edges that issue an atomic."""
    deg = np.diff(adj.indptr)[frontier].astype(np.float64)
    task = np.repeat(np.arange(len(frontier)), np.diff(adj.indptr)[frontier])
    owner = frontier % arch.cores
    remote = np.bincount(task, weights=(dst % arch.cores != owner[task]), minlength=len(frontier))
    atomics = np.bincount(task, weights=updates, minlength=len(frontier))
    phase = Phase.of(
        name,
        owner,
        local=1 + deg - remote,  # row pointer, then neighbour state on this core
        remote=remote,
        atomics=atomics,
        dma_bytes=deg * bytes_per_edge,
        instructions=INSTR_PER_TASK + deg * INSTR_PER_EDGE,
    )
    return phase.split(np.ceil(deg / EDGE_GRAIN))


def bfs(adj: sp.csr_matrix, source: int, arch: PiumaArch) -> GraphRun:
    """Level-synchronous top-down BFS; `values` are hop levels (-1 where unreachable)."""
    n = adj.shape[0]
    level = np.full(n, -1, dtype=np.int64)
    level[source] = 0
    frontier = np.array([source], dtype=np.int64)
    phases: list[Phase] = []
    edges = 0
    depth = 0
    while len(frontier):
        _, pos = _edges_of(adj, frontier)
        dst = adj.indices[pos].astype(np.int64)
        edges += len(dst)
        fresh = level[dst] < 0
        # The first visitor of a vertex wins its atomic; every edge to an unseen vertex tries.
        phases.append(_level_phase(f"level{depth}", adj, frontier, dst, fresh, arch))
        nxt = np.unique(dst[fresh])
        depth += 1
        level[nxt] = depth
        frontier = nxt
    return GraphRun("bfs", level, depth, edges, Workload("bfs", tuple(phases)))


def sssp(adj: sp.csr_matrix, source: int, arch: PiumaArch) -> GraphRun:
    """Frontier Bellman-Ford (min-plus relaxations until no distance changes)."""
    if adj.nnz and adj.data.min() < 0:
        raise ValueError("sssp: negative edge weights")
    n = adj.shape[0]
    dist = np.full(n, np.inf)
    dist[source] = 0.0
    frontier = np.array([source], dtype=np.int64)
    phases: list[Phase] = []
    edges = rounds = 0
    while len(frontier):
        src, pos = _edges_of(adj, frontier)
        dst = adj.indices[pos].astype(np.int64)
        cand = dist[src] + adj.data[pos]
        edges += len(dst)
        better = cand < dist[dst]
        old = dist.copy()
        np.minimum.at(dist, dst[better], cand[better])
        phases.append(_level_phase(f"round{rounds}", adj, frontier, dst, better, arch))
        frontier = np.flatnonzero(dist < old)
        rounds += 1
    return GraphRun("sssp", dist, rounds, edges, Workload("sssp", tuple(phases)))


def spmv(adj: sp.csr_matrix, x: np.ndarray, arch: PiumaArch) -> GraphRun:
    """``y = A @ x`` row by row (a task per row chunk; ``x[j]`` read from j's owner core)."""
    rows = np.arange(adj.shape[0], dtype=np.int64)
    _, pos = _edges_of(adj, rows)
    phase = _level_phase("spmv", adj, rows, adj.indices[pos].astype(np.int64),
                         np.zeros(len(pos)), arch, 2 * WORD_BYTES)  # fmt: skip
    y = adj @ np.asarray(x, dtype=np.float64)
    return GraphRun("spmv", y, 1, adj.nnz, Workload("spmv", (phase,)))
