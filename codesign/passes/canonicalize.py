"""`canonicalize`: algebraic identities, view-chain composition and dead-code elimination.

Every rewrite preserves the reference interpreter's results exactly (up to the sign of zero):
identities that are not exact in IEEE arithmetic (``x*0 -> 0`` breaks on inf/nan, guarded
reads) are deliberately absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.expr import (
    Access,
    Binary,
    BinaryOp,
    Const,
    Expr,
    Select,
    Unary,
    UnaryOp,
    map_accesses,
)
from codesign.ir.index import Affine, Gathered, IndexExpr
from codesign.passes.pipeline import PassContext, register_pass
from codesign.passes.rewrite import (
    CascadeRule,
    PatternMatcher,
    is_const,
    rewrite_cascade,
    rewrite_expr,
)

ADD, SUB, MUL, DIV = BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.DIV
_FOLD = {
    BinaryOp.ADD: np.add, BinaryOp.SUB: np.subtract, BinaryOp.MUL: np.multiply,
    BinaryOp.DIV: np.divide, BinaryOp.MAX: np.maximum, BinaryOp.MIN: np.minimum,
}  # fmt: skip


def _fold(e: Expr) -> Expr:
    """Evaluate in float32, as the interpreter does with constants."""
    assert isinstance(e, Binary) and isinstance(e.lhs, Const) and isinstance(e.rhs, Const)
    with np.errstate(all="ignore"):
        value = _FOLD[e.op](np.float32(e.lhs.value), np.float32(e.rhs.value))
    return Const(float(value))


def _op_with(
    op: BinaryOp, lhs: float | None = None, rhs: float | None = None
) -> Callable[[Expr], bool]:
    """Predicate: a `Binary` of `op` whose lhs/rhs is the given constant."""

    def matches(e: Expr) -> bool:
        return (
            isinstance(e, Binary)
            and e.op is op
            and ((lhs is None or is_const(e.lhs, lhs)) and (rhs is None or is_const(e.rhs, rhs)))
        )

    return matches


def _lhs(e: Expr) -> Expr:
    assert isinstance(e, Binary)
    return e.lhs


def _rhs(e: Expr) -> Expr:
    assert isinstance(e, Binary)
    return e.rhs


def _double_neg(e: Expr) -> bool:
    return (
        isinstance(e, Unary) and e.op is UnaryOp.NEG
        and isinstance(e.arg, Unary) and e.arg.op is UnaryOp.NEG
    )  # fmt: skip


def _unneg2(e: Expr) -> Expr:
    assert isinstance(e, Unary) and isinstance(e.arg, Unary)
    return e.arg.arg


def _const_operands(e: Expr) -> bool:
    return isinstance(e, Binary) and e.op in _FOLD and is_const(e.lhs) and is_const(e.rhs)


ALGEBRA: PatternMatcher[Expr] = PatternMatcher((
    (_op_with(MUL, rhs=1.0), _lhs),  # x * 1 -> x
    (_op_with(MUL, lhs=1.0), _rhs),  # 1 * x -> x
    (_op_with(DIV, rhs=1.0), _lhs),  # x / 1 -> x
    (_op_with(ADD, rhs=0.0), _lhs),  # x + 0 -> x
    (_op_with(ADD, lhs=0.0), _rhs),  # 0 + x -> x
    (_op_with(SUB, rhs=0.0), _lhs),  # x - 0 -> x
    (_double_neg, _unneg2),  # neg(neg(x)) -> x
    (_const_operands, _fold),  # c1 op c2 -> c
))  # fmt: skip


# -- cascade-level rules -----------------------------------------------------------------------
def _replace_access(expr: Expr, old: Access, new: Access) -> Expr:
    return map_accesses(expr, lambda access: new if access == old else access)


def _rename_index(index: IndexExpr, old: str, new: str) -> IndexExpr:
    if isinstance(index, Gathered):
        return Gathered(new if index.tensor == old else index.tensor,
                        tuple(_rename_index(i, old, new) for i in index.indices))  # fmt: skip
    return index


def _rename(expr: Expr, old: str, new: str) -> Expr:
    if isinstance(expr, Access):
        name = new if expr.tensor == old else expr.tensor
        return Access(name, tuple(_rename_index(i, old, new) for i in expr.indices))
    if isinstance(expr, Unary):
        return Unary(expr.op, _rename(expr.arg, old, new))
    if isinstance(expr, Binary):
        return Binary(expr.op, _rename(expr.lhs, old, new), _rename(expr.rhs, old, new))
    if isinstance(expr, Select):
        return Select(*(_rename(e, old, new) for e in (expr.cond, expr.then, expr.other)))
    return expr


def _sole_view_producer(cascade: Cascade, tensor: str) -> Einsum | None:
    """The single view Einsum writing intermediate `tensor` with plain distinct output vars,
    reading a tensor of the same dtype and quantization (so it is pure data movement)."""
    spec = cascade.tensor(tensor)
    producers = cascade.producers(tensor)
    if spec.role is not Role.INTERMEDIATE or len(producers) != 1 or not producers[0].is_view:
        return None
    view = producers[0]
    plain = [i.plain_var if isinstance(i, Affine) else None for i in view.output.indices]
    if None in plain or len(set(plain)) != len(plain):
        return None
    assert isinstance(view.body, Access)
    source = cascade.tensor(view.body.tensor)
    if (source.dtype, source.quant) != (spec.dtype, spec.quant):
        return None  # a cast, not a view
    return view


def _composable(cascade: Cascade, einsum: Einsum) -> Access | None:
    """An access of `einsum` into a view's output whose composition stays affine, in bounds."""
    extents = einsum.extents
    for access in einsum.inputs:
        view = _sole_view_producer(cascade, access.tensor)
        if view is None or view is einsum:
            continue
        assert isinstance(view.body, Access)
        if not all(isinstance(i, Affine) for i in access.indices + view.body.indices):
            continue
        shape = cascade.tensor(access.tensor).shape
        bounds = [i.bounds(extents) for i in access.indices]  # type: ignore[union-attr]
        if all(0 <= lo and hi < n for (lo, hi), n in zip(bounds, shape, strict=True)):
            return access
    return None


