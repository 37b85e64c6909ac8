"""Local rewrites as data (tinygrad's PatternMatcher): (predicate, rewrite) pairs.

A `PatternMatcher` holds rules tried in order; the first whose predicate holds rewrites the node.
Matchers combine with ``+``.  `rewrite_expr` applies a matcher to an Einsum body bottom-up to a
fixed point; `rewrite_cascade` applies cascade-level rules (on an Einsum in its cascade) until
none fires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, Select, Unary

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PatternMatcher(Generic[T]):
    """Ordered rules ``(matches(node), rewrite(node))``; the first match wins."""

    rules: tuple[tuple[Callable[[T], bool], Callable[[T], T]], ...]

    def __add__(self, other: PatternMatcher[T]) -> PatternMatcher[T]:
        return PatternMatcher(self.rules + other.rules)

    def rewrite(self, node: T) -> T | None:
        """The first matching rule's result, or None when no rule matches."""
        for matches, rewrite in self.rules:
            if matches(node):
                return rewrite(node)
        return None


def rewrite_expr(expr: Expr, matcher: PatternMatcher[Expr], limit: int = 1000) -> Expr:
    """Rewrite children first, then the node itself until no rule matches."""
    if isinstance(expr, Unary):
        arg = rewrite_expr(expr.arg, matcher, limit)
        expr = expr if arg is expr.arg else Unary(expr.op, arg)
    elif isinstance(expr, Binary):
        lhs, rhs = rewrite_expr(expr.lhs, matcher, limit), rewrite_expr(expr.rhs, matcher, limit)
        if lhs is not expr.lhs or rhs is not expr.rhs:
            expr = Binary(expr.op, lhs, rhs)
    elif isinstance(expr, Select):
        parts = [rewrite_expr(e, matcher, limit) for e in (expr.cond, expr.then, expr.other)]
        if any(a is not b for a, b in zip(parts, (expr.cond, expr.then, expr.other), strict=True)):
            expr = Select(*parts)
    for _ in range(limit):
        new = matcher.rewrite(expr)
        if new is None or new == expr:
            return expr
        # a rewrite may expose new matches below (e.g. a folded constant): start over there
        expr = rewrite_expr(new, matcher, limit) if not isinstance(new, (Access, Const)) else new
    raise RuntimeError(f"expression rewrite did not converge: {expr}")


CascadeRule = tuple[Callable[[Cascade, Einsum], bool], Callable[[Cascade, Einsum], Cascade]]


def rewrite_cascade(
    cascade: Cascade, rules: tuple[CascadeRule, ...], limit: int = 10_000
) -> Cascade:
    """Apply the first rule that matches some Einsum, and repeat until none matches."""
    for _ in range(limit):
        for einsum in cascade.einsums:
            fired = next((rw for ok, rw in rules if ok(cascade, einsum)), None)
            if fired is not None:
                cascade = fired(cascade, einsum)
                break
        else:
            return cascade
    raise RuntimeError(f"cascade rewrite of {cascade.name} did not converge")


def is_binary(expr: Expr, op: BinaryOp) -> bool:
    return isinstance(expr, Binary) and expr.op is op


def is_const(expr: Expr, value: float | None = None) -> bool:
    return isinstance(expr, Const) and (value is None or expr.value == value)
