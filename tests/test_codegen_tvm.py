"""TVM code generation: every Einsum family compiles and matches the reference interpreter."""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

tvm = pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.codegen.cpu_plan import snap_tile  # noqa: E402
from codesign.codegen.schedules import ScheduleOptions  # noqa: E402
from codesign.codegen.tvm import (  # noqa: E402
    benchmark,
    compile_cascade,
    cuda_source,
    nvcc_compile,
)
from codesign.errors import InputError  # noqa: E402
from codesign.frontends.layers import gemm  # noqa: E402
from codesign.frontends.onnx import load_onnx  # noqa: E402
from codesign.ir import (  # noqa: E402
    Access,
    Affine,
    Binary,
    BinaryOp,
    Cascade,
    Const,
    DType,
    ReduceOp,
    Role,
    Select,
    Unary,
    UnaryOp,
    interpret,
    verify,
)
from codesign.ir.builder import CascadeBuilder, var_access  # noqa: E402
from codesign.ir.inputs import sample_inputs  # noqa: E402
from tests.ir_cases import conv_cascade, transformer_cascade  # noqa: E402

MODELS_DIR = Path(__file__).resolve().parent.parent / "examples" / "models"
RTOL = 1e-4
ATOL = 1e-5
NO_GPU = "no CUDA GPU on this machine"


def mlp_cascade(rng: np.random.Generator) -> Cascade:
    """Linear -> bias -> GELU -> linear -> bias -> softmax: the bundled-MLP shape."""
    b = CascadeBuilder("mlp")
    x = b.tensor("x", (4, 32), role=Role.INPUT)
    w1 = b.tensor("w1", (32, 48), role=Role.WEIGHT, data=rng.standard_normal((32, 48)) * 0.2)
    b1 = b.tensor("b1", (48,), role=Role.WEIGHT, data=rng.standard_normal(48))
    w2 = b.tensor("w2", (48, 10), role=Role.WEIGHT, data=rng.standard_normal((48, 10)) * 0.2)
    b2 = b.tensor("b2", (10,), role=Role.WEIGHT, data=rng.standard_normal(10))
    h = b.binary("fc1_bias", b.matmul("fc1", x, w1), b1, BinaryOp.ADD)
    h = b.unary("gelu", h, UnaryOp.GELU)
    y = b.binary("fc2_bias", b.matmul("fc2", h, w2), b2, BinaryOp.ADD)
    b.set_role(b.softmax("prob", y), Role.OUTPUT)
    return b.build()


def misc_cascade(rng: np.random.Generator) -> Cascade:
    """Depthwise conv (padding), div/mod reshape, transpose, concat on a leading axis, select,
    the unary operator table, and an int8 matmul whose int8 store saturates."""
    b = CascadeBuilder("misc")
    x = b.tensor("x", (1, 3, 6, 6), role=Role.INPUT)
    w = b.tensor("w", (3, 3, 3), role=Role.WEIGHT, data=rng.standard_normal((3, 3, 3)))
    dw = b.tensor("dw", (1, 3, 6, 6))
    window = Access(
        x,
        (
            Affine.var("b"),
            Affine.var("c"),
            Affine.of([("p", 1), ("r", 1)], -1),
            Affine.of([("q", 1), ("s", 1)], -1),
        ),
    )
    b.einsum(
        "depthwise",
        var_access(dw, "bcpq"),
        Binary(BinaryOp.MUL, window, var_access(w, "crs")),
        dict(b=1, c=3, p=6, q=6, r=3, s=3),
        ReduceOp.SUM,
        ("r", "s"),
        op="Conv",
    )
    leaky = b.map(  # select: leaky relu
        "leaky",
        [dw],
        lambda a: Select(
            Binary(BinaryOp.GT, a, Const(0.0)), a, Binary(BinaryOp.MUL, a, Const(0.1))
        ),
    )
    flat = b.reshape("flat", leaky, (9, 12))  # 3*6*6 -> 9x12: div/mod indices
    assert any(
        "FloorDiv" in type(i).__name__ or "Mod" in type(i).__name__
        for e in b.build().einsums
        if e.name == "flat"
        for i in e.body.indices  # type: ignore[union-attr]
    )
    t = b.transpose("t", flat, (1, 0))
    cat = b.concat("cat", [t, b.unary("neg", t, UnaryOp.NEG)], 0)  # (24, 9)
    outs = [cat]
    for op in (
        UnaryOp.EXP, UnaryOp.TANH, UnaryOp.SIGMOID, UnaryOp.ERF, UnaryOp.GELU_TANH,
        UnaryOp.SILU, UnaryOp.SIGN, UnaryOp.FLOOR, UnaryOp.ROUND, UnaryOp.ABS, UnaryOp.SIN,
    ):  # fmt: skip
        outs.append(b.unary(op.value, cat, op))
    pos = b.map("pos", [cat], lambda a: Binary(BinaryOp.ADD, Unary(UnaryOp.ABS, a), Const(0.5)))
    for op in (UnaryOp.SQRT, UnaryOp.RSQRT, UnaryOp.LOG, UnaryOp.RECIP):
        outs.append(b.unary(op.value, pos, op))
    outs.append(b.binary("pow", pos, cat, BinaryOp.POW))
    outs.append(b.reduce("rowmin", cat, [1], ReduceOp.MIN))
    outs.append(b.reduce("rowprod", pos, [1], ReduceOp.PROD))
    for name in outs:
        b.set_role(name, Role.OUTPUT)
    qa = b.tensor("qa", (5, 16), dtype=DType.I8, role=Role.INPUT)
    qw = b.tensor(
        "qw", (16, 7), dtype=DType.I8, role=Role.WEIGHT, data=rng.integers(-8, 8, (16, 7))
    )
    b.set_role(b.matmul("qmm", qa, qw), Role.OUTPUT)
    return b.build()


