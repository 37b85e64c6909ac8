"""A spatial-array ``Arch`` seen as a roofline ``Device`` (``codesign roofline --hw eyeriss.yaml``).

The roofline analyzer reads GPU/CPU ``Device`` values; this adapter derives one from a
storage-hierarchy ``Arch`` so a bundled CNN can be placed on a spatial array's roofline:

* compute: ``2 x PEs x clock`` ops/s at the MAC precision (a MAC = 2 ops), as the "tensor"
  (matrix) roof; other ops (ReLU, pooling, adds) run one per PE per cycle, ``PEs x clock``,
  as the "vector" roof at the same precision.  ``mac_bits`` picks the precision: <= 4 bits
  int4, <= 8 bits int8, wider int32 (the roofline's name for 16/32-bit integers).
* memory: one level per storage level, outermost (DRAM) first.  Bandwidth =
  ``read_bandwidth_words_per_cycle x word_bits / 8 x clock x instances`` bytes/s (reads: the
  roof a level's consumers see; instances = product of the fan-outs above the level); capacity =
  ``size_words x word_bits / 8 x instances`` bytes.  A level with unlimited bandwidth (no
  ``read_bandwidth_words_per_cycle``, typically DRAM) stays in the list without a roof, so
  ``levels[0]`` is still DRAM (the plot's x axis) but never bounds a kernel.
* kind: ``dram`` stays dram; SRAM buffers and register files are software-managed
  scratchpads, ``smem``.

Unmapped, the roofline charges every level the compulsory bytes.  A spatial level that bypasses a
tensor never sees it, so `codesign.sim.roofline_spatial.keeps_bytes_override` gives each level the
compulsory bytes of
the tensors it keeps (weights vs. the rest by `tensor_kinds`, the kernel's output as outputs).
This is still a lower bound: reuse misses under a real mapping (``codesign map``) move more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from codesign.hwmodels.arch import Arch, MemoryKind
from codesign.hwmodels.gpu import Device, LevelKind, MemoryLevel, Precision
from codesign.ir.dtypes import DType

_LEVEL_KIND = {MemoryKind.DRAM: LevelKind.DRAM, MemoryKind.SRAM: LevelKind.SMEM,
               MemoryKind.REGFILE: LevelKind.SMEM}  # fmt: skip


def mac_precision(mac_bits: int) -> Precision:
    """The roofline precision of a `mac_bits`-bit integer MAC."""
    if mac_bits <= 4:
        return Precision.INT4
    if mac_bits <= 8:
        return Precision.INT8
    return Precision.INT32


def array_dtype(arch: Arch) -> DType:
    """The IR storage type of the array's operands: a signed integer of ``mac_bits``."""
    bits = arch.compute.mac_bits
    for dtype in (DType.I4, DType.I8, DType.I16, DType.I32):
        if bits <= dtype.bits:
            return dtype
    return DType.I64


def device_from_arch(arch: Arch) -> Device:
    """The roofline Device of a spatial array (see the module docstring for the rules)."""
    clock_hz = arch.clock_ghz * 1e9
    pes = arch.compute.count
    precision = mac_precision(arch.compute.mac_bits)
    levels = []
    for index, level in enumerate(arch.levels):
        instances = arch.instances(index)
        word_bytes = level.word_bits / 8
        words_per_cycle = level.read_bandwidth_words_per_cycle
        levels.append(
            MemoryLevel(
                name=level.name,
                kind=_LEVEL_KIND[level.kind],
                capacity_bytes=None
                if level.size_words is None
                else math.ceil(level.size_words * word_bytes) * instances,
                capacity_bytes_per_sm=None
                if level.size_words is None or instances == 1
                else math.ceil(level.size_words * word_bytes),
                bandwidth_bytes_per_s=None
                if words_per_cycle is None
                else words_per_cycle * word_bytes * clock_hz * instances,
            )
        )
    return Device(
        name=f"{arch.name} ({pes} PEs, {precision.value})",
        family="spatial",
        compute_units=pes,
        clock_ghz=arch.clock_ghz,
        tensor_peaks=((precision, 2 * pes * clock_hz),),
        vector_peaks=((precision, pes * clock_hz),),
        levels=tuple(levels),
        registers_bytes_per_sm=None,
        compute_efficiency=1.0,
        memory_efficiency=1.0,
        source="codesign.hwmodels.spatial_device.device_from_arch",
        sources=(),
        source_path=arch.source_path,
    )


@dataclass(frozen=True, slots=True)
class RooflineHardware:
    """What ``--hw`` names for the roofline: a Device, plus what the card says about types.

    ``arch``: the spatial Arch it came from (its keeps price each level).  ``weight_dtype`` /
    ``activation_dtype``: the storage types the card's compute runs (``--wbits`` / ``--abits``
    override them; None: the IR's).  ``at_weights``: for hardware whose peak depends on the
    weight width (bit-serial PEs, LUT tensor cores), the device re-derived for weights stored
    as a given type; None: the peaks do not depend on it.
    """

    device: Device
    arch: Arch | None = None
    weight_dtype: DType | None = None
    activation_dtype: DType | None = None
    at_weights: Callable[[DType], Device] | None = None

    def for_weights(self, weight: DType | None) -> RooflineHardware:
        """This hardware with its device re-derived for weights stored as `weight`."""
        if weight is None or self.at_weights is None:
            return self
        return replace(self, device=self.at_weights(weight))


def spatial_roofline(arch: Arch) -> RooflineHardware:
    """A spatial array on the roofline: its `device_from_arch`, with the arch for its keeps and
    its MAC width as the default operand type."""
    dtype = array_dtype(arch)
    return RooflineHardware(device_from_arch(arch), arch, dtype, dtype)


def device_roofline(device: Device) -> RooflineHardware:
    return RooflineHardware(device)
