"""Fused groups (one kernel per contraction + epilogues), padded windows, the CPU micro-kernel,
and the peer runtimes that `codesign bench` compares against."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.codegen.groups import check_groups, default_groups  # noqa: E402
from codesign.codegen.schedules import ScheduleOptions  # noqa: E402
from codesign.codegen.tvm import compile_cascade  # noqa: E402
from codesign.errors import InputError  # noqa: E402
from codesign.frontends import load_model  # noqa: E402
from codesign.frontends.layers import gemm  # noqa: E402
from codesign.ir import DType, interpret  # noqa: E402
from codesign.ir.inputs import sample_inputs  # noqa: E402
from tests.ir_cases import conv_cascade  # noqa: E402
from tests.test_codegen_tvm import assert_matches_interpreter, mlp_cascade  # noqa: E402

MODELS = Path(__file__).resolve().parent.parent / "examples" / "models"


@pytest.fixture(scope="module")
def mlp():
    return mlp_cascade(np.random.default_rng(0))


def test_default_groups_put_bias_and_activation_behind_their_matmul(mlp):
    assert default_groups(mlp) == (("fc1", "fc1_bias", "gelu"), ("fc2", "fc2_bias"))


def test_residual_add_joins_the_kernel_of_its_later_producer():
    groups = default_groups(load_model(str(MODELS / "cnn.onnx")))
    by_main = {g[0]: g for g in groups}
    # add_1 reads the shortcut conv (Conv_143) and the main-path conv (Conv_147): it rides with
    # the later one, whose kernel runs after both inputs exist
    assert by_main["node_Conv_147"] == (
        "node_Conv_147", "node_Conv_147_bias", "node_add_1", "node_relu_4",
    )  # fmt: skip
    assert by_main["node_Conv_143"] == ("node_Conv_143", "node_Conv_143_bias")


def test_a_fused_group_is_one_primfunc_whose_inner_tensors_stay_inside(mlp):
    compiled = compile_cascade(mlp, groups=[("fc1", "fc1_bias", "gelu")])
    symbols = [s.symbol for s in compiled.lowered.stages]
    assert "cs_fc1" in symbols and "cs_gelu" not in symbols and "cs_fc1_bias" not in symbols
    stage = next(s for s in compiled.lowered.stages if s.symbol == "cs_fc1")
    assert stage.einsums == ("fc1", "fc1_bias", "gelu") and stage.output == "gelu"
    buffers = {b.name for b in compiled.lowered.buffers}
    assert "fc1" not in buffers and "fc1_bias" not in buffers  # never leave the kernel
    script = compiled.scheduled["cs_fc1"].script()
    # the epilogue (bias, then GELU through TVM's erf approximation) is computed in the kernel
    assert "b1[" in script and "T.erf" not in script  # not the scalar libm erf
    assert_matches_interpreter(mlp, groups=[("fc1", "fc1_bias", "gelu")])


def test_unfused_compilation_keeps_one_kernel_per_einsum(mlp):
    compiled = compile_cascade(mlp, groups=())
    assert [s.einsum for s in compiled.lowered.stages] == [e.name for e in mlp.einsums]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([("fc1", "nope")], "no Einsum named 'nope'"),
        ([("fc1", "fc1_bias"), ("fc1_bias", "gelu")], "fc1_bias is in two groups"),
        ([("fc1", "gelu")], "fc1 (from fc1) is also needed outside the group (fc1_bias)"),
    ],
)
def test_invalid_groups_are_input_errors_naming_the_einsum(mlp, groups, message):
    with pytest.raises(InputError) as err:
        check_groups(mlp, groups)
    assert message in str(err.value)


def test_fused_bundled_models_equal_the_interpreter():
    for name in ("mlp", "cnn"):
        assert_matches_interpreter(load_model(str(MODELS / f"{name}.onnx")))


def test_padded_conv_window_reads_a_padded_copy_without_a_bounds_test(rng=None):
    cascade = conv_cascade(np.random.default_rng(0), stride=1, pad=1)
    compiled = compile_cascade(cascade, groups=())
    script = compiled.scheduled["cs_conv"].script()
    assert "X__pad" in script  # the window reads the copy...
    main = script[script.index('T.sblock("conv_update")') :]
    assert "if_then_else" not in main  # ...so the accumulation has no branch
    assert_matches_interpreter(cascade, groups=())


def test_gemm_micro_kernel_is_parallel_vectorised_register_blocked():
    # big enough that two threads pay (codesign.codegen.cpu_parallel decides per kernel)
    cascade = gemm(256, 192, 320, DType.F32)
    compiled = compile_cascade(cascade, options=ScheduleOptions(threads=2))
    script = compiled.scheduled["cs_gemm"].script()
    assert "T.parallel" in script and "T.vectorized" in script and "T.unroll(8)" in script
    assert 'scope="local"' in script  # the accumulator tile
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 320)).astype(np.float32)
    b = rng.standard_normal((320, 192)).astype(np.float32)
    np.testing.assert_allclose(compiled.run({"A": a, "B": b})["Y"], a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None,
    reason="torch eager peer needs torch and onnx",
)
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_torch_eager_peer_computes_what_the_interpreter_computes(name):
    from codesign.codegen.peers import time_torch, torch_forward

    cascade = load_model(str(MODELS / f"{name}.onnx"))
    inputs = {t.name: sample_inputs(cascade, 0)[t.name] for t in cascade.inputs}
    (got,) = torch_forward(MODELS / f"{name}.onnx", inputs)()
    want = interpret(cascade, sample_inputs(cascade, 0))
    (ref,) = want.values()
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4, atol=1e-5)
    timed = time_torch(MODELS / f"{name}.onnx", inputs, repeat=2)
    assert timed.median_s is not None and timed.median_s > 0 and len(timed.runs_s) == 2


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None,
    reason="torch eager peer needs torch and onnx",
)
def test_torch_eager_peer_runs_onnx_layer_normalization(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from codesign.codegen.peers import torch_forward

    rng = np.random.default_rng(0)
    scale, bias = rng.standard_normal((2, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-3)],
        "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [numpy_helper.from_array(scale, "g"), numpy_helper.from_array(bias, "b")],
    )  # fmt: skip
    path = tmp_path / "ln.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    (got,) = torch_forward(path, {"x": x})()
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(got.numpy(), (x - mean) / np.sqrt(var + 1e-3) * scale + bias,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
