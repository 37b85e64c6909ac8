"""Frozen hardware description: what ``load_arch`` returns; no dicts past the loader.

Units are in the names: sizes in words of ``word_bits``, bandwidths in words per cycle per
instance, energies in pJ per access of ``block_words`` words, clock in GHz.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from codesign.hwmodels.sparse_support import DENSE_ARRAY, SparseSupport


class TensorRole(enum.Enum):
    """What a tensor is to the MAC; hardware levels keep or bypass tensors by role."""

    INPUT = "inputs"
    WEIGHT = "weights"
    OUTPUT = "outputs"


class Dataflow(enum.Enum):
    """Dataflow hint: which tensor stays in the PE between consecutive MACs."""

    WS = "ws"
    OS = "os"
    IS = "is"

    @property
    def stationary_role(self) -> TensorRole:
        return {
            Dataflow.WS: TensorRole.WEIGHT,
            Dataflow.OS: TensorRole.OUTPUT,
            Dataflow.IS: TensorRole.INPUT,
        }[self]


class Action(enum.Enum):
    """Energy-table actions (Accelergy's ERT action names)."""

    READ = "read"
    WRITE = "write"  # a fill from the parent level
    UPDATE = "update"  # a partial-sum write from the child level
    MAC = "mac"
    LEAK = "leak"  # per instance per cycle


class MemoryKind(enum.Enum):
    DRAM = "dram"
    SRAM = "sram"
    REGFILE = "regfile"


@dataclass(frozen=True, slots=True)
class ActionEnergy:
    """Energy of one action in pJ (per access of a level's block, per MAC, or per cycle)."""

    action: Action
    energy_pj: float
    source: str
    bits: int | None = None  # MAC precision, for MAC actions


@dataclass(frozen=True, slots=True)
class ComponentEnergy:
    """One ERT/ART row: a component's actions and its area."""

    name: str
    actions: tuple[ActionEnergy, ...]
    area_um2: float
    source: str

    def energy_pj(self, action: Action, bits: int | None = None) -> float | None:
        for entry in self.actions:
            if entry.action is action and (bits is None or entry.bits in (None, bits)):
                return entry.energy_pj
        return None


@dataclass(frozen=True, slots=True)
class EnergyTable:
    """Energy-per-action and area table for one technology node (Accelergy's ERT + ART)."""

    name: str
    technology_nm: float
    components: tuple[ComponentEnergy, ...]
    source: str

    def component(self, name: str) -> ComponentEnergy | None:
        return next((c for c in self.components if c.name == name), None)


@dataclass(frozen=True, slots=True)
class StorageLevel:
    """One storage level; ``fanout_x * fanout_y`` instances of the next level sit below each one.

    Per-word energies are the ERT's per-access energies divided by ``block_words``.
    """

    name: str
    kind: MemoryKind
    size_words: int | None  # None: unbounded (DRAM)
    word_bits: int
    block_words: int
    banks: int
    read_bandwidth_words_per_cycle: float | None  # None: unlimited
    write_bandwidth_words_per_cycle: float | None
    keeps: frozenset[TensorRole]
    fanout_x: int
    fanout_y: int
    read_energy_pj: float  # per word
    write_energy_pj: float
    update_energy_pj: float
    leak_energy_pj_per_cycle: float  # per instance
    area_um2: float

    @property
    def fanout(self) -> int:
        return self.fanout_x * self.fanout_y


@dataclass(frozen=True, slots=True)
class ComputeUnit:
    name: str
    mac_bits: int
    count: int
    mac_energy_pj: float
    leak_energy_pj_per_cycle: float
    area_um2: float


@dataclass(frozen=True, slots=True)
class Arch:
    """A storage hierarchy, outermost (DRAM) first, above an array of ``compute.count`` MACs."""

    name: str
    clock_ghz: float
    technology_nm: float
    dataflow: Dataflow | None
    levels: tuple[StorageLevel, ...]
    compute: ComputeUnit
    energy_table: EnergyTable
    source_path: str
    sparse: SparseSupport = DENSE_ARRAY  # what the array does with zeros (the card's sparse:)

    def level_index(self, name: str) -> int:
        for index, level in enumerate(self.levels):
            if level.name == name:
                return index
        raise KeyError(name)

    def instances(self, level_index: int) -> int:
        """Instances of a level: product of the fan-outs of all levels above it."""
        return math.prod(level.fanout for level in self.levels[:level_index])

    @property
    def area_um2(self) -> float:
        total = self.compute.area_um2 * self.compute.count
        for index, level in enumerate(self.levels):
            total += level.area_um2 * self.instances(index)
        return total
