"""The Einsum-cascade IR: tensors, extended Einsums and the Cascade DAG.

Semantics of one `Einsum` (TeAAL/EDGE-style extended Einsum)::

    Out[o...] = reduce[r...] body(point)        for every point of `space`

* `space` lists every iteration variable with its extent: first the variables of the output
  access (in order of first appearance), then the reduced variables.
* The body is evaluated at every point; a *guarded* point, where some input index falls outside
  its tensor's extent, is skipped: it contributes the reduction's identity (0 for sum, -inf for
  max).  That is how padding is written (``X[b,c,2p+r-1,2q+s-1]``).  Einsums without a
  reduction may not read out of bounds (the verifier checks).
* Output indices are affine; a tensor may have several producer Einsums that each write a
  disjoint region (concat).  Together they must cover the tensor exactly.
* An Einsum whose body is a single access and has no reduction is a *view* (transpose, reshape,
  slice, concat piece): pure data movement, no arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING

from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Expr, ReduceOp, accesses
from codesign.ir.groups import FusedGroup

if TYPE_CHECKING:
    import networkx as nx
    import numpy as np  # loaded where tensor data is computed, not to build a cascade
from codesign.ir.index import Affine, Gathered, IndexExpr
from codesign.ir.traits import EinsumClass, classify, mac_operands


class QuantFormat(Enum):
    """How the codes of a quantized tensor map to real values (see `Quantization`)."""

    INT = "int"  # uniform integer codes times a scale (minus a zero point when asymmetric)
    TERNARY = "ternary"  # {-1, 0, 1} times an absmean scale (BitNet b1.58)
    FP = "fp"  # minifloat codes (the tensor's dtype) times a scale
    MX = "mx"  # OCP microscaling: element codes times a shared power-of-two (E8M0) scale
    BITMOD = "bitmod"  # BitMoD: per group the lowest-MSE FP variant with one special value


@dataclass(frozen=True, slots=True)
class Quantization:
    """How a tensor was quantized; `TensorSpec.dtype` is the storage type of its codes.

    The tensor's values (weight `data`, interpreter results) are the dequantized reals, held in
    float32 (simulated quantization).  Scales (and zero points, when `zero_point`) are shared by
    `group_size` consecutive elements along `axis`: `axis=None` is one scale for the tensor,
    `group_size=None` one scale per slice along `axis` (per channel).  Zero points are stored in
    the code width.
    """

    format: QuantFormat
    axis: int | None = None
    group_size: int | None = None
    scale_dtype: DType = DType.F16
    zero_point: bool = False

    def groups(self, shape: tuple[int, ...]) -> int:
        """Number of scales a tensor of `shape` carries."""
        if self.axis is None:
            return 1
        n = shape[self.axis]
        per_slice = 1 if self.group_size is None else math.ceil(n / self.group_size)
        return math.prod(shape) // n * per_slice


class SparseFormat(Enum):
    """How the nonzeros of a sparse tensor are stored (see `Sparsity`)."""

    DENSE = "dense"  # every element stored, zeros included (no metadata)
    BITMAP = "bitmap"  # one presence bit per element plus the nonzero values
    CSR = "csr"  # compressed segments along `axis` (default the first rank): pointers + coords
    CSC = "csc"  # as CSR with the segments along `axis` (default the last rank)
    COO = "coo"  # coordinate list: every nonzero stores all its coordinates
    NM = "nm"  # N of every M consecutive elements along `axis`: values + log2(M) bits each


@dataclass(frozen=True, slots=True)
class Sparsity:
    """Density and storage format of a tensor with zeros (weights after pruning, KV caches).

    `density` is the fraction of nonzero elements in [0, 1]; for weights with data it is the
    measured fraction, for activations (no data) the expected one that cost models use
    statistically.  N:M keeps at most `n` nonzeros in every group of `m` consecutive elements
    along rank `axis`.  `storage_bits` prices the compressed form (values plus metadata).
    """

    format: SparseFormat
    density: float
    n: int | None = None
    m: int | None = None
    axis: int | None = None

    def nonzeros(self, size: int) -> int:
        return round(self.density * size)

    def metadata_bits(self, shape: tuple[int, ...]) -> int:
        """Bits of format metadata (bitmaps, pointers, coordinates, N:M positions)."""
        size = math.prod(shape)
        nnz = self.nonzeros(size)
        if self.format is SparseFormat.DENSE:
            return 0
        if self.format is SparseFormat.BITMAP:
            return size
        if self.format is SparseFormat.COO:
            return nnz * sum(_index_bits(n) for n in shape)
        if self.format is SparseFormat.NM:
            return nnz * _index_bits(self.m or 1)
        axis = self.segment_axis(len(shape))
        segments = shape[axis] if shape else 1
        return (segments + 1) * _index_bits(nnz + 1) + nnz * _index_bits(size // max(segments, 1))

    def segment_axis(self, rank: int) -> int:
        """The rank CSR/CSC segment along (CSR: first by default, CSC: last)."""
        if self.axis is not None:
            return self.axis
        return 0 if self.format is not SparseFormat.CSC else max(rank - 1, 0)

    def storage_bits(self, shape: tuple[int, ...], value_bits: int) -> int:
        """Values plus metadata; a DENSE tensor stores every element."""
        size = math.prod(shape)
        if self.format is SparseFormat.DENSE:
            return size * value_bits
        return self.nonzeros(size) * value_bits + self.metadata_bits(shape)


def _index_bits(extent: int) -> int:
    """Bits to address one of `extent` positions (at least 1)."""
    return max(1, math.ceil(math.log2(extent))) if extent > 1 else 1


class Role(Enum):
    INPUT = "input"
    WEIGHT = "weight"
    INTERMEDIATE = "tensor"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A tensor with named ranks.  `data` (weights only) is excluded from equality."""

    name: str
    ranks: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: DType
    role: Role
    data: np.ndarray | None = field(default=None, compare=False, repr=False)
    quant: Quantization | None = None
    sparse: Sparsity | None = None

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def size_bytes(self) -> int:
        """Storage size in bytes, sub-byte types packed."""
        return math.ceil(self.size * self.dtype.bits / 8)

    @property
    def scale_bytes(self) -> int:
        """Bytes of the quantization scales and zero points (0 when not quantized)."""
        if self.quant is None:
            return 0
        bits = self.quant.scale_dtype.bits + (self.dtype.bits if self.quant.zero_point else 0)
        return math.ceil(self.quant.groups(self.shape) * bits / 8)

    @property
    def storage_bytes(self) -> int:
        """Packed codes (compressed with metadata when `sparse`) plus quantization scales and
        zero points, in bytes."""
        if self.sparse is not None:
            packed = math.ceil(self.sparse.storage_bits(self.shape, self.dtype.bits) / 8)
            return packed + self.scale_bytes
        return self.size_bytes + self.scale_bytes

    @property
    def value_dtype(self) -> np.dtype:
        """The NumPy type the interpreter holds values in: float32 for quantized tensors (their
        values are dequantized reals), else the dtype's holder."""
        import numpy as np

        return np.dtype(np.float32) if self.quant is not None else self.dtype.numpy


