"""Sparse-aware costs (skipping vs gating, compressed storage, N:M arrays) and SAT training."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from codesign.api import map_model
from codesign.frontends import load_model
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Phase, Workload
from codesign.frontends.training import ConvLayer, training_cascade
from codesign.hwmodels.loader import load_arch
from codesign.hwmodels.nm_array import (
    DENSE_ARRAY,
    GATING_ARRAY,
    SKIPPING_ARRAY,
    SparseAction,
    SparseSupport,
)
from codesign.ir import DType, Role, SparseFormat, Sparsity, TensorSpec, interpret, verify
from codesign.mapper.search import SearchOptions
from codesign.passes import run_pipeline
from codesign.sim.cascade import CascadeResult
from codesign.sim.cost import EinsumKind
from codesign.sim.sparse_cost import (
    METADATA_SUFFIX,
    SparseAnalyticalModel,
    metadata_energy_pj,
    nm_fits,
    operand_density,
)

ROOT = Path(__file__).resolve().parents[1]
ARCH = load_arch(ROOT / "examples" / "hw" / "simple_ws.yaml")
OPTIONS = SearchOptions(max_evaluations=1000)


@pytest.fixture(scope="module")
def cnn():
    return load_model(str(ROOT / "examples" / "models" / "cnn.onnx"))


def _run(cascade, support) -> CascadeResult:
    model = SparseAnalyticalModel.for_cascade(cascade, support)
    return map_model(cascade, ARCH, search=OPTIONS, pricing=model).result


def _mac_compute_cycles(result: CascadeResult) -> float:
    return sum(e.cost.compute_cycles for e in result.einsums if e.kind is EinsumKind.MAC)


@pytest.fixture(scope="module")
def dense(cnn):
    return _run(cnn, DENSE_ARRAY)


@pytest.fixture(scope="module")
def half_unstructured(cnn):
    return run_pipeline(cnn, "prune{sparsity=0.5,scope=layer}", measure_error=False)[0]


def test_half_unstructured_model_is_faster_on_a_skipping_array_and_not_on_a_dense_one(
    dense, half_unstructured
):
    skipping = _run(half_unstructured, SKIPPING_ARRAY)
    on_dense = _run(half_unstructured, DENSE_ARRAY)
    assert skipping.cycles < 0.9 * dense.cycles
    assert skipping.energy_pj < dense.energy_pj
    assert on_dense.cycles == pytest.approx(dense.cycles)
    assert on_dense.energy_pj == pytest.approx(dense.energy_pj)


def test_gating_saves_energy_but_not_compute_cycles(dense, half_unstructured):
    gated = _run(half_unstructured, GATING_ARRAY)
    assert _mac_compute_cycles(gated) == pytest.approx(_mac_compute_cycles(dense))
    compute = sum(e.cost.compute_energy_pj for e in gated.einsums if e.kind is EinsumKind.MAC)
    dense_compute = sum(e.cost.compute_energy_pj for e in dense.einsums if e.kind is EinsumKind.MAC)
    # half the MACs gated at 10 % of a MAC's energy: 0.55 of the dense compute energy
    assert compute == pytest.approx(0.55 * dense_compute, rel=0.02)


def test_nm_2of4_gives_at_most_2x_compute_speedup_and_metadata_in_the_energy_breakdown(cnn, dense):
    pruned = run_pipeline(cnn, "prune-nm{n=2,m=4}", measure_error=False)[0]
    nm = _run(pruned, SparseSupport(SparseAction.SKIPPING, compressed_weights=True, nm=(2, 4)))
    speedup = _mac_compute_cycles(dense) / _mac_compute_cycles(nm)
    assert 1.5 < speedup <= 2.0
    metadata = [
        (lv.name, t) for e in nm.einsums for lv in e.cost.levels for t in lv.tensors
        if t.tensor.endswith(METADATA_SUFFIX)
    ]  # fmt: skip
    assert metadata and all(t.energy_pj > 0 for _, t in metadata)
    assert sum(metadata_energy_pj(e.cost) for e in nm.einsums) > 0
    # 2 position bits per kept f32 value: metadata traffic is 1/32 of the dense weight's
    conv = next(e for e in nm.einsums if e.name == "node_Conv_139").cost
    for level in conv.levels:
        names = {t.tensor: t for t in level.tensors}
        meta = names.get("stages_0_0_conv1_0_weight" + METADATA_SUFFIX)
        if meta is not None and meta.reads:
            weight = names["stages_0_0_conv1_0_weight"]
            assert meta.reads == pytest.approx(weight.reads / 0.5 * (0.5 * 2 / 32))


def test_unstructured_zeros_give_no_speedup_on_an_nm_array(dense, half_unstructured):
    nm = _run(half_unstructured, SparseSupport(SparseAction.SKIPPING, True, nm=(2, 4)))
    assert _mac_compute_cycles(nm) == pytest.approx(_mac_compute_cycles(dense))


def test_skip_factor_is_the_density_statistically_and_the_slowest_lane_exactly():
    spec = TensorSpec("W", ("M", "K"), (4, 8), DType.F32, Role.WEIGHT)
    statistical = operand_density(
        TensorSpec(
            "W",
            ("M", "K"),
            (4, 8),
            DType.F32,
            Role.WEIGHT,
            sparse=Sparsity(SparseFormat.BITMAP, 0.5),
        )  # fmt: skip
    )
    assert statistical.skip_factor(lanes=4) == 0.5
    data = np.zeros((4, 8), np.float32)
    data[0, :8] = 1.0  # one dense row, three empty rows: density 0.25
    exact = operand_density(
        TensorSpec(
            spec.name,
            spec.ranks,
            spec.shape,
            spec.dtype,
            spec.role,
            data,
            sparse=Sparsity(SparseFormat.BITMAP, 0.25),
        ),
        0,
    )
    assert exact.density == 0.25
    assert exact.skip_factor(lanes=4) == 1.0  # four lanes wait for the dense row
    assert exact.skip_factor(lanes=1) == 0.25  # one lane walks all rows


def test_compressed_storage_bytes_follow_the_format():
    shape = (64, 32)

    def stored(sparse: Sparsity) -> int:
        return TensorSpec(
            "W", ("M", "K"), shape, DType.F16, Role.WEIGHT, sparse=sparse
        ).storage_bytes

    nnz = 512  # density 0.25
    assert stored(Sparsity(SparseFormat.DENSE, 0.25)) == 64 * 32 * 2
    assert stored(Sparsity(SparseFormat.BITMAP, 0.25)) == (nnz * 16 + 64 * 32) // 8
    assert stored(Sparsity(SparseFormat.COO, 0.25)) == (nnz * 16 + nnz * (6 + 5)) // 8
    csr_bits = nnz * 16 + 65 * math.ceil(math.log2(nnz + 1)) + nnz * 5
    assert stored(Sparsity(SparseFormat.CSR, 0.25)) == math.ceil(csr_bits / 8)
    assert stored(Sparsity(SparseFormat.NM, 0.25, 1, 4, 1)) == (nnz * 16 + nnz * 2) // 8


def test_nm_fit_needs_at_most_n_of_every_hardware_group():
    assert nm_fits(Sparsity(SparseFormat.NM, 0.25, 2, 8, 1), (2, 8))
    assert nm_fits(Sparsity(SparseFormat.NM, 0.125, 1, 8, 1), (2, 8))
    assert nm_fits(Sparsity(SparseFormat.NM, 0.25, 1, 4, 1), (2, 8))
    assert not nm_fits(Sparsity(SparseFormat.NM, 0.5, 2, 4, 1), (2, 8))
    assert not nm_fits(Sparsity(SparseFormat.BITMAP, 0.1), (2, 8))
    with pytest.raises(ValueError, match="impossible N:M"):
        SparseSupport(SparseAction.SKIPPING, nm=(5, 4))


def test_kv_cache_pruning_lowers_decode_cost_on_a_skipping_array():
    config = LLMConfig("tiny-llama", 2, 64, 96, 4, 2, 50, max_position=1024, dtype=DType.F32)
    cascade = build_llm(config, Workload(1, 512, Phase.DECODE))
    pruned = run_pipeline(cascade, "prune-kv{sparsity=0.5}", measure_error=False)[0]
    before, after = _run(cascade, SKIPPING_ARRAY), _run(pruned, SKIPPING_ARRAY)
    attention = [e.name for e in cascade.einsums if "k_all" in " ".join(e.input_tensors)]
    assert attention
    assert after.cycles < before.cycles
    assert after.energy_pj < before.energy_pj


@pytest.mark.parametrize(("stride", "kernel", "pad"), [(1, 3, 1), (2, 3, 1), (2, 1, 0)])
def test_training_einsums_equal_torch_autograd(stride, kernel, pad):
    layer = ConvLayer("t", 2, 3, 4, 4, 4, kernel, kernel, stride, pad)
    cascade = training_cascade(layer)
    verify(cascade)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, layer.in_h, layer.in_w)).astype(np.float32)
    w = rng.standard_normal((4, 3, kernel, kernel)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dyu = np.zeros((2, 4, 4 * stride, 4 * stride), np.float32)
    dyu[:, :, ::stride, ::stride] = dy
    feeds = {"X": x, "dY": dy, "dYu": dyu, "W_ff": w, "W_bp": w[:, :, ::-1, ::-1].copy()}
    got = interpret(cascade, feeds, keep_intermediates=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(got["Y"], yt.detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(got["dX"], xt.grad.numpy(), atol=1e-4)
    np.testing.assert_allclose(got["dW"], wt.grad.numpy(), atol=1e-4)


def _sat_module():
    spec = importlib.util.spec_from_file_location("sat", ROOT / "examples" / "papers" / "sat.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAT_CASES = yaml.safe_load((ROOT / "tests" / "validation" / "sat.yaml").read_text())["cases"]


@pytest.mark.parametrize("case", [c for c in SAT_CASES if "cnn" in c["id"]], ids=lambda c: c["id"])
def test_sat_2of8_training_speedup_matches_the_paper(case):
    result = _sat_module().run_case(case["inputs"])
    assert result.speedup == pytest.approx(case["expected"]["speedup"], rel=case["tolerance"])
    assert result.pass_speedup("WU") == pytest.approx(1.0)  # weight gradients stay dense
    for name in ("FF", "BP"):
        assert 1.0 < result.pass_speedup(name) <= 4.0  # at most M/N = 4
