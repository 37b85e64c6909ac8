"""Bad inputs found by a new-user walk through the README and docs: each is one line, exit 2.

Complements tests/test_hardening.py (same `refused` contract): argparse usage errors, an ONNX
model without a default-domain opset, a missing LLM config path, and a DSE compression
pipeline that does not parse.
"""

from __future__ import annotations

import pathlib

import pytest
from onnx import TensorProto, helper

from codesign.cli.main import main

GEMM = "gemm:M=8,N=8,K=8"
MLP = pathlib.Path("examples/models/mlp.onnx").resolve()
TPU = pathlib.Path("examples/hw/tpu_like.yaml").resolve()


def refused(capsys, argv: list[str], *names: str) -> str:
    """Run `argv` (argparse errors exit through SystemExit); one stderr line naming `names`."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("codesign: error: "), captured.err
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "argv, names",
    [(["map", GEMM, "--hw", "tpu_like", "--objective", "speed"], ["--objective", "map -h"]),
     (["graph", "nosuch", "--hw", "piuma", "--graph", "rmat:scale=4"], ["nosuch", "graph -h"]),
     (["stats", "--llm", "llama-2-7b", "--phase", "middle"], ["--phase", "middle"]),
     (["nosuchcommand"], ["nosuchcommand"]),
     ([], ["command"]),
     (["map", GEMM, "--hw", "tpu_like", "--evaluations", "many"], ["--evaluations", "many"])],
)  # fmt: skip
def test_argparse_usage_errors_are_one_line_naming_the_option(capsys, argv, names):
    refused(capsys, argv, *names)


def test_onnx_without_a_default_domain_opset_is_refused_not_read_as_opset_1(capsys, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("com.example", 1)])
    path = tmp_path / "noopset.onnx"
    path.write_bytes(model.SerializeToString())
    refused(capsys, ["stats", str(path)], str(path), "'r'", "opset")


def test_missing_llm_config_file_says_no_such_file(capsys, tmp_path):
    missing = tmp_path / "config.json"
    refused(
        capsys, ["roofline", "--llm", str(missing), "--hw", "a100"], str(missing), "no such file"
    )
    refused(capsys, ["roofline", "--llm", str(tmp_path), "--hw", "a100"], "no config.json in")


def test_dse_compression_that_does_not_parse_is_a_space_file_error(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        f"name: t\nhardware: {TPU}\n"
        "axes:\n  - {name: a, paths: [levels.1.size_bytes], values: [1024]}\n"
        f"workloads:\n  - {{name: m, model: {MLP}}}\n"
        "objectives: [latency]\n"
        'compression:\n  - ["none", "quantize{bits="]\n'
    )
    out = tmp_path / "out"
    line = refused(
        capsys, ["dse", str(space), "--out", str(out)], f"{space}:9", "compression[0][1]"
    )
    assert "quantize{bits=" in line
    assert not out.exists(), "a refused space wrote its output directory"


def test_dse_compression_with_an_unknown_pass_option_is_a_space_file_error(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        f"name: t\nhardware: {TPU}\n"
        f"workloads:\n  - {{name: m, model: {MLP}}}\n"
        'compression:\n  - ["quantize{bitz=4}"]\n'
    )
    refused(
        capsys, ["dse", str(space), "--out", str(tmp_path / "out")], "compression[0][0]", "bitz"
    )


@pytest.mark.parametrize(
    "content, says",
    [("npy", "one array (.npy)"), ("text", "not an .npz archive"), ("empty", "not an .npz archive"),
     ("truncated", "not an .npz archive"), ("object", "Object arrays")],
)  # fmt: skip
def test_run_inputs_that_are_not_an_npz_of_arrays_are_refused(capsys, tmp_path, content, says):
    import io

    import numpy as np

    x = np.zeros((8, 784), np.float32)
    path = tmp_path / "inputs.npz"
    if content == "npy":
        with path.open("wb") as f:
            np.save(f, x)
    elif content == "text":
        path.write_text("hello")
    elif content == "empty":
        path.write_bytes(b"")
    else:
        buffer = io.BytesIO()
        np.savez(buffer, x=np.array([object()], dtype=object) if content == "object" else x)
        data = buffer.getvalue()
        path.write_bytes(data[:200] if content == "truncated" else data)
    refused(capsys, ["run", str(MLP), "--no-compare", "--inputs", str(path)], str(path), says)


def test_scalesim_errors_name_the_path_as_given(capsys, tmp_path):
    topology = tmp_path / "topo.csv"
    topology.write_text("Layer, M, N, K,\ng64, 64, x, 64,\n")
    cfg = "tests/data/scalesim/ws_32x32.cfg"
    refused(capsys, ["map", str(topology), "--hw", cfg, "--model", "cycle"], f"{topology}:2", "'x'")


@pytest.mark.parametrize(
    "flags, names",
    [(["--tp", "2", "--link-gbps", "nan"], ["--link-gbps", "nan"]),
     (["--tp", "2", "--link-gbps", "inf"], ["--link-gbps", "inf"]),
     (["--tp", "2", "--link-gbps", "100", "--link-latency-us", "nan"], ["--link-latency-us"]),
     (["--tp", "0"], ["--tp 0"]),
     (["--pp", "2", "--microbatches", "-1"], ["--microbatches -1"])],
)  # fmt: skip
def test_serving_flags_out_of_range_or_not_finite_are_refused_naming_the_flag(capsys, flags, names):
    argv = ["roofline", "--llm", "llama-2-7b", "--hw", "a100", "--generate", "4", *flags]
    refused(capsys, argv, *names)


def test_hw_directory_is_refused_as_a_directory(capsys, tmp_path):
    refused(capsys, ["map", GEMM, "--hw", str(tmp_path), "-q"], str(tmp_path), "is a directory")


def _laughs(levels: int, key: str) -> str:
    """A YAML whose nested aliases expand to 9**levels scalars ("billion laughs")."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join([*lines, f"{key}: *a{levels}", ""])


