"""What a spatial array does with zeros (`SparseSupport`), and the SAT-like N:M array.

Sparseloop's vocabulary: an array that *gates* ineffectual MACs saves their energy, one that
*skips* them saves their cycles too; storing an operand compressed saves traffic but moves
metadata.  An N:M array (SAT, NVIDIA's sparse tensor cores) skips within groups: each PE row
takes the N nonzeros of every M weights plus their log2(M)-bit positions, so it finishes a
fitting N:M layer M/N times faster and gains nothing on unstructured zeros.

`nm_array(arch, n, m)` pairs a spatial `Arch` (its levels, fan-out and energy table) with
N:M skipping and compressed weights; `examples/hw/sat_like.yaml` is the array SAT's figures are
reproduced on (examples/papers/sat.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.hwmodels.arch import Arch
from codesign.hwmodels.sparse_support import (
    DENSE_ARRAY,
    GATING_ARRAY,
    SKIPPING_ARRAY,
    SparseAction,
    SparseSupport,
)


@dataclass(frozen=True, slots=True)
class NMArray:
    """A spatial array with N:M weight skipping."""

    arch: Arch
    support: SparseSupport

    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def clock_ghz(self) -> float:
        return self.arch.clock_ghz

    @property
    def speedup_bound(self) -> float:
        """The compute speedup ceiling M/N."""
        assert self.support.nm is not None
        return self.support.nm[1] / self.support.nm[0]


def nm_array(arch: Arch, n: int, m: int) -> NMArray:
    """`arch` skipping zero weights in N:M groups, weights stored as N:M (values + positions)."""
    return NMArray(arch, SparseSupport(SparseAction.SKIPPING, compressed_weights=True, nm=(n, m)))


__all__ = [
    "DENSE_ARRAY", "GATING_ARRAY", "NMArray", "SKIPPING_ARRAY", "SparseAction", "SparseSupport",
    "nm_array",
]  # fmt: skip
