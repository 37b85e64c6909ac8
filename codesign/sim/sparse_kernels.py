"""SpGEMM ``C = A @ B`` by inner, outer and row-wise (Gustavson/SMASH) product on a PIUMA fabric.

Each dataflow computes the actual result (scipy CSR, float64) in the order that dataflow
accumulates it, and counts what it costs: DRAM requests and bytes, atomics, scratchpad hash
probes, comparisons and instructions.  The counts become a `Workload` that either PIUMA cost
model prices.

Data layout (the same for every dataflow): a nonzero is two 8-byte words (index, value), a row
or column pointer one word; row ``i`` of a matrix lives on core ``i % cores`` (the global
address space is interleaved by row); the task for row/column ``i`` runs on that core.  A
contiguous segment (one row of A or B, a partial-product list) costs one blocking request for
its latency and its bytes over the DMA engine.

* inner - task per row ``i`` of A: A's row is kept in scratchpad and every non-empty column
  ``j`` of B (CSC) is fetched and merge-intersected with it: all of B streams once per row of
  A (the redundant fetches SMASH describes), however few outputs the row has.
* outer - phase 1, task per ``k``: column ``k`` of A times row ``k`` of B gives
  ``nnz(A[:, k]) * nnz(B[k, :])`` partial products, appended (DMA) to per-row lists in DRAM
  with one atomic fetch-add per target row; phase 2, task per row: read the list back,
  sort-merge it in scratchpad, write C's row.
* rowwise - task per row ``i`` of A: for each ``A[i, k]`` stream row ``k`` of B and merge every
  partial product into a scratchpad hash table by scratchpad atomic add (open addressing,
  linear probing, Fibonacci hashing, table ``2**ceil(log2(2 * products))`` slots so load <= 0.5);
  then write the row.  A table that exceeds the thread's scratchpad share spills: its probes and
  atomics go to DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import scipy.sparse as sp

from codesign.hwmodels.piuma import PiumaArch
from codesign.sim.piuma import Phase, Workload

WORD_BYTES = 8
# Work per task when a row's (or column's) work is shared by threads: partial products
# (outer, rowwise) or merge steps (inner).  Rowwise can share a row only because its partial
# products merge by atomics into one scratchpad table (SMASH); see docs/piuma.md.
GRAIN = 256
NNZ_BYTES = 2 * WORD_BYTES  # index + value


class Dataflow(Enum):
    INNER = "inner"
    OUTER = "outer"
    ROWWISE = "rowwise"


@dataclass(frozen=True, slots=True)
class InstructionCosts:
    """Instructions per elementary step (in-order RISC pipeline; assumptions, docs/piuma.md)."""

    per_task: float = 10.0  # loop set-up, pointers
    per_multiply: float = 3.0  # load B element, multiply, address
    per_compare: float = 2.0  # one merge-intersection step
    per_probe: float = 3.0  # hash, load slot, compare
    per_sort_element: float = 4.0  # per element per merge level
    per_output: float = 2.0  # write one C nonzero


@dataclass(frozen=True, slots=True)
class SpgemmCounts:
    multiplies: int  # partial products formed (the useful flops)
    comparisons: int  # merge-intersection steps (inner)
    partial_products_stored: int  # written to DRAM and read back (outer)
    hash_probes: int  # scratchpad (or spilled) table probes (rowwise)
    atomics: int  # scratchpad atomics (rowwise) + DRAM fetch-adds (outer)
    spilled_rows: int
    output_nnz: int


@dataclass(frozen=True, eq=False)
class SpgemmRun:
    dataflow: Dataflow
    result: sp.csr_matrix
    counts: SpgemmCounts
    workload: Workload


def _expand(a: sp.csr_matrix, b: sp.csr_matrix) -> tuple[np.ndarray, ...]:
    """All partial products ``A[i,k] * B[k,j]`` in row-wise order: (i, k, j, value)."""
    a_rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    counts = np.diff(b.indptr)[a.indices]
    src = np.repeat(np.arange(a.nnz), counts)
    group_start = np.repeat(np.cumsum(counts) - counts, counts)
    pos = b.indptr[a.indices[src]] + (np.arange(len(src)) - group_start)
    return a_rows[src], a.indices[src], b.indices[pos], a.data[src] * b.data[pos]


def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]):
    out = sp.csr_matrix((vals, (rows, cols)), shape=shape)
    out.sort_indices()
    return out


def _merge_by_key(
    rows: np.ndarray, ks: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """Sum partial products per (i, j) in increasing k: what a merge (sorted-list) dataflow
    computes."""
    order = np.lexsort((ks, cols, rows))
    r, c, v = rows[order], cols[order], vals[order]
    if len(r) == 0:
        return sp.csr_matrix(shape)
    new = np.ones(len(r), dtype=bool)
    new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    return _csr(r[starts], c[starts], np.add.reduceat(v, starts), shape)


def _row_core(n: int, arch: PiumaArch) -> np.ndarray:
    return np.arange(n) % arch.cores


def _remote(owner: np.ndarray, target: np.ndarray) -> np.ndarray:
    return (owner != target).astype(np.float64)


def inner_product(
    a: sp.csr_matrix, b: sp.csr_matrix, arch: PiumaArch, costs: InstructionCosts
) -> SpgemmRun:
    m, n = a.shape[0], b.shape[1]
    rows, ks, cols, vals = _expand(a, b)
    result = _merge_by_key(rows, ks, cols, vals, (m, n))
    a_nnz = np.diff(a.indptr).astype(np.float64)
    b_csc = b.tocsc()
    b_col_nnz = np.diff(b_csc.indptr).astype(np.float64)
    live_cols = b_col_nnz > 0
    n_cols, b_nnz = float(live_cols.sum()), float(b.nnz)
    live_rows = a_nnz > 0
    core = _row_core(m, arch)[live_rows]
    a_live = a_nnz[live_rows]
    # Columns of B live on core j % cores: the share of column fetches that are remote.
    col_core = np.flatnonzero(live_cols) % arch.cores
    local_cols = np.bincount(col_core, minlength=arch.cores)[core].astype(np.float64)
    out_nnz = np.diff(result.indptr)[live_rows].astype(np.float64)
    comparisons = n_cols * a_live + b_nnz  # merge steps summed over the row's pairs
    phase = Phase.of(
        "inner",
        core,
        local=1 + local_cols + 1,  # A row, local B columns, C row write
        remote=n_cols - local_cols,
        spad=comparisons,  # A's row is read from scratchpad at every step
        dma_bytes=(a_live + b_nnz + out_nnz) * NNZ_BYTES + n_cols * 2 * WORD_BYTES,
        instructions=costs.per_task + comparisons * costs.per_compare + out_nnz * costs.per_output,
    )
    counts = SpgemmCounts(
        multiplies=len(vals),
        comparisons=int(comparisons.sum()),
        partial_products_stored=0,
        hash_probes=0,
        atomics=0,
        spilled_rows=0,
        output_nnz=result.nnz,
    )
    phase = phase.split(np.ceil(comparisons / GRAIN))
    return SpgemmRun(Dataflow.INNER, result, counts, Workload("spgemm-inner", (phase,)))


def outer_product(
    a: sp.csr_matrix, b: sp.csr_matrix, arch: PiumaArch, costs: InstructionCosts
) -> SpgemmRun:
    m, kdim, n = a.shape[0], a.shape[1], b.shape[1]
    a_csc = a.tocsc()
    col_nnz = np.diff(a_csc.indptr).astype(np.float64)
    row_nnz_b = np.diff(b.indptr).astype(np.float64)
    # Multiply phase in k order: the partial products of column k of A and row k of B.
    rows, ks, cols, vals = _expand(a, b)
    result = _merge_by_key(rows, ks, cols, vals, (m, n))
    products_k = col_nnz * row_nnz_b
    live_k = products_k > 0
    k_core = _row_core(kdim, arch)[live_k]
    multiply = Phase.of(
        "outer-multiply",
        k_core,
        local=2.0,  # column k of A, row k of B: both on core k % cores
        atomics=col_nnz[live_k],  # tail fetch-add on each target row's list (posted)
        dma_bytes=(col_nnz[live_k] + row_nnz_b[live_k] + products_k[live_k]) * NNZ_BYTES,
        instructions=costs.per_task + products_k[live_k] * costs.per_multiply,
    )
    multiply = multiply.split(np.ceil(products_k[live_k] / GRAIN))
    products_i = np.bincount(rows, minlength=m).astype(np.float64)
    a_row_nnz = np.diff(a.indptr).astype(np.float64)
    live_i = products_i > 0
    out_nnz = np.diff(result.indptr).astype(np.float64)[live_i]
    levels = np.ceil(np.log2(np.maximum(a_row_nnz[live_i], 2)))  # k-way merge of the row's lists
    merge = Phase.of(
        "outer-merge",
        _row_core(m, arch)[live_i],
        local=2.0,  # partial list, C row write
        spad=2 * products_i[live_i] * levels,
        dma_bytes=(products_i[live_i] + out_nnz) * NNZ_BYTES,
        instructions=costs.per_task
        + products_i[live_i] * levels * costs.per_sort_element
        + out_nnz * costs.per_output,
    )
    counts = SpgemmCounts(
        multiplies=len(vals),
        comparisons=0,
        partial_products_stored=len(vals),
        hash_probes=0,
        atomics=int(col_nnz.sum()),
        spilled_rows=0,
        output_nnz=result.nnz,
    )
    return SpgemmRun(Dataflow.OUTER, result, counts, Workload("spgemm-outer", (multiply, merge)))


_FIB = np.uint64(11400714819323198485)  # 2**64 / golden ratio


def _hash_insert(
    rows: np.ndarray, cols: np.ndarray, products_per_row: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Insert partial products (row-wise order) into per-row linear-probing hash tables.

    Returns (slot of each product in the flat table array, probes of each product, table
    offsets per row, table sizes per row).  A key's slot is fixed when it is first inserted, so
    every later update of it probes the same number of slots; distinct keys are inserted in
    first-appearance order, all rows in parallel (one vectorised step per insertion rank)."""
    m = len(products_per_row)
    bits = np.ceil(np.log2(np.maximum(2 * products_per_row, 2))).astype(np.int64)
    size = np.where(products_per_row > 0, np.int64(1) << bits, 0)
    offset = np.concatenate([[0], np.cumsum(size)])
    table = np.full(int(offset[-1]), -1, dtype=np.int64)
    key = rows.astype(np.int64) * (int(cols.max(initial=0)) + 1) + cols
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    u_row = rows[first]
    u_col = cols[first].astype(np.uint64)
    order = np.lexsort((first, u_row))  # by row, then insertion order
    row_start = np.searchsorted(u_row[order], np.arange(m))
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq)) - row_start[u_row[order]]
    shift = (64 - bits[u_row]).astype(np.uint64)
    home = ((u_col * _FIB) >> shift).astype(np.int64)  # Fibonacci hashing, top `bits` bits
    slot = np.empty(len(uniq), dtype=np.int64)
    probes = np.ones(len(uniq), dtype=np.int64)
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(rank.max(initial=-1) + 2))
    for r in range(len(bounds) - 1):
        idx = by_rank[bounds[r] : bounds[r + 1]]
        pos = home[idx].copy()
        mask = size[u_row[idx]] - 1
        base = offset[u_row[idx]]
        tries = np.ones(len(idx), dtype=np.int64)
        busy = table[base + pos] != -1
        while busy.any():
            pos[busy] = (pos[busy] + 1) & mask[busy]
            tries[busy] += 1
            busy[busy] = table[base[busy] + pos[busy]] != -1
        table[base + pos] = idx
        slot[idx] = base + pos
        probes[idx] = tries
    return slot[inverse], probes[inverse], offset, size


