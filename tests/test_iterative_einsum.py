"""Iterative (recurrent) Einsums: text round trip, verifier rules, interpreter vs a NumPy loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.errors import InputError
from codesign.ir.interpreter import interpret
from codesign.ir.parser import parse_cascade
from codesign.ir.printer import print_cascade
from codesign.ir.recurrence import recurrence_of
from codesign.ir.verify import VerifyError, verify

RUNNING_MAX = """\
cascade running_max {
  input LM: f32[P=3,M1=4]
  output RM: f32[P=3,M1=5]
  rm_init: RM[p,0] = (-inf)
  rm_step: RM[p,m1+1] = max(RM[p,m1], LM[p,m1]) over {m1:4}
}
"""

# Fibonacci-like: two earlier steps read, two initial positions.
SECOND_ORDER = """\
cascade second_order {
  input A: f32[N=6]
  output F: f32[N=8]
  f_init: F[i] = A[i] over {i:2}
  f_step: F[t+2] = F[t] + 0.5 * F[t+1] + A[t] over {t:6}
}
"""


def test_iterative_einsum_text_round_trips_to_golden():
    for text in (RUNNING_MAX, SECOND_ORDER):
        cascade = parse_cascade(text)
        assert print_cascade(cascade) == text
        verify(cascade)


def test_recurrence_is_derived_from_the_self_read():
    cascade = parse_cascade(RUNNING_MAX)
    rec = recurrence_of(cascade.einsum("rm_step"))
    assert rec is not None
    assert (rec.variable, rec.dim, rec.write_offset, rec.steps) == ("m1", 1, 1, 4)
    assert recurrence_of(cascade.einsum("rm_init")) is None


def test_running_max_interprets_as_cumulative_max():
    lm = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    rm = interpret(parse_cascade(RUNNING_MAX), {"LM": lm})["RM"]
    assert np.all(rm[:, 0] == -np.inf)
    np.testing.assert_array_equal(rm[:, 1:], np.maximum.accumulate(lm, axis=1))


def test_second_order_recurrence_matches_loop():
    a = np.arange(6, dtype=np.float32)
    f = interpret(parse_cascade(SECOND_ORDER), {"A": a})["F"]
    ref = np.zeros(8, dtype=np.float32)
    ref[:2] = a[:2]
    for t in range(6):
        ref[t + 2] = ref[t] + np.float32(0.5) * ref[t + 1] + a[t]
    np.testing.assert_allclose(f, ref, rtol=1e-6)


BAD = {
    "under a reduction": """\
cascade bad {
  input LM: f32[P=3,M1=4]
  output RM: f32[P=3,M1=5]
  rm_init: RM[p,0] = (-inf)
  rm_step: RM[p,m1+1] = max[j:2] max(RM[p,m1], LM[p,j]) over {m1:4}
}
""",
    "earlier step": """\
cascade bad {
  input LM: f32[P=3,M1=4]
  output RM: f32[P=3,M1=5]
  rm_init: RM[p,0] = (-inf)
  rm_step: RM[p,m1+1] = max(RM[p,m1+1], LM[p,m1]) over {m1:4}
}
""",
    "no earlier einsum initialises": """\
cascade bad {
  input A: f32[N=6]
  output F: f32[N=8]
  f_init: F[0] = A[0]
  f_step: F[t+2] = F[t] + F[t+1] over {t:6}
  f_late: F[1] = A[1]
}
""",
    # FuseMax's SPD/RD pair: the recurrence runs through two einsums.
    "later einsum": """\
cascade bad {
  input SLD: f32[P=3,M1=4]
  input PRM: f32[P=3,M1=4]
  tensor SPD: f32[P=3,M1=4]
  output RD: f32[P=3,M1=5]
  rd_init: RD[p,0] = 0.0
  spd: SPD[p,m1] = RD[p,m1] * PRM[p,m1]
  rd_step: RD[p,m1+1] = SLD[p,m1] + SPD[p,m1] over {m1:4}
}
""",
}


@pytest.mark.parametrize("reason", sorted(BAD))
def test_unsupported_recurrences_are_rejected_with_one_line(reason):
    cascade = parse_cascade(BAD[reason])
    with pytest.raises(VerifyError, match=reason) as info:
        verify(cascade)
    assert reason in str(info.value).splitlines()[0]


def test_interpreter_refuses_an_unsupported_self_read():
    cascade = parse_cascade(BAD["earlier step"])
    with pytest.raises(InputError, match="earlier step"):
        interpret(cascade, {"LM": np.zeros((3, 4), np.float32)})


_OPS = {
    "max": ("max(S[p,t], X[p,t])", np.maximum),
    "add": ("S[p,t] + X[p,t]", np.add),
    "decay": ("S[p,t] * 0.5 + X[p,t]", lambda s, x: s * np.float32(0.5) + x),
    "online": ("S[p,t] * exp(X[p,t]) + 1.0", lambda s, x: s * np.exp(x) + np.float32(1.0)),
}


@settings(max_examples=40, deadline=None)
@given(
    op=st.sampled_from(sorted(_OPS)),
    rows=st.integers(1, 4),
    steps=st.integers(1, 7),
    init=st.floats(-3, 3, width=32),
    seed=st.integers(0, 2**16),
)
def test_iterative_interpreter_matches_numpy_loop(op, rows, steps, init, seed):
    body, fn = _OPS[op]
    text = (
        f"cascade r {{\n  input X: f32[P={rows},T={steps}]\n"
        f"  output S: f32[P={rows},T={steps + 1}]\n"
        f"  s_init: S[p,0] = {float(init)!r}\n"
        f"  s_step: S[p,t+1] = {body} over {{t:{steps}}}\n}}\n"
    )
    cascade = parse_cascade(text)
    verify(cascade)
    x = np.random.default_rng(seed).uniform(-2, 2, size=(rows, steps)).astype(np.float32)
    got = interpret(cascade, {"X": x})["S"]
    ref = np.empty((rows, steps + 1), np.float32)
    ref[:, 0] = np.float32(init)
    for t in range(steps):
        ref[:, t + 1] = fn(ref[:, t], x[:, t])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
