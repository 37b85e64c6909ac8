"""Single-layer workloads written on the command line: ``gemm:M=512,N=512,K=512`` or
``conv:N=1,C=64,K=64,P=56,Q=56,R=3,S=3,stride=1``.

Conventions (as Timeloop/ZigZag/SCALE-Sim): GEMM ``Y[m,n] = sum[k] A[m,k] * B[k,n]``; conv with
N batch, C input and K output channels, P×Q output, R×S filter, no padding, so the input is
``((P-1)·stride + (R-1)·dilation + 1)`` high.  ``dtype=`` picks the element type (default i8).
"""

from __future__ import annotations

from codesign.errors import InputError
from codesign.ir.builder import CascadeBuilder, var_access
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.index import Affine

_KEYS: dict[str, dict[str, int | None]] = {
    "gemm": {"M": None, "N": None, "K": None},
    "conv": {"N": 1, "C": None, "K": None, "P": None, "Q": None, "R": 1, "S": 1, "stride": 1,
             "dilation": 1},
}  # fmt: skip


def is_layer_spec(text: str) -> bool:
    return text.split(":", 1)[0] in _KEYS and ":" in text


def parse_layer_spec(text: str) -> Cascade:
    """Build the one-Einsum cascade a layer spec describes; InputError on a bad spec."""
    kind, _, rest = text.partition(":")
    if kind not in _KEYS:
        raise InputError(f"layer spec {text!r}: unknown kind {kind!r} (use gemm: or conv:)")
    values: dict[str, int] = {}
    dtype = DType.I8
    dtype_given = False
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise InputError(f"layer spec {text!r}: expected KEY=VALUE, got {item!r}")
        if key in values or (key == "dtype" and dtype_given):
            raise InputError(f"layer spec {text!r}: {key} given twice")
        if key == "dtype":
            dtype_given = True
            try:
                dtype = DType(value.strip())
            except ValueError:
                known = ", ".join(d.value for d in DType)
                raise InputError(
                    f"layer spec {text!r}: unknown dtype {value!r} ({known})"
                ) from None
            continue
        if key not in _KEYS[kind]:
            known = ", ".join(_KEYS[kind])
            raise InputError(f"layer spec {text!r}: unknown field {key!r} (known: {known})")
        try:
            values[key] = int(value)
        except ValueError:
            raise InputError(f"layer spec {text!r}: {key} must be an integer") from None
        if values[key] <= 0:
            raise InputError(f"layer spec {text!r}: {key} must be positive")
    for key, default in _KEYS[kind].items():
        if key not in values:
            if default is None:
                raise InputError(f"layer spec {text!r}: missing field {key}")
            values[key] = default
    if kind == "gemm":
        return gemm(values["M"], values["N"], values["K"], dtype)
    return conv(
        values["N"],
        values["C"],
        values["K"],
        values["P"],
        values["Q"],
        values["R"],
        values["S"],
        values["stride"],
        values["dilation"],
        dtype,
    )


def gemm(m: int, n: int, k: int, dtype: DType = DType.I8) -> Cascade:
    b = CascadeBuilder(f"gemm_{m}x{n}x{k}")
    a = b.tensor("A", (m, k), dtype, Role.INPUT, ranks=("M", "K"))
    w = b.tensor("B", (k, n), dtype, Role.WEIGHT, ranks=("K", "N"))
    y = b.tensor("Y", (m, n), dtype, Role.OUTPUT, ranks=("M", "N"))
    b.einsum(
        "gemm",
        var_access(y, "mn"),
        Binary(BinaryOp.MUL, var_access(a, "mk"), var_access(w, "kn")),
        {"m": m, "n": n, "k": k},
        ReduceOp.SUM,
        ("k",),
        op="Gemm",
    )
    return b.build()


def conv(
    n: int,
    c: int,
    k: int,
    p: int,
    q: int,
    r: int,
    s: int,
    stride: int = 1,
    dilation: int = 1,
    dtype: DType = DType.I8,
) -> Cascade:
    h = (p - 1) * stride + (r - 1) * dilation + 1
    w_ = (q - 1) * stride + (s - 1) * dilation + 1
    b = CascadeBuilder(f"conv_{c}x{k}_{p}x{q}_{r}x{s}_s{stride}")
    x = b.tensor("X", (n, c, h, w_), dtype, Role.INPUT, ranks=("N", "C", "H", "W"))
    wt = b.tensor("W", (k, c, r, s), dtype, Role.WEIGHT, ranks=("K", "C", "R", "S"))
    y = b.tensor("Y", (n, k, p, q), dtype, Role.OUTPUT, ranks=("N", "K", "P", "Q"))
    window = Access(
        x,
        (
            Affine.var("n"),
            Affine.var("c"),
            Affine.of([("p", stride), ("r", dilation)]),
            Affine.of([("q", stride), ("s", dilation)]),
        ),
    )
    # loop variable m for output channels, as Timeloop names it (mappings refer to loop names)
    b.einsum(
        "conv",
        var_access(y, "nmpq"),
        Binary(BinaryOp.MUL, window, var_access(wt, "mcrs")),
        {"n": n, "m": k, "p": p, "q": q, "c": c, "r": r, "s": s},
        ReduceOp.SUM,
        ("c", "r", "s"),
        op="Conv",
    )
    return b.build()