def rowwise_product(
    a: sp.csr_matrix, b: sp.csr_matrix, arch: PiumaArch, costs: InstructionCosts
) -> SpgemmRun:
    m, n = a.shape[0], b.shape[1]
    rows, _, cols, vals = _expand(a, b)
    products = np.bincount(rows, minlength=m)
    slot, probes, offset, size = _hash_insert(rows, cols, products)
    # The atomic merge: every partial product adds into its key's slot.
    acc = np.zeros(int(offset[-1]))
    np.add.at(acc, slot, vals)
    key_of_slot = np.full(len(acc), -1, dtype=np.int64)
    key_of_slot[slot] = cols
    used = np.flatnonzero(key_of_slot >= 0)
    slot_row = np.searchsorted(offset, used, side="right") - 1
    result = _csr(slot_row, key_of_slot[used], acc[used], (m, n))

    probes_row = np.bincount(rows, weights=probes, minlength=m)
    a_nnz = np.diff(a.indptr).astype(np.float64)
    out_nnz = np.diff(result.indptr).astype(np.float64)
    live = products > 0
    core = _row_core(m, arch)[live]
    # Rows of B fetched: one request each, local when row k lives on this core.
    a_rows = np.repeat(np.arange(m), np.diff(a.indptr))
    b_remote = np.bincount(a_rows, weights=_remote(a_rows % arch.cores, a.indices % arch.cores),
                           minlength=m)  # fmt: skip
    spad_share = arch.scratchpad_bytes_per_core / arch.threads_per_core
    spilled = live & (size * NNZ_BYTES > spad_share)
    sp_probes = np.where(spilled, 0.0, probes_row + products)[live]  # probes + atomic adds
    dram_probes = np.where(spilled, probes_row, 0.0)[live]
    phase = Phase.of(
        "rowwise",
        core,
        local=1 + (a_nnz - b_remote)[live] + 1 + dram_probes,
        remote=b_remote[live],
        atomics=np.where(spilled, products, 0)[live],
        spad=sp_probes + size[live],  # probes, atomic adds, final table scan
        dma_bytes=(a_nnz[live] + products[live] + out_nnz[live]) * NNZ_BYTES,
        instructions=costs.per_task
        + products[live] * costs.per_multiply
        + probes_row[live] * costs.per_probe
        + size[live]
        + out_nnz[live] * costs.per_output,
    )
    counts = SpgemmCounts(
        multiplies=len(vals),
        comparisons=0,
        partial_products_stored=0,
        hash_probes=int(probes.sum()),
        atomics=len(vals),
        spilled_rows=int(spilled.sum()),
        output_nnz=result.nnz,
    )
    phase = phase.split(np.ceil(products[live] / GRAIN))
    return SpgemmRun(Dataflow.ROWWISE, result, counts, Workload("spgemm-rowwise", (phase,)))


DATAFLOWS = {
    Dataflow.INNER: inner_product,
    Dataflow.OUTER: outer_product,
    Dataflow.ROWWISE: rowwise_product,
}


def spgemm(
    a: sp.spmatrix,
    b: sp.spmatrix,
    dataflow: Dataflow,
    arch: PiumaArch,
    costs: InstructionCosts | None = None,
) -> SpgemmRun:
    """``A @ B`` by `dataflow`: the result, its counts and its PIUMA workload."""
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"spgemm: A is {a.shape}, B is {b.shape}: inner dimensions differ")
    a_csr, b_csr = sp.csr_matrix(a, dtype=np.float64), sp.csr_matrix(b, dtype=np.float64)
    for mat in (a_csr, b_csr):
        mat.sum_duplicates()
        mat.sort_indices()
    return DATAFLOWS[dataflow](a_csr, b_csr, arch, costs or InstructionCosts())