def assert_matches_interpreter(cascade: Cascade, schedule: str = "default", **kw) -> None:
    verify(cascade)
    compiled = compile_cascade(cascade, schedule=schedule, **kw)
    inputs = sample_inputs(cascade, seed=1)
    got = compiled.run(inputs)
    want = interpret(cascade, inputs)
    assert set(got) == set(want)
    for name, ref in want.items():
        assert got[name].dtype == ref.dtype, name
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.fixture(scope="module")
def mlp() -> Cascade:
    return mlp_cascade(np.random.default_rng(0))


def test_conv_with_padding_stride_relu_and_maxpool_match_interpreter(rng):
    assert_matches_interpreter(conv_cascade(rng, stride=2, pad=1))


def test_gather_reshape_transpose_matmul_softmax_concat_layernorm_match_interpreter(rng):
    assert_matches_interpreter(transformer_cascade(rng))


@pytest.fixture(scope="module")
def misc_build():
    cascade = misc_cascade(np.random.default_rng(0))
    return cascade, compile_cascade(cascade)


def test_depthwise_divmod_select_concat_unary_ops_and_int8_match_interpreter(misc_build):
    cascade, compiled = misc_build
    inputs = sample_inputs(cascade, seed=1)
    got, want = compiled.run(inputs), interpret(cascade, inputs)
    for name, ref in want.items():
        assert got[name].dtype == ref.dtype, name
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)


def test_int8_matmul_store_saturates_like_the_interpreter(misc_build):
    cascade, compiled = misc_build
    inputs = sample_inputs(cascade, seed=1)
    inputs["qa"] = np.full((5, 16), 7, dtype=np.int8)
    signs = np.where(np.arange(7) % 2 == 0, 7, -7).astype(np.int8)
    inputs["qw"] = np.tile(signs, (16, 1))
    got = compiled.run(inputs)["qmm"]  # each dot product is +-784, outside int8
    np.testing.assert_array_equal(got, interpret(cascade, inputs)["qmm"])
    assert got.max() == 127 and got.min() == -128


def test_dlight_schedule_matches_interpreter(mlp):
    assert_matches_interpreter(mlp, schedule="dlight")


def test_mapper_tiles_reach_the_schedule_and_keep_results(mlp):
    tiles = {"fc1": {"d1": 8, "d0": 2, "k": 4}}  # d1 = output columns, vectorised
    assert_matches_interpreter(mlp, options=ScheduleOptions(tiles=tiles))
    compiled = compile_cascade(mlp, options=ScheduleOptions(tiles=tiles))
    script = compiled.scheduled["cs_fc1"].script()
    assert "T.vectorized(8)" in script
    assert "_fused in range(" in script  # outer tiles fused; serial: too small (cpu_parallel)


def test_snap_tile_picks_the_largest_divisor_not_above_the_request():
    assert snap_tile(48, 16) == 16
    assert snap_tile(48, 20) == 16
    assert snap_tile(7, 4) == 1
    assert snap_tile(10, 99) == 10


