"""Fold chains of elementwise Einsums into one (a `canonicalize` rule, ``chains=true``).

    T[v] = f(A[..], B[..]);  Y[u] = g(T[h(u)], C[..])  ->  Y[u] = g(f(A[..], B[..])[v:=h(u)], C[..])

when ``T`` is an unquantized f32 intermediate that one elementwise Einsum ``P`` writes (plain,
distinct output variables) and one elementwise Einsum reads exactly once at affine indices,
and every tensor ``P`` reads is held in float32.  Then the interpreter computes ``f`` in
float32 either way and storing ``T`` as f32 rounds nothing, so the fold is exact.  Comparisons
and logical ops are not folded (their boolean result would reach the consumer unconverted).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Expr, Select, Unary
from codesign.ir.index import Affine, Gathered
from codesign.passes.lut_precompute import _subst  # the affine substitution of a body

_PREDICATES = frozenset({
    BinaryOp.EQ, BinaryOp.NE, BinaryOp.LT, BinaryOp.LE, BinaryOp.GT, BinaryOp.GE,
    BinaryOp.AND, BinaryOp.OR,
})  # fmt: skip


def _elementwise(einsum: Einsum) -> bool:
    """No reduction, no gather, and not a view (views compose under ``views=true``)."""
    return (
        einsum.reduce is None
        and not einsum.is_view
        and not any(isinstance(i, Gathered) for a in einsum.inputs for i in a.indices)
    )


def _foldable_read(cascade: Cascade, einsum: Einsum) -> Access | None:
    """The single read of a foldable chain link in `einsum`, or None."""
    if not _elementwise(einsum):
        return None
    reads = einsum.inputs
    for access in reads:
        spec = cascade.tensor(access.tensor)
        if spec.role is not Role.INTERMEDIATE or spec.dtype is not DType.F32 or spec.quant:
            continue
        if sum(1 for a in reads if a.tensor == access.tensor) != 1:
            continue
        if not all(isinstance(i, Affine) for i in access.indices):
            continue
        producers, consumers = cascade.producers(spec.name), cascade.consumers(spec.name)
        if len(producers) != 1 or [e.name for e in consumers] != [einsum.name]:
            continue
        producer = producers[0]
        if not _elementwise(producer) or _is_predicate(producer.body):
            continue
        plain = [i.plain_var if isinstance(i, Affine) else None for i in producer.output.indices]
        if None in plain or len(set(plain)) != len(plain):
            continue
        if all(cascade.tensor(t).value_dtype == np.float32 for t in producer.input_tensors):
            return access
    return None


def _is_predicate(body: Expr) -> bool:
    return isinstance(body, Binary) and body.op in _PREDICATES


def _replace(expr: Expr, old: Access, new: Expr) -> Expr:
    if expr == old:
        return new
    if isinstance(expr, Unary):
        return Unary(expr.op, _replace(expr.arg, old, new))
    if isinstance(expr, Binary):
        return Binary(expr.op, _replace(expr.lhs, old, new), _replace(expr.rhs, old, new))
    if isinstance(expr, Select):
        return Select(*(_replace(e, old, new) for e in (expr.cond, expr.then, expr.other)))
    return expr


def _fold(cascade: Cascade, einsum: Einsum) -> Cascade:
    access = _foldable_read(cascade, einsum)
    assert access is not None
    producer = cascade.producers(access.tensor)[0]
    mapping: dict[str, Affine] = {}
    for out, index in zip(producer.output.indices, access.indices, strict=True):
        assert isinstance(out, Affine) and out.plain_var is not None
        assert isinstance(index, Affine)
        mapping[out.plain_var] = index
    folded = replace(einsum, body=_replace(einsum.body, access, _subst(producer.body, mapping)))
    einsums = tuple(folded if e is einsum else e for e in cascade.einsums if e is not producer)
    tensors = tuple(t for t in cascade.tensors if t.name != access.tensor)
    return replace(cascade, tensors=tensors, einsums=einsums)


CHAIN_RULES = (
    (lambda c, e: _foldable_read(c, e) is not None, _fold),  # T=f(..); Y=g(T) -> Y=g(f(..))
)
