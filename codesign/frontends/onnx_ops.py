"""Lowerings of ONNX ops to Einsums: the registry `OPS` (op type -> `Lowering`).

A lowering gets the builder, the node and the `LoweringContext` (constants, value names, opset)
and returns the Cascade tensor of each node output, in order.  Shape bookkeeping is static: every
output shape is computed here from the input shapes and the (constant) attributes.  Each Einsum's
`op` is the ONNX op type; Einsums are named after the node, tensors are renamed to their ONNX
value names by the loader afterwards.  Docs: docs/onnx.md (the op table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from codesign.ir.builder import CascadeBuilder, iter_vars, sanitize, var_access
from codesign.ir.cascade import Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Binary, BinaryOp, Const, Expr, Select, Unary, UnaryOp

_ELEM_TYPES: dict[int, DType] = {
    onnx.TensorProto.FLOAT: DType.F32, onnx.TensorProto.DOUBLE: DType.F64,
    onnx.TensorProto.FLOAT16: DType.F16, onnx.TensorProto.BFLOAT16: DType.BF16,
    onnx.TensorProto.INT64: DType.I64, onnx.TensorProto.INT32: DType.I32,
    onnx.TensorProto.INT16: DType.I16, onnx.TensorProto.INT8: DType.I8,
    onnx.TensorProto.UINT8: DType.U8, onnx.TensorProto.BOOL: DType.BOOL,
}  # fmt: skip


class UnsupportedNode(Exception):
    """The node uses an attribute value or a dynamic input this frontend cannot lower."""


def axis_in_range(value: int, rank: int, what: str = "axis") -> int:
    """ONNX `value` in ``-rank..rank-1`` (negative counts from the end) as ``0..rank-1``; an
    out-of-range value is refused, never wrapped."""
    if not -rank <= value < rank:
        raise UnsupportedNode(f"{what} {value} out of range for rank {rank}")
    return value % rank


class LoweringContext:
    """Mutable state of one import: constant values and the tensor of each ONNX value."""

    def __init__(self, builder: CascadeBuilder, opset: int, label: str) -> None:
        self.builder = builder
        self.opset = opset
        self.label = label
        self.constants: dict[str, np.ndarray] = {}
        self.values: dict[str, str] = {}

    def const(self, name: str) -> np.ndarray | None:
        """The constant value of ONNX value `name`, or None if it is computed at run time."""
        return self.constants.get(name)

    def tensor(self, name: str) -> str:
        """The Cascade tensor of ONNX value `name`; a constant becomes a WEIGHT with its data."""
        if name in self.values:
            return self.values[name]
        value = self.constants.get(name)
        if value is None:
            raise KeyError(f"value {name!r} is not produced by any node")
        try:
            dtype = DType.from_numpy(value.dtype)
        except ValueError:
            raise UnsupportedNode(f"constant {name!r} has unsupported type {value.dtype}") from None
        if value.size == 0:
            raise UnsupportedNode(f"constant {name!r} is empty")
        tensor = self.builder.tensor(name, value.shape, dtype, Role.WEIGHT, data=value)
        self.values[name] = tensor
        return tensor


Lowering = Callable[[CascadeBuilder, onnx.NodeProto, LoweringContext], tuple[str, ...]]
OPS: dict[str, Lowering] = {}


def _register(*op_types: str) -> Callable[[Lowering], Lowering]:
    def add(fn: Lowering) -> Lowering:
        for op in op_types:
            OPS[op] = fn
        return fn

    return add


# -- helpers
def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes by name: strings decoded, floats as their shortest float32 text."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, float):
            value = f32(value)
        out[a.name] = value
    return out


def f32(value: float) -> float:
    """The shortest decimal that rounds to the same float32 (1e-05, not 9.99999974e-06), so
    printed constants read as written; the interpreter evaluates constants in float32."""
    return float(str(np.float32(value)))


def hint(node: onnx.NodeProto) -> str:
    return sanitize(node.name or (node.output[0] if node.output else "") or node.op_type)


def _input(node: onnx.NodeProto, k: int) -> str | None:
    return node.input[k] if k < len(node.input) and node.input[k] else None


def _const_input(
    ctx: LoweringContext, node: onnx.NodeProto, k: int, what: str
) -> np.ndarray | None:
    """Input `k` as a constant (None when absent); UnsupportedNode when computed at run time."""
    name = _input(node, k)
    if name is None:
        return None
    value = ctx.const(name)
    if value is None:
        raise UnsupportedNode(f"{what} (input {k}) must be a constant")
    return value


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


Operand = str | float


def _operands(b: CascadeBuilder, ctx: LoweringContext, names: Sequence[str]) -> list[Operand]:
    """Tensors for the inputs; a scalar numeric constant that does not change the broadcast
    shape is inlined as a number (``X + 1e-05`` rather than a one-element weight)."""
    shapes = []
    for name in names:
        c = ctx.const(name)
        shapes.append(tuple(c.shape) if c is not None else b.shape(ctx.values[name]))
    full = tuple(np.broadcast_shapes(*shapes))
    out: list[Operand] = []
    for k, name in enumerate(names):
        c = ctx.const(name)
        # the interpreter holds constants in float32: inline only what float32 holds exactly
        inline = (
            c is not None
            and c.size == 1
            and (
                c.dtype.kind == "f"
                or (c.dtype.kind in "iub" and abs(int(c.reshape(-1)[0])) < 2**24)
            )
        )
        others = shapes[:k] + shapes[k + 1 :]
        if inline and others and tuple(np.broadcast_shapes(*others)) == full:
            scalar = c.reshape(-1)[0]  # type: ignore[union-attr]
            out.append(f32(scalar) if c.dtype == np.float32 else float(scalar))  # type: ignore[union-attr]
        else:
            out.append(ctx.tensor(name))
    if all(isinstance(o, float) for o in out):  # keep one tensor to carry the shape
        out[0] = ctx.tensor(names[0])
    return out


def elementwise(
    b: CascadeBuilder,
    name: str,
    operands: Sequence[Operand],
    fn: Callable[..., Expr],
    op: str,
    dtype: DType | None = None,
    out: str | None = None,
) -> str:
    """``Y[d...] = fn(A[...], 2.0, ...)`` over NumPy-broadcast tensor operands."""
    tensors = [o for o in operands if isinstance(o, str)]
    shape = tuple(np.broadcast_shapes(*(b.shape(t) for t in tensors)))
    dtype = dtype or b.spec(tensors[0]).dtype
    out = out or b.tensor(name, shape, dtype)
    vs = iter_vars(len(shape))
    args = [b.broadcast_access(o, vs, shape) if isinstance(o, str) else Const(o) for o in operands]
    b.einsum(name, var_access(out, vs), fn(*args), dict(zip(vs, shape, strict=True)), op=op)
    return out


def _ew_node(
    b: CascadeBuilder,
    node: onnx.NodeProto,
    ctx: LoweringContext,
    fn: Callable[..., Expr],
    dtype: DType | None = None,
    names: Sequence[str] | None = None,
) -> tuple[str, ...]:
    names = list(names if names is not None else [n for n in node.input if n])
    ops = _operands(b, ctx, names)
    return (elementwise(b, hint(node), ops, fn, node.op_type, dtype),)


def _alias(ctx: LoweringContext, name: str) -> tuple[str, ...]:
    return (ctx.tensor(name),)


def _lt0(x: Expr) -> Expr:
    return Binary(BinaryOp.LT, x, Const(0.0))


# -- elementwise
_UNARY = {
    "Relu": UnaryOp.RELU, "Sigmoid": UnaryOp.SIGMOID, "Tanh": UnaryOp.TANH,
    "Exp": UnaryOp.EXP, "Log": UnaryOp.LOG, "Neg": UnaryOp.NEG, "Abs": UnaryOp.ABS,
    "Reciprocal": UnaryOp.RECIP, "Sqrt": UnaryOp.SQRT, "Erf": UnaryOp.ERF,
    "Floor": UnaryOp.FLOOR, "Ceil": UnaryOp.CEIL, "Round": UnaryOp.ROUND, "Sin": UnaryOp.SIN,
    "Cos": UnaryOp.COS, "Not": UnaryOp.NOT, "Sign": UnaryOp.SIGN,
}  # fmt: skip
_BINARY = {
    "Add": BinaryOp.ADD, "Sub": BinaryOp.SUB, "Mul": BinaryOp.MUL, "Div": BinaryOp.DIV,
    "Pow": BinaryOp.POW, "Equal": BinaryOp.EQ, "Less": BinaryOp.LT,
    "LessOrEqual": BinaryOp.LE, "Greater": BinaryOp.GT, "GreaterOrEqual": BinaryOp.GE,
    "And": BinaryOp.AND, "Or": BinaryOp.OR,
}  # fmt: skip
_BOOL_RESULT = frozenset({"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And",
                          "Or", "Not"})  # fmt: skip


def _unary(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    op = _UNARY[node.op_type]
    dtype = DType.BOOL if node.op_type in _BOOL_RESULT else None
    return _ew_node(b, node, ctx, lambda x: Unary(op, x), dtype, names=[node.input[0]])


def _binary(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    op = _BINARY[node.op_type]
    dtype = DType.BOOL if node.op_type in _BOOL_RESULT else None
    return _ew_node(b, node, ctx, lambda x, y: Binary(op, x, y), dtype)


for _op in _UNARY:
    OPS[_op] = _unary
for _op in _BINARY:
    OPS[_op] = _binary


@_register("Sum", "Max", "Min", "Mean")
def _variadic(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    names = [n for n in node.input if n]
    if len(names) == 1:
        return _alias(ctx, names[0])
    op = {"Sum": BinaryOp.ADD, "Mean": BinaryOp.ADD, "Max": BinaryOp.MAX, "Min": BinaryOp.MIN}[
        node.op_type
    ]

    def body(*xs: Expr) -> Expr:
        acc = xs[0]
        for x in xs[1:]:
            acc = Binary(op, acc, x)
        return Binary(BinaryOp.MUL, acc, Const(1.0 / len(xs))) if node.op_type == "Mean" else acc

    return _ew_node(b, node, ctx, body)


@_register("Where")
def _where(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    names = list(node.input)
    ops = _operands(b, ctx, names)
    tensors = [o for o in ops[1:] if isinstance(o, str)]
    value = ctx.const(names[1])
    dtype = b.spec(tensors[0]).dtype if tensors else DType.from_numpy(np.asarray(value).dtype)
    return (elementwise(b, hint(node), ops, lambda c, x, y: Select(c, x, y), "Where", dtype),)


@_register("Cast")
def _cast(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    to = attrs(node)["to"]
    if to not in _ELEM_TYPES:
        raise UnsupportedNode(f"cast to {onnx.TensorProto.DataType.Name(to)} is not supported")
    x = ctx.tensor(node.input[0])
    if b.spec(x).dtype is _ELEM_TYPES[to]:
        return (x,)
    return _ew_node(b, node, ctx, lambda a: a, _ELEM_TYPES[to], names=[node.input[0]])


@_register("Identity", "Dropout")
def _identity(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    return _alias(ctx, node.input[0])


@_register("LeakyRelu")
def _leaky_relu(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    alpha = float(attrs(node).get("alpha", 0.01))
    return _ew_node(
        b, node, ctx, lambda x: Select(_lt0(x), Binary(BinaryOp.MUL, x, Const(alpha)), x)
    )


@_register("PRelu")
def _prelu(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    return _ew_node(
        b, node, ctx, lambda x, slope: Select(_lt0(x), Binary(BinaryOp.MUL, x, slope), x)
    )


@_register("Elu")
def _elu(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    alpha = float(attrs(node).get("alpha", 1.0))

    def body(x: Expr) -> Expr:
        neg = Binary(BinaryOp.MUL, Binary(BinaryOp.SUB, Unary(UnaryOp.EXP, x), Const(1.0)),
                     Const(alpha))  # fmt: skip
        return Select(_lt0(x), neg, x)

    return _ew_node(b, node, ctx, body)


@_register("Softplus")
def _softplus(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    return _ew_node(
        b, node, ctx,
        lambda x: Unary(UnaryOp.LOG, Binary(BinaryOp.ADD, Unary(UnaryOp.EXP, x), Const(1.0))),
    )  # fmt: skip


def _clamp(x: Expr, lo: Expr | None, hi: Expr | None) -> Expr:
    if lo is not None:
        x = Binary(BinaryOp.MAX, x, lo)
    if hi is not None:
        x = Binary(BinaryOp.MIN, x, hi)
    return x


@_register("Clip")
def _clip(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    if ctx.opset < 11:
        a = attrs(node)
        lo, hi = a.get("min"), a.get("max")
        lo_c = None if lo is None else Const(float(lo))
        hi_c = None if hi is None else Const(float(hi))
        return _ew_node(b, node, ctx, lambda x: _clamp(x, lo_c, hi_c), names=[node.input[0]])
    present = [k for k in (1, 2) if _input(node, k)]
    names = [node.input[0]] + [node.input[k] for k in present]

    def body(x: Expr, *bounds: Expr) -> Expr:
        got = dict(zip(present, bounds, strict=True))
        return _clamp(x, got.get(1), got.get(2))

    return _ew_node(b, node, ctx, body, names=names)


def _hard_sigmoid_expr(x: Expr, alpha: float, beta: float) -> Expr:
    lin = Binary(BinaryOp.ADD, Binary(BinaryOp.MUL, x, Const(alpha)), Const(beta))
    return _clamp(lin, Const(0.0), Const(1.0))


@_register("HardSigmoid")
def _hard_sigmoid(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    a = attrs(node)
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    return _ew_node(b, node, ctx, lambda x: _hard_sigmoid_expr(x, alpha, beta))


@_register("HardSwish")
def _hard_swish(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    return _ew_node(
        b, node, ctx, lambda x: Binary(BinaryOp.MUL, x, _hard_sigmoid_expr(x, 1 / 6, 0.5))
    )


@_register("Gelu")
def _gelu(b: CascadeBuilder, node: onnx.NodeProto, ctx: LoweringContext) -> tuple[str, ...]:
    op = UnaryOp.GELU_TANH if attrs(node).get("approximate", "none") == "tanh" else UnaryOp.GELU
    return _ew_node(b, node, ctx, lambda x: Unary(op, x))


# The heavier lowerings live in their own modules; importing them fills OPS.
from codesign.frontends import onnx_nn as _onnx_nn  # noqa: E402, F401
from codesign.frontends import onnx_shape as _onnx_shape  # noqa: E402, F401

__all__ = ["OPS", "Lowering", "LoweringContext", "UnsupportedNode", "attrs", "elementwise", "hint"]
