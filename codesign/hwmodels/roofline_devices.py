"""Roofline devices of the accelerator families that are not GPUs or spatial arrays.

Each card becomes a `RooflineHardware` whose roofs are derived from the card's own fields, with
no constants added here (docs/roofline.md, "Other families", states each rule and where the
roofline is only a bound):

* ``tensor_core`` (MMA or LUT tensor cores on a host GPU): the host's device (its SMs, peaks,
  DRAM and caches), scaled by the card's ``efficiency``.  A LUT card adds its units' peak,
  ``2 x M x N x K x units/SM x SMs / W x clock`` at a ``W``-bit weight, under the precision of
  its ``activation_bits`` integer activations (a W<=max_weight_bits x A-bit product is an
  integer product at the activation width); the host's own MMA peak stays where it is higher.
  Default types: weights ``int{max_weight_bits}``, activations ``int{activation_bits}``.
* ``bitserial`` (BitMoD/Stripes/Loom PE arrays and their bit-parallel baselines): every MAC runs
  on the ``rows x cols`` PEs of ``dp`` lanes, one tile per `BitSerialArray.latency_cycles` at the
  weight and activation widths, so the matrix peak is ``2 x rows x cols x dp x clock /
  latency``; every other op runs on the vector unit, ``lanes x clock``.  The array runs any
  product at that rate, so both peaks are listed under every precision.  DRAM moves
  ``dram.bits_per_cycle / 8`` bytes per cycle; the input and weight buffers are levels with a
  capacity and no roof (the card gives no buffer bandwidth).
* ``piuma`` (multi-threaded scalar pipelines): the fabric issues `PiumaArch.issue_per_cycle`
  instructions per cycle, one operation each (threads hide latency, they do not add issue
  slots); every op runs there (no matrix unit).  DRAM is ``cores x bandwidth_gbps_per_core``;
  the scratchpad's roof is one ``access_bytes`` word per issued instruction; the per-pipeline
  caches are a level without a roof.
* ``attention_array`` (FuseMax/FLAT: a 2D and a 1D PE array over a global buffer): MACs run on
  the 2D array, ``2 x pes_2d x clock / mac cycles``; every other op runs where the card binds
  the per-key work -- the 2D array when ``exp_on_2d`` (FuseMax), else the 1D array (FLAT) --
  one op per PE per cycle (an exponential takes ``op_cycles.exp`` cycles there, so the roof is
  a bound on softmax-heavy kernels).  DRAM ``dram.bandwidth_gbps``; the global buffer is a level
  with a capacity and no roof (the card gives no buffer bandwidth).  Operands are stored in the
  card's ``word_bytes`` (2: FP16, 4: FP32, 1: INT8), as `map` prices them.
"""

from __future__ import annotations

import math
from functools import partial

from codesign.hwmodels.bitserial import BitSerialArray
from codesign.hwmodels.fusemax import FAMILY as ATTENTION_FAMILY
from codesign.hwmodels.fusemax import AttentionArray, Op
from codesign.hwmodels.gpu import Device, LevelKind, MemoryLevel, Precision, precision_of
from codesign.hwmodels.lut_tc import CoreKind, TensorCoreGpu
from codesign.hwmodels.piuma import FAMILY as PIUMA_FAMILY
from codesign.hwmodels.piuma import PiumaArch
from codesign.hwmodels.spatial_device import RooflineHardware
from codesign.ir.dtypes import DType

_SIGNED_INTS = (DType.I1, DType.I2, DType.I3, DType.I4, DType.I5, DType.I6, DType.I7, DType.I8,
                DType.I16, DType.I32, DType.I64)  # fmt: skip


def int_dtype(bits: float) -> DType:
    """The narrowest signed integer type holding `bits` bits (fractional bits round up: an
    average width that includes per-group scales is stored in the next whole width)."""
    for dtype in _SIGNED_INTS:
        if dtype.bits >= math.ceil(bits):
            return dtype
    return DType.I64


def _every_precision(peak_ops_per_s: float) -> tuple[tuple[Precision, float], ...]:
    return tuple((p, peak_ops_per_s) for p in Precision)


