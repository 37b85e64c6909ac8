"""`compile`/`bench` take their kernels from the IR's fused-group records (`Cascade.groups`,
written by `--passes fuse-elementwise | fuse`): one kernel per recorded group, split only where
one PrimFunc cannot hold it, with the reason; numerics equal the reference interpreter."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from codesign.cli.main import main
from codesign.codegen.groups import check_groups, default_groups, kernel_plan
from codesign.frontends import load_model
from codesign.ir.cascade import Cascade
from codesign.ir.groups import FusedGroup, GroupKind
from codesign.passes import parse_pipeline, run_pipeline
from tests.ir_cases import transformer_cascade

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
needs_tvm = pytest.mark.skipif(
    importlib.util.find_spec("tvm") is None,
    reason="apache-tvm not installed (pip install codesign[tvm])",
)


def _fused(cascade: Cascade, pipeline: str) -> Cascade:
    return run_pipeline(cascade, parse_pipeline(pipeline))[0]


@pytest.fixture(scope="module")
def cnn() -> Cascade:
    return load_model(str(MODELS / "cnn.onnx"))


def test_a_cascade_without_group_records_keeps_the_derived_epilogue_groups(cnn):
    plan = kernel_plan(cnn)
    assert plan.source == "default" and plan.groups == default_groups(cnn) and not plan.notes


def test_fuse_elementwise_groups_become_one_kernel_each(cnn):
    fused = _fused(cnn, "fuse-elementwise")
    plan = kernel_plan(fused)
    assert plan.source == "ir" and not plan.notes
    assert plan.groups == tuple(g.einsums for g in fused.groups)
    assert check_groups(fused, plan.groups) == plan.groups


def test_a_group_of_several_contractions_is_one_kernel(cnn):
    fused = _fused(cnn, "fuse{buffer_kib=2048}")
    (group,) = fused.groups
    reductions = [n for n in group.einsums if fused.einsum(n).reduce is not None]
    assert len(reductions) > 5  # every conv, the mean and the linear layer
    plan = kernel_plan(fused)
    assert plan.groups == (group.einsums,) and not plan.notes
    assert check_groups(fused, plan.groups) == plan.groups


def test_a_member_read_after_its_kernel_ends_the_kernel_with_the_reason():
    cascade = transformer_cascade(np.random.default_rng(0))
    record = FusedGroup("g0", GroupKind.CHAIN, ("split_heads", "q", "merge"))
    fused = replace(cascade, groups=(record,))  # split_heads is also read by kT, outside
    plan = kernel_plan(fused)
    assert any("split_heads leaves the kernel (read by kT)" in note for note in plan.notes)
    assert check_groups(fused, plan.groups) == plan.groups  # every kernel has one output


@needs_tvm
@pytest.mark.parametrize(
    ("model", "pipeline"),
    [
        ("mlp", "fuse-elementwise"),
        ("cnn", "fuse-elementwise"),
        ("cnn", "fuse{buffer_kib=100}"),
        ("transformer", "fuse"),
        ("transformer", "fuse{contractions=false}"),
    ],
)
def test_kernels_of_the_ir_groups_compute_what_the_interpreter_computes(model, pipeline):
    from tests.test_codegen_tvm import assert_matches_interpreter

    if model == "transformer":
        cascade = transformer_cascade(np.random.default_rng(0))
    else:
        cascade = load_model(str(MODELS / f"{model}.onnx"))
    fused = _fused(cascade, pipeline)
    assert fused.groups
    assert_matches_interpreter(fused)  # groups=None: the compile default is kernel_plan's


@needs_tvm
def test_compiled_stages_are_the_planned_kernels(cnn):
    from codesign.codegen.tvm import compile_cascade

    fused = _fused(cnn, "fuse-elementwise")
    stages = compile_cascade(fused).lowered.stages
    multi = tuple(s.einsums for s in stages if len(s.einsums) > 1)
    assert multi == kernel_plan(fused).groups


@needs_tvm
def test_compile_passes_prints_where_kernels_come_from_and_runs(tmp_path, capsys):
    out = tmp_path / "cnn"
    argv = ["compile", str(MODELS / "cnn.onnx"), "--passes", "fuse{buffer_kib=100}"]
    assert main([*argv, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kernels: one per fused group of --passes (3 multi-Einsum)" in text
    assert "cnn: 3 kernels built for llvm" in text  # one per group, two convolutions in g1
    assert (out / "lib.so").stat().st_size > 0


def test_compile_with_a_bad_pipeline_exits_2_with_one_line(tmp_path, capsys):
    argv = ["compile", str(MODELS / "mlp.onnx"), "--passes", "fuse{nope=1}", "-o", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--passes" in err and "nope" in err and len(err.strip().splitlines()) == 1


@needs_tvm
def test_bench_passes_times_one_kernel_per_recorded_group(tmp_path, capsys):
    from tests.test_codegen_cli import _host_yaml

    hw = _host_yaml(tmp_path / "host_cpu.yaml")
    report = tmp_path / "bench.json"
    argv = ["bench", str(MODELS / "cnn.onnx"), "--hw", str(hw), "--passes", "fuse-elementwise",
            "--peers", "", "--repeat", "1", "--rounds", "1", "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    fused = _fused(load_model(str(MODELS / "cnn.onnx")), "fuse-elementwise")
    data = json.loads(report.read_text())
    kernels = [tuple(k["einsums"]) for k in data["kernels"]]
    assert [k for k in kernels if len(k) > 1] == [g.einsums for g in fused.groups]
    assert [(g["name"], g["kernels"]) for g in data["groups"]] == [
        (g.name, 1) for g in fused.groups
    ]
    assert "kernels: one per fused group of --passes" in capsys.readouterr().out
