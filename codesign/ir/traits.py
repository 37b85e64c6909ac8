"""Op traits of an Einsum, answered once here for every room (stats, mapper, passes, roofline,
the interpreter): is it a view, a contraction, an elementwise map or a reduction.

* VIEW -- pure data movement, ``out[...] = in[...]`` with no reduction (transpose, reshape,
  slice, a concat piece); folded into the consumer's addressing.
* CONTRACTION -- a sum-reduced product of two tensors, ``out += a[...] * b[...]``: a MAC nest
  (matmul, convolution, attention scores); what spatial arrays and tensor cores run.
* REDUCTION -- any other reduced Einsum (softmax max/sum, norms' sums of other bodies).
* ELEMENTWISE -- any other unreduced Einsum (activations, adds, casts, dequantization).
"""

from __future__ import annotations

from enum import Enum

from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp


class EinsumClass(Enum):
    VIEW = "view"
    CONTRACTION = "contraction"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"


def mac_operands(body: Expr, reduce: ReduceOp | None) -> tuple[Access, Access] | None:
    """The two tensor accesses of a sum-reduced product ``a * b`` (a MAC nest), else None."""
    if (
        reduce is ReduceOp.SUM
        and isinstance(body, Binary)
        and body.op is BinaryOp.MUL
        and isinstance(body.lhs, Access)
        and isinstance(body.rhs, Access)
    ):
        return body.lhs, body.rhs
    return None


def classify(body: Expr, reduce: ReduceOp | None) -> EinsumClass:
    """The class of an Einsum with this body and reduction (see the module docstring)."""
    if reduce is None:
        return EinsumClass.VIEW if isinstance(body, Access) else EinsumClass.ELEMENTWISE
    if mac_operands(body, reduce) is not None:
        return EinsumClass.CONTRACTION
    return EinsumClass.REDUCTION


def product_factors(expr: Expr) -> list[Expr] | None:
    """Leaves (accesses and constants) of a pure product tree, or None when `expr` is not one:
    the generalized contraction ``sum(a * b * c * 0.5)`` the interpreter runs as np.einsum."""
    if isinstance(expr, Access | Const):
        return [expr]
    if isinstance(expr, Binary) and expr.op is BinaryOp.MUL:
        lhs, rhs = product_factors(expr.lhs), product_factors(expr.rhs)
        if lhs is not None and rhs is not None:
            return lhs + rhs
    return None


__all__ = ["EinsumClass", "classify", "mac_operands", "product_factors"]
