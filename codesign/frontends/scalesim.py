"""Read SCALE-Sim v3 inputs: ``.cfg`` architecture files and ``.csv`` topology files.

Config (INI, read with configparser; keys are case-insensitive as in SCALE-Sim)::

    [general]              run_name
    [architecture_presets] ArrayHeight, ArrayWidth, IfmapSramSzkB, FilterSramSzkB, OfmapSramSzkB,
                           IfmapOffset, FilterOffset, OfmapOffset, Dataflow (ws|os|is),
                           Bandwidth (comma list, words/cycle; needed for USER), MemoryBanks,
                           ReadRequestBuffer, WriteRequestBuffer
    [run_presets]          InterfaceBandwidth (CALC|USER), UseRamulatorTrace
    [layout]               IfmapCustomLayout, FilterCustomLayout, ...        (optional here)
    [sparsity]             SparsitySupport, ...                               (optional here)
    [network_presets]      TopologyCsvLoc                                     (optional)

Array size, dataflow, SRAM sizes and InterfaceBandwidth are required; everything else defaults
to SCALE-Sim's own defaults (SCALE-Sim 3.0.0 itself also insists on [layout] and [sparsity], which
the configs in its repository do not always have).

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

import configparser
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from codesign.errors import InputError
from codesign.ir.builder import CascadeBuilder, sanitize, var_access
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.index import Affine
from codesign.sim.systolic import ConvShape, Dataflow, SystolicArray

_E = TypeVar("_E", bound=Enum)


class InterfaceBandwidth(Enum):
    """SCALE-Sim's DRAM interface mode: estimate the bandwidth needed, or use the user's."""

    CALC = "CALC"
    USER = "USER"


class TopologyKind(Enum):
    CONV = "conv"
    GEMM = "gemm"


@dataclass(frozen=True, slots=True)
class ScaleSimConfig:
    """A SCALE-Sim ``.cfg``. SRAM sizes in kB (1024 bytes); offsets in words; bandwidth in
    words per cycle; request buffers in entries."""

    run_name: str
    array_height: int
    array_width: int
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    dataflow: Dataflow
    interface_bandwidth: InterfaceBandwidth
    bandwidth_words_per_cycle: tuple[int, ...] = ()
    ifmap_offset: int = 0
    filter_offset: int = 10_000_000
    ofmap_offset: int = 20_000_000
    memory_banks: int = 1
    read_request_buffer_entries: int = 60
    write_request_buffer_entries: int = 60
    use_ramulator_trace: bool = False
    ifmap_custom_layout: bool = False
    filter_custom_layout: bool = False
    sparsity_support: bool = False
    topology_path: str = ""

    def to_array(self) -> SystolicArray:
        """ArrayHeight rows × ArrayWidth columns running the configured dataflow."""
        return SystolicArray(self.array_height, self.array_width, self.dataflow)


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


# ---------------------------------------------------------------------------------- config


def _parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    return None


class _Section:
    """Typed, error-reporting reads of one config section (only used while loading)."""

    def __init__(self, parser: configparser.ConfigParser, name: str, source: str) -> None:
        self._parser, self._name, self._source = parser, name, source

    def _raw(self, key: str) -> str | None:
        if not self._parser.has_section(self._name):
            return None
        value = self._parser.get(self._name, key, fallback=None)
        return None if value is None else value.strip()

    def _where(self, key: str) -> str:
        return f"{self._source}: [{self._name}] {key}"

    def text(self, key: str, default: str | None = None) -> str:
        value = self._raw(key)
        if value is None:
            if default is None:
                raise InputError(f"{self._where(key)}: missing")
            return default
        return value

    def integer(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        value = self._raw(key)
        if value is None or value == "":
            if default is None:
                raise InputError(f"{self._where(key)}: missing")
            return default
        try:
            number = int(value)
        except ValueError:
            raise InputError(f"{self._where(key)}: expected an integer, got {value!r}") from None
        if number < minimum:
            raise InputError(f"{self._where(key)}: must be >= {minimum}, got {number}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        parsed = _parse_bool(value)
        if parsed is None:
            raise InputError(f"{self._where(key)}: expected True or False, got {value!r}")
        return parsed

    def choice(self, key: str, enum: type[_E], normalise: Callable[[str], str]) -> _E:
        value = self.text(key)
        for member in enum:
            if member.value == normalise(value):
                return member
        known = ", ".join(str(member.value) for member in enum)
        raise InputError(f"{self._where(key)}: expected one of {known}, got {value!r}")


def parse_config_text(text: str, source: str = "<config>") -> ScaleSimConfig:
    """Parse the text of a SCALE-Sim ``.cfg``; ``source`` names it in error messages."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=source)
    except configparser.MissingSectionHeaderError as error:
        raise InputError(f"{source}:{error.lineno}: expected a [section] header first") from None
    except configparser.DuplicateSectionError as error:
        raise InputError(f"{source}:{error.lineno}: duplicate section [{error.section}]") from None
    except configparser.DuplicateOptionError as error:
        raise InputError(
            f"{source}:{error.lineno}: duplicate key {error.option!r} in [{error.section}]"
        ) from None
    except configparser.ParsingError as error:
        lineno = error.errors[0][0] if error.errors else 0
        raise InputError(f"{source}:{lineno}: not a 'key: value' line") from None
    arch = _Section(parser, "architecture_presets", source)
    run = _Section(parser, "run_presets", source)
    general = _Section(parser, "general", source)
    layout = _Section(parser, "layout", source)
    sparsity = _Section(parser, "sparsity", source)
    network = _Section(parser, "network_presets", source)

    interface = run.choice("InterfaceBandwidth", InterfaceBandwidth, str.upper)
    bandwidth_text = arch.text("Bandwidth", default="")
    bandwidths: list[int] = []
    for item in filter(None, (part.strip() for part in bandwidth_text.split(","))):
        try:
            bandwidths.append(int(item))
        except ValueError:
            raise InputError(
                f"{source}: [architecture_presets] Bandwidth: expected integers, got {item!r}"
            ) from None
        if bandwidths[-1] <= 0:
            raise InputError(
                f"{source}: [architecture_presets] Bandwidth: must be positive, got {item!r}"
            )
    if interface is InterfaceBandwidth.USER and not bandwidths:
        raise InputError(
            f"{source}: [architecture_presets] Bandwidth: missing (needed by "
            "InterfaceBandwidth: USER)"
        )
    return ScaleSimConfig(
        run_name=general.text("run_name", default="scale_run"),
        array_height=arch.integer("ArrayHeight"),
        array_width=arch.integer("ArrayWidth"),
        ifmap_sram_kb=arch.integer("IfmapSramSzkB"),
        filter_sram_kb=arch.integer("FilterSramSzkB"),
        ofmap_sram_kb=arch.integer("OfmapSramSzkB"),
        dataflow=arch.choice("Dataflow", Dataflow, str.lower),
        interface_bandwidth=interface,
        bandwidth_words_per_cycle=tuple(bandwidths),
        ifmap_offset=arch.integer("IfmapOffset", default=0, minimum=0),
        filter_offset=arch.integer("FilterOffset", default=10_000_000, minimum=0),
        ofmap_offset=arch.integer("OfmapOffset", default=20_000_000, minimum=0),
        memory_banks=arch.integer("MemoryBanks", default=1),
        read_request_buffer_entries=arch.integer("ReadRequestBuffer", default=60),
        write_request_buffer_entries=arch.integer("WriteRequestBuffer", default=60),
        use_ramulator_trace=run.boolean("UseRamulatorTrace", default=False),
        ifmap_custom_layout=layout.boolean("IfmapCustomLayout", default=False),
        filter_custom_layout=layout.boolean("FilterCustomLayout", default=False),
        sparsity_support=sparsity.boolean("SparsitySupport", default=False),
        topology_path=network.text("TopologyCsvLoc", default="").strip().strip('"'),
    )


def _read_text(path: str | Path) -> tuple[str, str]:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8"), path.name
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read ({error})") from None


def load_config(path: str | Path) -> ScaleSimConfig:
    """Read a SCALE-Sim ``.cfg`` file; errors name the file and the section/key."""
    text, name = _read_text(path)
    return parse_config_text(text, source=name)


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
    text, name = _read_text(path)
    return parse_topology_text(text, source=name, kind=kind)


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