@dataclass(frozen=True, slots=True)
class Einsum:
    """One extended Einsum; build with `Einsum.build` to get the canonical `space` order."""

    name: str
    output: Access
    body: Expr
    space: tuple[tuple[str, int], ...]
    reduce: ReduceOp | None = None
    reduced: tuple[str, ...] = ()
    op: str = ""

    @staticmethod
    def build(
        name: str,
        output: Access,
        body: Expr,
        extents: Mapping[str, int],
        reduce: ReduceOp | None = None,
        reduced: tuple[str, ...] = (),
        op: str = "",
    ) -> Einsum:
        """An Einsum whose `space` is ordered canonically from `extents`."""
        order = output_variables(output) + tuple(reduced)
        missing = [v for v in order if v not in extents]
        if missing:
            raise ValueError(f"einsum {name}: no extent for {', '.join(missing)}")
        space = tuple((v, int(extents[v])) for v in order)
        return Einsum(name, output, body, space, reduce, tuple(reduced), op)

    @property
    def extents(self) -> dict[str, int]:
        return dict(self.space)

    @property
    def points(self) -> int:
        """Size of the iteration space."""
        return math.prod(extent for _, extent in self.space)

    @property
    def inputs(self) -> tuple[Access, ...]:
        return accesses(self.body)

    @property
    def input_tensors(self) -> tuple[str, ...]:
        """Distinct tensors read (index tensors of gathers included), in reading order."""
        names: list[str] = []
        for access in self.inputs:
            for name in (access.tensor, *_index_tensors(access.indices)):
                if name not in names:
                    names.append(name)
        return tuple(names)

    @property
    def einsum_class(self) -> EinsumClass:
        """View / contraction / elementwise / reduction (`codesign.ir.traits`)."""
        return classify(self.body, self.reduce)

    @property
    def is_view(self) -> bool:
        """True for pure data movement (transpose, reshape, slice, concat piece)."""
        return self.einsum_class is EinsumClass.VIEW

    @property
    def is_contraction(self) -> bool:
        """True for a sum-reduced product of two tensors (a MAC nest)."""
        return self.einsum_class is EinsumClass.CONTRACTION

    @property
    def mac_operands(self) -> tuple[Access, Access] | None:
        """The two accesses of a contraction, in body order (None for other Einsums)."""
        return mac_operands(self.body, self.reduce)


