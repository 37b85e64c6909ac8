"""Deterministic text form of a Cascade; `codesign.ir.parser` reads it back.

Notation (documented in docs/ir.md)::

    cascade tiny {
      input X: f32[B=1,C=3,H=8,W=8]
      weight W0: f32[M=4,C=3,R=3,S=3]
      output Y: f32[B=1,M=4,P=4,Q=4]
      conv (Conv): Y[b,m,p,q] = sum[c:3,r:3,s:3] X[b,c,2p+r-1,2q+s-1] * W0[m,c,r,s]
    }

Output variables take their extents from the output tensor when the output index is a plain
variable; any other output variable is listed in a trailing ``over {j:3}`` clause.
"""

from __future__ import annotations

import math

from codesign.ir.cascade import Cascade, Einsum, Quantization, Sparsity, TensorSpec
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, Select, Unary
from codesign.ir.groups import format_group
from codesign.ir.index import Affine, FloorDiv, IndexExpr, Mod

# Binding strength of infix operators: larger binds tighter.
PRECEDENCE = {
    BinaryOp.OR: 1, BinaryOp.AND: 2,
    BinaryOp.EQ: 3, BinaryOp.NE: 3, BinaryOp.LT: 3, BinaryOp.LE: 3, BinaryOp.GT: 3,
    BinaryOp.GE: 3,
    BinaryOp.ADD: 4, BinaryOp.SUB: 4, BinaryOp.MUL: 5, BinaryOp.DIV: 5,
}  # fmt: skip
_ATOM = 10


def format_affine(expr: Affine) -> str:
    parts: list[str] = []
    for name, coeff in expr.terms:
        sign = "-" if coeff < 0 else ("+" if parts else "")
        mag = abs(coeff)
        parts.append(f"{sign}{'' if mag == 1 else mag}{name}")
    if expr.const or not parts:
        sign = "-" if expr.const < 0 else ("+" if parts else "")
        parts.append(f"{sign}{abs(expr.const)}")
    return "".join(parts)


def format_index(index: IndexExpr) -> str:
    if isinstance(index, Affine):
        return format_affine(index)
    if isinstance(index, FloorDiv):
        return f"({format_index(index.arg)})//{index.divisor}"
    if isinstance(index, Mod):
        return f"({format_index(index.arg)})%{index.divisor}"
    return format_access(Access(index.tensor, index.indices))


def format_access(access: Access) -> str:
    return f"{access.tensor}[{','.join(format_index(i) for i in access.indices)}]"


def format_float(value: float) -> str:
    """A float literal that always holds a '.', so `2e1` stays an int and a variable."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "(-inf)"
    text = repr(float(value))
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return f"({text})" if value < 0 else text


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary) and expr.op.infix:
        return PRECEDENCE[expr.op]
    return _ATOM


def format_expr(expr: Expr) -> str:
    if isinstance(expr, Access):
        return format_access(expr)
    if isinstance(expr, Const):
        return format_float(expr.value)
    if isinstance(expr, Unary):
        return f"{expr.op.value}({format_expr(expr.arg)})"
    if isinstance(expr, Select):
        args = ", ".join(format_expr(e) for e in (expr.cond, expr.then, expr.other))
        return f"select({args})"
    if not expr.op.infix:
        return f"{expr.op.value}({format_expr(expr.lhs)}, {format_expr(expr.rhs)})"
    mine = PRECEDENCE[expr.op]
    lhs = format_expr(expr.lhs)
    if _precedence(expr.lhs) < mine:
        lhs = f"({lhs})"
    rhs = format_expr(expr.rhs)
    if _precedence(expr.rhs) <= mine:
        rhs = f"({rhs})"
    return f"{lhs} {expr.op.value} {rhs}"


def format_tensor(tensor: TensorSpec) -> str:
    dims = ",".join(f"{r}={n}" for r, n in zip(tensor.ranks, tensor.shape, strict=True))
    text = f"{tensor.role.value} {tensor.name}: {tensor.dtype.value}[{dims}]"
    if tensor.quant is not None:
        text += f" {format_quant(tensor.quant)}"
    if tensor.sparse is not None:
        text += f" {format_sparse(tensor.sparse)}"
    return text


def format_sparse(sparse: Sparsity) -> str:
    """``sparse{format=nm,density=0.5,n=2,m=4,axis=1}``; unset fields omitted."""
    fields = [f"format={sparse.format.value}", f"density={format_float(sparse.density)}"]
    for key in ("n", "m", "axis"):
        value = getattr(sparse, key)
        if value is not None:
            fields.append(f"{key}={value}")
    return "sparse{" + ",".join(fields) + "}"


def format_quant(quant: Quantization) -> str:
    """``quant{format=int,axis=1,group=128,scale=f16,zero_point=true}``; unset fields omitted."""
    fields = [f"format={quant.format.value}"]
    if quant.axis is not None:
        fields.append(f"axis={quant.axis}")
    if quant.group_size is not None:
        fields.append(f"group={quant.group_size}")
    fields.append(f"scale={quant.scale_dtype.value}")
    if quant.zero_point:
        fields.append("zero_point=true")
    return "quant{" + ",".join(fields) + "}"


def derived_extents(einsum: Einsum, cascade: Cascade) -> dict[str, int]:
    """Extents of output variables that the output tensor's shape implies."""
    out: dict[str, int] = {}
    if cascade.has_tensor(einsum.output.tensor):
        shape = cascade.tensor(einsum.output.tensor).shape
        for index, dim in zip(einsum.output.indices, shape, strict=False):
            if isinstance(index, Affine) and index.plain_var is not None:
                out.setdefault(index.plain_var, dim)
    return out


def format_einsum(einsum: Einsum, cascade: Cascade) -> str:
    head = f"{einsum.name} ({einsum.op})" if einsum.op else einsum.name
    text = f"{head}: {format_access(einsum.output)} = "
    if einsum.reduce is not None:
        extents = einsum.extents
        red = ",".join(f"{v}:{extents[v]}" for v in einsum.reduced)
        text += f"{einsum.reduce.value}[{red}] "
    text += format_expr(einsum.body)
    derived = derived_extents(einsum, cascade)
    reduced = set(einsum.reduced)
    over = [f"{v}:{n}" for v, n in einsum.space if v not in reduced and derived.get(v) != n]
    if over:
        text += " over {" + ",".join(over) + "}"
    return text


def print_cascade(cascade: Cascade) -> str:
    """The cascade as text; deterministic, and `parse_cascade` reads it back to an equal one."""
    lines = [f"cascade {cascade.name} {{"]
    lines += [f"  {format_tensor(t)}" for t in cascade.tensors]
    lines += [f"  {format_einsum(e, cascade)}" for e in cascade.einsums]
    lines += [f"  {format_group(g)}" for g in cascade.groups]
    lines.append("}")
    return "\n".join(lines) + "\n"
