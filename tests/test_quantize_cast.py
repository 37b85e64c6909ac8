"""FP16 / BF16 as `quantize` storage formats: plain casts rounded as NumPy float16 and
ml_dtypes bfloat16 round, interpreted with the rounded values, priced at 16 bits per weight."""

from __future__ import annotations

import numpy as np
import pytest

from codesign.ir import DType, interpret, parse_cascade, print_cascade, verify
from codesign.passes import quantized_weight_bits, run_pipeline
from codesign.passes.pipeline import parse_pipeline
from codesign.passes.quantize import WeightFormat
from tests.test_passes import mlp


def _edge_and_random_floats() -> np.ndarray:
    rng = np.random.default_rng(11)
    scaled = rng.standard_normal(50_000) * 10.0 ** rng.integers(-40, 38, 50_000)
    edges = [0.0, -0.0, 1e-45, -1e-45, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 65504.0, 65520.0, 3.4e38,
             np.inf, -np.inf]  # fmt: skip
    with np.errstate(over="ignore"):
        return np.concatenate([scaled, edges]).astype(np.float32)


def test_bf16_rounding_matches_ml_dtypes_bit_for_bit():
    ml_dtypes = pytest.importorskip(
        "ml_dtypes", reason="ml_dtypes comes with onnx (a core dependency)"
    )
    x = _edge_and_random_floats()
    with np.errstate(over="ignore"):
        expected = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(DType.BF16.round(x), expected)
    assert np.isnan(DType.BF16.round(np.array([np.nan], dtype=np.float32)))[0]


def test_f16_rounding_is_numpy_float16():
    x = _edge_and_random_floats()
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(DType.F16.round(x), x.astype(np.float16))


@pytest.mark.parametrize(("text", "dtype"), [("fp16", DType.F16), ("bf16", DType.BF16)])
def test_cast_formats_spell_in_pipelines_and_store_rounded_weights(text, dtype):
    pipeline = parse_pipeline(f"quantize{{format={text}}}")
    assert pipeline.passes[0].options.format is WeightFormat(text)
    cascade = mlp(np.random.default_rng(5), dims=(64, 32, 8))
    out, reports = run_pipeline(cascade, f"quantize{{format={text}}}")
    verify(out)
    assert parse_cascade(print_cascade(out)) == out
    for name in ("w0", "w1"):
        spec = out.tensor(name)
        assert spec.dtype is dtype and spec.quant is None  # a cast: no scales
        np.testing.assert_array_equal(spec.data, dtype.round(cascade.tensor(name).data))
    assert quantized_weight_bits(out) == 16.0
    assert quantized_weight_bits(cascade) == 32.0
    error = reports[-1].error
    assert error is not None and 0 < error.rel_l2 < (1e-3 if dtype is DType.F16 else 1e-2)


def test_interpreter_computes_with_the_rounded_weights():
    cascade = mlp(np.random.default_rng(6), dims=(16, 8), batch=3)
    out, _ = run_pipeline(cascade, "quantize{format=bf16}")
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    result = interpret(out, {"x": x})
    (value,) = result.values()
    w = DType.BF16.round(cascade.tensor("w0").data.astype(np.float32))
    np.testing.assert_allclose(value, x @ w, rtol=1e-5, atol=1e-6)
    plain = next(iter(interpret(cascade, {"x": x}).values()))
    assert not np.allclose(value, plain, rtol=1e-6, atol=0)  # the rounding is visible


def test_bf16_output_tensors_round_in_the_interpreter():
    from codesign.ir.interpreter import _cast

    x = _edge_and_random_floats()[:1000]
    np.testing.assert_array_equal(_cast(x, DType.BF16), DType.BF16.round(x))


def test_readme_headline_lut_tc_against_fp16_weights(capsys):
    import json

    from codesign.cli.main import main

    argv = ["map", "examples/models/mlp.onnx", "--hw", "examples/hw/lut_tc.yaml",
            "--passes", "quantize{bits=2,group=128}", "--baseline", "examples/hw/a100_fp16.yaml",
            "--json", "-", "-q"]  # fmt: skip
    assert main([*argv, "--baseline-passes", "quantize{format=fp16}"]) == 0
    fp16 = json.loads(capsys.readouterr().out)
    assert main([*argv, "--baseline-passes", "none"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    # README: 98 cycles / 4.55 uJ vs 395 cycles / 19.1 uJ (4.0x); FP32 weights: 719 (7.3x)
    assert round(fp16["total"]["cycles"]) == round(fp32["total"]["cycles"]) == 98
    base = (fp16["baseline"]["total"]["cycles"], fp32["baseline"]["total"]["cycles"])
    assert tuple(round(c) for c in base) == (395, 719)
    assert round(fp16["speedup"], 1) == 4.0 and round(fp32["speedup"], 1) == 7.3
    assert fp16["baseline"]["total"]["energy_pj"] / 1e6 == pytest.approx(19.1, abs=0.05)
