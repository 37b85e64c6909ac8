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
from enum import Enum

from codesign.hwmodels.arch import Arch


class SparseAction(Enum):
    NONE = "none"
    GATING = "gating"
    SKIPPING = "skipping"


@dataclass(frozen=True, slots=True)
class SparseSupport:
    """What the hardware does with zeros.  `compute`: at the MACs; `compressed_weights`: the
    weight moves in its recorded format (values + metadata); `nm`: skipping only within (N, M)
    groups; `gated_energy_ratio`: a gated MAC's energy as a fraction of an effectual one."""

    compute: SparseAction = SparseAction.NONE
    compressed_weights: bool = False
    nm: tuple[int, int] | None = None
    gated_energy_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.nm is not None and not 0 < self.nm[0] <= self.nm[1]:
            raise ValueError(f"impossible N:M {self.nm[0]}:{self.nm[1]} (need 0 < N <= M)")
        if not 0.0 <= self.gated_energy_ratio <= 1.0:
            raise ValueError("gated_energy_ratio must be in [0, 1]")


DENSE_ARRAY = SparseSupport()
GATING_ARRAY = SparseSupport(SparseAction.GATING, compressed_weights=True)
SKIPPING_ARRAY = SparseSupport(SparseAction.SKIPPING, compressed_weights=True)


@dataclass(frozen=True, slots=True)
class NMArray:
    """A spatial array with N:M weight skipping."""

    arch: Arch
    support: SparseSupport

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
