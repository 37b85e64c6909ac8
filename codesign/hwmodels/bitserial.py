"""Bit-serial (and bit-parallel) PE arrays: BitMoD-, Stripes- and Loom-style, ANT/OliVe baselines.

``family: bitserial`` YAML, validated once (pydantic, ``extra="forbid"``) into a frozen
`BitSerialArray`.  The array is ``rows x cols`` PEs; each PE reduces ``dp`` products per step
(its dot-product lanes).  Output channels run down the rows, tokens across the columns and the
reduction over the lanes, so a GEMM of ``cin`` x ``cout`` x ``tokens`` takes
``ceil(cin/dp) * ceil(cout/rows) * ceil(tokens/cols)`` *tiles* of `latency_cycles` cycles each
(VALIDATION.md section 4; the BitMoD artifact's ``bitmod_sim``).

How many cycles a tile takes is the PE's `PeMode`:

* ``weight_serial`` (BitMoD): ``ceil(floor(w_bits) / weight_bits_per_cycle)`` - the fractional
  part of an average weight width is the per-group scale overhead, stored but not computed on;
* ``activation_serial`` (Stripes): ``ceil(a_bits / activation_bits_per_cycle)``;
* ``both_serial`` (Loom): the product of the two;
* ``bit_parallel`` (FP16/ANT/OliVe baselines): 1.

Units are in the names: bits, KiB, pJ per PE-cycle / per bit / per DRAM access, GHz.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codesign.hwmodels.yamlio import load_validated

FAMILY = "bitserial"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Bits = Annotated[float, Field(ge=1, le=32)]


class PeMode(enum.Enum):
    """Which operand a PE consumes bit-serially."""

    WEIGHT_SERIAL = "weight_serial"
    ACTIVATION_SERIAL = "activation_serial"
    BOTH_SERIAL = "both_serial"
    BIT_PARALLEL = "bit_parallel"

    @property
    def is_serial(self) -> bool:
        return self is not PeMode.BIT_PARALLEL


# -- schema (validation only) -------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArraySpec(_Strict):
    rows: PositiveInt  # PE rows: output channels in parallel
    cols: PositiveInt  # PE columns: tokens in parallel
    dp: PositiveInt = 1  # dot-product lanes per PE: reduction elements per step


class PeSpec(_Strict):
    mode: PeMode
    weight_bits_per_cycle: PositiveInt = 2
    activation_bits_per_cycle: PositiveInt = 1
    energy_pj: PositiveFloat  # per PE per compute cycle, from synthesis
    pnr_scale: PositiveFloat = 1.0  # place-and-route factor applied to energy_pj


class PrecisionSpec(_Strict):
    weight_bits: Bits | None = None  # average incl. scale overhead; None: the IR's weight dtype
    activation_bits: Bits | None = 16  # None: the IR's activation dtype
    attention_bits: Bits = 16  # both operands of activation x activation Einsums (QK^T, SV)


class BufferSpec(_Strict):
    weight_kib: PositiveFloat
    input_kib: PositiveFloat
    read_energy_pj_per_bit: PositiveFloat
    write_energy_pj_per_bit: PositiveFloat
    weight_align_bits: PositiveInt = 4  # weights are stored padded to a multiple of this


class DramSpec(_Strict):
    bits_per_cycle: PositiveFloat
    access_bits: PositiveInt = 128
    access_energy_pj: PositiveFloat


class VectorSpec(_Strict):
    """The unit that runs non-MAC Einsums (norms, softmax, activations).

    ``dram_traffic: false`` keeps their operands in the on-chip buffers (the unit post-processes
    GEMM outputs as they leave the array, as accelerators such as BitMoD assume); ``true``
    streams each one's compulsory footprint through DRAM.
    """

    lanes: PositiveInt
    energy_pj_per_op: PositiveFloat
    dram_traffic: bool = False


class BitSerialSpec(_Strict):
    family: Literal["bitserial"]
    name: str = Field(min_length=1)
    source: str = ""
    clock_ghz: PositiveFloat
    technology_nm: PositiveFloat = 28
    array: ArraySpec
    pe: PeSpec
    precision: PrecisionSpec = PrecisionSpec()
    buffers: BufferSpec
    dram: DramSpec
    vector: VectorSpec
    sources: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> BitSerialSpec:
        if self.pe.mode is PeMode.BIT_PARALLEL and self.array.dp != 1:
            raise ValueError("a bit_parallel PE has one MAC (array.dp must be 1)")
        return self


# -- frozen hardware ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BitSerialArray:
    """A PE array with weight/input buffers and DRAM; see the module docstring for the model."""

    name: str
    clock_ghz: float
    technology_nm: float
    rows: int
    cols: int
    dp: int
    mode: PeMode
    weight_bits_per_cycle: int
    activation_bits_per_cycle: int
    pe_energy_pj: float  # per PE per compute cycle, place-and-route included
    weight_bits: float | None  # None: from the IR
    activation_bits: float | None
    attention_bits: float
    weight_buffer_bytes: int
    input_buffer_bytes: int
    sram_read_pj_per_bit: float
    sram_write_pj_per_bit: float
    weight_align_bits: int
    dram_bits_per_cycle: float
    dram_pj_per_bit: float
    vector_lanes: int
    vector_pj_per_op: float
    vector_dram_traffic: bool
    source_path: str = ""
    family: str = FAMILY

    @property
    def pe_count(self) -> int:
        return self.rows * self.cols

    def latency_cycles(self, weight_bits: float, activation_bits: float) -> int:
        """Cycles one tile (one dp-wide step of every PE) takes at these operand widths."""
        w_steps = math.ceil(math.floor(weight_bits) / self.weight_bits_per_cycle)
        a_steps = math.ceil(math.floor(activation_bits) / self.activation_bits_per_cycle)
        return {
            PeMode.WEIGHT_SERIAL: w_steps,
            PeMode.ACTIVATION_SERIAL: a_steps,
            PeMode.BOTH_SERIAL: w_steps * a_steps,
            PeMode.BIT_PARALLEL: 1,
        }[self.mode]

    def stored_weight_bits(self, weight_bits: float) -> int:
        """Bits a weight occupies in a buffer word (padded to `weight_align_bits`)."""
        align = self.weight_align_bits
        return math.ceil(weight_bits / align) * align


def array_from_spec(spec: BitSerialSpec, source_path: str = "") -> BitSerialArray:
    return BitSerialArray(
        name=spec.name,
        clock_ghz=spec.clock_ghz,
        technology_nm=spec.technology_nm,
        rows=spec.array.rows,
        cols=spec.array.cols,
        dp=spec.array.dp,
        mode=spec.pe.mode,
        weight_bits_per_cycle=spec.pe.weight_bits_per_cycle,
        activation_bits_per_cycle=spec.pe.activation_bits_per_cycle,
        pe_energy_pj=spec.pe.energy_pj * spec.pe.pnr_scale,
        weight_bits=spec.precision.weight_bits,
        activation_bits=spec.precision.activation_bits,
        attention_bits=spec.precision.attention_bits,
        weight_buffer_bytes=round(spec.buffers.weight_kib * 1024),
        input_buffer_bytes=round(spec.buffers.input_kib * 1024),
        sram_read_pj_per_bit=spec.buffers.read_energy_pj_per_bit,
        sram_write_pj_per_bit=spec.buffers.write_energy_pj_per_bit,
        weight_align_bits=spec.buffers.weight_align_bits,
        dram_bits_per_cycle=spec.dram.bits_per_cycle,
        dram_pj_per_bit=spec.dram.access_energy_pj / spec.dram.access_bits,
        vector_lanes=spec.vector.lanes,
        vector_pj_per_op=spec.vector.energy_pj_per_op,
        vector_dram_traffic=spec.vector.dram_traffic,
        source_path=source_path,
    )


def load_bitserial(path: str | Path) -> BitSerialArray:
    """Validate a ``family: bitserial`` YAML; InputError ``file:line: field: message``."""
    return array_from_spec(load_validated(path, BitSerialSpec), str(path))
