"""Every bad input is one line naming the input, exit status 2, and nothing written.

One test per reproducer of issue 12 (numbered as there).  Each runs the CLI in-process with an
output flag pointing into an empty directory and checks that the directory stays empty.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import codesign
from codesign.cli.main import main
from codesign.errors import InputError

TPU = pathlib.Path("examples/hw/tpu_like.yaml")
PIUMA = "examples/hw/piuma.yaml"
GEMM = "gemm:M=8,N=8,K=8"


def refused(capsys, argv: list[str], *names: str, out: pathlib.Path | None = None) -> str:
    """Run `argv`; assert exit 2, one stderr line naming every one of `names`, `out` empty."""
    status = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("codesign: error: "), captured.err
    assert "Traceback" not in captured.err
    for name in names:
        assert name in lines[0]
    if out is not None:
        assert list(out.iterdir()) == [], "a refused command wrote files"
    return lines[0]


@pytest.fixture
def out(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def card(tmp_path: pathlib.Path, old: str, new: str) -> str:
    """tpu_like.yaml with one text replacement, beside a copy of its energy table."""
    text = TPU.read_text()
    assert old in text
    (tmp_path / "ert").mkdir(exist_ok=True)
    ert = TPU.parent / "ert" / "tpu_like_zigzag.yaml"
    (tmp_path / "ert" / ert.name).write_text(ert.read_text())
    path = tmp_path / "card.yaml"
    path.write_text(text.replace(old, new))
    return str(path)


def save(model: onnx.ModelProto, path: pathlib.Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def constant_model(op: str, inputs: dict[str, np.ndarray]) -> onnx.ModelProto:
    node = helper.make_node(op, list(inputs), ["y"], name="big")
    graph = helper.make_graph(
        [node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inputs.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# 1 -- constant folding under a size cap
@pytest.mark.parametrize(
    "op, inputs",
    [
        ("Range", {"start": np.array(0.0, np.float32), "limit": np.array(1e11, np.float32),
                   "delta": np.array(1.0, np.float32)}),
        ("ConstantOfShape", {"shape": np.array([20000, 20000], np.int64)}),
    ],
)  # fmt: skip
def test_constant_folding_refuses_values_above_the_size_cap(capsys, tmp_path, out, op, inputs):
    path = save(constant_model(op, inputs), tmp_path / f"{op}.onnx")
    line = refused(capsys, ["stats", path, "--json", str(out / "s.json")], path, "'big'", out=out)
    assert "GiB" in line or "TiB" in line


# 2 -- output paths checked before work, outputs written atomically
@pytest.mark.parametrize(
    "flag, target",
    [("--json", "{tmp}"), ("--json", "{tmp}/missing/x.json"), ("--plot", "{tmp}/map.txt"),
     ("--plot", "{tmp}"), ("--mapping-out", "{tmp}/file.txt")],
)  # fmt: skip
def test_bad_output_paths_are_refused_before_any_output(capsys, tmp_path, out, flag, target):
    (tmp_path / "file.txt").write_text("x")
    target = target.format(tmp=tmp_path)
    others = ["--json", str(out / "m.json")] if flag != "--json" else []
    argv = ["map", GEMM, "--hw", str(TPU), "-q", "--evaluations", "50", flag, target, *others]
    refused(capsys, argv, flag, out=out)


def test_json_and_plot_on_one_path_are_refused(capsys, out):
    path = str(out / "x.png")
    argv = ["map", GEMM, "--hw", str(TPU), "-q", "--json", path, "--plot", path]
    refused(capsys, argv, "--plot", out=out)


def test_outputs_are_renamed_into_place_leaving_no_temporary_files(capsys, out):
    argv = ["map", GEMM, "--hw", str(TPU), "-q", "--evaluations", "50",
            "--json", str(out / "m.json"), "--mapping-out", str(out / "maps")]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.rglob("*"))
    assert names == ["gemm.yaml", "m.json", "maps"]


def test_staged_write_that_fails_leaves_the_old_file(tmp_path):
    from codesign.cli.outputs import staged

    target = tmp_path / "keep.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), staged(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


# 3 -- non-finite / out-of-range numbers, booleans as numbers, duplicate keys in every schema
@pytest.mark.parametrize(
    "old, new, field",
    [("clock_ghz: 1.0", "clock_ghz: .inf", "clock_ghz"),
     ("clock_ghz: 1.0", "clock_ghz: .nan", "clock_ghz"),
     ("technology_nm: 28", "technology_nm: 1e308", "technology_nm"),
     ("fanout: {x: 32, y: 32}", "fanout: {x: 1.0e21, y: 32}", "fanout.x"),
     ("word_bits: 16", "word_bits: true", "word_bits"),
     ("clock_ghz: 1.0", "clock_ghz: 1.0\nclock_ghz: 2.0", "duplicate key 'clock_ghz'")],
)  # fmt: skip
def test_card_numbers_must_be_finite_in_range_and_keys_unique(capsys, tmp_path, out, old, new,
                                                              field):  # fmt: skip
    path = card(tmp_path, old, new)
    refused(capsys, ["map", GEMM, "--hw", path, "-q", "--json", str(out / "m.json")], path,
            field, out=out)  # fmt: skip


@pytest.mark.parametrize(
    "path, old, new",
    [("examples/hw/ert/tpu_like_zigzag.yaml", "energy_pj: ", "energy_pj: .inf #"),
     ("examples/hw/lut_tc.yaml", "dram_pj_per_bit: ", "dram_pj_per_bit: .inf #"),
     ("examples/hw/piuma.yaml", "bandwidth_gbps_per_core: ", "bandwidth_gbps_per_core: .nan #"),
     ("examples/hw/bitmod_gen.yaml", "name: ", "name: x\nname: "),
     ("examples/hw/gpu/a100_40g.yaml", "clock_ghz: ", "clock_ghz: .inf #")],
)  # fmt: skip
def test_every_schema_refuses_non_finite_numbers_and_duplicate_keys(tmp_path, path, old, new):
    from codesign.hwmodels.yamlio import load_validated

    source = pathlib.Path(path)
    if not source.exists():
        pytest.skip(f"{path} is not in this checkout")
    text = source.read_text()
    assert old in text
    bad = tmp_path / source.name
    bad.write_text(text.replace(old, new, 1))
    from pydantic import BaseModel

    class Anything(BaseModel):  # the checks run before (and after) any schema
        model_config = {"extra": "allow"}

    with pytest.raises(InputError, match=str(bad)):
        load_validated(bad, Anything)


# 4 -- non-UTF-8 bytes
def test_non_utf8_card_ein_and_baseline_are_one_line_errors(capsys, tmp_path, out):
    bad_card = tmp_path / "bad.yaml"
    bad_card.write_bytes(TPU.read_bytes().replace(b"tpu_like", b"tpu_\xff", 1))
    refused(capsys, ["map", GEMM, "--hw", str(bad_card), "-q"], str(bad_card), "UTF-8")
    refused(capsys, ["map", GEMM, "--hw", str(TPU), "--baseline", str(bad_card), "-q",
                     "--evaluations", "50", "--json", str(out / "m.json")], str(bad_card),
            out=out)  # fmt: skip
    ein = tmp_path / "bad.ein"
    ein.write_bytes(b"\xff\xfe cascade")
    refused(capsys, ["ir", str(ein)], str(ein), "UTF-8")


# 5 -- ONNX dims of 0 or negative, unknown rank
def _relu_model(shape: list[int] | None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("shape, says", [([0, 4], "dim 0 is 0"), ([2, -3], "dim 1 is -3"),
                                         (None, "unknown rank")])  # fmt: skip
def test_onnx_input_dims_must_be_positive_and_ranked(capsys, tmp_path, out, shape, says):
    path = save(_relu_model(shape), tmp_path / "relu.onnx")
    refused(capsys, ["stats", path, "--json", str(out / "s.json")], path, "'x'", says, out=out)


# 6 -- division by zero, overflow, huge or empty inputs
def test_conv_with_zero_strides_is_refused(capsys, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv0", strides=[0, 0])
    graph = helper.make_graph([node], "g", [x], [y], initializer=[w])
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                tmp_path / "conv.onnx")  # fmt: skip
    refused(capsys, ["stats", path], path, "'conv0'", "strides")
    refused(capsys, ["stats", "conv:C=4,K=4,P=4,Q=4,R=3,S=3,stride=0"], "stride")


def test_huge_llm_sizes_graphs_and_runs_are_refused_with_an_estimate(capsys, tmp_path, out):
    refused(capsys, ["stats", "--llm", "llama-2-7b", "--seq", str(10**12)], "--seq")
    refused(capsys, ["graph", "bfs", "--hw", PIUMA, "--graph", "rmat:scale=30",
                     "--json", str(out / "g.json")], "rmat", "TiB", out=out)  # fmt: skip
    line = refused(capsys, ["run", "gemm:M=100000,N=100000,K=100000", "--json",
                            str(out / "r.json")], "run", out=out)  # fmt: skip
    assert "GiB" in line


def test_empty_mtx_and_empty_npz_are_refused(capsys, tmp_path, out):
    mtx = tmp_path / "empty.mtx"
    mtx.write_text("")
    refused(capsys, ["graph", "bfs", "--hw", PIUMA, "--graph", str(mtx)], str(mtx))
    zero = tmp_path / "zero.mtx"
    zero.write_text("%%MatrixMarket matrix coordinate real general\n0 0 0\n")
    refused(capsys, ["graph", "spmv", "--hw", PIUMA, "--graph", str(zero)], str(zero), "empty")
    npz = tmp_path / "empty.npz"
    np.savez(npz)
    refused(capsys, ["run", GEMM, "--inputs", str(npz), "--json", str(out / "r.json")], "A",
            out=out)  # fmt: skip


def test_nan_edge_weights_are_refused(capsys, tmp_path):
    mtx = tmp_path / "nan.mtx"
    mtx.write_text("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 2 nan\n")
    refused(capsys, ["graph", "sssp", "--hw", PIUMA, "--graph", str(mtx)], str(mtx), "non-finite")


# 7 -- non-finite, duplicate, empty-match and out-of-range options
@pytest.mark.parametrize(
    "argv, names",
    [(["stats", GEMM, "--passes", "mixed-precision{budget=nan}"], ["budget"]),
     (["stats", GEMM, "--passes", "quantize{bits=4,bits=2}"], ["bits", "twice"]),
     (["stats", GEMM, "--passes", "quantize{einsums=nomatch}"], ["nomatch"]),
     (["stats", "gemm:M=1,M=2,N=8,K=8"], ["M given twice"]),
     (["graph", "bfs", "--hw", PIUMA, "--graph", "rmat:scale=4,a=nan"], ["rmat"]),
     (["graph", "bfs", "--hw", PIUMA, "--graph", "rmat:scale=4,scale=5"], ["scale", "twice"]),
     (["map", GEMM, "--hw", str(TPU), "-q", "--evaluations", "0"], ["max_evaluations"]),
     (["map", GEMM, "--hw", str(TPU), "-q", "--evaluations", "-5"], ["max_evaluations"]),
     (["map", GEMM, "--hw", str(TPU), "-q", "--time-budget", "nan"], ["time budget"])],
)  # fmt: skip
def test_bad_options_are_refused(capsys, out, argv, names):
    refused(capsys, [*argv, "--json", str(out / "x.json")], *names, out=out)


# 8 -- the library API raises the project's errors and takes Path objects
def test_library_api_takes_paths_and_raises_input_errors():
    cascade = codesign.load(pathlib.Path("examples/models/mlp.onnx"))
    assert cascade.einsums
    with pytest.raises(InputError, match="int"):
        codesign.load(3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="2.7"):
        codesign.load("examples/models/mlp.onnx", dims={"batch": 2.7})  # type: ignore[dict-item]
    inputs = codesign.sample_inputs(cascade)
    with pytest.raises(InputError, match="nosuch"):
        codesign.interpret(cascade, {**inputs, "nosuch": np.zeros(1)})
    name = next(iter(inputs))
    with pytest.raises(InputError, match="complex"):
        codesign.interpret(cascade, {**inputs, name: inputs[name].astype(np.complex64)})
    with pytest.raises(InputError, match="object"):
        codesign.interpret(cascade, {**inputs, name: inputs[name].astype(object)})
    with pytest.raises(InputError, match="mapping"):
        codesign.interpret(cascade, [1, 2])  # type: ignore[arg-type]


# 9 -- --llm on the commands that advertise it
def test_run_compile_and_bench_accept_llm_in_place_of_model(capsys):
    from codesign.cli.main import build_parser

    for command in ("run", "compile", "bench"):
        extra = ["-o", "x"] if command == "compile" else []
        args = build_parser(command).parse_args([command, "--llm", "llama-2-7b", *extra])
        assert args.llm == "llama-2-7b" and args.model is None
    # the run itself is refused up front, with the memory it would need, instead of crashing
    refused(capsys, ["run", "--llm", "llama-2-7b", "--seq", "4"], "llama", "GiB")


# 10 -- roofline footprint above the device's memory
def test_roofline_warns_when_the_footprint_exceeds_device_memory(capsys, tmp_path):
    import json

    path = tmp_path / "r.json"
    argv = ["roofline", "--llm", "llama-2-70b", "--hw", "a100", "--seq", "128"]
    assert main([*argv, "--json", str(path)]) == 0
    text = capsys.readouterr().out
    assert "warning: prefill: footprint" in text and "does not fit" in text
    warnings = json.loads(path.read_text())["warnings"]
    assert len(warnings) == 1 and "exceeds" in warnings[0]
    assert main(["roofline", "--llm", "llama-2-7b", "--hw", "a100", "--seq", "128",
                 "--json", "-"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["warnings"] == []


def test_help_imports_no_heavy_module():
    import subprocess
    import sys

    code = ("import sys; from codesign.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'onnx', 'networkx', 'pydantic', 'rich', 'yaml')"
            " if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path.cwd())}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "[]"
