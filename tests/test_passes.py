"""Pass infrastructure: pipeline text syntax, registry errors, runner/verifier, reports,
pattern rewrites and `canonicalize`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from codesign.errors import InputError
from codesign.ir import (
    Access,
    Affine,
    Binary,
    BinaryOp,
    Cascade,
    Const,
    DType,
    Role,
    Unary,
    UnaryOp,
    VerifyError,
    interpret,
    parse_cascade,
    print_cascade,
    verify,
)
from codesign.ir.builder import CascadeBuilder, var_access
from codesign.ir.inputs import sample_inputs
from codesign.passes import (
    PASSES,
    known_passes,
    make_pass,
    parse_pipeline,
    register_pass,
    run_pipeline,
)
from codesign.passes.canonicalize import ALGEBRA
from codesign.passes.pipeline import RegisteredPass
from codesign.passes.quantize import Granularity, WeightFormat
from codesign.passes.rewrite import PatternMatcher, is_binary, is_const, rewrite_expr
from tests.ir_cases import conv_cascade, transformer_cascade


def mlp(rng: np.random.Generator, dims=(16, 32, 8), batch: int = 4) -> Cascade:
    b = CascadeBuilder("mlp")
    x = b.tensor("x", (batch, dims[0]), role=Role.INPUT)
    for k, (n_in, n_out) in enumerate(zip(dims, dims[1:], strict=False)):
        w = b.tensor(f"w{k}", (n_in, n_out), role=Role.WEIGHT,
                     data=rng.standard_normal((n_in, n_out)) / np.sqrt(n_in))  # fmt: skip
        x = b.matmul(f"fc{k}", x, w)
        if k < len(dims) - 2:
            x = b.unary(f"relu{k}", x, UnaryOp.RELU)
    b.set_role(x, Role.OUTPUT)
    return b.build()


# -- pipeline syntax ---------------------------------------------------------------------------
def test_pipeline_text_parses_to_typed_options_and_prints_back():
    pipeline = parse_pipeline("quantize{bits=4,group=128,scale=f16,symmetric=false},canonicalize")
    quant, canon = pipeline.passes
    assert (quant.name, canon.name) == ("quantize", "canonicalize")
    assert quant.options.bits == 4 and quant.options.group == 128
    assert quant.options.scale is DType.F16 and quant.options.symmetric is False
    assert quant.options.format is WeightFormat.INT
    # canonical text lists only non-default options and parses to the same pipeline
    assert str(pipeline) == "quantize{bits=4,group=128,symmetric=false},canonicalize"
    assert parse_pipeline(str(pipeline)) == pipeline


def test_pipeline_values_typed_as_enum_float_list_and_quoted_string():
    pipeline = parse_pipeline(
        "quantize{format=mxfp4,granularity=tensor,einsums='fc[01]'},"
        "mixed-precision{budget=3.5,candidates=[2, 4, 8]},"
        "quantize-activations{calibration=percentile,percentile=99.9}"
    )
    quant, mixed, act = (p.options for p in pipeline.passes)
    assert quant.format is WeightFormat.MXFP4 and quant.granularity is Granularity.TENSOR
    assert quant.einsums == "fc[01]"
    assert mixed.budget == 3.5 and mixed.candidates == (2, 4, 8)
    assert act.percentile == 99.9
    assert parse_pipeline(str(pipeline)) == pipeline


def test_unknown_pass_fails_listing_known_passes():
    with pytest.raises(InputError) as err:
        parse_pipeline("canonicalize,quantise{bits=4}")
    message = str(err.value)
    assert "quantise" in message and "\n" not in message
    for name in known_passes():
        assert name in message


def test_unknown_option_names_pass_and_lists_its_options():
    with pytest.raises(InputError) as err:
        parse_pipeline("quantize{bitz=4}")
    message = str(err.value)
    assert "quantize" in message and "bitz" in message
    for field in ("format", "bits", "group", "granularity", "symmetric", "scale"):
        assert field in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quantize{bits=four}", "option bits expects int"),
        ("quantize{symmetric=maybe}", "option symmetric expects bool"),
        ("quantize{format=int5}", "option format expects one of int|ternary"),
        ("quantize{scale=f17}", "option scale expects one of"),
        ("mixed-precision{budget=low}", "option budget expects float"),
        ("mixed-precision{candidates=4}", "option candidates expects a list"),
        ("quantize{bits=9}", "bits=9"),
        ("quantize{format=bitmod,bits=5}", "BitMoD takes 3 or 4 bits"),
        ("quantize{granularity=group}", "needs group=N"),
    ],
)
def test_bad_option_value_names_option_and_expected_type(text, expected):
    with pytest.raises(InputError) as err:
        parse_pipeline(text)
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text", ["", "quantize{bits=4", "quantize{bits}", "quantize,,canonicalize", "{bits=4}",
             "quantize{bits=4}canonicalize"],
)  # fmt: skip
def test_malformed_pipeline_is_a_one_line_input_error(text):
    with pytest.raises(InputError) as err:
        parse_pipeline(text)
    assert "\n" not in str(err.value)


def test_make_pass_builds_typed_invocation_without_text():
    item = make_pass("quantize", bits=4, group=64)
    assert str(item) == "quantize{bits=4,group=64}"
    with pytest.raises(InputError, match="pass quantize"):
        make_pass("quantize", bits=0)


def test_register_pass_requires_frozen_options_and_unique_name():
    @dataclass
    class Mutable:
        x: int = 0

    with pytest.raises(TypeError, match="frozen"):
        register_pass("mutable-options", Mutable)
    with pytest.raises(ValueError, match="registered twice"):
        register_pass("canonicalize", PASSES["canonicalize"].options)(lambda c, o, x: c)


# -- runner and reports ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _NoOptions:
    pass


def test_run_pipeline_verifies_after_each_pass_and_names_the_pass(monkeypatch):
    def breaks_ir(cascade, options, context):
        first = cascade.einsums[0]
        bad = dataclasses.replace(first, output=Access(first.output.tensor, ()))
        return cascade.replace_einsums((bad,) + cascade.einsums[1:])

    monkeypatch.setitem(PASSES, "break-ir", RegisteredPass("break-ir", _NoOptions, breaks_ir, ""))
    cascade = mlp(np.random.default_rng(0))
    with pytest.raises(VerifyError, match="after pass break-ir"):
        run_pipeline(cascade, "canonicalize,break-ir")
    run_pipeline(cascade, "break-ir", verify_each=False)  # the caller may opt out


def test_report_records_dtype_changes_bytes_and_error():
    cascade = mlp(np.random.default_rng(1), dims=(256, 64, 8))
    out, (report,) = run_pipeline(cascade, "quantize{bits=4,group=128}")
    changes = {c.name: c for c in report.dtype_changes}
    assert set(changes) == {"w0", "w1"}
    assert all(c.dtype_before is DType.F32 and c.dtype_after is DType.I4 for c in changes.values())
    # w0: 256x64 int4 codes + one f16 scale per 128 reduction elements per column
    assert changes["w0"].bytes_before == 256 * 64 * 4
    assert changes["w0"].bytes_after == 256 * 64 // 2 + 2 * 64 * 2
    assert report.weight_bytes_before == (256 * 64 + 64 * 8) * 4
    assert report.weight_bytes_after == sum(t.storage_bytes for t in out.weights)
    assert report.einsums_added == report.einsums_removed == report.einsums_changed == ()
    assert report.error is not None and 0 < report.error.rel_l2 < 0.2
    assert 0.98 < report.error.cosine < 1.0
    assert "quantize{bits=4,group=128}" in report.summary()


def test_report_error_is_cumulative_against_the_unmodified_cascade():
    cascade = mlp(np.random.default_rng(2))
    inputs = sample_inputs(cascade, seed=3)
    _, reports = run_pipeline(cascade, "quantize{bits=4},canonicalize", sample_inputs=inputs)
    assert reports[0].error == reports[1].error  # canonicalize is exact
    assert reports[0].error.max_abs > 0


def test_run_pipeline_on_weights_without_data_reports_no_error():
    cascade = mlp(np.random.default_rng(0))
    shapes_only = Cascade(
        cascade.name,
        tuple(dataclasses.replace(t, data=None) for t in cascade.tensors),
        cascade.einsums,
    )
    out, (report,) = run_pipeline(shapes_only, "quantize{bits=4,group=8}")
    assert report.error is None
    assert out.tensor("w0").dtype is DType.I4 and out.tensor("w0").quant is not None


# -- pattern rewrites and canonicalize ---------------------------------------------------------
def test_pattern_matcher_first_rule_wins_and_matchers_add():
    first = PatternMatcher(((lambda e: is_const(e), lambda e: Const(1.0)),))
    second = PatternMatcher(((lambda e: is_const(e), lambda e: Const(2.0)),))
    assert (first + second).rewrite(Const(5.0)) == Const(1.0)
    assert (second + first).rewrite(Const(5.0)) == Const(2.0)
    assert first.rewrite(Access("x", ())) is None
    assert len((first + second).rules) == 2


def test_algebra_rules_fold_identities_to_a_fixed_point():
    x = Access("x", (Affine.var("i"),))
    expr = Binary(BinaryOp.ADD,
                  Binary(BinaryOp.MUL, Const(1.0), Unary(UnaryOp.NEG, Unary(UnaryOp.NEG, x))),
                  Binary(BinaryOp.SUB, Const(2.0), Const(2.0)))  # fmt: skip
    assert rewrite_expr(expr, ALGEBRA) == x
    # x * 0 is not folded: it is not exact for inf/nan inputs
    zero = Binary(BinaryOp.MUL, x, Const(0.0))
    assert rewrite_expr(zero, ALGEBRA) == zero
    assert is_binary(zero, BinaryOp.MUL)


def _views_cascade() -> Cascade:
    """x -> transpose -> transpose -> (x*1 + 0) -> relu, plus a dead branch."""
    b = CascadeBuilder("views")
    x = b.tensor("x", (2, 3, 4), role=Role.INPUT)
    t1 = b.transpose("t1", x, (0, 2, 1))
    t2 = b.transpose("t2", t1, (0, 2, 1))
    y = b.map("scale", [t2], lambda a: Binary(BinaryOp.ADD, Binary(BinaryOp.MUL, a, Const(1.0)),
                                              Const(0.0)))  # fmt: skip
    b.unary("dead", y, UnaryOp.EXP)
    out = b.tensor("out", (2, 3, 4), role=Role.OUTPUT)
    b.einsum("relu", var_access(out, "ijk"), Unary(UnaryOp.RELU, var_access(y, "ijk")),
             dict(i=2, j=3, k=4), op="Relu")  # fmt: skip
    return b.build()


GOLDEN_VIEWS = """\
cascade views {
  input x: f32[D0=2,D1=3,D2=4]
  output out: f32[D0=2,D1=3,D2=4]
  relu (Relu): out[i,j,k] = relu(x[i,j,k])
}
"""


def test_canonicalize_composes_double_transpose_folds_identities_and_drops_dead_code():
    cascade = _views_cascade()
    out, (report,) = run_pipeline(cascade, "canonicalize")
    assert print_cascade(out) == GOLDEN_VIEWS
    assert report.error is not None and report.error.max_abs == 0.0
    assert set(report.einsums_removed) == {"t1", "t2", "scale", "dead"}


def test_canonicalize_options_switch_rewrites_off():
    cascade = _views_cascade()
    out, _ = run_pipeline(cascade, "canonicalize{views=false,dead=false}")
    assert [e.name for e in out.einsums] == [e.name for e in cascade.einsums]
    assert out.einsum("scale").is_view  # x*1+0 folded to a copy


def test_canonicalize_composes_transpose_into_a_contraction_operand():
    b = CascadeBuilder("tmm")
    a = b.tensor("a", (4, 3), role=Role.INPUT)
    w = b.tensor("w", (5, 4), role=Role.WEIGHT, data=np.arange(20.0).reshape(5, 4))
    wt = b.transpose("wt", w, (1, 0))
    y = b.matmul("y", b.transpose("at", a, (1, 0)), wt)
    b.set_role(y, Role.OUTPUT)
    cascade = b.build()
    out, (report,) = run_pipeline(cascade, "canonicalize")
    assert [e.name for e in out.einsums] == ["y"]
    assert print_cascade(out).splitlines()[-2].endswith("= sum[k:4] a[k,d0] * w[d1,k]")
    assert report.error.max_abs == 0.0


@pytest.mark.parametrize("case", [conv_cascade, transformer_cascade])
def test_canonicalize_preserves_semantics_of_ir_cases(case):
    cascade = case(np.random.default_rng(5))
    out, (report,) = run_pipeline(cascade, "canonicalize")
    verify(out)
    assert parse_cascade(print_cascade(out)) == out
    inputs = sample_inputs(cascade)
    ref, got = interpret(cascade, inputs), interpret(out, inputs)
    for name in ref:
        np.testing.assert_array_equal(ref[name], got[name])
    # reshapes (div/mod) are not composed: the composition would not be affine
    assert len(out.einsums) <= len(cascade.einsums)


def test_a_pass_that_finds_nothing_to_rewrite_says_so_and_one_that_fuses_does_not():
    cascade = mlp(np.random.default_rng(3), dims=(64, 32, 8))
    out, (attention, fuse) = run_pipeline(cascade, "attention-1pass,fuse-elementwise")
    assert not attention.changed
    assert attention.summary() == (
        "attention-1pass: no change (nothing in the model for this pass to rewrite)"
    )
    assert out.groups and fuse.groups_changed and fuse.changed
    assert "no change" not in fuse.summary()
