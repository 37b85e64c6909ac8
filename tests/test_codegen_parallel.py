"""The default CPU schedule's parallelism: the cost rule, the chunking and the row blocks
(`codesign.codegen.cpu_parallel`), and what the schedule does with them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codesign.codegen.cpu_parallel import (
    CpuCosts,
    Work,
    chunk_imbalance,
    parallel_s,
    parallel_threads,
    row_blocks,
    serial_s,
)

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
COSTS = CpuCosts(threads=2, core_flops_per_s=200e9)


def test_chunks_that_divide_the_threads_are_balanced_and_a_remainder_is_not():
    assert chunk_imbalance(1024, 2) == 0.0
    assert chunk_imbalance(3, 2) == pytest.approx(1 / 3)  # 2 chunks vs 1.5
    assert chunk_imbalance(1, 2) == pytest.approx(1.0)  # one thread idle
    assert chunk_imbalance(7, 1) == 0.0


def test_a_gemm_runs_on_every_thread_and_a_microsecond_kernel_stays_serial():
    gemm512 = Work(flops=2 * 512**3, bytes=3 * 512 * 512 * 4)
    stem_conv = Work(flops=2 * 16 * 3 * 9 * 32 * 32, bytes=80e3)  # ~4.4 µs on one core
    assert parallel_threads(gemm512, COSTS, chunks=1024) == 2
    assert parallel_threads(stem_conv, COSTS, chunks=64) == 1
    assert parallel_threads(gemm512, COSTS, chunks=1) == 1  # nothing to split
    assert parallel_threads(gemm512, CpuCosts(1, 200e9), chunks=1024) == 1


def test_parallelism_is_chosen_exactly_when_it_saves_the_minimum_gain():
    for flops in np.geomspace(1e5, 1e10, 40):
        work = Work(flops=float(flops), bytes=float(flops) / 50)
        gain = 1 - parallel_s(work, COSTS, 2, 64) / serial_s(work, COSTS)
        assert (parallel_threads(work, COSTS, 64) == 2) == (gain >= COSTS.min_gain)


def test_weights_shared_by_every_core_do_not_count_as_handed_off():
    # an MLP layer: 8 x 784 activations, a 784 x 256 weight (800 KB)
    layer = dict(flops=2 * 8 * 784 * 256, bytes=(8 * 784 + 784 * 256 + 8 * 256) * 4)
    everything = Work(**layer)
    activations = Work(**layer, handoff_bytes=(8 * 784 + 8 * 256) * 4)
    assert parallel_s(activations, COSTS, 2, 64) < parallel_s(everything, COSTS, 2, 64)


def test_the_handoff_overlaps_the_split_work_and_counts_only_beyond_it():
    compute_bound = Work(flops=4e6, bytes=200e3)  # 20 µs; 200 KB move in 6.7 µs < 10 µs split
    split_s = serial_s(compute_bound, COSTS) / 2
    assert parallel_s(compute_bound, COSTS, 2, 64) == pytest.approx(split_s + COSTS.fork_join_s)
    handoff_bound = Work(flops=4e5, bytes=600e3)  # 20 µs of moving against a 1 µs split
    assert parallel_s(handoff_bound, COSTS, 2, 64) == pytest.approx(
        600e3 / COSTS.handoff_bytes_per_s + COSTS.fork_join_s
    )


def test_an_imbalanced_split_needs_more_work_to_pay():
    work = Work(flops=2e6 * 8, bytes=50e3)
    assert parallel_s(work, COSTS, 2, 3) > parallel_s(work, COSTS, 2, 4)


def test_row_blocks_of_a_gemm_fit_half_of_l2_and_give_each_thread_whole_blocks():
    l2 = 1 << 20
    # 512^3: 64 row tiles of 8 rows x 512 x 4 B: two blocks of 256 KiB... one per thread
    assert row_blocks(64, 8 * 512 * 4, 2, l2) == 2
    assert row_blocks(256, 8 * 2048 * 4, 2, l2) == 32  # 2048^3: 64 rows (512 KiB) a block
    assert row_blocks(64, 1024, 2, l2) == 2  # all fits: still one block per thread
    assert row_blocks(64, 1024, 1, l2) == 1  # ... and one block when serial
    assert row_blocks(3, 1024, 2, l2) == 1  # no multiple of 2 divides 3


@given(
    row_tiles=st.integers(1, 300),
    tile_bytes=st.integers(1, 1 << 18),
    threads=st.integers(1, 8),
)
def test_row_blocks_divide_the_tiles_and_meet_l2_and_threads_when_some_divisor_can(
    row_tiles: int, tile_bytes: int, threads: int
):
    l2 = 1 << 20
    blocks = row_blocks(row_tiles, tile_bytes, threads, l2)
    assert row_tiles % blocks == 0
    divisors = [d for d in range(1, row_tiles + 1) if row_tiles % d == 0]
    fits = [d for d in divisors if row_tiles // d * tile_bytes <= l2 // 2]
    if row_tiles > 1 and threads > 1 and any(d % threads == 0 for d in fits):
        assert blocks % threads == 0 and blocks in fits
    elif fits and (threads == 1 or row_tiles == 1):
        assert blocks == fits[0]


# -- what the schedule does with the rule (needs TVM) ---------------------------------------


def _parallel_extents(module) -> list[int]:  # noqa: ANN001 - a tvm IRModule or PrimFunc
    return [int(n) for n in re.findall(r"T\.parallel\((\d+)\)", module.script())]


@pytest.fixture(scope="module")
def tvm_codegen():
    pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")
    from codesign.codegen import tvm as codegen  # noqa: PLC0415

    return codegen


def test_kernel_work_counts_multiply_accumulates_and_hands_off_only_activations(tvm_codegen):
    from codesign.codegen.cpu_parallel import kernel_work  # noqa: PLC0415
    from codesign.codegen.te_lower import lower_cascade  # noqa: PLC0415
    from codesign.frontends.layers import gemm  # noqa: PLC0415
    from codesign.ir import DType  # noqa: PLC0415

    m, n, k = 16, 32, 48
    (stage,) = lower_cascade(gemm(m, n, k, DType.F32), ()).stages
    work = kernel_work(stage.func, frozenset({"B"}))
    assert work.flops == 2 * m * n * k
    assert work.bytes == (m * k + k * n + m * n) * 4
    assert work.handoff_bytes == (m * k + m * n) * 4


def test_a_512_gemm_splits_into_whole_row_blocks_per_thread_and_stays_exact(tvm_codegen):
    from codesign.frontends.layers import gemm  # noqa: PLC0415
    from codesign.ir import DType  # noqa: PLC0415

    n = 512
    cascade = gemm(n, n, n, DType.F32)
    two = tvm_codegen.compile_cascade(cascade, "llvm", "default", threads=2)
    one = tvm_codegen.compile_cascade(cascade, "llvm", "default", threads=1)
    (extent,) = _parallel_extents(two.scheduled)
    assert extent % 2 == 0
    script = two.scheduled.script()
    # the fused loop's outermost part is the row block (n // 2 rows each): thread t's half of
    # the chunks is exactly row block t
    assert re.search(rf"fused // {extent // 2} \* {n // 2}\b", script)
    assert _parallel_extents(one.scheduled) == []
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    want = a.astype(np.float64) @ b
    for build in (two, one):
        got = build.run({"A": a, "B": b})["Y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_the_cnns_microsecond_kernels_run_serial_and_its_3x3_convs_on_two_threads(tvm_codegen):
    from codesign.codegen.cpu_parallel import costs_for, kernel_work, serial_s  # noqa: PLC0415
    from codesign.frontends import load_model  # noqa: PLC0415
    from codesign.ir.inputs import sample_inputs  # noqa: PLC0415
    from codesign.ir.interpreter import interpret  # noqa: PLC0415

    cascade = load_model(str(MODELS / "cnn.onnx"))
    build = tvm_codegen.compile_cascade(cascade, "llvm", "default", threads=2)
    costs = costs_for(tvm_codegen.host_target(), 2)
    weights = frozenset(build.lowered.weights)
    parallel = {gv.name_hint for gv, func in build.scheduled.functions_items()
                if _parallel_extents(func)}  # fmt: skip
    for stage in build.lowered.stages:
        one_core_s = serial_s(kernel_work(stage.func, weights), costs)
        # the least time that can pay: (0.5 - min_gain) x serial >= fork-join
        if one_core_s < costs.fork_join_s / (0.5 - costs.min_gain):
            assert stage.symbol not in parallel, stage.symbol
        if stage.symbol in {"cs_node_Conv_139", "cs_node_Conv_145", "cs_node_Conv_153"}:
            assert stage.symbol in parallel, stage.symbol  # 11-20 µs on one core
    assert {"cs_node_mean", "cs_node_linear", "cs_node_Conv_137"}.isdisjoint(parallel)
    inputs = sample_inputs(cascade, 0)
    want = interpret(cascade, build.values(inputs))
    got = build.run(inputs)
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)


def test_a_small_tuning_budget_is_shared_by_every_kernel():
    from codesign.codegen.schedules import trials_per_round  # noqa: PLC0415

    assert trials_per_round(16, 1) == 16
    assert trials_per_round(32, 12) == 3  # 12 kernels x 3 >= 32: every kernel gets a round
    assert trials_per_round(16, 12) == 2
    assert trials_per_round(1000, 2) == 64


def test_a_parallel_conv_is_split_in_bands_of_output_rows_and_a_gemm_in_row_blocks():
    pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")
    from codesign.codegen.cpu_blocks import _band  # noqa: PLC0415
    from codesign.codegen.cpu_plan import Plan  # noqa: PLC0415

    # conv n, m, p, q | c, r, s: vector q, row m (output channels): bands of output rows p
    conv = Plan((0, 1, 2, 3), (4, 5, 6), (1, 16, 32, 32, 16, 3, 3), 3, 1, 32, 8, ())
    assert _band(conv, [0, 1, 2], threads=2) == 2
    assert _band(conv, [0, 1, 2], threads=3) is None  # 32 rows do not split evenly in 3
    gemm = Plan((0, 1), (2,), (512, 512, 512), 1, 0, 32, 8, ())
    assert _band(gemm, [0], threads=2) is None  # only the row variable: row blocks
    batched = Plan((0, 1, 2), (3,), (8, 64, 64, 64), 2, 1, 32, 8, ())
    assert _band(batched, [0, 1], threads=2) == 0  # heads / batch entries per thread
