"""One TVM kernel per fused group whatever its reductions, and recurrences lowered as ordered
loops: a multi-contraction group is ONE PrimFunc whose intermediates are internal buffers, the
1-pass (online-softmax) attention cascade compiles and runs, and every build computes what the
reference interpreter computes (rtol 1e-4).  Unsupported recurrence forms exit 2 with one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

tvm = pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.cli.main import main  # noqa: E402
from codesign.codegen.groups import kernel_plan  # noqa: E402
from codesign.codegen.tvm import compile_cascade, cuda_source  # noqa: E402
from codesign.frontends import load_model  # noqa: E402
from codesign.ir.cascade import Cascade  # noqa: E402
from codesign.ir.groups import FusedGroup, GroupKind  # noqa: E402
from codesign.ir.inputs import sample_inputs  # noqa: E402
from codesign.ir.interpreter import interpret  # noqa: E402
from codesign.ir.recurrence import is_iterative  # noqa: E402
from codesign.passes import parse_pipeline, run_pipeline  # noqa: E402
from tests.ir_cases import transformer_cascade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 1e-5
NO_CUDA_CODEGEN = "this TVM build has no CUDA code generator (target.build.cuda)"
has_cuda_codegen = tvm.get_global_func("target.build.cuda", allow_missing=True) is not None

# A running maximum with a scaled carry, three steps: each step reads the one before
RECURRENCE = """cascade rec {
  input x: f32[P=4,T=3]
  output y: f32[P=4,T=4]
  y_init: y[p,0] = x[p,0] * 0.5
  y_step: y[p,t+1] = max(y[p,t], x[p,t]) + y[p,t] * 0.25 over {t:3}
}
"""


def _fused(cascade: Cascade, pipeline: str) -> Cascade:
    return run_pipeline(cascade, parse_pipeline(pipeline))[0]


def _assert_matches_interpreter(compiled, cascade: Cascade) -> None:
    inputs = sample_inputs(cascade, seed=1)
    got = compiled.run(inputs)
    for name, ref in interpret(cascade, inputs).items():
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.fixture(scope="module")
def transformer() -> Cascade:
    return transformer_cascade(np.random.default_rng(0))


def test_attention_group_is_one_primfunc_with_internal_intermediates(transformer):
    fused = _fused(transformer, "flash-attention")
    (group,) = fused.groups
    compiled = compile_cascade(fused)
    kernels = [s for s in compiled.lowered.stages if set(s.einsums) & set(group.einsums)]
    assert len(kernels) == 1 and kernels[0].einsums == group.einsums
    (kernel,) = kernels
    assert kernel.reductions >= 3  # QK^T, the softmax max and sum, P.V
    assert len(compiled.scheduled.functions) == len(compiled.lowered.stages)
    params = {p.name for p in compiled.scheduled[kernel.symbol].params}
    inner = {fused.einsum(n).output.tensor for n in group.einsums[:-1]}
    assert inner and not inner & params  # scores, max, sum... are allocations inside
    _assert_matches_interpreter(compiled, fused)


def test_cnn_fused_into_one_group_compiles_to_one_kernel_that_matches(tmp_path):
    fused = _fused(load_model(str(ROOT / "examples" / "models" / "cnn.onnx")),
                   "fuse{buffer_kib=2048}")  # fmt: skip
    compiled = compile_cascade(fused)
    (stage,) = compiled.lowered.stages
    assert stage.einsums == fused.groups[0].einsums and stage.reductions > 5
    _assert_matches_interpreter(compiled, fused)


@pytest.mark.parametrize(
    "pipeline",
    ["none", "attention-1pass", "attention-1pass{tile=1}", "attention-1pass,fuse"],
)
def test_attention_three_pass_and_one_pass_compile_and_match_the_interpreter(
    transformer, pipeline
):
    cascade = transformer if pipeline == "none" else _fused(transformer, pipeline)
    iterative = [e.name for e in cascade.einsums if is_iterative(e)]
    assert bool(iterative) == (pipeline != "none")
    compiled = compile_cascade(cascade)
    steps = {e.name for e in cascade.einsums if is_iterative(e)}
    lowered = {n for s in compiled.lowered.stages if s.recurrences for n in s.einsums}
    assert steps <= lowered
    _assert_matches_interpreter(compiled, cascade)


def test_one_pass_tile_of_one_key_runs_five_ordered_steps(transformer):
    cascade = _fused(transformer, "attention-1pass{tile=1}")
    (rm,) = [e for e in cascade.einsums if is_iterative(e) and e.name.endswith("rm_step")]
    assert dict(rm.space)["m1"] == 5


def test_fused_recurrence_kernels_are_one_per_group(transformer):
    cascade = _fused(transformer, "attention-1pass,fuse")
    plan = kernel_plan(cascade)
    units = [k for k in plan.groups if any(is_iterative(cascade.einsum(n)) for n in k)]
    assert len(units) == 3  # running max, running sum, running numerator
    for kernel in units:  # a step's ungrouped initialisation joined its kernel
        assert any(n.endswith("_init") for n in kernel)
    assert not [n for n in plan.notes if "recurrence" in n]


def test_a_whole_one_pass_attention_is_one_kernel_with_its_states_inside(transformer):
    cascade = _fused(transformer, "attention-1pass{tile=1}")
    members = tuple(e.name for e in cascade.einsums if e.name.startswith("attn_")) + ("context",)
    record = FusedGroup("att", GroupKind.CHAIN, members)
    grouped = replace(cascade, groups=(record,))
    assert kernel_plan(grouped).groups == (members,)
    compiled = compile_cascade(grouped)
    (kernel,) = [s for s in compiled.lowered.stages if s.einsums == members]
    assert set(kernel.recurrences) == {"attn_rm", "attn_rd", "attn_rnv"}
    params = {p.name for p in compiled.scheduled[kernel.symbol].params}
    assert not params & set(kernel.recurrences)  # running max/sum/numerator stay inside
    assert {"attn_lm", "attn_prm"} <= set(kernel.pinned)  # read by the ordered loops
    _assert_matches_interpreter(compiled, grouped)


def test_exported_recurrence_library_runs_its_steps_in_order(tmp_path, capsys):
    model = tmp_path / "rec.cascade"
    model.write_text(RECURRENCE)
    out = tmp_path / "out"
    assert main(["compile", str(model), "-o", str(out), "--json", str(tmp_path / "k.json")]) == 0
    (kernel,) = json.loads((tmp_path / "k.json").read_text())["kernels"]
    assert kernel["recurrences"] == ["y"] and kernel["einsums"] == ["y_init", "y_step"]
    cascade = load_model(str(model))
    x = np.arange(12, dtype=np.float32).reshape(4, 3) - 5
    got = compile_cascade(cascade).run({"x": x})["y"]
    want = np.zeros((4, 4), np.float32)
    want[:, 0] = x[:, 0] * 0.5
    for t in range(3):
        want[:, t + 1] = np.maximum(want[:, t], x[:, t]) + want[:, t] * 0.25
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("y_init: y[p,0] = x[p,0] * 0.5", "y_init: y[p,0] = max[t:3] x[p,t]"),
         "einsum y_init: initialises recurrence state y with a reduction"),
        # refused when the file is loaded (.ein files are verified), before codegen sees it
        (("  y_step:", "  z: z[p,t] = y[p,t] over {t:4}\n  y_step:"),
         "einsum z: reads y where the later einsum y_step writes it"),
    ],
)  # fmt: skip
def test_an_unsupported_recurrence_form_exits_2_with_one_line(tmp_path, capsys, edit, message):
    text = RECURRENCE.replace(*edit)
    if "z:" in text:
        text = text.replace("  output y:", "  tensor z: f32[P=4,T=4]\n  output y:")
    model = tmp_path / "bad.cascade"
    model.write_text(text)
    assert main(["compile", str(model), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_compile_json_reports_one_kernel_per_fused_group(tmp_path):
    report = tmp_path / "kernels.json"
    argv = ["compile", str(ROOT / "examples" / "models" / "cnn.onnx"), "--passes",
            "fuse{buffer_kib=100}", "-o", str(tmp_path / "out"), "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(report.read_text())
    assert data["kernel_source"] == "ir" and not data["notes"]
    assert [g["kernels"] for g in data["groups"]] == [1, 1, 1]
    assert max(k["reductions"] for k in data["kernels"]) > 1


@pytest.mark.skipif(not has_cuda_codegen, reason=NO_CUDA_CODEGEN)
@pytest.mark.parametrize("pipeline", ["flash-attention", "attention-1pass,fuse"])
def test_cuda_build_of_fused_groups_and_recurrences_holds_cuda_source(transformer, pipeline):
    """Compile-only (no GPU here): the CUDA module holds a kernel for every multi-stage kernel,
    the recurrence loop bound to GPU threads."""
    cascade = _fused(transformer, pipeline)
    compiled = compile_cascade(cascade, target="cuda")
    source = cuda_source(compiled)
    multi = [s for s in compiled.lowered.stages if s.multi_stage]
    assert multi
    for stage in multi:
        assert f"{stage.symbol}_kernel" in source, stage.symbol
    assert "__global__" in source and "blockIdx.x" in source


def test_llm_one_pass_attention_with_four_steps_matches_the_interpreter():
    """The LLM builder's attention (GQA heads merged by a ``32g+16r+e`` output index) in the
    1-pass form over 4 key tiles, every layer's K/V cache output included."""
    from codesign.frontends.llm import Workload, build_llm
    from codesign.ir.cascade import Role
    from tests.test_llm_builder import TINY

    cascade = _fused(build_llm(TINY["llama"], Workload(1, 8)), "attention-1pass{tile=2}")
    steps = [e for e in cascade.einsums if is_iterative(e)]
    assert steps and all(dict(e.space)["m1"] == 4 for e in steps)
    rng = np.random.default_rng(0)
    inputs = sample_inputs(cascade, seed=1)
    for t in cascade.tensors:
        if t.role is Role.WEIGHT and t.data is None:
            inputs[t.name] = (rng.standard_normal(t.shape) * 0.1).astype(t.dtype.numpy)
    got = compile_cascade(cascade).run(inputs)
    for name, ref in interpret(cascade, inputs).items():
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)
