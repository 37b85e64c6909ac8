"""The cycle-level systolic-array model against SCALE-Sim v3 and against its own schedule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.sim.systolic import (
    ConvShape,
    Dataflow,
    GemmShape,
    SystolicArray,
    fold_busy_pes,
    gemm_compute_cycles,
    plan_folds,
    simulate_conv,
    simulate_gemm,
)
from tests.validation import load_cases

CASES = load_cases("scalesim")


def _simulate(case: dict[str, Any]):
    array = SystolicArray(
        case["array"]["rows"], case["array"]["cols"], Dataflow(case["array"]["dataflow"])
    )
    inputs = dict(case["inputs"])
    kind = inputs.pop("kind")
    if kind == "gemm":
        return array, simulate_gemm(inputs["m"], inputs["n"], inputs["k"], array)
    stride = inputs.pop("stride")
    layer = ConvShape(**inputs, stride_height=stride, stride_width=stride)
    return array, simulate_conv(layer, array)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_compute_cycles_and_utilization_match_scalesim(case: dict[str, Any]) -> None:
    expected, tolerance = case["expected"], case["tolerance"]
    # The model claims SCALE-Sim's stall-free compute cycles; the references must be stall-free.
    assert expected["stall_cycles"] == 0
    _, result = _simulate(case)
    assert result.compute_cycles == pytest.approx(
        expected["compute_cycles"], rel=tolerance["compute_cycles"], abs=0
    )
    for key in ("utilization", "compute_utilization", "mapping_efficiency"):
        assert getattr(result, key) == pytest.approx(expected[key], abs=tolerance["utilization"])


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_sram_traffic_matches_scalesim_demand_matrices(case: dict[str, Any]) -> None:
    expected = case["expected"]
    array, result = _simulate(case)
    assert result.sram_reads_ifmap == expected["sram_reads_ifmap"]
    assert result.sram_reads_filter == expected["sram_reads_filter"]
    # SCALE-Sim's os counter adds R + C per fold on top of the demand-matrix writes.
    quirk = result.folds * (array.rows + array.cols) if array.dataflow is Dataflow.OS else 0
    assert result.sram_writes_ofmap + quirk == expected["sram_writes_ofmap"]


def test_validation_table_rows_of_validation_md_are_present() -> None:
    table = {c["id"]: c["expected"]["compute_cycles"] for c in CASES}
    assert table["ws32x32_gemm64"] == 631
    assert table["ws32x32_gemm128x256x512"] == 28_415
    assert table["ws32x32_gemm512"] == 155_135
    assert table["ws32x32_gemm1024"] == 1_144_831


# ------------------------------------------------------------------ the schedule itself

dataflows = st.sampled_from(list(Dataflow))
small = st.integers(min_value=1, max_value=40)
arrays = st.builds(SystolicArray, st.integers(1, 12), st.integers(1, 12), dataflows)


@settings(max_examples=60, deadline=None)
@given(arrays, small, small, small)
def test_closed_form_equals_the_cycle_by_cycle_schedule(
    array: SystolicArray, m: int, n: int, k: int
) -> None:
    plan = plan_folds(GemmShape(m, n, k), array)
    total_cycles = 0
    total_macs = 0
    for fr in range(plan.row_folds):
        used_rows = min(array.rows, plan.spatial_rows - fr * array.rows)
        for fc in range(plan.col_folds):
            used_cols = min(array.cols, plan.spatial_cols - fc * array.cols)
            busy = fold_busy_pes(array, used_rows, used_cols, plan.temporal)
            assert busy.max() <= used_rows * used_cols
            total_cycles += busy.size
            total_macs += int(busy.sum())
    result = simulate_gemm(m, n, k, array)
    assert total_macs == m * n * k == result.macs
    assert total_cycles == result.schedule_cycles == result.compute_cycles + 1


@settings(max_examples=100, deadline=None)
@given(arrays, small, small, small)
def test_utilizations_are_fractions_and_cycles_respect_the_mac_bound(
    array: SystolicArray, m: int, n: int, k: int
) -> None:
    result = simulate_gemm(m, n, k, array)
    assert 0 < result.compute_utilization <= 1
    assert 0 < result.mapping_efficiency <= 1
    assert 0 < result.macs / (array.num_pes * result.schedule_cycles) <= 1
    # No dataflow beats MACs / PEs cycles, nor the pipeline depth of one fold.
    assert result.schedule_cycles >= math.ceil(m * n * k / array.num_pes)
    assert result.schedule_cycles >= array.rows + array.cols - 1


@settings(max_examples=100, deadline=None)
@given(arrays, small, small, small, st.integers(1, 30), st.sampled_from(["m", "n", "k"]))
def test_cycles_never_drop_when_a_dimension_grows(
    array: SystolicArray, m: int, n: int, k: int, extra: int, grow: str
) -> None:
    dims = {"m": m, "n": n, "k": k}
    before = simulate_gemm(dims["m"], dims["n"], dims["k"], array).compute_cycles
    dims[grow] += extra
    after = simulate_gemm(dims["m"], dims["n"], dims["k"], array).compute_cycles
    assert after >= before


@settings(max_examples=50, deadline=None)
@given(arrays, st.lists(st.tuples(small, small, small), min_size=1, max_size=8))
def test_vectorised_cycles_equal_scalar_cycles(
    array: SystolicArray, shapes: list[tuple[int, int, int]]
) -> None:
    m, n, k = (np.array(column) for column in zip(*shapes, strict=True))
    vector = gemm_compute_cycles(m, n, k, array)
    assert vector.tolist() == [simulate_gemm(*s, array).compute_cycles for s in shapes]


def test_a_fold_that_fits_the_array_matches_the_textbook_pipeline() -> None:
    # ws: R cycles of weight load, then T + (R-1) + (C-1) of skewed streaming, plus R-1 drain.
    ws = simulate_gemm(8, 4, 4, SystolicArray(4, 4, Dataflow.WS))
    assert (ws.folds, ws.cycles_per_fold) == (1, 4 + 8 + 3 + 3)
    # os: K + (R-1) + (C-1) cycles, no preload.
    os_ = simulate_gemm(4, 4, 8, SystolicArray(4, 4, Dataflow.OS))
    assert (os_.folds, os_.cycles_per_fold) == (1, 8 + 3 + 3)


def test_conv_is_simulated_as_its_im2col_gemm() -> None:
    layer = ConvShape(230, 230, 7, 7, 3, 64, stride_height=2, stride_width=2)
    # SCALE-Sim: ofmap = ceil((H - F + stride) / stride), no padding.
    assert layer.ofmap_height == math.ceil((230 - 7 + 2) / 2) == 113
    assert layer.to_gemm() == GemmShape(m=113 * 113, n=64, k=7 * 7 * 3)
    array = SystolicArray(32, 32, Dataflow.WS)
    assert simulate_conv(layer, array) == simulate_gemm(113 * 113, 64, 147, array)


def test_partial_folds_cost_as_much_as_full_folds() -> None:
    array = SystolicArray(16, 16, Dataflow.OS)
    assert simulate_gemm(17, 16, 9, array).compute_cycles == (
        simulate_gemm(32, 16, 9, array).compute_cycles
    )


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: SystolicArray(0, 4, Dataflow.WS), "rows"),
        (lambda: SystolicArray(4, -1, Dataflow.WS), "cols"),
        (lambda: SystolicArray(4, 4, "ws"), "dataflow"),  # type: ignore[arg-type]
        (lambda: SystolicArray(True, 4, Dataflow.WS), "rows"),
        (lambda: simulate_gemm(0, 1, 1, SystolicArray(2, 2, Dataflow.OS)), "m"),
        (lambda: simulate_gemm(1, 2.5, 1, SystolicArray(2, 2, Dataflow.OS)), "n"),  # type: ignore[arg-type]
        (lambda: simulate_gemm(1, 1, -3, SystolicArray(2, 2, Dataflow.OS)), "k"),
        (lambda: simulate_gemm(1, 1, 1, (2, 2)), "array"),  # type: ignore[arg-type]
        (lambda: ConvShape(3, 3, 4, 1, 1, 1), "filter_height"),
        (lambda: ConvShape(3, 3, 1, 1, 1, 1, stride_height=0), "stride_height"),
        (lambda: fold_busy_pes(SystolicArray(2, 2, Dataflow.WS), 3, 1, 1), "used_rows"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


def test_numpy_integers_are_accepted_and_normalised() -> None:
    array = SystolicArray(np.int64(4), np.int32(4), Dataflow.IS)
    assert type(array.rows) is int
    assert simulate_gemm(np.int64(5), 6, 7, array) == simulate_gemm(5, 6, 7, array)