def _accelerator(
    name: str, family: str, units: int, clock_ghz: float, matrix_ops_per_s: float | None,
    vector_ops_per_s: float, levels: tuple[MemoryLevel, ...], source: str, source_path: str,
) -> Device:
    """A pure roofline Device of an accelerator card: peaks listed under every precision (the
    card runs any product at that rate), no register file, efficiencies 1."""
    return Device(
        name=name, family=family, compute_units=units, clock_ghz=clock_ghz,
        tensor_peaks=() if matrix_ops_per_s is None else _every_precision(matrix_ops_per_s),
        vector_peaks=_every_precision(vector_ops_per_s), levels=levels,
        registers_bytes_per_sm=None, compute_efficiency=1.0, memory_efficiency=1.0,
        source=f"codesign.hwmodels.roofline_devices.{source}", sources=(),
        source_path=source_path,
    )  # fmt: skip


# -- tensor-core GPUs ---------------------------------------------------------------------------
def _lut_runs(gpu: TensorCoreGpu, weight: DType | None) -> bool:
    """Whether weights of type `weight` run on the LUT units (integers up to max_weight_bits)."""
    return (
        gpu.kind is CoreKind.LUT
        and weight is not None
        and not weight.is_float
        and weight.bits <= gpu.max_weight_bits
    )


def tensor_core_device(gpu: TensorCoreGpu, weight: DType | None) -> Device:
    """The roofline device of a tensor-core GPU card with weights stored as `weight`."""
    host = gpu.host
    tensor = {p: v * gpu.tensor_efficiency for p, v in host.tensor_peaks}
    name = gpu.name
    if _lut_runs(gpu, weight):
        assert weight is not None
        precision = precision_of(int_dtype(gpu.activation_bits))
        lut = gpu.peak_ops_per_s(weight.bits) * gpu.tensor_efficiency
        tensor[precision] = max(tensor.get(precision, 0.0), lut)
        name = f"{gpu.name} (LUT W{weight.bits}A{gpu.activation_bits})"
    order = list(Precision)
    levels = tuple(
        MemoryLevel(
            lv.name, lv.kind, lv.capacity_bytes, lv.capacity_bytes_per_sm,
            None if lv.bandwidth_bytes_per_s is None
            else lv.bandwidth_bytes_per_s * gpu.memory_efficiency,
        )
        for lv in host.levels
    )  # fmt: skip
    return Device(
        name=name,
        family=gpu.family,
        compute_units=host.compute_units,
        clock_ghz=host.clock_ghz,
        tensor_peaks=tuple(sorted(tensor.items(), key=lambda kv: order.index(kv[0]))),
        vector_peaks=tuple((p, v * gpu.vector_efficiency) for p, v in host.vector_peaks),
        levels=levels,
        registers_bytes_per_sm=host.registers_bytes_per_sm,
        compute_efficiency=host.compute_efficiency * gpu.tensor_efficiency,
        memory_efficiency=host.memory_efficiency * gpu.memory_efficiency,
        source=f"codesign.hwmodels.roofline_devices.tensor_core_device; host {host.name}",
        sources=host.sources,
        source_path=gpu.source_path,
    )


def tensor_core_roofline(gpu: TensorCoreGpu) -> RooflineHardware:
    """An MMA card is its host GPU; a LUT card defaults to its widest weights and its
    activation width, and re-derives its LUT peak for ``--wbits``."""
    if gpu.kind is not CoreKind.LUT:
        return RooflineHardware(tensor_core_device(gpu, None))
    weight = int_dtype(gpu.max_weight_bits)
    return RooflineHardware(
        tensor_core_device(gpu, weight),
        weight_dtype=weight,
        activation_dtype=int_dtype(gpu.activation_bits),
        at_weights=partial(tensor_core_device, gpu),
    )


# -- bit-serial PE arrays -----------------------------------------------------------------------
_FLOAT_BITS = 16  # the family's 16-bit operands are FP16 (BitMoD's activations and baselines)


def _bitserial_dtypes(array: BitSerialArray) -> tuple[DType | None, DType | None]:
    """(weight, activation) storage types the card describes (None: the IR's)."""
    act_bits, weight_bits = array.activation_bits, array.weight_bits
    float_act = act_bits == _FLOAT_BITS
    act = None if act_bits is None else DType.F16 if float_act else int_dtype(act_bits)
    if weight_bits is None:
        return None, act
    weight = DType.F16 if float_act and weight_bits == _FLOAT_BITS else int_dtype(weight_bits)
    return weight, act


