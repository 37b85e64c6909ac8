"""The IR: printer/parser round trip, verifier, interpreter semantics, statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codesign.errors import InputError
from codesign.ir import (
    Access,
    Affine,
    Binary,
    BinaryOp,
    Const,
    FloorDiv,
    Mod,
    ReduceOp,
    Role,
    Select,
    Unary,
    UnaryOp,
    VerifyError,
    cascade_stats,
    interpret,
    parse_cascade,
    print_cascade,
    verify,
)
from codesign.ir.builder import CascadeBuilder, var_access
from codesign.ir.printer import format_index
from tests.ir_cases import (
    conv_cascade,
    conv_reference,
    maxpool_reference,
    transformer_cascade,
    transformer_reference,
)


# -- printer / parser ---------------------------------------------------------------------------
def test_conv_prints_in_einsum_notation(rng):
    text = print_cascade(conv_cascade(rng))
    assert "conv (Conv): Y[b,m,p,q] = sum[c:3,r:3,s:3] X[b,c,2p+r-1,2q+s-1] * W[m,c,r,s]" in text
    assert "pool (MaxPool): pool[b,m,p,q] = max[r:3,s:3] relu[b,m,2p+r-1,2q+s-1]" in text


@pytest.mark.parametrize("make", [conv_cascade, transformer_cascade])
def test_printed_ir_parses_back_to_an_equal_cascade(rng, make):
    cascade = make(rng)
    text = print_cascade(cascade)
    again = parse_cascade(text)
    assert again == cascade
    assert print_cascade(again) == text


_names = st.sampled_from(["p", "q", "r", "s", "e1", "x2"])
_affine = st.builds(
    lambda terms, const: Affine.of(terms, const),
    st.lists(st.tuples(_names, st.integers(-5, 5)), max_size=3),
    st.integers(-20, 20),
)


@given(_affine, st.integers(1, 7), st.booleans())
def test_index_expressions_round_trip_through_text(expr, divisor, use_div):
    index = FloorDiv(expr, divisor) if use_div else Mod(FloorDiv(expr, divisor), divisor + 1)
    for candidate in (expr, index):
        text = (
            f"cascade t {{\n  output Y: f32[A=1]\n  e: Y[0] = sum[p:2,q:2,r:2,s:2,e1:2,x2:2] "
            f"Y[{format_index(candidate)}]\n}}\n"
        )
        parsed = parse_cascade(text)
        assert parsed.einsums[0].body.indices[0] == candidate  # type: ignore[union-attr]


@given(st.floats(allow_nan=False, width=32), st.floats(allow_nan=False, width=32))
def test_constants_and_precedence_round_trip(a, b):
    body = Binary(
        BinaryOp.SUB,
        Const(a),
        Binary(
            BinaryOp.SUB, Const(b), Binary(BinaryOp.DIV, Const(a), Unary(UnaryOp.NEG, Const(b)))
        ),
    )
    body = Select(Binary(BinaryOp.LT, body, Const(0.0)), body, Binary(BinaryOp.MAX, body, Const(b)))
    bld = CascadeBuilder("c")
    y = bld.tensor("Y", (1,), role=Role.OUTPUT)
    bld.einsum("e", var_access(y, ["i"]), body, {"i": 1})
    cascade = bld.build()
    assert parse_cascade(print_cascade(cascade)) == cascade


def test_parser_reports_line_of_a_syntax_error():
    text = "cascade t {\n  output Y: f32[A=2]\n  e: Y[i] = exp(\n}\n"
    with pytest.raises(InputError, match="line 4"):
        parse_cascade(text)


# -- verifier ----------------------------------------------------------------------------------
def _break(cascade, index, **changes):
    einsums = list(cascade.einsums)
    einsums[index] = dataclasses.replace(einsums[index], **changes)
    return cascade.replace_einsums(tuple(einsums))


def test_verifier_accepts_built_cascades(rng):
    verify(conv_cascade(rng))
    verify(transformer_cascade(rng))


def test_verifier_rejects_wrong_index_count_and_points_at_the_einsum(rng):
    cascade = conv_cascade(rng)
    body = cascade.einsums[0].body
    bad = _break(cascade, 0, body=Binary(BinaryOp.MUL, body.lhs, Access("W", (Affine.var("m"),))))
    with pytest.raises(VerifyError) as err:
        verify(bad)
    message = str(err.value)
    assert message.startswith("einsum conv: access W has 1 indices, tensor has 4 dims")
    assert ">>  conv (Conv): Y[b,m,p,q]" in message


def test_verifier_rejects_unguarded_out_of_bounds_read(rng):
    cascade = transformer_cascade(rng)
    k = next(i for i, e in enumerate(cascade.einsums) if e.name == "q")
    body = cascade.einsums[k].body
    shifted = Access(body.tensor, body.indices[:-1] + (Affine.of([("d3", 1)], 1),))
    with pytest.raises(VerifyError, match=r"einsum q: .* outside \[0, 3\]"):
        verify(_break(cascade, k, body=shifted))


def test_verifier_rejects_reads_before_writes_and_unwritten_tensors(rng):
    cascade = conv_cascade(rng)
    swapped = cascade.replace_einsums(tuple(reversed(cascade.einsums)))
    with pytest.raises(VerifyError, match="before any einsum writes it"):
        verify(swapped)
    with pytest.raises(VerifyError, match="producers write"):
        verify(cascade.replace_einsums(cascade.einsums[:-1]))


def test_verifier_rejects_overlapping_concat_regions(rng):
    cascade = transformer_cascade(rng)
    k = next(i for i, e in enumerate(cascade.einsums) if e.name == "cat_part_1")
    e = cascade.einsums[k]
    out = Access(e.output.tensor, e.output.indices[:-1] + (Affine.of([("d2", 1)], 4),))
    with pytest.raises(VerifyError, match="also writes"):
        verify(_break(cascade, k, output=out))


def test_verifier_rejects_reduced_variable_in_output(rng):
    cascade = conv_cascade(rng)
    e = cascade.einsums[0]
    with pytest.raises(VerifyError, match="iteration space"):
        verify(_break(cascade, 0, reduced=("c", "r")))
    with pytest.raises(VerifyError, match="must come together"):
        verify(_break(cascade, 0, reduce=None, space=e.space))


# -- interpreter --------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (2, 0), (1, 1)])
def test_conv_and_maxpool_match_numpy_reference(rng, stride, pad):
    cascade = conv_cascade(rng, stride, pad)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    env = interpret(cascade, {"X": x}, keep_intermediates=True)
    y = conv_reference(x, cascade.tensor("W").data, stride, pad)
    np.testing.assert_allclose(env["Y"], y, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        env["pool"], maxpool_reference(np.maximum(y, 0)), rtol=1e-4, atol=1e-5
    )


def test_guarded_points_contribute_the_reduction_identity():
    # max over a window that sticks out on both sides must never see a padding zero
    bld = CascadeBuilder("g")
    x = bld.tensor("X", (4,), role=Role.INPUT)
    y = bld.tensor("Y", (4,), role=Role.OUTPUT)
    bld.einsum(
        "m",
        var_access(y, ["p"]),
        Access(x, (Affine.of([("p", 1), ("r", 1)], -1),)),
        {"p": 4, "r": 3},
        ReduceOp.MAX,
        ("r",),
    )
    out = interpret(bld.build(), {"X": -np.arange(1.0, 5.0)})["Y"]
    np.testing.assert_array_equal(out, [-1.0, -1.0, -2.0, -3.0])


def test_transformer_ops_match_numpy_reference(rng):
    cascade = transformer_cascade(rng)
    ids = rng.integers(0, 11, size=(2, 5))
    out = interpret(cascade, {"ids": ids})
    np.testing.assert_allclose(
        out["ln_bias"], transformer_reference(cascade, ids), rtol=1e-4, atol=1e-5
    )


def test_interpreter_rejects_missing_inputs_and_wrong_shapes(rng):
    cascade = conv_cascade(rng)
    with pytest.raises(InputError, match="no value given for input X"):
        interpret(cascade, {})
    with pytest.raises(InputError, match="shape"):
        interpret(cascade, {"X": np.zeros((1, 3, 9, 9))})


# -- statistics ---------------------------------------------------------------------------------
def test_conv_stats_count_one_mac_per_point_and_compulsory_bytes(rng):
    stats = cascade_stats(conv_cascade(rng))
    conv = stats.einsums[0]
    assert conv.macs == 2 * 4 * 5 * 5 * 3 * 3 * 3
    assert conv.flops == 2 * conv.macs
    assert dict(conv.tensor_bytes) == {
        "X": 2 * 3 * 9 * 9 * 4,
        "W": 4 * 3 * 3 * 3 * 4,
        "Y": 2 * 4 * 5 * 5 * 4,
    }
    pool = stats.einsums[-1]
    assert pool.macs == 0 and dict(pool.ops) == {"reduce_max": pool.points - pool.output_points}


def test_views_have_bytes_but_no_ops(rng):
    stats = cascade_stats(transformer_cascade(rng))
    view = next(s for s in stats.einsums if s.name == "split_heads")
    assert view.flops == 0 and view.total_bytes == 2 * 2 * 5 * 8 * 4