@pytest.mark.parametrize("text", [_laughs(8, "name"), "name: &a [x, *a]\n"])
def test_yaml_cards_whose_aliases_explode_or_recurse_are_refused_quickly(capsys, tmp_path, text):
    card = tmp_path / "card.yaml"
    card.write_text(text)
    refused(capsys, ["map", GEMM, "--hw", str(card), "-q"], str(card), "aliases")


@pytest.mark.parametrize("text", [_laughs(8, "architecture"), "architecture: &a {x: [*a]}\n"])
def test_timeloop_files_whose_aliases_explode_or_recurse_are_refused(capsys, tmp_path, text):
    design = pathlib.Path("tests/data/timeloop/ispass_03_3level_bypass")
    arch = tmp_path / "arch.yaml"
    arch.write_text(text)
    argv = ["map", "--timeloop-arch", str(arch), "--timeloop-map", str(design / "map.yaml"),
            "--timeloop-problem", str(design / "problem.yaml"),
            "--timeloop-ert", str(design / "ERT.yaml")]  # fmt: skip
    refused(capsys, argv, str(arch), "aliases")


def test_yaml_anchors_of_ordinary_size_still_load(tmp_path):
    from codesign.hwmodels import load_hardware

    text = TPU.read_text().replace("energy_table: ert/", f"energy_table: {TPU.parent}/ert/")
    first = "{name: dram, kind: dram, word_bits: 8,"
    second = "{name: sram_2MB, kind: sram, size_bytes: 2097152, word_bits: 8,"
    assert first in text and second in text
    text = text.replace(first, first.replace("8,", "&w 8,")).replace(
        second, second.replace("word_bits: 8,", "word_bits: *w,")
    )
    card = tmp_path / "card.yaml"
    card.write_text(text)
    assert load_hardware(card).levels == load_hardware(TPU).levels