def _compose(cascade: Cascade, einsum: Einsum) -> Cascade:
    access = _composable(cascade, einsum)
    assert access is not None
    view = cascade.producers(access.tensor)[0]
    assert isinstance(view.body, Access)
    subst = {
        i.plain_var: j for i, j in zip(view.output.indices, access.indices, strict=True)
        if isinstance(i, Affine)
    }  # fmt: skip
    composed: list[IndexExpr] = []
    for index in view.body.indices:
        assert isinstance(index, Affine)
        terms: list[tuple[str, int]] = []
        const = index.const
        for var, coeff in index.terms:
            inner = subst[var]
            assert isinstance(inner, Affine)
            terms += [(v, coeff * c) for v, c in inner.terms]
            const += coeff * inner.const
        composed.append(Affine.of(terms, const))
    new_access = Access(view.body.tensor, tuple(composed))
    body = _replace_access(einsum.body, access, new_access)
    return _swap(cascade, einsum, replace(einsum, body=body))


def _swap(cascade: Cascade, old: Einsum, new: Einsum) -> Cascade:
    return cascade.replace_einsums(tuple(new if e is old else e for e in cascade.einsums))


def _is_identity_view(cascade: Cascade, einsum: Einsum) -> bool:
    view = _sole_view_producer(cascade, einsum.output.tensor)
    if view is not einsum:
        return False
    assert isinstance(einsum.body, Access)
    source = cascade.tensor(einsum.body.tensor)
    return (
        einsum.body.indices == einsum.output.indices
        and source.shape == cascade.tensor(einsum.output.tensor).shape
    )


def _forward_identity(cascade: Cascade, einsum: Einsum) -> Cascade:
    assert isinstance(einsum.body, Access)
    old, new = einsum.output.tensor, einsum.body.tensor
    einsums = tuple(
        replace(e, body=_rename(e.body, old, new)) for e in cascade.einsums if e is not einsum
    )
    tensors = tuple(t for t in cascade.tensors if t.name != old)
    return Cascade(cascade.name, tensors, einsums)


def _is_dead(cascade: Cascade, einsum: Einsum) -> bool:
    spec = cascade.tensor(einsum.output.tensor)
    return spec.role is Role.INTERMEDIATE and not cascade.consumers(spec.name)


def _drop_dead(cascade: Cascade, einsum: Einsum) -> Cascade:
    dead = einsum.output.tensor
    einsums = tuple(e for e in cascade.einsums if e.output.tensor != dead)
    tensors = tuple(t for t in cascade.tensors if t.name != dead)
    return Cascade(cascade.name, tensors, einsums)


VIEW_RULES: tuple[CascadeRule, ...] = (
    (lambda c, e: _composable(c, e) is not None, _compose),  # T[f(i)], T[v]=X[g(v)] -> X[g(f(i))]
    (_is_identity_view, _forward_identity),  # Y[v]=X[v]; use(Y) -> use(X)
)
DEAD_RULES: tuple[CascadeRule, ...] = (
    (_is_dead, _drop_dead),  # T = f(...) never read, T not an output -> (removed)
)


def drop_unused_tensors(cascade: Cascade) -> Cascade:
    """Remove weights and intermediates no Einsum references (inputs/outputs are interface)."""
    used: set[str] = set()
    for e in cascade.einsums:
        used.add(e.output.tensor)
        used.update(e.input_tensors)
    keep = tuple(
        t for t in cascade.tensors if t.role in (Role.INPUT, Role.OUTPUT) or t.name in used
    )
    return (
        cascade
        if len(keep) == len(cascade.tensors)
        else Cascade(cascade.name, keep, cascade.einsums)
    )


@dataclass(frozen=True, slots=True)
class CanonicalizeOptions:
    fold: bool = True  # algebraic identities and constant folding in bodies
    views: bool = True  # compose view chains, forward identity views
    dead: bool = True  # remove dead Einsums and unused tensors
    chains: bool = True  # fold chains of elementwise Einsums into one (passes/fold_chains.py)


def simplify_body(einsum: Einsum) -> Einsum:
    body = rewrite_expr(einsum.body, ALGEBRA)
    return einsum if body == einsum.body else replace(einsum, body=body)


@register_pass("canonicalize", CanonicalizeOptions)
def canonicalize(cascade: Cascade, options: CanonicalizeOptions, context: PassContext) -> Cascade:
    """Fold x*1, x+0, constants and elementwise chains; compose views; drop dead code."""
    if options.fold:
        cascade = cascade.replace_einsums(tuple(simplify_body(e) for e in cascade.einsums))
    rules = (VIEW_RULES if options.views else ()) + (DEAD_RULES if options.dead else ())
    if options.chains:  # first, so fusion sees one epilogue Einsum per chain
        from codesign.passes.fold_chains import CHAIN_RULES

        rules = CHAIN_RULES + rules
    cascade = rewrite_cascade(cascade, rules)
    return drop_unused_tensors(cascade) if options.dead else cascade


__all__ = ["ALGEBRA", "CanonicalizeOptions", "canonicalize", "drop_unused_tensors"]
