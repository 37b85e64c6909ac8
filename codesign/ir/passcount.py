"""Pass counting (FuseMax, section 3): how many times a cascade must traverse a rank.

A *pass* over rank M is one traversal of M's fibres.  An Einsum whose output no longer carries
M but whose inputs did (``GM[p] = max[m] QK[m,p]``) *completes* M: whatever reads its result
has to wait for the traversal to end, so it runs in a later pass.  Reading a tensor that still
carries M (elementwise, or reduced over an inner tile rank only: ``LM[m1,p] = max[m0] ...``)
streams along in the same pass, and so does an iterative Einsum's running state
(`codesign.ir.recurrence`).  An Einsum that does not traverse M but reads a tensor of a pass
(the final state ``RNV[f,M1,p]``) sees it only once that pass has ended.

Hence 3-pass softmax (max; exp, sum; divide, AV) needs 3 passes
over the key rank, deferring the division after AV needs 2, and the online-softmax cascade 1.

Which dimensions carry M: every tensor dimension whose rank is named M, then (forward only,
from inputs to outputs) every output dimension indexed by a variable that indexes an
M-dimension in the same Einsum (tiles ``m1*M0+m0`` included).  Propagating only forwards keeps
a rank from leaking into the producers of its tensors (self-attention's keys and queries both
come from the same sequence, but the query rank is not the key rank).

The consequence (FuseMax section 3): a tensor that carries M and is produced in one pass but
read in a later one must either stay on chip for a whole fibre of M per row in flight, or make a
DRAM round trip (one write, one read per later pass that reads it).
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.expr import Access

Dim = tuple[str, int]  # (tensor name, dimension)


@dataclass(frozen=True, slots=True)
class CrossingTensor:
    """A tensor carrying the rank, produced in pass `produced_in` and read up to `last_read_in`.

    `fiber_bytes` is one fibre along the rank's dimensions (what one row in flight must keep
    on chip); `tensor_bytes` the whole tensor; `later_passes` how many later passes read it.
    """

    tensor: str
    produced_in: int
    last_read_in: int
    later_passes: int
    fiber_bytes: int
    tensor_bytes: int


@dataclass(frozen=True, slots=True)
class RankPasses:
    """Passes over one rank: the count, each traversing Einsum's pass, the tensors that cross
    passes, and the rank's extent (product of the rank-named dimensions of the largest tensor)."""

    rank: str
    extent: int
    passes: int
    einsum_pass: tuple[tuple[str, int], ...]
    crossing: tuple[CrossingTensor, ...]

    @property
    def fiber_bytes(self) -> int:
        """On-chip bytes one row in flight needs to avoid any DRAM round trip."""
        return sum(c.fiber_bytes for c in self.crossing)

    def spill_bytes(self, buffer_bytes: int) -> int:
        """Extra DRAM traffic (bytes) when the buffer cannot hold one row's crossing fibres:
        each crossing tensor is written once and read back once per later pass; 0 otherwise."""
        if self.fiber_bytes <= buffer_bytes:
            return 0
        return sum(c.tensor_bytes * (1 + c.later_passes) for c in self.crossing)


def rank_dims(cascade: Cascade, rank: str) -> frozenset[Dim]:
    """The tensor dimensions that carry `rank` (see the module docstring)."""
    dims = {(t.name, d) for t in cascade.tensors for d, r in enumerate(t.ranks) if r == rank}
    changed = True
    while changed:
        changed = False
        for einsum in cascade.einsums:
            mvars = rank_vars(einsum, dims)
            out = einsum.output
            for d, index in enumerate(out.indices):
                if (out.tensor, d) not in dims and set(index.variables) & mvars:
                    dims.add((out.tensor, d))
                    changed = True
    return frozenset(dims)


def rank_vars(einsum: Einsum, dims: set[Dim] | frozenset[Dim]) -> set[str]:
    names: set[str] = set()
    for access in (einsum.output, *einsum.inputs):
        for d, index in enumerate(access.indices):
            if (access.tensor, d) in dims:
                names.update(index.variables)
    return names


def _carries(access: Access, dims: frozenset[Dim]) -> bool:
    return any((access.tensor, d) in dims for d in range(len(access.indices)))


def count_passes(cascade: Cascade, rank: str) -> RankPasses:
    """The passes `cascade` makes over `rank` (0 when no Einsum traverses it)."""
    dims = rank_dims(cascade, rank)
    ready: dict[str, int] = {}  # the first pass in which a tensor's values can be read
    produced: dict[str, int] = {}
    reads: dict[str, set[int]] = {}
    einsum_pass: list[tuple[str, int]] = []
    for einsum in cascade.einsums:
        inputs = [t for t in einsum.input_tensors if t != einsum.output.tensor]
        start = max((ready.get(t, 0) for t in inputs), default=0)
        out = einsum.output.tensor
        if rank_vars(einsum, dims) & set(einsum.extents):
            current = max(start, 1)
            einsum_pass.append((einsum.name, current))
            for t in inputs:
                reads.setdefault(t, set()).add(current)
            keeps = _carries(einsum.output, dims)
            done = current if keeps else current + 1
            produced[out] = max(produced.get(out, 0), current)
        else:
            # outside any traversal (e.g. reading a recurrence's final state RNV[f,M1,p]): it
            # sees a tensor of a pass only once that pass has ended
            done = max((_complete(t, ready, produced) for t in inputs), default=0)
        ready[out] = max(ready.get(out, 0), done)
    passes = max((p for _, p in einsum_pass), default=0)
    crossing: list[CrossingTensor] = []
    for name, made in produced.items():
        spec = cascade.tensor(name)
        later = sorted(p for p in reads.get(name, ()) if p > made)
        if not later or not any((name, d) in dims for d in range(len(spec.shape))):
            continue
        fiber = 1
        for d, n in enumerate(spec.shape):
            if (name, d) in dims:
                fiber *= n
        fiber_bytes = -(-fiber * spec.dtype.bits // 8)
        crossing.append(CrossingTensor(name, made, later[-1], len(later), fiber_bytes,
                                       spec.size_bytes))  # fmt: skip
    extent = 0
    for spec in cascade.tensors:
        size = 1
        for d, n in enumerate(spec.shape):
            if (spec.name, d) in dims:
                size *= n
        if any((spec.name, d) in dims for d in range(len(spec.shape))):
            extent = max(extent, size)
    return RankPasses(rank, extent, passes, tuple(einsum_pass), tuple(crossing))


def _complete(tensor: str, ready: dict[str, int], produced: dict[str, int]) -> int:
    """The first pass that sees all of `tensor`."""
    return max(ready.get(tensor, 0), produced[tensor] + 1 if tensor in produced else 0)


def rank_names(cascade: Cascade) -> tuple[str, ...]:
    """Every rank name the cascade's tensors use, sorted."""
    return tuple(sorted({r for t in cascade.tensors for r in t.ranks}))


__all__ = ["CrossingTensor", "RankPasses", "count_passes", "rank_dims", "rank_names", "rank_vars"]
