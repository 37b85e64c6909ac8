"""Read SCALE-Sim v3 topology ``.csv`` files (workloads); the ``.cfg`` architecture files are
hardware, read by `codesign.hwmodels.scalesim_config`.

Topologies: the first line is a header and is skipped, as SCALE-Sim does.  Rows end in a comma
(SCALE-Sim drops the last field of every row; a row without the trailing comma is accepted
here, unlike there).  Conv rows are ``name, IFMAP Height, IFMAP Width, Filter Height,
Filter Width, Channels, Num Filter, Strides,`` (one stride for both directions, no padding,
batch 1); GEMM rows are ``name, M, N, K,`` meaning ``ofmap[M, N] = ifmap[M, K] @ filter[K, N]``
(SCALE-Sim runs them as a conv with an M×K ifmap, a 1×K filter and N filters).  Both take an
optional last ``N:M`` sparsity field.  As in SCALE-Sim, a conv layer whose name contains ``DP``
is depthwise: it becomes one single-channel layer per channel, named ``<name>Channel_<i>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from numbers import Integral
from pathlib import Path

from codesign.errors import InputError, read_utf8
from codesign.ir.builder import CascadeBuilder, sanitize, var_access
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.index import Affine


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class GemmShape:
    """``ofmap[m, n] = sum_k ifmap[m, k] · filter[k, n]``; all extents in elements."""

    m: int
    n: int
    k: int

    def __post_init__(self) -> None:
        for name in ("m", "n", "k"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k


@dataclass(frozen=True, slots=True)
class ConvShape:
    """A conv layer as SCALE-Sim reads it: batch 1, no padding, extents in elements.

    Output size is SCALE-Sim's ``ceil((ifmap - filter + stride) / stride)`` per spatial
    dimension, i.e. ``ceil((ifmap - filter) / stride) + 1``: unlike the usual floor, a last
    partial window counts (230 wide, 7 wide filter, stride 2 gives 113, not 112).
    """

    ifmap_height: int
    ifmap_width: int
    filter_height: int
    filter_width: int
    channels: int
    num_filters: int
    stride_height: int = 1
    stride_width: int = 1

    def __post_init__(self) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if self.filter_height > self.ifmap_height:
            raise ValueError(
                f"filter_height {self.filter_height} exceeds ifmap_height {self.ifmap_height}"
            )
        if self.filter_width > self.ifmap_width:
            raise ValueError(
                f"filter_width {self.filter_width} exceeds ifmap_width {self.ifmap_width}"
            )

    @property
    def ofmap_height(self) -> int:
        return -(-(self.ifmap_height - self.filter_height) // self.stride_height) + 1

    @property
    def ofmap_width(self) -> int:
        return -(-(self.ifmap_width - self.filter_width) // self.stride_width) + 1

    def to_gemm(self) -> GemmShape:
        """The im2col GEMM: M = Ho·Wo, N = filters, K = Fh·Fw·C."""
        return GemmShape(
            m=self.ofmap_height * self.ofmap_width,
            n=self.num_filters,
            k=self.filter_height * self.filter_width * self.channels,
        )


class TopologyKind(Enum):
    CONV = "conv"
    GEMM = "gemm"


@dataclass(frozen=True, slots=True)
class ScaleSimLayer:
    """One topology row, with the GEMM (``m``, ``n``, ``k``) SCALE-Sim simulates for it.

    ``conv`` is the conv layer for conv-format rows and None for GEMM rows; ``sparsity_n`` of
    every ``sparsity_m`` weights are nonzero (1:1 = dense); ``line`` is the 1-based source line.
    """

    name: str
    m: int
    n: int
    k: int
    conv: ConvShape | None
    sparsity_n: int = 1
    sparsity_m: int = 1
    line: int = 0



# -------------------------------------------------------------------------------- topology

_CONV_FIELDS = (
    "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter",
    "Strides",
)  # fmt: skip
_GEMM_FIELDS = ("M", "N", "K")


def _detect_kind(header: str, source: str) -> TopologyKind:
    fields = [f.strip().lower() for f in header.split(",")]
    if len(fields) >= 4 and fields[1:4] == ["m", "n", "k"]:
        return TopologyKind.GEMM
    if len(fields) >= 2 and "ifmap" in fields[1]:
        return TopologyKind.CONV
    raise InputError(
        f"{source}:1: cannot tell conv from GEMM topology by its header {header.strip()!r} "
        "(expected 'Layer, M, N, K,' or 'Layer name, IFMAP Height, ...'); pass kind="
    )


def _int_field(value: str, field: str, source: str, line: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InputError(
            f"{source}:{line}: {field}: expected a positive integer, got {value.strip()!r}"
        ) from None
    if number <= 0:
        raise InputError(f"{source}:{line}: {field}: expected a positive integer, got {number}")
    return number


def _sparsity(value: str, source: str, line: int) -> tuple[int, int]:
    n_text, colon, m_text = value.partition(":")
    if not colon:
        raise InputError(f"{source}:{line}: sparsity: expected N:M, got {value.strip()!r}")
    n = _int_field(n_text, "sparsity N", source, line)
    m = _int_field(m_text, "sparsity M", source, line)
    if n > m:
        raise InputError(f"{source}:{line}: sparsity: N {n} exceeds M {m}")
    return n, m


def _conv_layers(fields: list[str], source: str, line: int) -> list[ScaleSimLayer]:
    name = fields[0].strip()
    h, w, fh, fw, ch, nf, stride = (
        _int_field(value, field, source, line)
        for value, field in zip(fields[1:8], _CONV_FIELDS, strict=True)
    )
    sn, sm = _sparsity(fields[8], source, line) if len(fields) > 8 else (1, 1)
    if fh > h:
        raise InputError(f"{source}:{line}: Filter Height {fh} exceeds IFMAP Height {h}")
    if fw > w:
        raise InputError(f"{source}:{line}: Filter Width {fw} exceeds IFMAP Width {w}")
    # SCALE-Sim: a name containing "DP" marks a depthwise layer, run one channel at a time.
    names = [f"{name}Channel_{i}" for i in range(ch)] if "DP" in name else [name]
    channels = 1 if "DP" in name else ch
    layers = []
    for layer_name in names:
        conv = ConvShape(h, w, fh, fw, channels, nf, stride, stride)
        gemm = conv.to_gemm()
        layers.append(ScaleSimLayer(layer_name, gemm.m, gemm.n, gemm.k, conv, sn, sm, line))
    return layers


def _gemm_layer(fields: list[str], source: str, line: int) -> ScaleSimLayer:
    m, n, k = (
        _int_field(value, field, source, line)
        for value, field in zip(fields[1:4], _GEMM_FIELDS, strict=True)
    )
    sn, sm = _sparsity(fields[4], source, line) if len(fields) > 4 else (1, 1)
    return ScaleSimLayer(fields[0].strip(), m, n, k, None, sn, sm, line)


def parse_topology_text(
    text: str, source: str = "<topology>", kind: TopologyKind | None = None
) -> tuple[ScaleSimLayer, ...]:
    """Parse a SCALE-Sim topology; ``kind`` None picks conv or GEMM from the header."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{source}:1: empty topology (expected a header line)")
    if kind is None:
        kind = _detect_kind(lines[0], source)
    width = 1 + (len(_CONV_FIELDS) if kind is TopologyKind.CONV else len(_GEMM_FIELDS))
    layers: list[ScaleSimLayer] = []
    for line_number, raw in enumerate(lines[1:], start=2):
        row = raw.strip()
        if not row:
            continue
        fields = row.split(",")
        if fields[-1].strip() == "":
            fields.pop()  # the trailing comma SCALE-Sim's rows end in
        if len(fields) not in (width, width + 1):
            raise InputError(
                f"{source}:{line_number}: expected {width} columns, got {len(fields)} "
                f"(a column {width + 1} may give N:M sparsity)"
            )
        if not fields[0].strip():
            raise InputError(f"{source}:{line_number}: empty layer name")
        if kind is TopologyKind.CONV:
            layers.extend(_conv_layers(fields, source, line_number))
        else:
            layers.append(_gemm_layer(fields, source, line_number))
    if not layers:
        raise InputError(f"{source}: no layers after the header")
    return tuple(layers)