def output_variables(output: Access) -> tuple[str, ...]:
    seen: list[str] = []
    for index in output.indices:
        for name in index.variables:
            if name not in seen:
                seen.append(name)
    return tuple(seen)


def _index_tensors(indices: tuple[IndexExpr, ...]) -> list[str]:
    names: list[str] = []
    for index in indices:
        if isinstance(index, Gathered):
            names.append(index.tensor)
            names.extend(_index_tensors(index.indices))
    return names


@dataclass(frozen=True, slots=True)
class Cascade:
    """An ordered DAG of Einsums over declared tensors (einsums in a topological order).

    `groups` (see `codesign.ir.groups`) say which Einsums run fused as one kernel; they never
    change what the cascade computes."""

    name: str
    tensors: tuple[TensorSpec, ...]
    einsums: tuple[Einsum, ...]
    groups: tuple[FusedGroup, ...] = ()
    _index: dict[str, TensorSpec] = field(init=False, compare=False, repr=False)
    # tensor -> consumers / producers, and name -> Einsum: built once, on first use, so that a
    # walk over every tensor's consumers is linear in the Einsums, not quadratic
    _uses: _Uses | None = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t.name: t for t in self.tensors})

    def _built_uses(self) -> _Uses:
        if self._uses is None:
            object.__setattr__(self, "_uses", _Uses.of(self.einsums))
        assert self._uses is not None
        return self._uses

    def tensor(self, name: str) -> TensorSpec:
        return self._index[name]

    def has_tensor(self, name: str) -> bool:
        return name in self._index

    def with_role(self, role: Role) -> tuple[TensorSpec, ...]:
        return tuple(t for t in self.tensors if t.role is role)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.with_role(Role.INPUT)

    @property
    def weights(self) -> tuple[TensorSpec, ...]:
        return self.with_role(Role.WEIGHT)

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.with_role(Role.OUTPUT)

    def einsum(self, name: str) -> Einsum:
        """The first Einsum called `name`; KeyError when there is none."""
        return self._built_uses().by_name[name]

    def producers(self, tensor: str) -> tuple[Einsum, ...]:
        """The Einsums writing `tensor`, in cascade order."""
        return self._built_uses().producers.get(tensor, ())

    def consumers(self, tensor: str) -> tuple[Einsum, ...]:
        """The Einsums reading `tensor` (as data or as an index), in cascade order."""
        return self._built_uses().consumers.get(tensor, ())

    def graph(self) -> nx.MultiDiGraph:
        """Einsum-level dataflow graph: nodes are Einsum names, edges carry the tensor name."""
        import networkx as nx  # only the graph view needs it; start-up does not pay for it

        g = nx.MultiDiGraph()
        producers: dict[str, list[str]] = {}
        for e in self.einsums:
            g.add_node(e.name, einsum=e)
            producers.setdefault(e.output.tensor, []).append(e.name)
        for e in self.einsums:
            for t in e.input_tensors:
                for p in producers.get(t, []):
                    g.add_edge(p, e.name, tensor=t)
        return g

    def replace_einsums(self, einsums: tuple[Einsum, ...]) -> Cascade:
        """The cascade with other Einsums; groups keep the members that remain (checked at the
        end of the pass by `codesign.ir.groups.carry_groups`)."""
        names = {e.name for e in einsums}
        groups = tuple(
            replace(g, einsums=tuple(n for n in g.einsums if n in names)) for g in self.groups
        )
        groups = tuple(g for g in groups if len(g.einsums) > 1)
        return Cascade(self.name, self.tensors, einsums, groups)


@dataclass(frozen=True, slots=True)
class _Uses:
    """Who reads and writes each tensor, and each Einsum by name (one pass over the Einsums)."""

    producers: dict[str, tuple[Einsum, ...]]
    consumers: dict[str, tuple[Einsum, ...]]
    by_name: dict[str, Einsum]

    @staticmethod
    def of(einsums: tuple[Einsum, ...]) -> _Uses:
        producers: dict[str, list[Einsum]] = {}
        consumers: dict[str, list[Einsum]] = {}
        by_name: dict[str, Einsum] = {}
        for e in einsums:
            by_name.setdefault(e.name, e)
            producers.setdefault(e.output.tensor, []).append(e)
            for name in dict.fromkeys(e.input_tensors):  # once per Einsum, as before
                consumers.setdefault(name, []).append(e)
        return _Uses(
            {k: tuple(v) for k, v in producers.items()},
            {k: tuple(v) for k, v in consumers.items()},
            by_name,
        )


def affine_outputs(einsum: Einsum) -> tuple[Affine, ...]:
    """The output indices, which are affine by construction (the verifier checks)."""
    return tuple(i for i in einsum.output.indices if isinstance(i, Affine))