def test_benchmark_times_every_einsum_kernel_when_unfused(mlp):
    compiled = compile_cascade(mlp, groups=())
    times = benchmark(compiled, sample_inputs(mlp), repeat=3)
    assert [t.einsum for t in times] == [e.name for e in mlp.einsums]
    assert all(t.median_s > 0 and len(t.runs_s) == 3 for t in times)


def test_fused_kernels_cover_every_einsum_once(mlp):
    compiled = compile_cascade(mlp)
    times = benchmark(compiled, sample_inputs(mlp), repeat=2)
    covered = [e for t in times for e in t.einsums]
    assert sorted(covered) == sorted(e.name for e in mlp.einsums)
    assert len(times) < len(mlp.einsums)  # bias and GELU ride in the matmul kernels


def test_export_writes_a_runner_that_reproduces_the_interpreter(mlp, tmp_path, capsys):
    compile_cascade(mlp, out_dir=tmp_path)
    for name in ("lib.so", "manifest.json", "run.py", "inputs.npz", "expected.npz"):
        assert (tmp_path / name).exists(), name
    # the copied script in-process (a subprocess would pay TVM's import again)
    script = runpy.run_path(str(tmp_path / "run.py"), run_name="exported_runner")
    status = script["main"](["--dir", str(tmp_path), "--bench", "2"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "ok" in out and "MISMATCH" not in out
    assert "cs_fc1: median" in out


def test_an_export_that_fails_midway_leaves_no_half_written_file(mlp, tmp_path, monkeypatch):
    compiled = compile_cascade(mlp)

    def fail(*_args, **_kwargs):
        raise RuntimeError("interpreter failed")

    monkeypatch.setattr("codesign.codegen.tvm.interpret", fail)
    with pytest.raises(RuntimeError):
        compiled.export(tmp_path)
    # the files written before the failure are whole; the rest absent; no temporaries left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.so", "manifest.json"]
    assert json.loads((tmp_path / "manifest.json").read_text())["library"] == "lib.so"


def test_unknown_target_and_schedule_name_the_known_ones(mlp):
    with pytest.raises(InputError, match="known: llvm, cuda"):
        compile_cascade(mlp, target="vulkan")
    with pytest.raises(InputError, match="default, dlight, metaschedule"):
        compile_cascade(mlp, schedule="ansor")


def test_without_tvm_compiling_names_the_extra_to_install(mlp, monkeypatch):
    monkeypatch.setitem(sys.modules, "tvm", None)  # makes `import tvm` raise ImportError
    with pytest.raises(InputError, match=r"pip install 'codesign\[tvm\]'"):
        compile_cascade(mlp)


def test_missing_input_is_a_one_line_input_error(mlp):
    with pytest.raises(InputError, match="no value given for input x"):
        compile_cascade(mlp).run({})


@pytest.fixture(scope="module")
def cuda_builds(mlp) -> dict[str, object]:
    return {
        "mlp": compile_cascade(mlp, target="cuda"),
        "bundled_mlp": compile_cascade(load_onnx(MODELS_DIR / "mlp.onnx"), target="cuda"),
        "gather_attention": compile_cascade(
            transformer_cascade(np.random.default_rng(0)), target="cuda"
        ),
    }


def test_cuda_build_holds_a_kernel_per_einsum(cuda_builds):
    for compiled in cuda_builds.values():
        source = cuda_source(compiled)
        assert "__global__" in source
        for stage in compiled.lowered.stages:
            assert f"{stage.symbol}_kernel" in source, stage.symbol


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH (CUDA toolkit)")
def test_cuda_source_compiles_with_nvcc(cuda_builds, tmp_path):
    for name, compiled in cuda_builds.items():
        cubin = nvcc_compile(cuda_source(compiled), arch="sm_80", out_dir=tmp_path / name)
        assert cubin.stat().st_size > 0


@pytest.mark.skipif(not tvm.cuda().exist, reason=NO_GPU)
def test_cuda_build_runs_and_matches_interpreter(cuda_builds, mlp):
    import tvm.support.nvcc  # noqa: F401 - registers TVM's CUDA source compiler

    inputs = sample_inputs(mlp)
    got = cuda_builds["mlp"].run(inputs)
    for name, ref in interpret(mlp, inputs).items():
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL)


@pytest.mark.skipif(tvm.cuda().exist, reason="a CUDA GPU is present")
def test_running_a_cuda_build_without_gpu_says_so(cuda_builds, mlp):
    with pytest.raises(InputError, match=NO_GPU):
        cuda_builds["mlp"].run(sample_inputs(mlp))


def test_metaschedule_keeps_a_timed_choice_per_kernel_and_reuses_it(mlp, tmp_path):
    # no trials: nothing is tuned, but the per-kernel tuned/default choice is measured and kept
    options = ScheduleOptions(trials=0, work_dir=tmp_path)
    assert_matches_interpreter(mlp, schedule="metaschedule", options=options)
    choices_path = tmp_path / "choices.json"
    choices = json.loads(choices_path.read_text())
    compiled = compile_cascade(mlp, schedule="metaschedule", options=options)
    assert sorted(choices) == sorted(s.symbol for s in compiled.lowered.stages)
    assert json.loads(choices_path.read_text()) == choices  # read back, not measured again


def test_metaschedule_measures_again_a_choice_made_for_other_kernels(mlp, tmp_path):
    # a choice recorded for another default schedule (stale hashes) is not trusted
    options = ScheduleOptions(trials=0, work_dir=tmp_path)
    compiled = compile_cascade(mlp, schedule="metaschedule", options=options)
    choices_path = tmp_path / "choices.json"
    fresh = json.loads(choices_path.read_text())
    stale = {name: {"pick": "tuned", "hashes": ["0", "0"]} for name in fresh}
    choices_path.write_text(json.dumps(stale))
    compile_cascade(mlp, schedule="metaschedule", options=options)
    again = json.loads(choices_path.read_text())
    assert {n: c["hashes"] for n, c in again.items()} == {n: c["hashes"] for n, c in fresh.items()}
    assert all(c["default_s"] > 0 and c["tuned_s"] > 0 for c in again.values())
    assert sorted(again) == sorted(s.symbol for s in compiled.lowered.stages)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CODESIGN_RUN_SLOW") != "1",
    reason="MetaSchedule tuning takes ~1-3 min even for 4 trials on the 2-core dev machine; "
    "runs with CODESIGN_RUN_SLOW=1",
)
def test_metaschedule_tunes_once_and_reuses_its_database(tmp_path):
    cascade = gemm(64, 64, 64, DType.F32)
    options = ScheduleOptions(trials=4, work_dir=tmp_path)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((64, 64)).astype(np.float32) for _ in range(2))
    tuned = compile_cascade(cascade, schedule="metaschedule", options=options)
    np.testing.assert_allclose(tuned.run({"A": a, "B": b})["Y"], a @ b, rtol=RTOL, atol=1e-4)
    records = (tmp_path / "database_tuning_record.json").read_text()
    assert records.strip()  # the tuner measured candidates
    compile_cascade(cascade, schedule="metaschedule", options=options)
    assert (tmp_path / "database_tuning_record.json").read_text() == records  # not re-tuned


