"""Vectorisable float32 exp, erf and tanh for kernel bodies: TVM's own approximations.

LLVM lowers ``tirx.exp`` to one libm ``expf`` call per vector lane and ``tirx.erf`` to a scalar
``erff`` loop, so a kernel that applies them runs 10-75x slower than its arithmetic allows
(measured on the AVX-512 dev host, 65,536 float32 values: exp 96 µs, erf 592 µs, tanh 273 µs;
TVM's ``topi.fast_exp`` 8.8 µs, ``topi.fast_erf`` 7.9 µs).  ``topi.fast_*`` are range-reduced
polynomial / rational approximations built from plain arithmetic, so they vectorise; TVM exposes
them only as whole tensor operators, while a kernel body here is one PrimExpr per point.
`fast_unary` therefore takes the body of the TVM operator applied to a one-element placeholder
and rebuilds it around the given PrimExpr (`_rebuild`): the formula is TVM's, not a copy.

Accuracy (``tests/test_codegen_fastmath.py``, against NumPy in float64): exp within 2e-7
relative for |x| < 88, erf within 2e-7 absolute, tanh within 2e-6 absolute; all well inside the
1e-4 relative tolerance every compiled model is checked to.  Outside its range ``fast_exp``
clamps its input (``exp(100)`` is 2.4e38, not inf), and ``tanh``/``erf`` saturate to +-1.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tvm.tirx import PrimExpr

# TVM operator -> name of its approximation in ``tvm.topi`` (float32 only)
FAST = {"exp": "fast_exp", "erf": "fast_erf", "tanh": "fast_tanh"}
FAST_DTYPE = "float32"
# the op of a TE tensor read inside a ``te.compute`` body (the placeholder's one element)
_TENSOR_LOAD = "te.tensor_load"


def fast_unary(name: str, x: PrimExpr) -> PrimExpr:
    """TVM's vectorisable approximation of ``name`` ("exp", "erf" or "tanh") at float32 `x`."""
    return _rebuild(_formula(name), x)


@functools.cache
def _formula(name: str) -> Any:
    """The body of ``topi.<FAST[name]>`` on a one-element float32 placeholder."""
    from tvm import te, topi  # noqa: PLC0415

    point = te.placeholder((1,), FAST_DTYPE, name="x")
    return getattr(topi, FAST[name])(point).op.body[0]


def _rebuild(expr: Any, x: PrimExpr) -> Any:
    """`expr` with its placeholder read replaced by `x`, and a read of a step TVM computed from
    the placeholder (``fast_tanh`` clamps its input in a compute of its own) by that step's body
    (arithmetic, casts, shifts and calls: what the ``topi.fast_*`` formulas are made of;
    anything else is a TypeError)."""
    from tvm import tirx  # noqa: PLC0415

    kind = type(expr).__name__
    if kind in ("FloatImm", "IntImm"):
        return expr
    if kind in _BINARY:
        return getattr(tirx, kind)(_rebuild(expr.a, x), _rebuild(expr.b, x))
    if kind == "Cast":
        return tirx.Cast(str(expr.ty), _rebuild(expr.value, x))
    if kind == "Call":
        if str(expr.op.name) == _TENSOR_LOAD:  # the placeholder, or a step computed from it
            op = expr.args[0].op
            return x if type(op).__name__ == "PlaceholderOp" else _rebuild(op.body[0], x)
        args = [_rebuild(a, x) for a in expr.args]
        return tirx.call_intrin(str(expr.ty), str(expr.op.name), *args)
    raise TypeError(f"fast math: unexpected {kind} in TVM's formula")


_BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "LShift"})
