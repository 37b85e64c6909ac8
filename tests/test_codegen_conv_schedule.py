"""The default CPU schedule's decisions for convolutions (the bundled CNN's layers), on a
fixed AVX-512-shaped micro-kernel so they do not depend on the host's vector width."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.codegen.cpu_plan import Micro, contraction_plan  # noqa: E402
from codesign.codegen.cpu_schedule import schedule_stage  # noqa: E402
from codesign.codegen.groups import kernel_plan  # noqa: E402
from codesign.codegen.te_lower import Stage, lower_cascade  # noqa: E402
from codesign.frontends import load_model  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
AVX512 = Micro(lanes=16, vector_tile=32, row_tile=8)
B, M, P, Q = 0, 1, 2, 3  # the conv block's output loops: batch, channel, row, column


@pytest.fixture(scope="module")
def cnn() -> tuple[dict[str, Stage], frozenset[str]]:
    cascade = load_model(str(MODELS / "cnn.onnx"))
    lowered = lower_cascade(cascade, kernel_plan(cascade).groups)
    return {s.einsum: s for s in lowered.stages}, frozenset(lowered.weights)


def _plan(stage: Stage, weights: frozenset[str]):  # noqa: ANN202 - a _Plan
    import tvm

    sch = tvm.s_tir.Schedule(stage.func)
    block = sch.get_sblock(stage.block)
    return contraction_plan(sch, block, stage.loop_vars, {}, AVX512, weights)


def test_conv_rows_narrower_than_the_vector_tile_vectorise_output_channels(cnn):
    stages, weights = cnn
    # Conv_147: 16-wide output rows fill only half of the 32-wide vector tile; its 32 output
    # channels fill it, from a pre-packed weight
    plan = _plan(stages["node_Conv_147"], weights)
    assert plan is not None and (plan.vector, plan.vector_tile) == (M, 32)
    # Conv_139: 32-wide unit-stride rows keep the column as the vector
    plan = _plan(stages["node_Conv_139"], weights)
    assert plan is not None and plan.vector == Q


def test_conv_rows_not_a_multiple_of_the_vector_tile_vectorise_output_channels():
    # ResNet's stage-1 3x3 convs: 56-wide rows would take 28-lane tiles (11 ms vs 0.5 ms)
    from codesign.frontends.layers import conv
    from codesign.ir.dtypes import DType

    cascade = conv(1, 64, 64, 56, 56, 3, 3, dtype=DType.F32)
    lowered = lower_cascade(cascade, kernel_plan(cascade).groups)
    (stage,) = lowered.stages
    plan = _plan(stage, frozenset(lowered.weights))
    assert plan is not None and (plan.vector, plan.vector_tile) == (M, 32)


def test_channel_vectorised_conv_blocks_rows_over_the_output_columns(cnn):
    stages, weights = cnn
    # stride-2 3x3 (Conv_145), 1x1 stride-2 shortcut (Conv_143), 16-wide rows (Conv_147):
    # the register tile's rows are output columns, contiguous in the output, so the
    # write-back stores vectors rather than scattering one value per output row
    for name in ("node_Conv_143", "node_Conv_145", "node_Conv_147"):
        plan = _plan(stages[name], weights)
        assert plan is not None and (plan.vector, plan.row) == (M, Q), name


def test_conv_epilogue_is_computed_by_the_accumulator_write_back(cnn):
    stages, weights = cnn
    stage = stages["node_Conv_147"]  # conv + bias + residual + relu
    func = schedule_stage(stage, {}, AVX512, weights)
    script = func.script()
    # no separate epilogue block, and no pre-activation buffer between the two
    assert 'T.sblock("node_relu_4")' not in script
    assert "node_Conv_147 = T.sblock_alloc_buffer" not in script
    assert "node_relu_4[" in script


def test_a_mean_over_contiguous_pixels_sums_vectors_of_partial_results(cnn):
    stages, weights = cnn
    script = schedule_stage(stages["node_mean"], {}, AVX512, weights).script()
    # 64 pixels per channel: 16 partial sums in one vector register, then their sum
    assert 'scope="local"' in script and "node_mean_rf_local" in script
    assert "T.vectorized(16)" in script


def test_a_reduction_over_a_strided_dimension_keeps_the_sequential_sum():
    import tvm
    from tvm import te

    from codesign.codegen.cpu_blocks import _partial_sums

    a = te.placeholder((64, 1), name="A")
    r = te.reduce_axis((0, 64), name="r")
    out = te.compute((1,), lambda i: te.sum(a[r, i], axis=r), name="out")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, out]))
    block = sch.get_sblock("out")
    reduced = sch.get_loops(block)[1:]
    assert not _partial_sums(sch, block, reduced, AVX512)  # A[r, i]: r is not the last dim
    assert "rf" not in sch.mod["main"].script()
