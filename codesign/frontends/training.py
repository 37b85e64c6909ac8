"""Training Einsums of convolution and linear layers: forward, backward-data, weight-gradient.

For a convolution ``Y[b,m,p,q] = sum[c,r,s] X[b,c,u*p+r-pad,u*q+s-pad] * W[m,c,r,s]`` one
training step runs three contractions and a weight update:

* FF (forward):          ``Y  = sum[c,r,s] X * W_ff``
* BP (backward-data):    ``dX[b,c,h,w] = sum[m,r,s] dYu[b,m,h+r-R+1+pad,...] * W_bp[m,c,r,s]``
  with ``W_bp`` the kernel rotated by 180 degrees (``W[m,c,R-1-r,S-1-s]``) and ``dYu`` the
  output gradient zero-upsampled by the stride (a strided layer's backward pass is a stride-1
  correlation over the dilated gradient; its inserted zeros count as MACs, as on an array that
  does not skip activation zeros);
* WU (weight-gradient):  ``dW[m,c,r,s] = sum[b,p,q] dY[b,m,p,q] * X[b,c,u*p+r-pad,...]``;
* update:                ``W_new = W_ff - lr * dW`` (elementwise).

`W_ff` and `W_bp` are separate weight tensors so that, as in BDWP (bidirectional weight
pruning), each can carry its own N:M pattern: along the input channel `c` (FF's reduction) and
along the output channel `m` (BP's reduction).  A linear layer is the 1x1 convolution with
``P = Q = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.errors import InputError
from codesign.ir.builder import CascadeBuilder, var_access
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Const, ReduceOp
from codesign.ir.index import Affine


@dataclass(frozen=True, slots=True)
class ConvLayer:
    """One convolution (or linear, as 1x1) layer's shape."""

    name: str
    batch: int
    in_channels: int
    out_channels: int
    out_h: int
    out_w: int
    kernel_h: int = 1
    kernel_w: int = 1
    stride: int = 1
    pad: int = 0

    @property
    def in_h(self) -> int:
        return self.out_h * self.stride

    @property
    def in_w(self) -> int:
        return self.out_w * self.stride

    @property
    def macs(self) -> int:
        """MACs of the forward contraction."""
        return (self.batch * self.out_channels * self.out_h * self.out_w * self.in_channels
                * self.kernel_h * self.kernel_w)  # fmt: skip


def conv_layers(cascade: Cascade, batch: int | None = None) -> tuple[ConvLayer, ...]:
    """The convolution and linear layers of an inference cascade (MAC Einsums with a 4-d OIHW or
    2-d [out, in] weight), optionally at another batch size."""
    layers: list[ConvLayer] = []
    for e in cascade.einsums:
        if not e.is_contraction:
            continue
        body = e.body
        assert isinstance(body, Binary) and isinstance(body.lhs, Access)
        assert isinstance(body.rhs, Access)
        weight, act = body.rhs, body.lhs
        if cascade.tensor(weight.tensor).role is not Role.WEIGHT:
            weight, act = act, weight
        w = cascade.tensor(weight.tensor)
        if w.role is not Role.WEIGHT:
            continue
        out = cascade.tensor(e.output.tensor).shape
        if len(w.shape) == 4 and len(out) == 4:
            h_index = act.indices[2]
            stride = max((c for _, c in h_index.terms), default=1) if isinstance(
                h_index, Affine) else 1  # fmt: skip
            pad = -h_index.const if isinstance(h_index, Affine) else 0
            layers.append(ConvLayer(e.name, batch or out[0], w.shape[1], w.shape[0], out[2],
                                    out[3], w.shape[2], w.shape[3], stride, pad))  # fmt: skip
        elif len(w.shape) == 2 and len(out) == 2:
            layers.append(ConvLayer(e.name, batch or out[0], w.shape[1], w.shape[0], 1, 1))
    if not layers:
        raise InputError(f"cascade {cascade.name} has no convolution or linear layer")
    return tuple(layers)