def _one_node_model(path: pathlib.Path, node, inputs, output_shape=None, output="y", inits=()):
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs]
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)
    graph = helper.make_graph([node], "g", values, [out], initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return str(path)


@pytest.mark.parametrize(
    "node, inputs, output, says",
    [(helper.make_node("Transpose", ["x"], ["y"], name="tr", perm=[0, 0]), [("x", [2, 3])], "y",
      ["'tr'", "not a permutation"]),
     (helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=5), [("x", [2, 3])], "y",
      ["'sm'", "axis 5 out of range"]),
     (helper.make_node("ReduceMean", ["x"], ["y"], name="rs", axes=[-3]), [("x", [2, 3])], "y",
      ["'rs'", "axis -3"]),
     (helper.make_node("Concat", ["x", "z"], ["y"], name="cat", axis=0),
      [("x", [2, 3]), ("z", [2, 4])], "y", ["'cat'", "does not fit"]),
     (helper.make_node("Relu", ["x"], ["y"], name="r"), [("x", [2, 3])], "nosuch",
      ["'nosuch'", "not produced"])],
)  # fmt: skip
def test_onnx_axes_perms_concats_and_outputs_out_of_range_are_refused_not_wrapped(
    capsys, tmp_path, node, inputs, output, says
):
    path = _one_node_model(tmp_path / "m.onnx", node, inputs, output=output)
    refused(capsys, ["stats", path], path, *says)


@pytest.mark.parametrize(
    "old, new, says",
    [("input x: f32[D0=8,D1=784]", "input x: f32[D0=0,D1=784]", "non-positive dimension"),
     ("relu(linear[d0,d1])", "relu(nosuch[d0,d1])", "nosuch is not declared"),
     ("relu(linear[d0,d1])", "relu(linear[d0,d1,d0])", "3 indices"),
     ("node_relu (Relu): relu[d0,d1]", "node_relu (Relu): logits[d0,d1]", "before any einsum")],
)  # fmt: skip
def test_ein_files_that_break_ir_invariants_are_refused_naming_the_file(
    capsys, tmp_path, old, new, says
):
    from codesign import load, print_cascade

    text = print_cascade(load(str(MLP)))
    assert old in text
    path = tmp_path / "m.ein"
    path.write_text(text.replace(old, new))
    for command in (["stats"], ["run", "--no-compare"]):
        refused(capsys, [command[0], str(path), *command[1:]], str(path), says)


@pytest.mark.parametrize(
    "extra, says",
    [("axes:\n  - {name: a, paths: [levels.1.size_bytes], range: {start: 10, stop: 1, step: 1}}\n",
      ["axes[0].range", "empty range"]),
     ("axes:\n  - {name: a, paths: [levels.1.size_bytes], log_range: {start: 8, stop: 2}}\n",
      ["axes[0].log_range", "empty range"]),
     ("axes:\n  - {name: a, paths: [levels.1.size_bytes], range: {start: 0, stop: 1e9, step: 1}}\n",
      ["axes[0].range", "more than 10,000"])],
)  # fmt: skip
def test_dse_ranges_that_are_empty_or_huge_are_space_file_errors(capsys, tmp_path, extra, says):
    space = tmp_path / "space.yaml"
    space.write_text(
        f"name: t\nhardware: {TPU}\nworkloads:\n  - {{name: m, model: {MLP}}}\n{extra}"
    )
    refused(capsys, ["dse", str(space), "--out", str(tmp_path / "out")], f"{space}:6", *says)


def test_dse_missing_hardware_and_unknown_llm_are_space_file_errors(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(f"name: t\nhardware: nosuch.yaml\nworkloads:\n  - {{name: m, model: {MLP}}}\n")
    refused(capsys, ["dse", str(space), "--out", str(tmp_path / "o")], f"{space}:2", "nosuch.yaml")
    space.write_text(f"name: t\nhardware: {TPU}\nworkloads:\n  - {{name: l, llm: nosuch-llm}}\n")
    refused(capsys, ["dse", str(space), "--out", str(tmp_path / "o")], "workloads[0].llm", "nosuch")
