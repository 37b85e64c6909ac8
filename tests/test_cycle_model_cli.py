"""SCALE-Sim files through `codesign map --model cycle` reproduce SCALE-Sim's compute cycles."""

from __future__ import annotations

import json

import pytest

from codesign.cli.main import main
from codesign.frontends.layers import gemm
from codesign.frontends.scalesim import load_topology, load_topology_cascade
from codesign.hwmodels.registry import load_hardware
from codesign.ir import verify
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Role
from codesign.mapper.from_ir import problem_from_einsum
from codesign.sim.systolic import SystolicArray, simulate_gemm
from codesign.sim.systolic_cost import SystolicCostModel, gemm_view
from tests.validation import load_cases

CFG = "tests/data/scalesim/ws_32x32.cfg"
CASES = {c["id"]: c for c in load_cases("scalesim")}


def _map(capsys, *argv: str) -> dict:
    assert main(["map", *argv, "--json", "-", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_scalesim_files_reproduce_the_validation_cycles(capsys):
    doc = _map(capsys, "tests/data/scalesim/gemm.csv", "--hw", CFG, "--model", "cycle")
    cycles = {e["name"]: e["cycles"] for e in doc["einsums"]}
    assert cycles["g64"] == CASES["ws32x32_gemm64"]["expected"]["compute_cycles"]
    assert doc["einsums"][0]["utilization"] == pytest.approx(
        CASES["ws32x32_gemm64"]["expected"]["utilization"], abs=1e-6)


def test_conv_topology_rows_keep_scalesim_output_size_and_cycles(capsys):
    cascade = load_topology_cascade("tests/data/scalesim/resnet_like.csv")
    verify(cascade)
    array = load_hardware(CFG)
    layers = load_topology("tests/data/scalesim/resnet_like.csv")
    model = SystolicCostModel()
    for layer, einsum in zip(layers, cascade.einsums, strict=True):
        problem = problem_from_einsum(einsum, cascade)
        expected = simulate_gemm(layer.m, layer.n, layer.k, SystolicArray(32, 32, array.dataflow))
        assert model.evaluate(problem, None, array).cycles == expected.compute_cycles


def test_cycle_model_runs_on_codesign_yaml_arrays(capsys):
    doc = _map(capsys, "gemm:M=128,N=256,K=512", "--hw", "examples/hw/tpu_like.yaml",
               "--model", "cycle")
    row = doc["einsums"][0]
    assert row["compute_cycles"] == CASES["ws32x32_gemm128x256x512"]["expected"][
        "compute_cycles"]
    # tpu_like's DRAM moves 8 words per cycle: this layer waits on it
    assert row["bound"] == "dram" and row["cycles"] > row["compute_cycles"]


def test_gemm_view_treats_shared_dims_as_batches_of_gemms():
    b = CascadeBuilder("attn")
    q = b.tensor("Q", (2, 4, 16, 8), role=Role.INPUT)
    k = b.tensor("K", (2, 4, 8, 32), role=Role.INPUT)
    b.matmul("qk", q, k)
    cascade = b.build()
    problem = problem_from_einsum(cascade.einsums[0], cascade)
    assert gemm_view(problem) == (8, 16, 32, 8)
    cascade = gemm(64, 48, 80)
    assert gemm_view(problem_from_einsum(cascade.einsums[0], cascade)) == (1, 64, 48, 80)


def test_cycle_model_needs_a_dataflow(capsys, tmp_path):
    text = open("examples/hw/tpu_like.yaml").read().replace("dataflow: ws\n", "")
    (tmp_path / "ert").mkdir()
    for name in ("tpu_like_zigzag.yaml",):
        (tmp_path / "ert" / name).write_text(open(f"examples/hw/ert/{name}").read())
    (tmp_path / "hw.yaml").write_text(text)
    assert main(["map", "gemm:M=8,N=8,K=8", "--hw", str(tmp_path / "hw.yaml"), "--model",
                 "cycle", "-q"]) == 2
    assert "dataflow" in capsys.readouterr().err


def test_malformed_scalesim_config_is_a_one_line_error(capsys, tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("[architecture_presets]\nArrayHeight: -4\n")
    assert main(["map", "gemm:M=8,N=8,K=8", "--hw", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "bad.cfg" in err and err.count("\n") == 1
