"""Expressions computed at each point of an Einsum's iteration space.

An Einsum body is a small tree: tensor `Access` leaves, `Const` leaves, `Unary` functions,
`Binary` map operators and `Select` (ternary where).  The reduction, if any, is applied by the
Einsum around the whole body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from codesign.ir.index import IndexExpr


class UnaryOp(Enum):
    EXP = "exp"
    LOG = "log"
    RELU = "relu"
    GELU = "gelu"  # exact (erf) form
    GELU_TANH = "gelu_tanh"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    RECIP = "recip"
    NEG = "neg"
    ABS = "abs"
    ERF = "erf"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"
    SIN = "sin"
    COS = "cos"
    NOT = "not"
    SILU = "silu"
    SIGN = "sign"


class BinaryOp(Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MAX = "max"
    MIN = "min"
    POW = "pow"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "and"
    OR = "or"

    @property
    def infix(self) -> bool:
        return self not in (BinaryOp.MAX, BinaryOp.MIN, BinaryOp.POW)


class ReduceOp(Enum):
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    PROD = "prod"

    @property
    def identity(self) -> float:
        """The value a skipped (guarded, out-of-bounds) point contributes."""
        return {"sum": 0.0, "max": float("-inf"), "min": float("inf"), "prod": 1.0}[self.value]


@dataclass(frozen=True, slots=True)
class Access:
    """``tensor[indices...]``; one index expression per tensor dimension."""

    tensor: str
    indices: tuple[IndexExpr, ...]


@dataclass(frozen=True, slots=True)
class Const:
    value: float


@dataclass(frozen=True, slots=True)
class Unary:
    op: UnaryOp
    arg: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinaryOp
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True, slots=True)
class Select:
    """``select(cond, then, other)``: `then` where `cond` is nonzero, else `other`."""

    cond: Expr
    then: Expr
    other: Expr


Expr = Access | Const | Unary | Binary | Select


def walk(expr: Expr) -> Iterator[Expr]:
    """All nodes of an expression, pre-order."""
    yield expr
    if isinstance(expr, Unary):
        yield from walk(expr.arg)
    elif isinstance(expr, Binary):
        yield from walk(expr.lhs)
        yield from walk(expr.rhs)
    elif isinstance(expr, Select):
        yield from walk(expr.cond)
        yield from walk(expr.then)
        yield from walk(expr.other)


def map_accesses(expr: Expr, fn: Callable[[Access], Expr]) -> Expr:
    """`expr` with every tensor access replaced by ``fn(access)``; operators and constants
    are rebuilt unchanged around them."""
    if isinstance(expr, Access):
        return fn(expr)
    if isinstance(expr, Unary):
        return Unary(expr.op, map_accesses(expr.arg, fn))
    if isinstance(expr, Binary):
        return Binary(expr.op, map_accesses(expr.lhs, fn), map_accesses(expr.rhs, fn))
    if isinstance(expr, Select):
        return Select(*(map_accesses(e, fn) for e in (expr.cond, expr.then, expr.other)))
    return expr


def accesses(expr: Expr) -> tuple[Access, ...]:
    """The tensor accesses of an expression, in reading order."""
    return tuple(node for node in walk(expr) if isinstance(node, Access))
