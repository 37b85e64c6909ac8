"""What a spatial array does with zeros, Sparseloop's vocabulary: an array that *gates*
ineffectual MACs saves their energy, one that *skips* them saves their cycles too; storing an
operand compressed saves traffic but moves metadata; an N:M array skips only within (N, M) groups.

A card declares it in its ``sparse:`` section; `Arch.sparse` carries it (dense by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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
