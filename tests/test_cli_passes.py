"""`--passes PIPELINE` on `codesign map | stats | run`: pass reports, their effect on costs and
sizes, and one-line errors (exit 2) for bad pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesign.cli.main import main

MLP = "examples/models/mlp.onnx"
LUT_TC = "examples/hw/lut_tc.yaml"
A100 = "examples/hw/a100_fp16.yaml"
BITMOD = "examples/hw/bitmod_gen.yaml"
W2 = "quantize{bits=2,group=128}"
W4 = "quantize{bits=4,group=128}"
MLP_FP32_WEIGHT_BYTES = 940584  # 235146 float32 parameters


def run_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json", "-"]) == 0
    return json.loads(capsys.readouterr().out)


def map_json(capsys, *argv: str) -> dict:
    return run_json(capsys, "map", MLP, "-q", *argv)


def command_argv(command: str) -> list[str]:
    return [command, MLP, *(["--hw", LUT_TC, "-q"] if command == "map" else [])]


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["map", "stats", "run"])
@pytest.mark.parametrize(
    "pipeline, expected",
    [
        ("quantise", ["unknown pass 'quantise'", "known passes:", "prune-nm", "quantize"]),
        ("quantize{bitz=4}", ["pass quantize", "unknown option 'bitz'", "options:", "group"]),
        ("quantize{bits=four}", ["pass quantize", "option bits expects int", "'four'"]),
        ("quantize{format=int7}", ["option format expects one of", "bitmod"]),
        ("quantize{bits=9}", ["pass quantize", "bits=9"]),
        ("prune-nm{n=3,m=2}", ["pass prune-nm", "impossible N:M 3:2"]),
        ("prune{sparsity=1.5}", ["pass prune", "sparsity=1.5"]),
        ("quantize{bits=4", ["expected }", "column"]),
        ("", ["names no pass"]),
    ],
)
def test_bad_pipeline_exits_2_with_one_line_naming_the_fault(capsys, command, pipeline, expected):
    assert main([*command_argv(command), "--passes", pipeline]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("codesign: error: --passes: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert all(text in captured.err for text in expected), captured.err
    assert captured.out == ""


@pytest.mark.parametrize("command", ["map", "stats", "run"])
def test_pass_that_cannot_apply_to_the_model_exits_2_with_one_line(capsys, command):
    assert main([*command_argv(command), "--passes", "prune-kv{sparsity=0.5}"]) == 2
    err = capsys.readouterr().err
    assert "pass prune-kv" in err and "k_cache" in err and err.count("\n") == 1


def test_bad_baseline_pipeline_names_its_own_flag(capsys):
    argv = ["map", MLP, "--hw", LUT_TC, "--baseline", A100, "--baseline-passes", "prune-nm{n=5}"]
    assert main([*argv, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("codesign: error: --baseline-passes: pass prune-nm")
    assert err.count("\n") == 1


def test_baseline_passes_without_baseline_is_an_error(capsys):
    assert main(["map", MLP, "--hw", LUT_TC, "--baseline-passes", "none", "-q"]) == 2
    assert "--baseline-passes needs --baseline" in capsys.readouterr().err


# -- map ---------------------------------------------------------------------------------------
def mac_cycles(doc: dict) -> float:
    return sum(e["cycles"] for e in doc["einsums"] if e["kind"] == "mac")


def test_map_low_bit_weights_run_faster_and_cheaper_on_the_lut_tensor_core(capsys):
    fp32 = map_json(capsys, "--hw", LUT_TC)
    w4 = map_json(capsys, "--hw", LUT_TC, "--passes", W4)
    w2 = map_json(capsys, "--hw", LUT_TC, "--passes", W2)
    # FP32 weights fall back to the host's FP16 MMA; INT2/INT4 weights run on the LUT units,
    # one bit-serial step per weight bit, and move 8-16x fewer weight bytes
    assert w2["total"]["cycles"] < w4["total"]["cycles"] < fp32["total"]["cycles"] / 3
    assert w2["total"]["energy_pj"] < w4["total"]["energy_pj"] < fp32["total"]["energy_pj"] / 3
    assert mac_cycles(w2) < mac_cycles(w4)
    assert "passes" not in fp32
    assert [p["pass"] for p in w2["passes"]] == [W2]
    assert w2["passes"][0]["weight_bytes_before"] == MLP_FP32_WEIGHT_BYTES
    assert {t["dtype_after"] for t in w2["passes"][0]["tensors"]} == {"i2"}


def test_map_baseline_takes_the_same_passes_unless_told_otherwise(capsys):
    lut = ("--hw", LUT_TC, "--passes", W2, "--baseline", A100)
    same = map_json(capsys, *lut)
    unmodified = map_json(capsys, *lut, "--baseline-passes", "none")
    a100_fp32 = map_json(capsys, "--hw", A100)
    a100_w2 = map_json(capsys, "--hw", A100, "--passes", W2)
    assert same["baseline"]["total"] == a100_w2["total"]
    assert unmodified["baseline"]["total"] == a100_fp32["total"]
    assert "passes" not in unmodified["baseline"]
    assert unmodified["total"] == same["total"]
    assert unmodified["speedup"] > same["speedup"] > 1.0


def test_map_measures_pass_error_only_when_asked(capsys):
    cheap = map_json(capsys, "--hw", LUT_TC, "--passes", W2)
    measured = map_json(capsys, "--hw", LUT_TC, "--passes", W2, "--pass-error")
    assert cheap["passes"][0]["error"] is None
    error = measured["passes"][0]["error"]
    assert 0.5 < error["cosine"] < 0.99 and error["rel_l2"] > 0.1
    assert measured["total"] == cheap["total"]


def test_map_table_output_starts_with_the_pass_report(capsys):
    assert main(["map", MLP, "--hw", LUT_TC, "--passes", W2, "-q"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[:2]
    assert head[0].startswith("passes (error not measured")
    assert head[1].startswith(f"{W2}: ") and f"{MLP_FP32_WEIGHT_BYTES} -> 64380 B" in head[1]
    assert "total:" in out


def test_bitmod_preset_prices_weights_at_the_width_the_passes_set(capsys):
    pinned = map_json(capsys, "--hw", BITMOD)  # the YAML's precision.weight_bits=3.0625
    cycles = {}
    for pipeline in ("quantize{bits=8}", "quantize{format=bitmod,bits=4}",
                     "quantize{format=bitmod,bits=3}", W2):  # fmt: skip
        assert main(["map", MLP, "--hw", BITMOD, "--passes", pipeline, "-q", "--json", "-"]) == 0
        captured = capsys.readouterr()
        assert "precision.weight_bits=3.0625 replaced" in captured.err
        cycles[pipeline] = json.loads(captured.out)["total"]["cycles"]
    ordered = list(cycles.values())
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == len(ordered)
    # the pinned 3.0625 bits include the scale overhead the IR's 3-bit dtype leaves out
    assert cycles["quantize{format=bitmod,bits=3}"] == pytest.approx(
        pinned["total"]["cycles"], rel=0.05
    )


def test_pipeline_that_keeps_dtypes_leaves_the_pinned_width(capsys):
    pinned = map_json(capsys, "--hw", BITMOD)
    assert main(["map", MLP, "--hw", BITMOD, "--passes", "canonicalize", "-q", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["total"] == pinned["total"] and captured.err == ""


# -- stats -------------------------------------------------------------------------------------
def test_stats_reports_weight_bytes_after_the_passes(capsys):
    plain = run_json(capsys, "stats", MLP)
    w4 = run_json(capsys, "stats", MLP, "--passes", W4)
    assert plain["total"]["weight_bytes"] == MLP_FP32_WEIGHT_BYTES
    assert plain["total"]["weight_bits_per_param"] == pytest.approx(32.0)
    # 4-bit codes + one f16 scale per 128 weights; the biases stay f32
    assert w4["total"]["weight_bytes"] == 123068 == w4["passes"][0]["weight_bytes_after"]
    assert 4.0 < w4["total"]["weight_bits_per_param"] < 4.3
    assert w4["total"]["macs"] == plain["total"]["macs"]
    assert w4["passes"][0]["error"] is None


def test_stats_table_shows_the_pass_report_and_smaller_weights(capsys):
    assert main(["stats", MLP, "--passes", "prune-nm{n=2,m=4}", "--pass-error"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("passes:\nprune-nm: ") and "cos 0." in out  # n=2,m=4: the defaults
    # half the values kept, plus 2 bits of position metadata each: 17 bits per parameter
    assert "(500.42kB of weights" in out


# -- run ---------------------------------------------------------------------------------------
def test_run_reports_the_error_of_each_pass_against_the_loaded_model(capsys):
    w8 = run_json(capsys, "run", MLP, "--passes", "quantize{bits=8}")
    w2 = run_json(capsys, "run", MLP, "--passes", W2)
    exact = run_json(capsys, "run", MLP, "--passes", "canonicalize")
    e8, e2 = w8["passes"][0]["error"], w2["passes"][0]["error"]
    assert 0.0 < e8["rel_l2"] < 0.05 < e2["rel_l2"]
    assert e8["cosine"] > 0.999 > e2["cosine"]
    assert exact["passes"][0]["error"]["max_abs"] == 0.0
    assert "onnxruntime_rel_error" not in w2


def test_run_table_output_prints_error_and_skips_onnxruntime(capsys):
    assert main(["run", MLP, "--passes", W4]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"passes:\n{W4}: ") and "rel L2 0.0981" in out
    assert "logits: shape (8, 10)" in out and "no onnxruntime comparison" in out


def test_run_without_passes_still_compares_with_onnxruntime(capsys):
    doc = run_json(capsys, "run", MLP)
    assert "passes" not in doc and doc["onnxruntime_rel_error"]["logits"] < 1e-5


def test_run_passes_apply_to_the_seeded_weights_of_a_model_without_weight_data(
    capsys, tmp_path: Path
):
    from codesign.frontends import load_model
    from codesign.ir.printer import print_cascade

    ein = tmp_path / "mlp.ein"  # the printed IR carries shapes, not weight values
    ein.write_text(print_cascade(load_model(MLP)))
    doc = run_json(capsys, "run", str(ein), "--passes", "prune-nm{n=2,m=4}")
    report = doc["passes"][0]
    assert report["weight_bytes_after"] < report["weight_bytes_before"]
    assert 0.0 < report["error"]["cosine"] < 1.0
