"""ONNX frontend: each op family on a tiny model built with onnx.helper is imported, verified,
printed and re-parsed to an equal cascade, and interpreted equal to onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from codesign.errors import InputError
from codesign.frontends.onnx import load_onnx, supported_ops
from codesign.ir import Role, interpret, parse_cascade, print_cascade, verify
from codesign.ir.builder import sanitize

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference for these tests")

F = TensorProto.FLOAT


@dataclass(frozen=True)
class In:
    """A graph input: kind 'f' standard normal, 'p' positive (0.5..2), 'i' int64 in [lo, hi)."""

    name: str
    shape: tuple[int, ...]
    kind: str = "f"
    lo: int = 0
    hi: int = 1


@dataclass(frozen=True)
class Case:
    nodes: list[onnx.NodeProto]
    inputs: list[In]
    outputs: list[str]
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 17
    out_types: dict[str, int] = field(default_factory=dict)


def node(op: str, ins: list[str], outs: list[str], name: str = "", **attrs) -> onnx.NodeProto:
    return helper.make_node(op, ins, outs, name=name or f"{op.lower()}_{outs[0]}", **attrs)


def make_model(case: Case) -> onnx.ModelProto:
    elem = {"f": F, "p": F, "i": TensorProto.INT64}
    inputs = [helper.make_tensor_value_info(i.name, elem[i.kind], i.shape) for i in case.inputs]
    outputs = [
        helper.make_tensor_value_info(o, case.out_types.get(o, F), None) for o in case.outputs
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in case.inits.items()]
    graph = helper.make_graph(case.nodes, "t", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    return model


def feeds(case: Case, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in case.inputs:
        if i.kind == "f":
            out[i.name] = rng.standard_normal(i.shape).astype(np.float32)
        elif i.kind == "p":
            out[i.name] = rng.uniform(0.5, 2.0, i.shape).astype(np.float32)
        else:
            out[i.name] = rng.integers(i.lo, i.hi, i.shape).astype(np.int64)
    return out


def check_against_onnxruntime(model: onnx.ModelProto, values: dict[str, np.ndarray]):
    """Import, verify, round-trip the text, and compare the interpretation with onnxruntime."""
    cascade = load_onnx(model)
    verify(cascade)
    assert parse_cascade(print_cascade(cascade)) == cascade
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = session.run(None, values)
    ours = interpret(cascade, {sanitize(k): v for k, v in values.items()})
    for meta, ref in zip(session.get_outputs(), reference, strict=True):
        got = ours[sanitize(meta.name)]
        assert got.shape == ref.shape, meta.name
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, err_msg=meta.name)
    return cascade


def w(*shape: int, seed: int = 1, positive: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if positive:
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


X4 = In("x", (2, 4, 7, 7))
CASES: dict[str, Case] = {
    # -- convolution and dense layers
    "conv_stride_pad_bias": Case(
        [node("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
        [In("x", (1, 3, 8, 8))], ["y"], {"w": w(4, 3, 3, 3), "b": w(4)},
    ),
    "conv_grouped_dilated_asymmetric_pads": Case(
        [node("Conv", ["x", "w"], ["y"], group=2, dilations=[2, 1], pads=[1, 0, 2, 1])],
        [X4], ["y"], {"w": w(6, 2, 3, 3)},
    ),
    "conv_depthwise_multiplier_same_upper": Case(
        [node("Conv", ["x", "w", "b"], ["y"], group=4, auto_pad="SAME_UPPER", strides=[2, 2])],
        [X4], ["y"], {"w": w(8, 1, 3, 3), "b": w(8)},
    ),
    "conv_depthwise_same_lower": Case(
        [node("Conv", ["x", "w"], ["y"], group=4, auto_pad="SAME_LOWER", kernel_shape=[2, 2])],
        [X4], ["y"], {"w": w(4, 1, 2, 2)},
    ),
    "conv1d_valid": Case(
        [node("Conv", ["x", "w"], ["y"], auto_pad="VALID", strides=[3])],
        [In("x", (2, 3, 11))], ["y"], {"w": w(5, 3, 4)},
    ),
    "convtranspose_stride1_pads_dilation": Case(
        [node("ConvTranspose", ["x", "w", "b"], ["y"], pads=[1, 0, 0, 2], dilations=[2, 1])],
        [In("x", (1, 3, 5, 6))], ["y"], {"w": w(3, 4, 3, 3), "b": w(4)},
    ),
    "convtranspose_stride2_groups_output_padding": Case(
        [node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 3], group=2, pads=[1, 1, 0, 1],
              output_padding=[1, 2])],
        [X4], ["y"], {"w": w(4, 3, 3, 4)},
    ),
    "gemm_trans_alpha_beta": Case(
        [node("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0)],
        [In("a", (6, 3))], ["y"], {"b": w(4, 6), "c": w(4)},
    ),
    "gemm_no_bias": Case(
        [node("Gemm", ["a", "b"], ["y"])], [In("a", (3, 5)), In("b", (5, 2))], ["y"]
    ),
    "matmul_batched_broadcast": Case(
        [node("MatMul", ["a", "b"], ["y"]), node("MatMul", ["v", "y"], ["z"])],
        [In("a", (2, 3, 4, 5)), In("v", (4,))], ["y", "z"], {"b": w(5, 4)},
    ),
    # -- elementwise
    "binary_broadcast": Case(
        [node("Add", ["x", "r"], ["a"]), node("Sub", ["a", "c"], ["s"]),
         node("Mul", ["s", "x"], ["m"]), node("Div", ["m", "p"], ["d"]),
         node("Pow", ["p", "e"], ["y"])],
        [In("x", (2, 3, 4)), In("r", (3, 1)), In("p", (4,), "p")], ["d", "y"],
        {"c": np.array(0.5, np.float32), "e": w(3, 1)},
    ),
    "unary": Case(
        [node("Relu", ["x"], ["a"]), node("Sigmoid", ["a"], ["b"]), node("Tanh", ["x"], ["c"]),
         node("Exp", ["c"], ["d"]), node("Log", ["d"], ["e"]), node("Neg", ["e"], ["f"]),
         node("Abs", ["f"], ["g"]), node("Reciprocal", ["p"], ["h"]), node("Sqrt", ["p"], ["i"]),
         node("Erf", ["x"], ["j"]), node("Sum", ["b", "g", "h", "i", "j"], ["y"])],
        [In("x", (3, 5)), In("p", (3, 5), "p")], ["y"],
    ),
    "activations": Case(
        [node("LeakyRelu", ["x"], ["a"], alpha=0.2), node("Gelu", ["x"], ["b"]),
         node("Gelu", ["x"], ["c"], approximate="tanh"), node("HardSigmoid", ["x"], ["d"]),
         node("HardSwish", ["x"], ["e"]), node("Elu", ["x"], ["f"], alpha=0.7),
         node("Softplus", ["x"], ["g"]), node("PRelu", ["x", "slope"], ["h"]),
         node("Max", ["a", "b", "c"], ["m1"]), node("Min", ["d", "e"], ["m2"]),
         node("Mean", ["f", "g", "h"], ["m3"]), node("Sum", ["m1", "m2", "m3"], ["y"])],
        [In("x", (2, 3, 4))], ["y"], {"slope": w(3, 1)}, opset=20,
    ),
    "clip_opset6_attrs": Case(
        [node("Clip", ["x"], ["y"], min=-0.5, max=0.7)], [In("x", (4, 5))], ["y"], opset=6
    ),
    "clip_opset13_inputs": Case(
        [node("Clip", ["x", "lo", ""], ["a"]), node("Clip", ["x", "", "hi"], ["b"]),
         node("Add", ["a", "b"], ["y"])],
        [In("x", (4, 5)), In("hi", (), "p")], ["y"], {"lo": np.array(-0.3, np.float32)}, opset=13,
    ),
    "logic_where_cast": Case(
        [node("Less", ["a", "b"], ["lt"]), node("Greater", ["a", "zero"], ["gt"]),
         node("Not", ["gt"], ["ngt"]), node("And", ["lt", "ngt"], ["c"]),
         node("Where", ["c", "a", "b"], ["y"]), node("Equal", ["n", "k"], ["eq"]),
         node("Cast", ["eq"], ["z"], to=F), node("Cast", ["a"], ["ai"], to=TensorProto.INT32),
         node("Cast", ["ai"], ["t"], to=F)],
        [In("a", (3, 4)), In("b", (4,)), In("n", (3, 4), "i", 0, 3)], ["y", "z", "t"],
        {"zero": np.array(0.0, np.float32), "k": np.array(1, np.int64)}, opset=13,
    ),
    # -- softmax and normalisation
    "softmax_opset11_coerces_to_2d": Case(
        [node("Softmax", ["x"], ["y"], axis=1)], [In("x", (2, 3, 4))], ["y"], opset=11
    ),
    "softmax_opset11_default_axis": Case(
        [node("Softmax", ["x"], ["y"])], [In("x", (2, 3, 4))], ["y"], opset=11
    ),
    "softmax_opset13_one_axis": Case(
        [node("Softmax", ["x"], ["y"], axis=1), node("LogSoftmax", ["x"], ["z"])],
        [In("x", (2, 3, 4))], ["y", "z"], opset=13,
    ),
    "logsoftmax_opset11": Case(
        [node("LogSoftmax", ["x"], ["y"], axis=1)], [In("x", (2, 3, 4))], ["y"], opset=11
    ),
    "layernorm": Case(
        [node("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-3),
         node("LayerNormalization", ["x", "g2"], ["z"], axis=-2)],
        [In("x", (2, 3, 4))], ["y", "z"], {"g": w(4), "b": w(4, seed=2), "g2": w(3, 4)},
    ),
    "layernorm_decomposed": Case(
        [node("ReduceMean", ["x"], ["mu"], axes=[-1]), node("Sub", ["x", "mu"], ["d"]),
         node("Pow", ["d", "two"], ["d2"]), node("ReduceMean", ["d2"], ["var"], axes=[-1]),
         node("Add", ["var", "eps"], ["ve"]), node("Sqrt", ["ve"], ["sd"]),
         node("Div", ["d", "sd"], ["n"]), node("Mul", ["n", "g"], ["ng"]),
         node("Add", ["ng", "b"], ["y"])],
        [In("x", (2, 5, 8))], ["y"],
        {"two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32), "g": w(8),
         "b": w(8, seed=3)},
        opset=13,
    ),
    "batchnorm_folded": Case(
        [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
        [X4], ["y"],
        {"s": w(4), "b": w(4, seed=2), "m": w(4, seed=3), "v": w(4, seed=4, positive=True)},
        opset=15,
    ),
    "batchnorm_runtime_params": Case(
        [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
        [X4, In("s", (4,)), In("b", (4,)), In("m", (4,)), In("v", (4,), "p")], ["y"], opset=9,
    ),
    "instancenorm": Case(
        [node("InstanceNormalization", ["x", "s", "b"], ["y"])], [X4], ["y"],
        {"s": w(4), "b": w(4, seed=2)},
    ),
    # -- pooling and LRN
    "maxpool_pads_ceil_dilation": Case(
        [node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
              ceil_mode=1),
         node("MaxPool", ["x"], ["z"], kernel_shape=[2, 2], dilations=[2, 2])],
        [X4], ["y", "z"], opset=12,
    ),
    "averagepool_exclude_pad_ceil": Case(
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
              pads=[1, 1, 1, 1], ceil_mode=1)],
        [X4], ["y"], opset=11,
    ),
    "averagepool_include_pad": Case(
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1],
              pads=[1, 0, 1, 1], count_include_pad=1)],
        [X4], ["y"], opset=11,
    ),
    "averagepool_include_pad_ceil": Case(
        [node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
              pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1)],
        [X4], ["y"], opset=11,
    ),
    "global_pools": Case(
        [node("GlobalAveragePool", ["x"], ["a"]), node("GlobalMaxPool", ["x"], ["b"])],
        [X4], ["a", "b"],
    ),
    "lrn": Case(
        [node("LRN", ["x"], ["y"], size=3, alpha=1e-2, beta=0.75, bias=2.0),
         node("LRN", ["x"], ["z"], size=5)],
        [In("x", (2, 6, 3, 3))], ["y", "z"],
    ),
    # -- data movement
    "reshape_flatten_dropout": Case(
        [node("Reshape", ["x", "shape"], ["r"]), node("Flatten", ["r"], ["f"], axis=2),
         node("Dropout", ["f"], ["y"]), node("Identity", ["y"], ["z"])],
        [X4], ["z"], {"shape": i64(0, -1, 7)}, opset=12,
    ),
    "transpose_concat_constant": Case(
        [node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
         node("Concat", ["t", "c", "t"], ["y"], axis=-1)],
        [In("x", (2, 3, 4))], ["y"], {"c": w(2, 4, 2)},
    ),
    "slice_opset1_attrs": Case(
        [node("Slice", ["x"], ["y"], starts=[-3, 1], ends=[1000, -1], axes=[1, 2])],
        [X4], ["y"], opset=9,
    ),
    "slice_opset13_steps": Case(
        [node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], [X4], ["y"],
        {"st": i64(-1, 0), "en": i64(-100, 7), "ax": i64(-1, 1), "sp": i64(-2, 3)}, opset=13,
    ),
    "split_attr_input_equal": Case(
        [node("Split", ["x", "sizes"], ["a", "b"], axis=1),
         node("Split", ["x"], ["c", "d"], axis=0),
         node("Concat", ["b", "a"], ["y"], axis=1), node("Concat", ["d", "c"], ["z"], axis=0)],
        [X4], ["y", "z"], {"sizes": i64(1, 3)}, opset=13,
    ),
    "split_opset11_attr": Case(
        [node("Split", ["x"], ["a", "b"], axis=-1, split=[5, 2]), node("Mul", ["a", "a"], ["y"])],
        [X4], ["y", "b"], opset=11,
    ),
    "squeeze_unsqueeze_opset11": Case(
        [node("Unsqueeze", ["x"], ["u"], axes=[0, -1]), node("Squeeze", ["u"], ["y"], axes=[0]),
         node("Squeeze", ["u"], ["z"])],
        [In("x", (3, 1, 4))], ["y", "z"], opset=11,
    ),
    "squeeze_unsqueeze_opset13": Case(
        [node("Unsqueeze", ["x", "ax"], ["u"]), node("Squeeze", ["u", "ax"], ["y"])],
        [In("x", (3, 4))], ["y", "u"], {"ax": i64(1)}, opset=13,
    ),
    "gather_embedding_negative_indices": Case(
        [node("Gather", ["table", "ids"], ["y"])],
        [In("ids", (2, 3), "i", -10, 10)], ["y"], {"table": w(10, 4)},
    ),
    "gather_constant_index_axis1": Case(
        [node("Gather", ["x", "k"], ["y"], axis=1), node("Gather", ["x", "ks"], ["z"], axis=2)],
        [X4], ["y", "z"], {"k": np.array(-1, np.int64), "ks": i64(0, 6, 2)},
    ),
    "reductions": Case(
        [node("ReduceSum", ["x", "ax"], ["a"], keepdims=0),
         node("ReduceMax", ["x"], ["b"], axes=[1, 3]), node("ReduceMin", ["x"], ["c"]),
         node("ReduceMean", ["x"], ["d"], axes=[-1], keepdims=0)],
        [X4], ["a", "b", "c", "d"], {"ax": i64(0, -2)}, opset=13,
    ),
    "reductions_opset18_axes_input": Case(
        [node("ReduceMin", ["x", "ax"], ["a"]), node("ReduceMean", ["x", "ax"], ["b"], keepdims=0),
         node("ReduceProd", ["x", "ax"], ["c"])],
        [X4], ["a", "b", "c"], {"ax": i64(2)}, opset=18,
    ),
    "expand_constant_pad": Case(
        [node("Expand", ["x", "shape"], ["e"]), node("Pad", ["e", "pads", "v"], ["p"]),
         node("Pad", ["e", "pads0"], ["q"])],
        [In("x", (3, 1))], ["p", "q"],
        {"shape": i64(2, 3, 4), "pads": i64(0, 1, -1, 1, 2, 0), "v": np.array(0.5, np.float32),
         "pads0": i64(1, 0, 2, 0, 0, 1)},
        opset=13,
    ),
    "pad_opset2_attrs": Case(
        [node("Pad", ["x"], ["y"], pads=[0, 1, 2, 0], value=-1.0)], [In("x", (3, 4))], ["y"],
        opset=2,
    ),
    "constant_node_and_shape_subgraph_fold": Case(
        [node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, np.float32))),
         node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["n"]),
         node("Unsqueeze", ["n", "ax0"], ["n1"]), node("Concat", ["n1", "m1"], ["shape"], axis=0),
         node("Reshape", ["x", "shape"], ["r"]), node("Mul", ["r", "two"], ["y"])],
        [X4], ["y"],
        {"zero": np.array(0, np.int64), "ax0": i64(0), "m1": i64(-1)}, opset=13,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_op_family_matches_onnxruntime(case: Case):
    model = make_model(case)
    check_against_onnxruntime(model, feeds(case))


def test_conv_prints_readable_einsum_and_bias_add():
    cascade = load_onnx(make_model(CASES["conv_stride_pad_bias"]))
    text = print_cascade(cascade)
    assert (
        "Y[b,m,p,q] = sum[c:3,r:3,s:3] x[b,c,2p+r-1,2q+s-1] * w[m,c,r,s]".replace(
            "Y", "conv_y_nobias"
        )
        in text
    )
    assert "y[d0,d1,d2,d3] = conv_y_nobias[d0,d1,d2,d3] + b[d1]" in text
    assert [e.op for e in cascade.einsums] == ["Conv", "Conv"]


def test_grouped_conv_writes_affine_channel_with_over_clause():
    cascade = load_onnx(make_model(CASES["conv_grouped_dilated_asymmetric_pads"]))
    line = next(x for x in print_cascade(cascade).splitlines() if "(Conv)" in x)
    assert "y[b,3g+m,p,q] = sum[c:2,r:3,s:3] x[b,2g+c,p+2r-1,q+s]" in line
    assert "over {g:2,m:3}" in line


def test_depthwise_conv_has_no_channel_reduction():
    cascade = load_onnx(make_model(CASES["conv_depthwise_same_lower"]))
    conv = cascade.einsums[0]
    assert conv.reduced == ("r", "s")


def test_shape_subgraph_folds_away():
    cascade = load_onnx(make_model(CASES["constant_node_and_shape_subgraph_fold"]))
    assert [e.op for e in cascade.einsums] == ["Reshape", "Mul"]
    assert "* 2.0" in print_cascade(cascade)


def test_batchnorm_folds_into_one_per_channel_einsum():
    cascade = load_onnx(make_model(CASES["batchnorm_folded"]))
    (bn,) = cascade.einsums
    assert bn.op == "BatchNormalization"
    assert "x[d0,d1,d2,d3] * " in print_cascade(cascade)


def test_weights_keep_data_and_roles():
    case = CASES["conv_stride_pad_bias"]
    cascade = load_onnx(make_model(case))
    assert [t.name for t in cascade.inputs] == ["x"]
    assert [t.name for t in cascade.outputs] == ["y"]
    weights = {t.name: t for t in cascade.weights}
    np.testing.assert_array_equal(weights["w"].data, case.inits["w"])
    assert weights["w"].role is Role.WEIGHT


def test_graph_output_also_consumed_gets_a_copy_with_its_name():
    case = Case(
        [node("Relu", ["x"], ["a"]), node("Neg", ["a"], ["b"])], [In("x", (2, 3))], ["a", "b"]
    )
    cascade = check_against_onnxruntime(make_model(case), feeds(case))
    assert {t.name for t in cascade.outputs} == {"a", "b"}
    assert all(not cascade.consumers(t.name) for t in cascade.outputs)


def test_graph_output_that_is_an_input_gets_a_copy():
    case = Case([node("Identity", ["x"], ["y"])], [In("x", (2, 3))], ["y"])
    cascade = check_against_onnxruntime(make_model(case), feeds(case))
    assert cascade.outputs[0].name == "y"


def test_symbolic_dims_take_given_sizes_and_default_to_one():
    x = helper.make_tensor_value_info("x", F, ["batch", "seq", 8])
    y = helper.make_tensor_value_info("y", F, None)
    graph = helper.make_graph([node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert load_onnx(model, dims={"seq": 5}).inputs[0].shape == (1, 5, 8)
    assert load_onnx(model, dims={"batch": 2, "seq": 3}).inputs[0].shape == (2, 3, 8)
    with pytest.raises(InputError, match="no input dim named nope"):
        load_onnx(model, dims={"nope": 3})


def test_supported_ops_lists_the_issue_ops():
    ops = set(supported_ops())
    required = {
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Relu", "Gelu", "Erf",
        "Sigmoid", "Tanh", "Softmax", "LayerNormalization", "BatchNormalization", "MaxPool",
        "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Transpose", "Concat", "Slice",
        "Split", "Squeeze", "Unsqueeze", "Gather", "ReduceMean", "Where", "Cast", "Constant",
        "Identity", "Sqrt", "LRN", "Shape",
    }  # fmt: skip
    assert required <= ops
    assert list(supported_ops()) == sorted(ops)


# -- errors
def _valid_model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(make_model(CASES["conv_stride_pad_bias"]), str(path))
    return path


def test_missing_file_is_one_line_input_error(tmp_path: Path):
    with pytest.raises(InputError) as err:
        load_onnx(tmp_path / "nope.onnx")
    assert "nope.onnx" in str(err.value) and "\n" not in str(err.value)


def test_truncated_file_is_one_line_input_error(tmp_path: Path):
    path = _valid_model_file(tmp_path)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError) as err:
        load_onnx(cut)
    message = str(err.value)
    assert message.startswith(f"{cut}: ") and "\n" not in message


def test_garbage_file_is_one_line_input_error(tmp_path: Path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\xff\xfe not a protobuf \x00\x01" * 10)
    with pytest.raises(InputError) as err:
        load_onnx(path)
    assert "junk.onnx" in str(err.value) and "\n" not in str(err.value)


def test_unsupported_op_names_op_and_node(tmp_path: Path):
    boxes = helper.make_tensor_value_info("boxes", F, [1, 4, 4])
    scores = helper.make_tensor_value_info("scores", F, [1, 1, 4])
    out = helper.make_tensor_value_info("sel", TensorProto.INT64, None)
    nms = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="nms_3")
    graph = helper.make_graph([nms], "g", [boxes, scores], [out])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(InputError) as err:
        load_onnx(path)
    assert str(err.value) == (
        f"{path}: unsupported op 'NonMaxSuppression' at node 'nms_3' "
        "(codesign ops lists supported ops)"
    )


def _nms_model_file(tmp_path: Path) -> Path:
    boxes = helper.make_tensor_value_info("boxes", F, [1, 4, 4])
    scores = helper.make_tensor_value_info("scores", F, [1, 1, 4])
    out = helper.make_tensor_value_info("sel", TensorProto.INT64, None)
    nms = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="nms_3")
    graph = helper.make_graph([nms], "g", [boxes, scores], [out])
    path = tmp_path / "nms.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _truncated_model_file(tmp_path: Path) -> Path:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(_valid_model_file(tmp_path).read_bytes()[:100])
    return cut


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.onnx", "missing.onnx: no such file"),
        (_truncated_model_file, "cut.onnx: not a valid ONNX model"),
        (_nms_model_file, "unsupported op 'NonMaxSuppression' at node 'nms_3'"),
    ],
    ids=["missing", "truncated", "unsupported"],
)
def test_cli_reports_bad_model_on_one_line_with_exit_2(tmp_path: Path, capsys, make, needle):
    from codesign.cli.main import main

    assert main(["ir", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_unsupported_attribute_names_node():
    case = Case([node("Pad", ["x", "p"], ["y"], name="pad7", mode="reflect")], [In("x", (3, 4))],
                ["y"], {"p": i64(0, 1, 0, 1)}, opset=13)  # fmt: skip
    with pytest.raises(InputError, match="'Pad' at node 'pad7': mode 'reflect'"):
        load_onnx(make_model(case))


def test_interpreter_keeps_rank0_tensors_rank0():
    # regression: np.ascontiguousarray made 0-d values 1-d, breaking scalar inputs (Clip bounds)
    cascade = parse_cascade(
        """cascade s {
  input x: f32[D0=3]
  input h: f32[]
  tensor t: f32[]
  output y: f32[D0=3]
  copy: t[] = h[] * 2.0
  clip: y[d0] = min(x[d0], t[])
}
"""
    )
    out = interpret(cascade, {"x": np.array([0.0, 1.0, 5.0], np.float32), "h": np.float32(1.5)})
    np.testing.assert_array_equal(out["y"], [0.0, 1.0, 3.0])