def training_cascade(layer: ConvLayer, lr: float = 0.01) -> Cascade:
    """FF, BP, WU and the weight update of `layer` (see the module docstring)."""
    g = CascadeBuilder(f"train_{layer.name}")
    b, c, m = layer.batch, layer.in_channels, layer.out_channels
    p, q, r, s, u, pad = (layer.out_h, layer.out_w, layer.kernel_h, layer.kernel_w,
                          layer.stride, layer.pad)  # fmt: skip
    f32 = DType.F32
    x = g.tensor("X", (b, c, layer.in_h, layer.in_w), f32, Role.INPUT, ranks=("B", "C", "H", "W"))
    w_ff = g.tensor("W_ff", (m, c, r, s), f32, Role.WEIGHT, ranks=("M", "C", "R", "S"))
    w_bp = g.tensor("W_bp", (m, c, r, s), f32, Role.WEIGHT, ranks=("M", "C", "R", "S"))
    dy = g.tensor("dY", (b, m, p, q), f32, Role.INPUT, ranks=("B", "M", "P", "Q"))
    dyu = g.tensor("dYu", (b, m, p * u, q * u), f32, Role.INPUT, ranks=("B", "M", "H", "W"))
    y = g.tensor("Y", (b, m, p, q), f32, Role.OUTPUT, ranks=("B", "M", "P", "Q"))
    dx = g.tensor("dX", (b, c, layer.in_h, layer.in_w), f32, Role.OUTPUT,
                  ranks=("B", "C", "H", "W"))  # fmt: skip
    dw = g.tensor("dW", (m, c, r, s), f32, Role.INTERMEDIATE, ranks=("M", "C", "R", "S"))
    w_new = g.tensor("W_new", (m, c, r, s), f32, Role.OUTPUT, ranks=("M", "C", "R", "S"))

    def window(out_var: str, k_var: str) -> Affine:
        return Affine(((out_var, u), (k_var, 1)), -pad)

    x_win = Access(x, (Affine.var("b"), Affine.var("c"), window("p", "r"), window("q", "s")))
    w_acc = var_access(w_ff, "mcrs")
    g.einsum("FF", var_access(y, "bmpq"), Binary(BinaryOp.MUL, x_win, w_acc),
             {"b": b, "m": m, "p": p, "q": q, "c": c, "r": r, "s": s}, ReduceOp.SUM,
             ("c", "r", "s"), "FF")  # fmt: skip
    # W_bp holds the kernel rotated by 180 degrees (as the hardware stores it for BP), so the
    # backward-data pass is a plain correlation with non-negative strides.
    back_h, back_w = r - 1 - pad, s - 1 - pad
    dy_win = Access(
        dyu,
        (
            Affine.var("b"),
            Affine.var("m"),
            Affine((("h", 1), ("r", 1)), -back_h),
            Affine((("w", 1), ("s", 1)), -back_w),
        ),
    )
    g.einsum("BP", var_access(dx, "bchw"), Binary(BinaryOp.MUL, dy_win, var_access(w_bp, "mcrs")),
             {"b": b, "c": c, "h": layer.in_h, "w": layer.in_w, "m": m, "r": r, "s": s},
             ReduceOp.SUM, ("m", "r", "s"), "BP")  # fmt: skip
    g.einsum("WU", var_access(dw, "mcrs"), Binary(BinaryOp.MUL, x_win, var_access(dy, "bmpq")),
             {"m": m, "c": c, "r": r, "s": s, "b": b, "p": p, "q": q}, ReduceOp.SUM,
             ("b", "p", "q"), "WU")  # fmt: skip
    step = Binary(BinaryOp.SUB, w_acc, Binary(BinaryOp.MUL, Const(lr), var_access(dw, "mcrs")))
    g.einsum("update", var_access(w_new, "mcrs"), step, {"m": m, "c": c, "r": r, "s": s},
             op="SGD")  # fmt: skip
    return g.build()


__all__ = ["ConvLayer", "conv_layers", "training_cascade"]
