"""`lut-precompute`: the LUT Tensor Core lookup form computes what the quantized cascade
computes (bundled models, random GEMMs), fusion removes the activation and its producer or says
why not, and the LUT Tensor Core model prices the explicit tables (fused < unfused; unfused
explicit = the implicit precompute)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.api import map_model
from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends import load_model
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Workload
from codesign.hwmodels.lut_tc import load_tensor_core
from codesign.ir import Role, UnaryOp, interpret, parse_cascade, print_cascade, verify
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade
from codesign.ir.inputs import sample_inputs
from codesign.passes import parse_pipeline, run_pipeline
from codesign.passes.lut_precompute import (
    LutPlan,
    LutPrecomputeOptions,
    plan_lut_precompute,
    sign_patterns,
)
from codesign.sim.cascade import CascadeResult

MLP = "examples/models/mlp.onnx"
CNN = "examples/models/cnn.onnx"
LUT_TC = "examples/hw/lut_tc.yaml"


def _quantized(model: str, pipeline: str) -> Cascade:
    return run_pipeline(load_model(model), pipeline, measure_error=False)[0]


def _assert_same_outputs(before: Cascade, after: Cascade) -> None:
    inputs = sample_inputs(before, 0)
    want, got = interpret(before, inputs), interpret(after, inputs)
    for name, value in want.items():
        scale = float(np.max(np.abs(value))) or 1.0
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-5 * scale)


def _rewrite(cascade: Cascade, **options) -> tuple[Cascade, LutPlan]:
    out, plan = plan_lut_precompute(cascade, LutPrecomputeOptions(**options))
    verify(out)
    assert parse_cascade(print_cascade(out)) == out
    return out, plan


@pytest.mark.parametrize(
    ("model", "scheme"),
    [
        (MLP, "quantize{bits=2}"),
        (MLP, "quantize{bits=4,group=32}"),
        (MLP, "quantize{bits=1}"),
        (MLP, "quantize{format=ternary}"),
        (MLP, "quantize{bits=3,symmetric=false}"),
        (CNN, "quantize{bits=2}"),
        (CNN, "quantize{bits=3,symmetric=false,granularity=tensor}"),
    ],
)
@pytest.mark.parametrize("fuse", [True, False])
def test_lookup_form_computes_the_quantized_cascade(model: str, scheme: str, fuse: bool) -> None:
    quantized = _quantized(model, scheme)
    out, plan = _rewrite(quantized, fuse=fuse)
    assert plan.rewritten and all(e.op != "Gemm" or e.reduce is None for e in out.einsums)
    _assert_same_outputs(quantized, out)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 5), r=st.integers(1, 19), n=st.integers(1, 6), k=st.integers(1, 5),
    bits=st.integers(1, 4), symmetric=st.booleans(), symmetrize=st.booleans(),
    group=st.sampled_from([0, 4]), fuse=st.booleans(), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_random_gemms_keep_their_values(
    m, r, n, k, bits, symmetric, symmetrize, group, fuse, seed
) -> None:
    rng = np.random.default_rng(seed)
    b = CascadeBuilder("gemm")
    x = b.tensor("x", (m, r), role=Role.INPUT)
    w = b.tensor("w", (r, n), role=Role.WEIGHT, data=rng.standard_normal((r, n)))
    y = b.matmul("y", b.unary("act", x, UnaryOp.TANH), w)
    b.set_role(y, Role.OUTPUT)
    scheme = f"quantize{{bits={bits},symmetric={str(symmetric).lower()},group={group}}}"
    quantized = run_pipeline(b.build(), scheme, measure_error=False)[0]
    out, plan = _rewrite(quantized, k=k, symmetrize=symmetrize, fuse=fuse)
    if group % k:  # a scale group would split a table group
        assert not plan.rewritten and "multiple of k" in plan.gemms[0].reason
        return
    assert plan.rewritten == ("y",)
    _assert_same_outputs(quantized, out)
    fusible = fuse and r % k == 0
    assert (plan.fused != ()) == fusible
    assert out.has_tensor("act") != fusible


def test_tables_hold_the_sign_patterns_with_the_first_sign_fixed() -> None:
    signs = sign_patterns(LutPrecomputeOptions(k=4))
    assert signs.shape == (8, 4) and np.all(signs[:, 0] == 1) and np.all(signs[0] == 1)
    assert len({tuple(s) for s in signs} | {tuple(-s) for s in signs}) == 16  # T(-s) = -T(s)
    full = sign_patterns(LutPrecomputeOptions(k=4, symmetrize=False))
    assert full.shape == (16, 4) and len({tuple(s) for s in full}) == 16


def test_fusion_inlines_the_producer_and_drops_the_activation() -> None:
    quantized = _quantized(MLP, "quantize{bits=2}")
    out, plan = _rewrite(quantized, fuse=True)
    assert plan.rewritten == ("node_linear", "node_linear_1", "node_linear_2")
    assert plan.fused == ("relu_lut", "relu_1_lut")
    assert not out.has_tensor("relu") and "node_relu" not in {e.name for e in out.einsums}
    table = out.einsum("relu_lut_table")
    assert "relu(linear[d0,4g+k])" in print_cascade(Cascade("t", out.tensors, (table,)))
    unfused = {t.activation: t.reason for t in plan.tables if not t.fused}
    assert unfused == {"x": "graph input"}
    assert out.tensor("relu_lut").dtype.bits == 8 and out.tensor("relu_lut").shape == (8, 64, 8)
    assert "table relu_lut of relu: fused with node_relu" in plan.describe()


def test_fusion_is_refused_for_shared_activations_views_and_fuse_false() -> None:
    quantized = _quantized(CNN, "quantize{bits=2}")
    _, plan = _rewrite(quantized, fuse=True)
    reasons = {t.activation: t.reason for t in plan.tables if not t.fused}
    assert reasons["relu"] == "also read by node_add"
    assert reasons["view"] == "producer node_view is a view"
    assert reasons["image"] == "graph input"
    assert "relu_2_lut" in plan.fused  # read by two LUT convolutions: one shared table
    _, unfused = _rewrite(quantized, fuse=False)
    assert not unfused.fused and all(t.reason == "fuse=false" or t.activation == "image"
                                     for t in unfused.tables)  # fmt: skip


def test_wide_and_float_weights_are_kept_with_a_reason() -> None:
    quantized = _quantized(MLP, "quantize{bits=8}")
    out, plan = _rewrite(quantized)
    assert out == quantized and not plan.rewritten
    assert "8 bits > max_weight_bits" in plan.gemms[0].reason
    _, plan = _rewrite(load_model(MLP))
    assert plan.gemms[0].reason == "no quantized weight operand"


def test_shapes_only_weights_get_tables_without_data() -> None:
    quantized = _quantized(MLP, "quantize{bits=2}")
    bare = Cascade(
        quantized.name,
        tuple(dataclasses.replace(t, data=None) for t in quantized.tensors),
        quantized.einsums,
    )
    out, plan = _rewrite(bare)
    assert len(plan.rewritten) == 3 and out.tensor("layers_0_weight_lut_idx").data is None


def test_pipeline_text_spells_the_options() -> None:
    pipeline = parse_pipeline("lut-precompute{k=2,fuse=false,symmetrize=false}")
    assert str(pipeline) == "lut-precompute{k=2,symmetrize=false,fuse=false}"
    with pytest.raises(InputError, match="k=9"):
        parse_pipeline("lut-precompute{k=9}")


# -- cost ----------------------------------------------------------------------------------------
def _cost(cascade: Cascade, fused_yaml: bool = True) -> CascadeResult:
    gpu = load_tensor_core(LUT_TC)
    return map_model(cascade, dataclasses.replace(gpu, precompute_fused=fused_yaml)).result


def _precompute(result: CascadeResult, names: set[str]) -> tuple[float, float]:
    """(cycles, DRAM bytes) of the named Einsums."""
    rows = [e for e in result.einsums if e.name in names]
    dram = sum(a.reads + a.fills for e in rows for a in e.cost.levels[0].tensors)
    return sum(e.cost.cycles for e in rows), dram


def test_fused_tables_cost_less_than_unfused_ones() -> None:
    quantized = _quantized(MLP, "quantize{bits=2}")
    fused = run_pipeline(quantized, "lut-precompute{fuse=true}", measure_error=False)[0]
    unfused = run_pipeline(quantized, "lut-precompute{fuse=false}", measure_error=False)[0]
    # the fused table Einsums replace the unfused tables and the producers they absorbed
    names = {"relu_lut_table", "relu_1_lut_table", "node_relu", "node_relu_1"}
    cycles_f, dram_f = _precompute(_cost(fused), names)
    cycles_u, dram_u = _precompute(_cost(unfused), names)
    assert cycles_f < 0.8 * cycles_u and dram_f < 0.8 * dram_u
    assert _cost(fused).cycles < _cost(unfused).cycles


def test_unfused_explicit_tables_cost_what_the_implicit_precompute_costs() -> None:
    # the MLP's reductions are multiples of K and no activation feeds two GEMMs, so the
    # explicit form prices exactly the implicit model's unfused precompute
    quantized = _quantized(MLP, "quantize{bits=2}")
    unfused = run_pipeline(quantized, "lut-precompute{fuse=false}", measure_error=False)[0]
    implicit, explicit = _cost(quantized, fused_yaml=False), _cost(unfused)
    assert explicit.cycles == pytest.approx(implicit.cycles, rel=1e-9)
    assert explicit.energy_pj == pytest.approx(implicit.energy_pj, rel=1e-9)
    assert explicit.macs == implicit.macs


def test_cli_map_runs_the_fused_pipeline(capsys) -> None:
    passes = ["--passes", "quantize{bits=2},lut-precompute{fuse=true}"]
    baseline = ["--baseline", "examples/hw/a100_fp16.yaml", "--baseline-passes", "quantize{bits=2}"]
    argv = ["map", MLP, "--hw", LUT_TC, "-q", "--json", "-", *passes, *baseline]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["speedup"] > 1.0


def test_llm_norm_and_activation_tables_fuse_and_attention_outputs_do_not() -> None:
    cascade = build_llm(LLMConfig("tiny", 1, 512, 1024, 8, 8, 1000), Workload(64, 1))
    quantized = run_pipeline(cascade, "quantize{bits=2}", measure_error=False)[0]
    _, plan = _rewrite(quantized)
    fused = {t.activation for t in plan.tables if t.fused}
    assert {"L0_attn_norm_scale", "L0_mlp_norm_scale", "L0_mlp_act"} <= fused  # f16 activations
    reasons = {t.activation: t.reason for t in plan.tables if not t.fused}
    assert reasons == {"L0_sv_matmul": "producer L0_sv_matmul is a reduction"}
