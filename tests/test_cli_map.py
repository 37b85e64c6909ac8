"""`codesign map`: the report, mappings in and out, baselines, plots and one-line errors."""

from __future__ import annotations

import json

import pytest

from codesign.cli.main import main

EYERISS = "examples/hw/eyeriss_like.yaml"
LAYER = "conv:C=3,K=32,P=112,Q=112,R=3,S=3,stride=2"


def run_json(capsys, *argv: str) -> dict:
    assert main(["map", *argv, "--json", "-", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_given_timeloop_mapping_reproduces_the_exercise_golden_output(capsys):
    doc = run_json(capsys, LAYER, "--hw", EYERISS, "--mapping",
                   "tests/data/mappings/eyeriss_like_timeloop.yaml")
    conv = doc["einsums"][0]
    assert conv["cycles"] == 86016
    assert conv["utilization"] == pytest.approx(0.75)
    assert doc["total"]["energy_pj"] == pytest.approx(59.28e6, rel=0.01)
    assert set(conv) >= {"name", "macs", "cycles", "energy_pj", "utilization", "bound"}
    assert set(doc["total"]) >= {"cycles", "energy_pj", "macs"}


def test_mapping_out_then_in_evaluates_to_the_same_cost(capsys, tmp_path):
    first = run_json(capsys, "gemm:M=64,N=48,K=80", "--hw", EYERISS, "--evaluations", "3000",
                     "--mapping-out", str(tmp_path))
    assert (tmp_path / "gemm.yaml").exists()
    again = run_json(capsys, "gemm:M=64,N=48,K=80", "--hw", EYERISS, "--mapping", str(tmp_path))
    assert again["total"] == first["total"]


def test_mapper_is_deterministic_for_a_seed(capsys):
    args = ("gemm:M=96,N=64,K=128", "--hw", EYERISS, "--evaluations", "2000", "--seed", "3")
    assert run_json(capsys, *args)["total"] == run_json(capsys, *args)["total"]


def test_baseline_reports_speedup_and_energy_ratio(capsys, tmp_path):
    plot = tmp_path / "map.png"
    doc = run_json(capsys, "gemm:M=128,N=128,K=128", "--hw", "examples/hw/tpu_like.yaml",
                   "--baseline", EYERISS, "--evaluations", "2000", "--plot", str(plot))
    assert doc["speedup"] == pytest.approx(doc["baseline"]["total"]["cycles"]
                                           / doc["total"]["cycles"])
    assert doc["energy_ratio"] > 0
    assert plot.stat().st_size > 10_000


def test_table_output_names_totals_and_energy_breakdown(capsys):
    assert main(["map", "gemm:M=32,N=32,K=32", "--hw", EYERISS, "--evaluations", "500",
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "total:" in out and "energy by level:" in out and "DRAM" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gemm:M=8,N=8,K=8", "--hw", "missing.yaml"], "missing.yaml"),
        (["gemm:M=8,N=8", "--hw", EYERISS], "missing field K"),
        (["gemm:M=8,N=8,K=8", "--hw", EYERISS, "--model", "magic"], "unknown"),
        (["gemm:M=8,N=8,K=8", "--hw", EYERISS, "--max-factor", "DRAM:m"], "--max-factor"),
        (["gemm:M=8,N=8,K=8", "--hw", EYERISS, "--min-utilization", "1.5"], "min-utilization"),
        (["nope.onnx", "--hw", EYERISS], "no such file"),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_2(capsys, argv, message):
    assert main(["map", *argv, "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_hardware_yaml_names_file_and_field(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(EYERISS).read().replace("clock_ghz: 1.0", "clock_ghz: 1.0\nturbo: 1"))
    assert main(["map", "gemm:M=8,N=8,K=8", "--hw", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "turbo" in err and err.count("\n") == 1