def bitserial_device(array: BitSerialArray, weight: DType | None) -> Device:
    """The roofline device of a bit-serial array with weights of type `weight` (None: the
    card's ``weight_bits``; a card that leaves both to the IR is derived at 16 bits)."""
    weight_bits = float(weight.bits) if weight is not None else array.weight_bits
    act_bits = array.activation_bits
    weight_bits = float(_FLOAT_BITS) if weight_bits is None else weight_bits
    act_bits = float(_FLOAT_BITS) if act_bits is None else act_bits
    clock_hz = array.clock_ghz * 1e9
    latency = array.latency_cycles(weight_bits, act_bits)
    matrix = 2 * array.pe_count * array.dp * clock_hz / latency
    buffers = (("input_buffer", array.input_buffer_bytes),
               ("weight_buffer", array.weight_buffer_bytes))  # fmt: skip
    levels = (
        MemoryLevel("DRAM", LevelKind.DRAM, None, None, array.dram_bits_per_cycle / 8 * clock_hz),
        *(MemoryLevel(name, LevelKind.SMEM, size, size, None) for name, size in buffers),
    )
    name = f"{array.name} ({array.pe_count} PEs x {array.dp}, {array.mode.value}, "
    name += f"W{weight_bits:g}A{act_bits:g})"
    # one array (compute unit): its buffers are its "per-SM" on-chip memory
    return _accelerator(name, array.family, 1, array.clock_ghz, matrix,
                        array.vector_lanes * clock_hz, levels, "bitserial_device",
                        array.source_path)  # fmt: skip


def bitserial_roofline(array: BitSerialArray) -> RooflineHardware:
    weight, act = _bitserial_dtypes(array)
    return RooflineHardware(
        bitserial_device(array, None),
        weight_dtype=weight,
        activation_dtype=act,
        at_weights=partial(bitserial_device, array),
    )


# -- PIUMA --------------------------------------------------------------------------------------
def piuma_device(arch: PiumaArch) -> Device:
    """The roofline device of a PIUMA fabric (module docstring)."""
    clock_hz = arch.clock_ghz * 1e9
    pipelines_per_core = arch.mtp_per_core + arch.stp_per_core
    cache_per_core = arch.cache_bytes_per_pipeline * pipelines_per_core
    levels = (
        MemoryLevel("DRAM", LevelKind.DRAM, None, None, arch.dram_bandwidth_gbps * 1e9),
        MemoryLevel("SPAD", LevelKind.SMEM, arch.scratchpad_bytes_per_core * arch.cores,
                    arch.scratchpad_bytes_per_core,
                    arch.issue_per_cycle * arch.access_bytes * clock_hz),
        MemoryLevel("cache", LevelKind.CACHE, cache_per_core * arch.cores, cache_per_core, None),
    )  # fmt: skip
    name = f"{arch.name} ({arch.cores} cores, {arch.issue_per_cycle:g} instr/cycle)"
    return _accelerator(name, PIUMA_FAMILY, arch.cores, arch.clock_ghz, None,
                        arch.issue_per_cycle * clock_hz, levels, "piuma_device",
                        arch.source_path)  # fmt: skip


def piuma_roofline(arch: PiumaArch) -> RooflineHardware:
    return RooflineHardware(piuma_device(arch))


# -- attention arrays (FuseMax / FLAT) ----------------------------------------------------------
_WORD_DTYPES = {1: DType.I8, 2: DType.F16, 4: DType.F32}


def attention_array_device(array: AttentionArray) -> Device:
    """The roofline device of a FuseMax-style card (module docstring)."""
    clock_hz = array.clock_ghz * 1e9
    matrix = 2 * array.array_2d.pes * clock_hz / array.array_2d.cycles_of(Op.MAC)
    vector_array = array.array_2d if array.exp_on_2d else array.array_1d
    levels = (
        MemoryLevel("DRAM", LevelKind.DRAM, None, None, array.dram_bandwidth_gbps * 1e9),
        MemoryLevel("buffer", LevelKind.SMEM, array.buffer_bytes, array.buffer_bytes, None),
    )
    name = f"{array.name} ({array.array_2d.pes} + {array.array_1d.pes} PEs)"
    return _accelerator(name, ATTENTION_FAMILY, 1, array.clock_ghz, matrix,
                        vector_array.pes * clock_hz, levels, "attention_array_device",
                        "")  # fmt: skip


def attention_array_roofline(array: AttentionArray) -> RooflineHardware:
    word = _WORD_DTYPES.get(array.word_bytes, int_dtype(8 * array.word_bytes))
    return RooflineHardware(attention_array_device(array), weight_dtype=word, activation_dtype=word)