def load_topology(path: str | Path, kind: TopologyKind | None = None) -> tuple[ScaleSimLayer, ...]:
    """Read a SCALE-Sim topology ``.csv``; errors read ``file:line: what``."""
    return parse_topology_text(read_utf8(path), source=str(path), kind=kind)


# ---------------------------------------------------------------------------------- to the IR
def layers_to_cascade(layers: tuple[ScaleSimLayer, ...], name: str = "topology") -> Cascade:
    """One MAC Einsum per topology row, 8-bit as SCALE-Sim's words; each layer has its own
    input, weight and output tensors (SCALE-Sim simulates layers independently).

    Conv rows keep their convolution form (output size as SCALE-Sim computes it; a last partial
    window reads past the input and is guarded); GEMM rows are ``Y[m,n] = sum[k] A[m,k]*B[k,n]``.
    """
    b = CascadeBuilder(name)
    for layer in layers:
        hint = sanitize(layer.name)
        if layer.conv is None:
            a = b.tensor(f"{hint}_A", (layer.m, layer.k), DType.I8, Role.INPUT, ranks=("M", "K"))
            w = b.tensor(f"{hint}_B", (layer.k, layer.n), DType.I8, Role.WEIGHT, ranks=("K", "N"))
            y = b.tensor(f"{hint}_Y", (layer.m, layer.n), DType.I8, Role.OUTPUT, ranks=("M", "N"))
            b.einsum(
                hint,
                var_access(y, "mn"),
                Binary(BinaryOp.MUL, var_access(a, "mk"), var_access(w, "kn")),
                {"m": layer.m, "n": layer.n, "k": layer.k},
                ReduceOp.SUM,
                ("k",),
                op="Gemm",
            )
            continue
        c = layer.conv
        p, q = c.ofmap_height, c.ofmap_width
        x = b.tensor(
            f"{hint}_ifmap",
            (1, c.channels, c.ifmap_height, c.ifmap_width),
            DType.I8,
            Role.INPUT,
            ranks=("N", "C", "H", "W"),
        )
        w = b.tensor(
            f"{hint}_filter",
            (c.num_filters, c.channels, c.filter_height, c.filter_width),
            DType.I8,
            Role.WEIGHT,
            ranks=("M", "C", "R", "S"),
        )
        y = b.tensor(
            f"{hint}_ofmap",
            (1, c.num_filters, p, q),
            DType.I8,
            Role.OUTPUT,
            ranks=("N", "M", "P", "Q"),
        )
        window = Access(
            x,
            (
                Affine.var("n"),
                Affine.var("c"),
                Affine.of([("p", c.stride_height), ("r", 1)]),
                Affine.of([("q", c.stride_width), ("s", 1)]),
            ),
        )
        b.einsum(
            hint,
            var_access(y, "nmpq"),
            Binary(BinaryOp.MUL, window, var_access(w, "mcrs")),
            {
                "n": 1,
                "m": c.num_filters,
                "p": p,
                "q": q,
                "c": c.channels,
                "r": c.filter_height,
                "s": c.filter_width,
            },
            ReduceOp.SUM,
            ("c", "r", "s"),
            op="Conv",
        )
    return b.build()


def load_topology_cascade(path: str | Path) -> Cascade:
    """A SCALE-Sim topology ``.csv`` as a Cascade (see `layers_to_cascade`)."""
    return layers_to_cascade(load_topology(path), Path(path).stem)
