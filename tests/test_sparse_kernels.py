"""Sparse and graph kernels: SpGEMM dataflows vs scipy, BFS/SSSP vs csgraph, semiring Einsums
in the IR equal the sparse kernels, graph inputs, and the SMASH validation cases."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csgraph

from codesign.errors import InputError
from codesign.frontends.graphs import RmatSpec, load_graph, parse_rmat, read_mtx, rmat
from codesign.hwmodels.piuma import PiumaArch, load_piuma
from codesign.ir import interpret, verify
from codesign.sim.graph_kernels import (
    bfs,
    bfs_step_cascade,
    dense_min_plus,
    spmv,
    spmv_cascade,
    sssp,
    sssp_step_cascade,
)
from codesign.sim.piuma import latency_tolerance, simulate
from codesign.sim.sparse_kernels import Dataflow, spgemm
from tests.validation import load_cases

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def arch() -> PiumaArch:
    return load_piuma(ROOT / "examples" / "hw" / "piuma.yaml")


ARCH = load_piuma(ROOT / "examples" / "hw" / "piuma.yaml")


# -- SpGEMM -----------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 30),
    k=st.integers(1, 30),
    n=st.integers(1, 30),
    density=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**16),
    dataflow=st.sampled_from(list(Dataflow)),
)
def test_every_spgemm_dataflow_equals_scipy(m, k, n, density, seed, dataflow) -> None:
    a = sp.random(m, k, density=density, random_state=seed, format="csr")
    b = sp.random(k, n, density=density, random_state=seed + 1, format="csr")
    run = spgemm(a, b, dataflow, ARCH)
    np.testing.assert_allclose(run.result.toarray(), (a @ b).toarray(), rtol=1e-12, atol=1e-12)
    assert run.counts.multiplies == _flops(a, b)


def _flops(a: sp.spmatrix, b: sp.spmatrix) -> int:
    """Partial products of A @ B: sum over k of nnz(A[:, k]) * nnz(B[k, :])."""
    return int(np.diff(sp.csc_matrix(a).indptr) @ np.diff(sp.csr_matrix(b).indptr))


def test_spgemm_keeps_explicit_cancellation_and_duplicates() -> None:
    a = sp.csr_matrix(np.array([[1.0, 1.0], [0.0, 2.0]]))
    b = sp.csr_matrix(np.array([[1.0, 0.0], [-1.0, 3.0]]))
    for dataflow in Dataflow:
        np.testing.assert_allclose(spgemm(a, b, dataflow, ARCH).result.toarray(), (a @ b).toarray())


@pytest.fixture(scope="module")
def rmat_runs(arch):
    a = rmat(RmatSpec(scale=9, edge_factor=8, seed=1))
    a.data[:] = np.random.default_rng(0).random(a.nnz)
    return a, {d: spgemm(a, a, d, arch) for d in Dataflow}


def test_each_dataflow_counts_its_own_overhead(rmat_runs) -> None:
    a, runs = rmat_runs
    flops = _flops(a, a)
    inner, outer, row = runs[Dataflow.INNER], runs[Dataflow.OUTER], runs[Dataflow.ROWWISE]
    assert {r.counts.multiplies for r in runs.values()} == {flops}
    assert outer.counts.partial_products_stored == flops  # partials go to DRAM and back
    assert row.counts.atomics == flops  # every partial product merges by atomic add
    assert row.counts.hash_probes >= flops  # at least one probe each (load <= 0.5)
    assert row.counts.hash_probes < 2 * flops
    # Inner product streams all of B once per non-empty row of A.
    rows = int((np.diff(a.indptr) > 0).sum())
    assert inner.counts.comparisons >= rows * a.nnz


def test_rowwise_with_atomics_is_the_fastest_dataflow(arch, rmat_runs) -> None:
    _, runs = rmat_runs
    for model in (latency_tolerance, simulate):
        cycles = {d: model(r.workload, arch).cycles for d, r in runs.items()}
        assert min(cycles, key=cycles.__getitem__) is Dataflow.ROWWISE


def _smash_example():
    spec = importlib.util.spec_from_file_location("smash", ROOT / "examples/papers/smash.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_smash_validation_cases(arch) -> None:
    cases = {c["id"]: c for c in load_cases("smash")}
    case = cases["smash_speedup_vs_inner"]
    smash = _smash_example()
    rows = smash.compare(case["inputs"]["graph"], case["inputs"]["values_seed"], arch)
    fastest = min(rows, key=lambda k: rows[k]["event_cycles"])
    assert fastest == cases["smash_rowwise_fastest"]["expected"]["fastest"]
    speedup = smash.speedups(rows, case["inputs"]["model"])[case["inputs"]["baseline"]]
    assert speedup == pytest.approx(case["expected"]["speedup"], rel=case["tolerance"])


# -- graph kernels ----------------------------------------------------------------------------
@pytest.mark.parametrize("undirected", [False, True])
def test_bfs_levels_equal_csgraph_hop_distances(arch, undirected) -> None:
    g = rmat(RmatSpec(scale=11, edge_factor=8, seed=5, undirected=undirected))
    source = int(np.argmax(np.diff(g.indptr)))
    run = bfs(g, source, arch)
    hops = csgraph.shortest_path(g, indices=source, unweighted=True)
    np.testing.assert_array_equal(run.values, np.where(np.isinf(hops), -1, hops).astype(int))
    assert run.iterations == run.values.max() + 1
    assert len(run.workload.phases) == run.iterations


def test_sssp_distances_equal_scipy_dijkstra(arch) -> None:
    g = rmat(RmatSpec(scale=10, edge_factor=8, seed=7))
    source = int(np.argmax(np.diff(g.indptr)))
    np.testing.assert_allclose(sssp(g, source, arch).values, csgraph.dijkstra(g, indices=source))


def test_spmv_equals_scipy(arch) -> None:
    g = rmat(RmatSpec(scale=9, seed=2))
    x = np.random.default_rng(0).random(g.shape[0])
    np.testing.assert_allclose(spmv(g, x, arch).values, g @ x)


@pytest.fixture(scope="module")
def small_graph() -> sp.csr_matrix:
    return rmat(RmatSpec(scale=5, edge_factor=3, seed=11))


def test_or_and_einsum_in_the_ir_equals_each_bfs_level(arch, small_graph) -> None:
    g = small_graph
    n = g.shape[0]
    source = int(np.argmax(np.diff(g.indptr)))
    levels = bfs(g, source, arch).values
    cascade = bfs_step_cascade(n)
    verify(cascade)
    dense = g.toarray() != 0
    for depth in range(levels.max()):
        inputs = {"A": dense, "f": levels == depth, "seen": (levels >= 0) & (levels <= depth)}
        nxt = interpret(cascade, inputs)["next"]
        np.testing.assert_array_equal(nxt.astype(bool), levels == depth + 1)


def test_min_plus_einsum_in_the_ir_iterated_equals_sssp(arch, small_graph) -> None:
    g = small_graph
    n = g.shape[0]
    source = int(np.argmax(np.diff(g.indptr)))
    cascade = sssp_step_cascade(n)
    verify(cascade)
    w = dense_min_plus(g)
    d = np.full(n, np.inf)
    d[source] = 0.0
    for _ in range(n):
        d_next = interpret(cascade, {"W": w, "d": d})["d_next"]
        if np.array_equal(d_next, d):
            break
        d = d_next
    np.testing.assert_array_equal(d, sssp(g, source, arch).values)


def test_plus_times_einsum_in_the_ir_equals_spmv(arch, small_graph) -> None:
    g = small_graph
    x = np.random.default_rng(1).random(g.shape[0])
    cascade = spmv_cascade(g.shape[0])
    verify(cascade)
    y = interpret(cascade, {"A": g.toarray(), "x": x})["y"]
    np.testing.assert_allclose(y, spmv(g, x, arch).values)


# -- inputs -----------------------------------------------------------------------------------
def test_rmat_is_seeded_and_power_law() -> None:
    spec = RmatSpec(scale=12, edge_factor=16, seed=3)
    g1, g2 = rmat(spec), rmat(spec)
    assert (g1 != g2).nnz == 0
    assert (g1 != rmat(RmatSpec(scale=12, edge_factor=16, seed=4))).nnz > 0
    degree = np.diff(g1.indptr)
    assert degree.max() > 20 * degree.mean()  # heavy tail, unlike a uniform random graph
    assert 0.7 * 16 * 4096 < g1.nnz <= 16 * 4096  # duplicates and self loops dropped


def test_parse_rmat_reads_every_field() -> None:
    spec = parse_rmat("rmat:scale=17,edge_factor=16,seed=1,a=0.45,b=0.15,c=0.15,undirected=1")
    assert spec == RmatSpec(17, 16, 0.45, 0.15, 0.15, 1, True)


def test_mtx_round_trip(tmp_path: Path) -> None:
    import scipy.io

    m = sp.random(7, 5, density=0.4, random_state=0, format="csr")
    path = tmp_path / "m.mtx"
    scipy.io.mmwrite(str(path), m)
    np.testing.assert_allclose(read_mtx(path).toarray(), m.toarray())
    np.testing.assert_allclose(load_graph(str(path)).toarray(), m.toarray())


@pytest.mark.parametrize(
    "text",
    [
        "%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1.0\ngarbage\n",
        "not a matrix market file\n",
        "%%MatrixMarket matrix coordinate real general\n3 3 1\n9 9 1.0\n",
    ],
)
def test_malformed_mtx_is_a_one_line_input_error_naming_the_file(tmp_path, text) -> None:
    path = tmp_path / "bad.mtx"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_mtx(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("spec", ["rmat:scale=0", "rmat:scale=5,a=0.9,b=0.9", "rmat:x=1",
                                  "rmat:scale=abc", "graph.txt"])  # fmt: skip
def test_bad_graph_specs_are_input_errors(spec) -> None:
    with pytest.raises(InputError):
        load_graph(spec)
