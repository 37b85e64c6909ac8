"""Hierarchical roofline of a Cascade on a roofline ``Device`` (GPU, or the measured host CPU).

Definitions (docs/roofline.md has the full account and the comparison with LLM-Viewer):

* A *kernel* is one non-view Einsum, or a ``KernelGroup`` of Einsums fused into one kernel
  (flash attention) whose internal tensors never leave the chip.  Views (reshape, transpose,
  slice, concat pieces) are folded into their consumers' addressing when ``views_free``: no
  kernel, no time; their consumers read the view's bytes.
* ``ops``: arithmetic operations, a MAC = 2 ops, every other map/unary/reduction step = 1 op
  (``codesign.ir.stats``).  MACs run on the matrix (tensor-core) roof of their precision,
  other ops on the vector roof.
* ``memory_bytes`` at DRAM: the compulsory traffic, each tensor the kernel reads from outside it
  or writes for use outside it, once, in its IR dtype (so quantizing a tensor changes the bytes),
  times a per-tensor re-read factor for tiled fused kernels; a mapping may override the bytes of
  any kernel at any level.  Unmapped, every on-chip level sees the same compulsory bytes (each byte
  crosses each level at least once), so DRAM is the binding memory roof unless overridden.
* ``time_s = max(compute_s, bytes_L / bandwidth_L for each level L with a roof)``; the bound
  is ``"compute"`` or the name of the level attaining the maximum; attainable performance
  is ``ops / time_s`` = min(peak, intensity_L x bandwidth_L).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from codesign.hwmodels.gpu import Device, Precision, Unit, precision_of
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary
from codesign.ir.stats import EinsumStats, cascade_stats, einsum_stats

COMPUTE_BOUND = "compute"


class TensorKind(enum.Enum):
    """What a byte moved is, for the weights / KV-cache / activation split."""

    WEIGHT = "weight"
    KV = "kv"
    ACTIVATION = "activation"


@dataclass(frozen=True, slots=True)
class KernelGroup:
    """Einsums executed as one fused kernel; ``reread`` multiplies a tensor's DRAM bytes.

    ``reread`` models tiled fused kernels that stream an operand more than once (flash
    attention streams K and V once per query block).
    """

    name: str
    label: str
    einsums: tuple[str, ...]
    reread: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RooflineOptions:
    """How to cut and price a cascade.

    ``labels`` maps Einsum names to a layer-type label (default: the Einsum's ``op``);
    ``bytes_override`` maps kernel names to ``(level, bytes)`` pairs (e.g. from a mapping);
    ``kv_tensors`` names the KV-cache tensors (their views are KV too); ``tf32`` lets fp32
    matmuls use the TF32 tensor-core roof.
    """

    groups: tuple[KernelGroup, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    kv_tensors: frozenset[str] = frozenset()
    bytes_override: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    views_free: bool = True
    tf32: bool = False


@dataclass(frozen=True, slots=True)
class LevelTraffic:
    """Traffic of one kernel at one memory level and that level's roof."""

    level: str
    memory_bytes: int
    intensity_ops_per_byte: float
    bandwidth_bytes_per_s: float | None
    time_s: float  # bytes / bandwidth (0 when the level has no roof)


@dataclass(frozen=True, slots=True)
class RooflineRow:
    """One kernel (or, aggregated, all kernels of one layer type) on the roofline."""

    name: str
    label: str
    phase: str
    einsums: tuple[str, ...]
    ops: int
    matrix_ops: int  # 2 x MACs, on the tensor roof
    precision: Precision
    unit: Unit
    peak_ops_per_s: float  # ops / compute_s: the kernel's own compute roof
    compute_s: float
    memory_bytes: int  # at DRAM
    weights_bytes: int
    kv_bytes: int
    activation_bytes: int
    levels: tuple[LevelTraffic, ...]
    time_s: float
    bound: str  # "compute" or a level name
    count: int = 1  # kernels aggregated into this row

    @property
    def time_ms(self) -> float:
        return self.time_s * 1e3

    @property
    def intensity_ops_per_byte(self) -> float:
        """Operational intensity at DRAM."""
        return self.ops / self.memory_bytes if self.memory_bytes else math.inf

    @property
    def attainable_ops_per_s(self) -> float:
        return self.ops / self.time_s if self.time_s else 0.0


@dataclass(frozen=True, slots=True)
class PhaseTotals:
    phase: str
    ops: int
    memory_bytes: int
    weights_bytes: int
    kv_bytes: int
    time_s: float
    footprint_bytes: int  # weights + KV cache + the largest kernel's activations

    @property
    def time_ms(self) -> float:
        return self.time_s * 1e3

    def as_dict(self) -> dict[str, float | int]:
        """The JSON totals, with exactly the documented keys."""
        return {
            "ops": self.ops,
            "memory_bytes": self.memory_bytes,
            "weights_bytes": self.weights_bytes,
            "kv_bytes": self.kv_bytes,
            "time_ms": self.time_ms,
            "footprint_bytes": self.footprint_bytes,
        }


@dataclass(frozen=True, slots=True)
class PhaseReport:
    phase: str
    rows: tuple[RooflineRow, ...]
    totals: PhaseTotals


@dataclass(frozen=True, slots=True)
class RooflineReport:
    model: str
    device: Device = field(repr=False)
    phases: tuple[PhaseReport, ...]

    def phase(self, name: str) -> PhaseReport:
        for report in self.phases:
            if report.phase == name:
                return report
        raise KeyError(name)


# -- precisions ---------------------------------------------------------------------------------
def _widest(dtypes: Iterable[DType]) -> DType | None:
    floats = [d for d in dtypes if d.is_float]
    pool = floats or [d for d in dtypes if d is not DType.BOOL]
    return max(pool, key=lambda d: d.bits) if pool else None


def matrix_precision(a: DType, b: DType, tf32: bool = False) -> Precision:
    """The precision a product of `a` and `b` operands runs at.

    A float operand makes it a float product at the widest float (weight-only quantization,
    fp16 x int4, dequantizes to fp16); two integers run at the wider integer.
    """
    widest = _widest((a, b))
    assert widest is not None
    precision = precision_of(widest)
    return Precision.TF32 if tf32 and precision is Precision.FP32 else precision


def _einsum_precisions(einsum: Einsum, cascade: Cascade, tf32: bool) -> tuple[Precision, Precision]:
    """(matrix precision, vector precision) of one Einsum."""
    dtypes = [cascade.tensor(t).dtype for t in (*einsum.input_tensors, einsum.output.tensor)]
    body = einsum.body
    if isinstance(body, Binary) and isinstance(body.lhs, Access) and isinstance(body.rhs, Access):
        a, b = cascade.tensor(body.lhs.tensor).dtype, cascade.tensor(body.rhs.tensor).dtype
        matrix = matrix_precision(a, b, tf32)
    else:
        matrix = precision_of(_widest(dtypes) or DType.F32)
    vector = precision_of(_widest(dtypes) or DType.F32)
    return matrix, vector


# -- tensor kinds -------------------------------------------------------------------------------
def tensor_kinds(cascade: Cascade, kv_tensors: frozenset[str]) -> dict[str, TensorKind]:
    """Weight / KV / activation for every tensor, followed through views.

    A view of a weight is a weight; a view with a KV-cache input is KV, and so are its other
    inputs (the new entries a concat appends to the cache).
    """
    kinds = {t.name: TensorKind.ACTIVATION for t in cascade.tensors}
    for t in cascade.tensors:
        if t.role is Role.WEIGHT:
            kinds[t.name] = TensorKind.WEIGHT
        if t.name in kv_tensors:
            kinds[t.name] = TensorKind.KV
    views = [e for e in cascade.einsums if e.is_view]
    for _ in range(3):  # views of views: a few sweeps reach the fixpoint in practice
        for e in views:
            inputs = [kinds[t] for t in e.input_tensors]
            out = e.output.tensor
            if TensorKind.KV in inputs or kinds[out] is TensorKind.KV:
                kinds[out] = TensorKind.KV
                for name in e.input_tensors:
                    if kinds[name] is TensorKind.ACTIVATION:
                        kinds[name] = TensorKind.KV
            elif inputs and all(k is TensorKind.WEIGHT for k in inputs):
                kinds[out] = TensorKind.WEIGHT
    return kinds


def retype(
    cascade: Cascade,
    kinds: Mapping[str, TensorKind],
    weight: DType | None = None,
    activation: DType | None = None,
    kv: DType | None = None,
) -> Cascade:
    """The cascade with float tensors of each kind stored as the given type (None: unchanged).

    This is the roofline's what-if quantization: only storage types change (integer tensors such
    as token ids keep theirs), and weight data is dropped because it no longer matches.
    """
    new = {TensorKind.WEIGHT: weight, TensorKind.ACTIVATION: activation, TensorKind.KV: kv}
    tensors = []
    for t in cascade.tensors:
        dtype = new[kinds[t.name]]
        if dtype is None or not t.dtype.is_float or dtype is t.dtype:
            tensors.append(t)
        else:
            tensors.append(replace(t, dtype=dtype, data=None))
    return Cascade(cascade.name, tuple(tensors), cascade.einsums)


# -- kernels ------------------------------------------------------------------------------------
def _kernels(cascade: Cascade, options: RooflineOptions) -> list[KernelGroup]:
    labels = dict(options.labels)
    grouped = {name: g for g in options.groups for name in g.einsums}
    kernels: list[KernelGroup] = []
    emitted: set[str] = set()
    for e in cascade.einsums:
        group = grouped.get(e.name)
        if group is not None:
            if group.name not in emitted:
                emitted.add(group.name)
                kernels.append(group)
            continue
        if e.is_view and options.views_free:
            continue
        kernels.append(KernelGroup(e.name, labels.get(e.name, e.op or e.name), (e.name,)))
    return kernels


def _boundary_bytes(
    kernel: KernelGroup, cascade: Cascade, stats: Mapping[str, EinsumStats]
) -> dict[str, int]:
    """Bytes of each tensor the kernel reads from, or writes to, outside itself."""
    members = set(kernel.einsums)
    produced = {cascade.einsum(n).output.tensor for n in kernel.einsums}
    touched: dict[str, int] = {}
    for name in kernel.einsums:
        for tensor, n in stats[name].tensor_bytes:
            touched[tensor] = max(touched.get(tensor, 0), n)
    if len(members) == 1:
        return touched
    moved: dict[str, int] = {}
    for tensor, n in touched.items():
        if tensor not in produced:
            moved[tensor] = n
        elif cascade.tensor(tensor).role is Role.OUTPUT or any(
            c.name not in members for c in cascade.consumers(tensor)
        ):
            moved[tensor] = n
    return moved


def _evaluate(
    kernel: KernelGroup,
    cascade: Cascade,
    stats: Mapping[str, EinsumStats],
    kinds: Mapping[str, TensorKind],
    device: Device,
    options: RooflineOptions,
    phase: str,
) -> RooflineRow:
    compute_s = 0.0
    ops = matrix_ops = 0
    precision, unit = None, Unit.VECTOR
    for name in kernel.einsums:
        s = stats[name]
        if s.flops == 0:
            continue
        matrix_p, vector_p = _einsum_precisions(cascade.einsum(name), cascade, options.tf32)
        if s.macs:
            u, peak = device.compute_unit(matrix_p, matrix=True)
            compute_s += 2 * s.macs / peak
            matrix_ops += 2 * s.macs
            if precision is None or unit is not Unit.TENSOR:
                precision, unit = matrix_p, u
        other = s.flops - 2 * s.macs
        if other:
            compute_s += other / device.compute_unit(vector_p, matrix=False)[1]
            precision = precision or vector_p
        ops += s.flops
    reread = dict(kernel.reread)
    moved = {t: n * reread.get(t, 1) for t, n in _boundary_bytes(kernel, cascade, stats).items()}
    by_kind = {kind: 0 for kind in TensorKind}
    for tensor, n in moved.items():
        by_kind[kinds[tensor]] += n
    dram_bytes = sum(moved.values())
    override = dict(dict(options.bytes_override).get(kernel.name, ()))
    levels = []
    for level in device.levels:
        n = override.get(level.name, dram_bytes)
        bw = level.bandwidth_bytes_per_s
        levels.append(
            LevelTraffic(
                level=level.name,
                memory_bytes=n,
                intensity_ops_per_byte=ops / n if n else math.inf,
                bandwidth_bytes_per_s=bw,
                time_s=n / bw if bw else 0.0,
            )
        )
    time_s, bound = compute_s, COMPUTE_BOUND
    for lt in levels:
        if lt.time_s > time_s:
            time_s, bound = lt.time_s, lt.level
    return RooflineRow(
        name=kernel.name,
        label=kernel.label,
        phase=phase,
        einsums=kernel.einsums,
        ops=ops,
        matrix_ops=matrix_ops,
        precision=precision or Precision.FP32,
        unit=unit,
        peak_ops_per_s=ops / compute_s if compute_s else 0.0,
        compute_s=compute_s,
        memory_bytes=levels[0].memory_bytes,
        weights_bytes=by_kind[TensorKind.WEIGHT],
        kv_bytes=by_kind[TensorKind.KV],
        activation_bytes=by_kind[TensorKind.ACTIVATION],
        levels=tuple(levels),
        time_s=time_s,
        bound=bound,
    )


def einsum_row(
    einsum: Einsum, cascade: Cascade, device: Device, options: RooflineOptions | None = None
) -> RooflineRow:
    """One Einsum as its own kernel on `device` (what `map` reports for a roofline device)."""
    options = options or RooflineOptions()
    kernel = KernelGroup(einsum.name, einsum.op or einsum.name, (einsum.name,))
    stats = {einsum.name: einsum_stats(einsum, cascade)}
    kinds = tensor_kinds(cascade, options.kv_tensors)
    return _evaluate(kernel, cascade, stats, kinds, device, options, "")


def analyze(
    cascade: Cascade, device: Device, options: RooflineOptions | None = None, phase: str = ""
) -> PhaseReport:
    """Price every kernel of `cascade` on `device`; one phase (a cascade is one phase)."""
    options = options or RooflineOptions()
    stats = {s.name: s for s in cascade_stats(cascade).einsums}
    kinds = tensor_kinds(cascade, options.kv_tensors)
    rows = tuple(
        _evaluate(k, cascade, stats, kinds, device, options, phase)
        for k in _kernels(cascade, options)
    )
    weights = sum(t.size_bytes for t in cascade.weights)
    # KV storage: tensors that are KV and not merely views of other KV tensors
    view_outputs = {e.output.tensor for e in cascade.einsums if e.is_view}
    kv_storage = sum(
        t.size_bytes
        for t in cascade.tensors
        if kinds[t.name] is TensorKind.KV and t.name not in view_outputs
    )
    activations = max((r.activation_bytes for r in rows), default=0)
    totals = PhaseTotals(
        phase=phase,
        ops=sum(r.ops for r in rows),
        memory_bytes=sum(r.memory_bytes for r in rows),
        weights_bytes=sum(r.weights_bytes for r in rows),
        kv_bytes=sum(r.kv_bytes for r in rows),
        time_s=sum(r.time_s for r in rows),
        footprint_bytes=weights + kv_storage + activations,
    )
    return PhaseReport(phase, rows, totals)


def by_label(rows: Iterable[RooflineRow]) -> tuple[RooflineRow, ...]:
    """Rows summed per (phase, label), in order of first appearance.

    The aggregate's bound is that of its slowest member; its levels sum the members' bytes
    and times.
    """
    groups: dict[tuple[str, str], list[RooflineRow]] = {}
    for r in rows:
        groups.setdefault((r.phase, r.label), []).append(r)
    out = []
    for (phase, label), members in groups.items():
        slowest = max(members, key=lambda r: r.time_s)
        compute_s = sum(r.compute_s for r in members)
        ops = sum(r.ops for r in members)
        levels = tuple(
            LevelTraffic(
                level=lt.level,
                memory_bytes=(n := sum(r.levels[i].memory_bytes for r in members)),
                intensity_ops_per_byte=ops / n if n else math.inf,
                bandwidth_bytes_per_s=lt.bandwidth_bytes_per_s,
                time_s=sum(r.levels[i].time_s for r in members),
            )
            for i, lt in enumerate(slowest.levels)
        )
        out.append(
            RooflineRow(
                name=label,
                label=label,
                phase=phase,
                einsums=tuple(e for r in members for e in r.einsums),
                ops=ops,
                matrix_ops=sum(r.matrix_ops for r in members),
                precision=slowest.precision,
                unit=slowest.unit,
                peak_ops_per_s=ops / compute_s if compute_s else 0.0,
                compute_s=compute_s,
                memory_bytes=sum(r.memory_bytes for r in members),
                weights_bytes=sum(r.weights_bytes for r in members),
                kv_bytes=sum(r.kv_bytes for r in members),
                activation_bytes=sum(r.activation_bytes for r in members),
                levels=levels,
                time_s=sum(r.time_s for r in members),
                bound=slowest.bound,
                count=sum(r.count for r in members),
            )
        )
    return tuple(out)


def row_dict(row: RooflineRow) -> dict[str, object]:
    """A row as JSON: the totals' keys plus the roofline coordinates."""
    return {
        "name": row.name,
        "label": row.label,
        "phase": row.phase,
        "count": row.count,
        "ops": row.ops,
        "memory_bytes": row.memory_bytes,
        "weights_bytes": row.weights_bytes,
        "kv_bytes": row.kv_bytes,
        "time_ms": row.time_ms,
        "intensity_ops_per_byte": None
        if math.isinf(row.intensity_ops_per_byte)
        else row.intensity_ops_per_byte,
        "attainable_ops_per_s": row.attainable_ops_per_s,
        "bound": row.bound,
        "precision": row.precision.value,
        "unit": row.unit.value,
        "levels": {lt.level: lt.memory_bytes for lt in row.levels},
    }
