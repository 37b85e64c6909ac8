"""Per-Einsum statistics: the raw material of every cost model and of the roofline.

Counting conventions (docs/ir.md):
* ``points`` is the iteration-space size.
* A sum-reduced product of two operands (``sum[k] A*B``) counts one MAC per point; its
  ``flops`` are 2 per MAC.
* Otherwise each map/unary node of the body counts one op of its kind per point, and a reduction
  counts ``points - output_points`` ops of its kind (combining n values takes n-1 ops).
* A view (transpose/reshape/slice/concat piece) has no ops, only bytes.
* ``tensor_bytes`` is each tensor's compulsory traffic: the footprint the Einsum touches (the
  range of each index, capped by the dimension), in bytes of the tensor's dtype.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.expr import Access, Binary, Select, Unary, walk
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod


@dataclass(frozen=True, slots=True)
class EinsumStats:
    name: str
    op: str
    points: int
    output_points: int
    macs: int
    ops: tuple[tuple[str, int], ...]  # op kind -> count, sorted by kind
    tensor_bytes: tuple[tuple[str, int], ...]  # tensor -> compulsory bytes, reading order
    output_tensor: str

    @property
    def flops(self) -> int:
        """Arithmetic operations, a MAC counted as two."""
        return 2 * self.macs + sum(n for _, n in self.ops)

    @property
    def input_bytes(self) -> int:
        return sum(n for t, n in self.tensor_bytes if t != self.output_tensor)

    @property
    def output_bytes(self) -> int:
        return dict(self.tensor_bytes).get(self.output_tensor, 0)

    @property
    def total_bytes(self) -> int:
        return sum(n for _, n in self.tensor_bytes)

    @property
    def intensity_flops_per_byte(self) -> float:
        return self.flops / self.total_bytes if self.total_bytes else math.inf


@dataclass(frozen=True, slots=True)
class CascadeStats:
    einsums: tuple[EinsumStats, ...]

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.einsums)

    @property
    def flops(self) -> int:
        return sum(s.flops for s in self.einsums)

    @property
    def points(self) -> int:
        return sum(s.points for s in self.einsums)

    def ops(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self.einsums:
            total.update(dict(s.ops))
        return dict(sorted(total.items()))


def _extent_of(index: IndexExpr, extents: dict[str, int], size: int, cascade: Cascade) -> int:
    if isinstance(index, Gathered):
        spec = cascade.tensor(index.tensor)
        return min(size, spec.size)
    if isinstance(index, (Affine, FloorDiv, Mod)):
        lo, hi = index.bounds(extents)
        lo, hi = max(lo, 0), min(hi, size - 1)
        return max(0, hi - lo + 1)
    raise TypeError(index)


def footprint(access: Access, einsum: Einsum, cascade: Cascade) -> int:
    """Elements of `access.tensor` that the Einsum touches (an upper bound for strided reads)."""
    spec = cascade.tensor(access.tensor)
    extents = einsum.extents
    count = 1
    for index, size in zip(access.indices, spec.shape, strict=True):
        count *= _extent_of(index, extents, size, cascade)
    vars_used = {v for i in access.indices for v in i.variables}
    dense_points = math.prod(extents[v] for v in vars_used) if vars_used else 1
    return min(count, dense_points, spec.size)


def einsum_stats(einsum: Einsum, cascade: Cascade) -> EinsumStats:
    points = einsum.points
    out_points = math.prod(n for v, n in einsum.space if v not in einsum.reduced)
    ops: Counter[str] = Counter()
    macs = 0
    if einsum.is_contraction:
        macs = points
    elif not einsum.is_view:
        for node in walk(einsum.body):
            if isinstance(node, Unary):
                ops[node.op.value] += points
            elif isinstance(node, Binary):
                ops[node.op.name.lower()] += points
            elif isinstance(node, Select):
                ops["select"] += points
        if einsum.reduce is not None:
            ops[f"reduce_{einsum.reduce.value}"] += points - out_points
    elements: dict[str, int] = {}
    for access in (*einsum.inputs, einsum.output):
        n = footprint(access, einsum, cascade)
        elements[access.tensor] = max(elements.get(access.tensor, 0), n)
        for index in access.indices:
            if isinstance(index, Gathered):
                inner = Access(index.tensor, index.indices)
                elements[index.tensor] = max(
                    elements.get(index.tensor, 0), footprint(inner, einsum, cascade)
                )
    tensor_bytes = tuple(
        (name, math.ceil(n * cascade.tensor(name).dtype.bits / 8)) for name, n in elements.items()
    )
    return EinsumStats(
        einsum.name, einsum.op, points, out_points, macs, tuple(sorted(ops.items())),
        tensor_bytes, einsum.output.tensor,
    )  # fmt: skip


def cascade_stats(cascade: Cascade) -> CascadeStats:
    return CascadeStats(tuple(einsum_stats(e, cascade) for e in cascade.einsums))
