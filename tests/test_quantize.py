"""Quantization passes and number formats: error bounds, exact grids, BitMoD selection, budgets,
and quantized cascades that still verify, print/parse and run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import codesign
from codesign.errors import InputError
from codesign.ir import (
    Cascade,
    DType,
    QuantFormat,
    Quantization,
    Role,
    interpret,
    parse_cascade,
    print_cascade,
    verify,
)
from codesign.ir.inputs import sample_inputs
from codesign.passes import numerics as nm
from codesign.passes import quantized_weight_bits, run_pipeline
from codesign.passes.mixed_precision import MixedPrecisionOptions, allocate_bits
from codesign.passes.quantize import (
    ActivationOptions,
    Calibration,
    activation_range,
    quantizable_weights,
)
from tests.ir_cases import conv_cascade, transformer_cascade
from tests.test_passes import mlp

ROOT = Path(__file__).resolve().parents[1]


# -- IR record ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "quant",
    [
        Quantization(QuantFormat.INT, axis=0, group_size=128, zero_point=True),
        Quantization(QuantFormat.INT),
        Quantization(QuantFormat.MX, axis=1, group_size=32, scale_dtype=DType.E8M0),
        Quantization(QuantFormat.BITMOD, axis=1, group_size=128, scale_dtype=DType.FP8_E4M3),
        Quantization(QuantFormat.TERNARY, axis=1),
    ],
)
def test_quantization_record_round_trips_through_printer_and_parser(quant):
    cascade = mlp(np.random.default_rng(0))
    w = cascade.tensor("w0")
    tensors = tuple(
        dataclasses.replace(t, dtype=DType.I4, quant=quant) if t is w else t
        for t in cascade.tensors
    )
    quantized = Cascade(cascade.name, tensors, cascade.einsums)
    text = print_cascade(quantized)
    assert "quant{format=" + quant.format.value in text
    assert parse_cascade(text) == quantized
    assert parse_cascade(text) != cascade  # the record takes part in equality
    verify(quantized)


def test_scale_bytes_count_groups_scales_and_zero_points():
    spec = mlp(np.random.default_rng(0), dims=(256, 64, 8)).tensor("w0")
    q = dataclasses.replace(
        spec, dtype=DType.I4, quant=Quantization(QuantFormat.INT, 0, 128, DType.F16, True)
    )
    groups = 2 * 64
    assert q.scale_bytes == groups * (16 + 4) // 8
    assert q.storage_bytes == 256 * 64 // 2 + q.scale_bytes


def test_verifier_rejects_quantization_axis_outside_tensor():
    cascade = mlp(np.random.default_rng(0))
    bad = tuple(
        dataclasses.replace(t, quant=Quantization(QuantFormat.INT, axis=5))
        if t.name == "w0" else t
        for t in cascade.tensors
    )  # fmt: skip
    with pytest.raises(codesign.ir.VerifyError, match="axis"):
        verify(Cascade(cascade.name, bad, cascade.einsums))


# -- INTn bound --------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(1, 8),
    symmetric=st.booleans(),
    group=st.sampled_from([1, 3, 8, 32, 128, None]),
    rows=st.integers(1, 6),
    cols=st.integers(1, 300),
    seed=st.integers(0, 2**16),
    spread=st.floats(1e-3, 1e3),
    scale_dtype=st.sampled_from([DType.F32, DType.F16, DType.FP8_E4M3, DType.E8M0]),
)
def test_intn_group_error_never_exceeds_half_scale(
    bits, symmetric, group, rows, cols, seed, spread, scale_dtype
):
    if symmetric and bits == 1:
        bits = 2  # symmetric 1-bit is binary (sign * absmean); no half-step bound, tested below
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols)) * spread + rng.normal() * spread
    # a scale type saturates at its largest value (448 for fp8e4m3): stay within its range
    assume(scale_dtype is not DType.FP8_E4M3 or 2 * np.max(np.abs(w)) <= 448)
    deq, scales = nm.apply_groups(
        w, 1, group, lambda b: nm.int_block(b, bits, symmetric, scale_dtype)
    )
    g = group or cols
    per_element = np.repeat(scales, g, axis=1)[:, :cols]
    assert np.all(np.abs(w - deq) <= per_element / 2 * (1 + 1e-12))
    for k in range(0, cols, g):  # at most 2^bits distinct levels per group
        for row in deq[:, k : k + g]:
            assert len(np.unique(row)) <= 2**bits


def test_binary_int1_is_sign_times_absmean():
    w = np.array([[0.5, -1.0, 2.0, -0.5]])
    deq, scale = nm.int_block(w, 1, True, DType.F32)
    assert scale[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(deq, [[1.0, -1.0, 1.0, -1.0]])


def test_ternary_uses_three_levels_of_absmean():
    w = np.random.default_rng(0).standard_normal((4, 64))
    deq, scale = nm.apply_groups(w, None, None, lambda b: nm.ternary_block(b, DType.F32))
    gamma = np.mean(np.abs(w))
    assert scale[0] == pytest.approx(gamma, rel=1e-6)
    assert set(np.round(np.unique(deq) / gamma, 6)) == {-1.0, 0.0, 1.0}


# -- floating-point grids ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "count", "largest", "smallest_subnormal"),
    [
        (nm.FP4_E2M1, 8, 6.0, 0.5),
        (nm.FP3_E2M0, 4, 4.0, None),
        (nm.FP6_E2M3, 32, 7.5, 0.125),
        (nm.FP6_E3M2, 32, 28.0, 0.0625),
        (nm.FP8_E4M3, 127, 448.0, 2.0**-9),
        (nm.FP8_E5M2, 124, 57344.0, 2.0**-16),
    ],
)
def test_float_formats_enumerate_their_exact_grids(fmt, count, largest, smallest_subnormal):
    grid = fmt.grid
    assert len(grid) == count and grid[0] == 0.0 and grid[-1] == largest
    assert np.all(np.diff(grid) > 0)
    if smallest_subnormal is not None:
        assert grid[1] == smallest_subnormal


def test_fp4_grid_is_the_e2m1_value_set():
    assert nm.FP4_E2M1.grid.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


@pytest.mark.parametrize(
    ("x", "expected"), [(0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (2.5, 2.0), (5.0, 4.0),
                        (3.5, 4.0), (-0.75, -1.0), (7.0, 6.0), (100.0, 6.0)],
)  # fmt: skip
def test_fp4_rounds_to_nearest_ties_to_even_code_and_saturates(x, expected):
    assert nm.round_to_grid(np.array([x]), nm.FP4_E2M1.grid)[0] == expected


@pytest.mark.parametrize(
    ("fmt", "name", "limit"),
    [(nm.FP8_E4M3, "float8_e4m3fn", 448.0), (nm.FP8_E5M2, "float8_e5m2", 57344.0),
     (nm.FP6_E2M3, "float6_e2m3fn", 7.5), (nm.FP6_E3M2, "float6_e3m2fn", 28.0),
     (nm.FP4_E2M1, "float4_e2m1fn", 6.0)],
)  # fmt: skip
def test_float_rounding_matches_ml_dtypes_casts(fmt, name, limit):
    ml_dtypes = pytest.importorskip(
        "ml_dtypes", reason="ml_dtypes is an optional cross-check, not a codesign dependency"
    )
    rng = np.random.default_rng(7)
    mids = (fmt.grid[1:] + fmt.grid[:-1]) / 2
    x = np.concatenate([rng.standard_normal(20000) * limit / 4, mids, -mids, fmt.grid])
    x = np.clip(x, -limit, limit).astype(np.float32)
    expected = x.astype(getattr(ml_dtypes, name)).astype(np.float64)
    np.testing.assert_array_equal(nm.round_to_grid(x, fmt.grid), expected)


@pytest.mark.parametrize("fmt", ["fp8e4m3", "fp8e5m2", "fp4e2m1", "fp6e2m3"])
def test_fp_quantized_weights_divided_by_scale_lie_on_the_grid(fmt):
    cascade = mlp(np.random.default_rng(3), dims=(64, 32, 8))
    out, _ = run_pipeline(cascade, f"quantize{{format={fmt},scale=f32}}")
    spec = out.tensor("w0")
    grid = nm.FLOAT_FORMATS[spec.dtype].grid
    w = cascade.tensor("w0").data.astype(np.float64)
    scale = np.max(np.abs(w), axis=0, keepdims=True) / grid[-1]  # per output column
    codes = np.abs(spec.data / scale.astype(np.float32))
    nearest = grid[np.abs(codes[..., None] - grid).argmin(-1)]
    np.testing.assert_allclose(codes, nearest, rtol=1e-5, atol=1e-6)


# -- MX ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["mxfp8", "mxfp6", "mxfp4", "mxint8", "mxfp8e5m2", "mxfp6e3m2"])
def test_mx_blocks_of_32_share_a_power_of_two_scale(fmt):
    cascade = mlp(np.random.default_rng(4), dims=(96, 16, 8))
    out, (report,) = run_pipeline(cascade, f"quantize{{format={fmt}}}")
    spec = out.tensor("w0")
    assert spec.quant == Quantization(QuantFormat.MX, 0, 32, DType.E8M0)
    w = cascade.tensor("w0").data.astype(np.float64)
    element = None if fmt == "mxint8" else nm.FLOAT_FORMATS[spec.dtype]
    for start in range(0, 96, 32):
        block = w[start : start + 32].T  # groups run along the reduction axis (rows)
        deq, scale = nm.mx_block(block, element)
        assert np.all(np.log2(scale) == np.round(np.log2(scale)))
        np.testing.assert_allclose(spec.data[start : start + 32].T, deq, rtol=1e-6)
        grid = nm.MXINT8_GRID if element is None else element.grid
        codes = np.abs(deq / scale)
        assert np.all(np.isin(np.round(codes, 9), np.round(grid, 9)))
    assert spec.scale_bytes == 3 * 16  # one e8m0 byte per block


# -- BitMoD ------------------------------------------------------------------------------------
def test_bitmod_value_sets_are_the_artifacts():
    fp4 = dict(nm.bitmod_values(4))
    base4 = [-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12]
    assert fp4["fp4_er_pos"].tolist() == sorted(base4 + [10])
    assert fp4["fp4_er_neg"].tolist() == sorted(base4 + [-10])
    assert fp4["fp4_ea_pos"].tolist() == sorted(base4 + [16])
    assert fp4["fp4_ea_neg"].tolist() == sorted(base4 + [-16])
    fp3 = dict(nm.bitmod_values(3))
    base3 = [-4, -2, -1, 0, 1, 2, 4]
    assert fp3["fp3_er_pos"].tolist() == sorted(base3 + [3])
    assert fp3["fp3_ea_neg"].tolist() == sorted(base3 + [-6])
    assert all(len(v) == 2**4 for v in fp4.values()) and all(len(v) == 2**3 for v in fp3.values())


@pytest.mark.parametrize("bits", [3, 4])
def test_bitmod_chooses_the_lowest_mse_variant_per_group(bits):
    rng = np.random.default_rng(bits)
    groups = np.concatenate([
        rng.standard_normal((12, 128)), rng.standard_t(3, (12, 128)),
        np.abs(rng.standard_normal((4, 128))), -np.abs(rng.standard_normal((4, 128))),
    ])  # fmt: skip
    deq, scale, choice = nm.bitmod_block(groups, bits, DType.F32)
    variants = nm.bitmod_values(bits)
    for g, row in enumerate(groups):
        errors = []
        for _, values in variants:  # brute force: every value of every variant
            s = np.float32(np.max(np.abs(row)) / np.max(np.abs(values)))
            q = np.array([values[np.argmin((values - x / s) ** 2)] for x in row]) * s
            errors.append(np.mean((q - row) ** 2))
        assert choice[g] == int(np.argmin(errors))
        assert np.mean((deq[g] - row) ** 2) == pytest.approx(min(errors), rel=1e-6)
    assert len(set(choice.tolist())) > 1  # the data exercises more than one variant


def test_bitmod_pass_records_fp4_codes_group_128_and_beats_plain_fp4():
    cascade = mlp(np.random.default_rng(6), dims=(256, 64, 8))
    inputs = sample_inputs(cascade)
    bitmod, (r_bitmod,) = run_pipeline(cascade, "quantize{format=bitmod,bits=4}", inputs)
    _, (r_fp4,) = run_pipeline(cascade, "quantize{format=fp4e2m1,group=128}", inputs)
    spec = bitmod.tensor("w0")
    assert spec.dtype is DType.FP4_E2M1
    assert spec.quant == Quantization(QuantFormat.BITMOD, 0, 128, DType.F16)
    assert r_bitmod.error.rel_l2 < r_fp4.error.rel_l2


# -- quantized cascades ------------------------------------------------------------------------
PIPELINES = [
    "quantize{bits=8}",
    "quantize{bits=4,group=128}",
    "quantize{bits=3,group=16,symmetric=false}",
    "quantize{bits=2,granularity=tensor}",
    "quantize{format=ternary}",
    "quantize{format=fp8e4m3}",
    "quantize{format=fp4e2m1,group=32}",
    "quantize{format=mxfp4}",
    "quantize{format=mxint8}",
    "quantize{format=bitmod,bits=3}",
    "quantize{bits=4,group=32},quantize-activations{bits=8},canonicalize",
    "quantize-activations{bits=6,symmetric=false,calibration=percentile}",
]


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("case", ["mlp", "conv", "transformer"])
def test_quantized_cascade_verifies_prints_parses_and_runs(pipeline, case):
    rng = np.random.default_rng(8)
    cascade = {"mlp": mlp, "conv": conv_cascade, "transformer": transformer_cascade}[case](rng)
    out, reports = run_pipeline(cascade, pipeline)
    verify(out)
    assert parse_cascade(print_cascade(out)) == out
    result = interpret(out, sample_inputs(out))
    assert all(np.all(np.isfinite(v)) for v in result.values())
    assert reports[-1].error is not None and np.isfinite(reports[-1].error.rel_l2)
    quantized = [t for t in out.tensors if t.quant is not None]
    # the transformer case's contractions read no weights: weight passes leave it unchanged
    assert bool(quantized) == bool(quantizable_weights(cascade) or "activations" in pipeline)
    assert all(t.dtype.bits <= 8 for t in quantized)
    assert all(t.data.dtype == np.float32 for t in quantized if t.data is not None)


def test_conv_weight_scales_run_along_the_input_channel_axis():
    out, _ = run_pipeline(conv_cascade(np.random.default_rng(0)), "quantize{bits=4}")
    assert out.tensor("W").quant.axis == 1 and out.tensor("W").dtype is DType.I4


def test_activation_fake_quant_outputs_integer_codes_times_scale():
    cascade = mlp(np.random.default_rng(9))
    out, (report,) = run_pipeline(cascade, "quantize-activations{bits=4}")
    assert len(report.einsums_added) == 2 and set(report.einsums_changed) == {"fc0", "fc1"}
    values = interpret(out, sample_inputs(out), keep_intermediates=True)
    options = ActivationOptions(bits=4)
    scale, lo, hi = activation_range(values["x"], options)
    codes = values["x_q"] / np.float32(scale)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-4)
    assert codes.min() >= lo - 1e-4 and codes.max() <= hi + 1e-4
    assert out.tensor("x_q").dtype is DType.I4 and out.tensor("x_q").quant is not None
    assert "round(min(max(x[d0,d1] / " in print_cascade(out)


def test_percentile_calibration_narrows_the_range_of_outliers():
    x = np.concatenate([np.random.default_rng(0).standard_normal(10000), [1000.0]])
    s_max, _, _ = activation_range(x, ActivationOptions(bits=8))
    s_pct, _, _ = activation_range(
        x, ActivationOptions(bits=8, calibration=Calibration.PERCENTILE, percentile=99.9)
    )
    assert s_max == pytest.approx(1000.0 / 127) and s_pct < s_max / 100


def test_error_decreases_with_bits_on_a_random_mlp():
    cascade = mlp(np.random.default_rng(10), dims=(128, 128, 64, 16), batch=16)
    inputs = sample_inputs(cascade)
    errors = []
    for bits in range(2, 9):
        _, (report,) = run_pipeline(cascade, f"quantize{{bits={bits},group=32}}", inputs)
        errors.append(report.error.rel_l2)
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.02


# -- mixed precision ---------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [2.0, 2.5, 3.0, 4.0, 5.5, 8.0])
def test_greedy_allocation_meets_its_bit_budget(budget):
    cascade = mlp(np.random.default_rng(11), dims=(64, 96, 32, 8))
    options = MixedPrecisionOptions(budget=budget, candidates=(2, 3, 4, 8), group=32)
    allocation = allocate_bits(cascade, options, sample_inputs(cascade))
    assert allocation.average_bits <= budget + 1e-9
    assert set(allocation.as_dict().values()) <= {2, 3, 4, 8}
    if budget >= 8:
        assert set(allocation.as_dict().values()) == {8}
    out, _ = run_pipeline(cascade, f"mixed-precision{{budget={budget},group=32}}")
    codes = sum(t.size * t.dtype.bits for t in out.weights) / sum(t.size for t in out.weights)
    assert codes <= budget + 1e-9
    assert quantized_weight_bits(out) > codes  # scales on top


def test_greedy_allocation_gives_sensitive_layers_more_bits():
    cascade = mlp(np.random.default_rng(12), dims=(64, 64, 64, 8))
    # make the last layer 20x more sensitive: its output feeds the result undamped
    weights = {t.name: t for t in cascade.weights}
    scaled = dataclasses.replace(weights["w0"], data=weights["w0"].data * 0.05)
    cascade = Cascade(
        cascade.name, tuple(scaled if t.name == "w0" else t for t in cascade.tensors),
        cascade.einsums,
    )  # fmt: skip
    options = MixedPrecisionOptions(budget=4.0, candidates=(2, 4, 8), group=0)
    allocation = allocate_bits(cascade, options, sample_inputs(cascade))
    sens = dict(allocation.sensitivity)
    assert all(dict(sens[n])[2] > dict(sens[n])[8] for n in sens)
    assert allocation.average_bits <= 4.0


def test_mixed_precision_budget_below_candidates_is_an_input_error():
    cascade = mlp(np.random.default_rng(0))
    with pytest.raises(InputError, match="below the narrowest"):
        run_pipeline(cascade, "mixed-precision{budget=1.5,candidates=[2,4]}")


# -- bundled model -----------------------------------------------------------------------------
def test_bundled_mlp_onnx_quantizes_with_small_error():
    path = ROOT / "examples" / "models" / "mlp.onnx"
    if not path.exists():
        pytest.skip("examples/models/mlp.onnx not generated (python examples/models/generate.py)")
    cascade = codesign.load(str(path))
    cosines = {}
    for pipeline in ("quantize{bits=8}", "quantize{bits=4,group=128}",
                     "quantize{format=bitmod,bits=4}"):  # fmt: skip
        out, (report,) = run_pipeline(cascade, pipeline)
        verify(out)
        assert all(t.quant is not None for t in out.weights if t.role is Role.WEIGHT
                   and len(t.shape) == 2)  # fmt: skip
        cosines[pipeline] = report.error.cosine
    assert cosines["quantize{bits=8}"] > 0.9999
    assert cosines["quantize{bits=4,group=128}"] > 0.98
    assert cosines["quantize{format=bitmod,bits=4}"] > 0.98