# -- whole bundled models (examples/models) -----------------------------------------------------
NEEDS_TORCH = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnxscript") is None,
    reason="transformer_block.onnx is generated with torch (pip install codesign[torch])",
)


@pytest.fixture(scope="module")
def transformer_block(tmp_path_factory) -> Cascade:
    """examples/models' BERT encoder block, generated (it is not committed: 3 MiB)."""
    if str(MODELS_DIR) not in sys.path:
        sys.path.insert(0, str(MODELS_DIR))
    from generate import generate  # noqa: PLC0415 - examples/models/generate.py

    out = tmp_path_factory.mktemp("tvm_models")
    return load_onnx(generate(["transformer_block"], out, quiet=True)["transformer_block"])


def assert_model_matches_interpreter(cascade: Cascade) -> None:
    """Relative to the output's scale, as tests/test_bundled_models.py compares to ORT."""
    inputs = sample_inputs(cascade, seed=1)
    got = compile_cascade(cascade).run(inputs)
    for name, ref in interpret(cascade, inputs).items():
        atol = ATOL * max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=atol, err_msg=name)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_committed_bundled_model_compiles_and_matches_interpreter(name):
    assert_model_matches_interpreter(load_onnx(MODELS_DIR / f"{name}.onnx"))


@NEEDS_TORCH
def test_bundled_transformer_block_compiles_and_matches_interpreter(transformer_block):
    assert_model_matches_interpreter(transformer_block)


@NEEDS_TORCH
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH (CUDA toolkit)")
def test_bundled_transformer_block_cuda_source_compiles_with_nvcc(transformer_block, tmp_path):
    source = cuda_source(compile_cascade(transformer_block, target="cuda"))
    assert nvcc_compile(source, arch="sm_80", out_dir=tmp_path).stat().st_size > 0
