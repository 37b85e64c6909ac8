"""FuseMax / FLAT attention accelerators: a 2D PE array plus a 1D PE array over one global buffer.

``family: attention_array`` YAML (examples/hw/fusemax.yaml, examples/hw/flat.yaml), validated
once into a frozen `AttentionArray`.  The two designs of the FuseMax paper (Nayak et al., MICRO
2024) differ in what a PE can do:

* FLAT: the 2D array only multiplies-accumulates; the 1D array is a chain of pipelined function
  units (max, exp, add, divide) that retires one Einsum *point* per PE per cycle, whatever the
  point's operations (``point_per_cycle: true``).
* FuseMax: every PE (2D and 1D) has one MAC unit and one max unit; an exponential is 6 MACs + 1
  add (7 cycles); other operations take one cycle each (``op_cycles``).

Energies are per action (pJ) as in Accelergy energy reference tables; `leak_pj_per_cycle` is
the static energy of one PE per cycle.  Units: `clock_mhz`, `bandwidth_gbps` (10^9 B/s),
`buffer_bytes`, `word_bytes`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from codesign.hwmodels.yamlio import load_validated

FAMILY = "attention_array"


class Op(enum.Enum):
    """Operation kinds an attention cascade's Einsums issue (counted by `sim.fusemax`)."""

    MAC = "mac"  # one multiply-accumulate of a sum-of-products reduction
    ADD = "add"  # add, subtract, and one step of a sum reduction
    MUL = "mul"
    MAX = "max"  # max, min, and one step of a max reduction
    EXP = "exp"
    DIV = "div"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpTable(_Strict):
    mac: NonNegativeFloat
    add: NonNegativeFloat
    mul: NonNegativeFloat
    max: NonNegativeFloat
    exp: NonNegativeFloat
    div: NonNegativeFloat


class ArraySpec(_Strict):
    pes: PositiveInt
    point_per_cycle: bool = False  # FLAT's 1D chain: one point per PE per cycle
    op_cycles: OpTable  # issue cycles per operation (ignored when point_per_cycle)
    energy_pj: OpTable  # per operation
    rf_accesses_per_op: NonNegativeFloat  # register-file accesses one operation makes
    rf_access_pj: NonNegativeFloat
    leak_pj_per_cycle: NonNegativeFloat  # one PE, static


class BufferSpec(_Strict):
    bytes: PositiveInt
    access_pj_per_word: PositiveFloat  # one word read or written


class DramSpec(_Strict):
    bandwidth_gbps: PositiveFloat
    pj_per_byte: PositiveFloat


class AttentionArraySpec(_Strict):
    family: Literal["attention_array"]
    name: str = Field(min_length=1)
    source: str = ""
    clock_mhz: PositiveFloat
    word_bytes: PositiveInt = 2
    exp_on_2d: bool  # FuseMax: per-key work (exp, max) binds to the 2D array
    array_2d: ArraySpec
    array_1d: ArraySpec
    buffer: BufferSpec
    dram: DramSpec
    sources: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class PeArray:
    """One PE array: its size, per-op cycles and energies (pJ), register-file and leak costs."""

    pes: int
    point_per_cycle: bool
    op_cycles: tuple[tuple[Op, float], ...]
    op_energy_pj: tuple[tuple[Op, float], ...]
    rf_accesses_per_op: float
    rf_access_pj: float
    leak_pj_per_cycle: float

    def cycles_of(self, op: Op) -> float:
        return dict(self.op_cycles)[op]

    def energy_of(self, op: Op) -> float:
        return dict(self.op_energy_pj)[op]


@dataclass(frozen=True, slots=True)
class AttentionArray:
    """A FuseMax-style accelerator: 2D + 1D PE arrays, a global buffer and DRAM."""

    name: str
    clock_mhz: float
    word_bytes: int
    exp_on_2d: bool
    array_2d: PeArray
    array_1d: PeArray
    buffer_bytes: int
    buffer_pj_per_word: float
    dram_bandwidth_gbps: float
    dram_pj_per_byte: float
    family: str = FAMILY

    @property
    def clock_ghz(self) -> float:
        return self.clock_mhz / 1e3

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram_bandwidth_gbps * 1e9 / (self.clock_mhz * 1e6)


def _table(t: OpTable) -> tuple[tuple[Op, float], ...]:
    return tuple((op, float(getattr(t, op.value))) for op in Op)


def _array(spec: ArraySpec) -> PeArray:
    return PeArray(
        spec.pes, spec.point_per_cycle, _table(spec.op_cycles), _table(spec.energy_pj),
        spec.rf_accesses_per_op, spec.rf_access_pj, spec.leak_pj_per_cycle,
    )  # fmt: skip


def load_attention_array(path: str | Path) -> AttentionArray:
    """Validate a ``family: attention_array`` YAML into an `AttentionArray`."""
    return attention_array_from_spec(load_validated(path, AttentionArraySpec), Path(path))


def attention_array_from_spec(spec: AttentionArraySpec, path: Path) -> AttentionArray:
    """The frozen hardware of a validated spec (the build step a family registry calls)."""
    del path  # the card references no other file
    return AttentionArray(
        spec.name, spec.clock_mhz, spec.word_bytes, spec.exp_on_2d, _array(spec.array_2d),
        _array(spec.array_1d), spec.buffer.bytes, spec.buffer.access_pj_per_word,
        spec.dram.bandwidth_gbps, spec.dram.pj_per_byte,
    )  # fmt: skip


__all__ = [
    "AttentionArray", "AttentionArraySpec", "Op", "PeArray", "attention_array_from_spec",
    "load_attention_array",
]  # fmt: skip
