"""Roofline devices: GPUs (and the measured host CPU) described in YAML, loaded into frozen values.

A device is a set of compute roofs (peak ops/s per precision, separately for tensor-core and
vector/CUDA-core units) and a hierarchy of memory levels (DRAM outermost), each with a
bandwidth roof.  ``family: gpu`` tells a dispatcher this is not a spatial array (those load with
``load_arch``).  Units:

* peaks in the YAML are ``*_tops``: 10^12 operations per second, TFLOP/s for float precisions and
  TOP/s for integer ones, **dense** (no structured sparsity), a MAC counted as two operations;
* bandwidths ``bandwidth_gbps`` in GB/s (10^9 bytes/s, as in ``hwmodels/schema.py``) or
  ``bandwidth_bytes_per_clk`` (per SM for ``per_sm`` levels), converted with ``clock_ghz``;
* capacities in ``capacity_kib`` / ``capacity_mib`` / ``capacity_gib`` (2^10, 2^20, 2^30 bytes).

Past ``load_gpu`` everything is in ops/s, bytes/s and bytes.  ``efficiency`` scales the roofs
(``compute`` multiplies every peak, ``memory`` every bandwidth); 1.0, the default, is the pure
roofline.  Measured factors (e.g. 0.7 of peak for large cuBLAS GEMMs) belong in the YAML with
their source.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codesign.errors import InputError
from codesign.hwmodels.interconnect import Interconnect, InterconnectSpec, interconnect_from_spec
from codesign.hwmodels.presets import ALIASES, GPU_PRESET_DIR, preset_key
from codesign.hwmodels.yamlio import load_validated
from codesign.ir.dtypes import DType

PRESET_DIR = GPU_PRESET_DIR
"""Where the bundled presets live (the repository's ``examples/hw/gpu``)."""


class Precision(enum.Enum):
    """A compute precision the hardware quotes a peak for."""

    FP64 = "fp64"
    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    FP4 = "fp4"
    INT32 = "int32"
    INT8 = "int8"
    INT4 = "int4"


class Unit(enum.Enum):
    """Which execution units run an operation: matrix (tensor cores) or vector (CUDA cores)."""

    TENSOR = "tensor"
    VECTOR = "vector"


class LevelKind(enum.Enum):
    DRAM = "dram"
    CACHE = "cache"
    SMEM = "smem"


_PRECISION_OF_DTYPE = {
    DType.F64: Precision.FP64, DType.F32: Precision.FP32, DType.F16: Precision.FP16,
    DType.BF16: Precision.BF16, DType.FP8_E4M3: Precision.FP8, DType.FP8_E5M2: Precision.FP8,
    DType.FP4_E2M1: Precision.FP4, DType.I64: Precision.INT32, DType.I32: Precision.INT32,
    DType.I16: Precision.INT32, DType.I8: Precision.INT8, DType.U8: Precision.INT8,
    DType.I4: Precision.INT4, DType.I2: Precision.INT4, DType.I1: Precision.INT4,
    DType.BOOL: Precision.INT32,
}  # fmt: skip


def precision_of(dtype: DType) -> Precision:
    """The compute precision an element type runs at (sub-4-bit integers run as int4)."""
    return _PRECISION_OF_DTYPE[dtype]


# -- schema (validation only) -------------------------------------------------------------------
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemorySpec(_Strict):
    name: str = Field(min_length=1)
    kind: LevelKind
    per_sm: bool = False  # capacity and bytes/clk are per SM (or per core)
    capacity_kib: PositiveFloat | None = None
    capacity_mib: PositiveFloat | None = None
    capacity_gib: PositiveFloat | None = None
    bandwidth_gbps: PositiveFloat | None = None
    bandwidth_bytes_per_clk: PositiveFloat | None = None

    @model_validator(mode="after")
    def _check(self) -> MemorySpec:
        given = [c for c in (self.capacity_kib, self.capacity_mib, self.capacity_gib) if c]
        if len(given) > 1:
            raise ValueError("give one of capacity_kib, capacity_mib, capacity_gib")
        if self.bandwidth_gbps is not None and self.bandwidth_bytes_per_clk is not None:
            raise ValueError("give bandwidth_gbps or bandwidth_bytes_per_clk, not both")
        if self.per_sm and self.bandwidth_gbps is not None:
            raise ValueError("a per_sm level takes bandwidth_bytes_per_clk (per SM)")
        return self


class EfficiencySpec(_Strict):
    compute: Fraction = 1.0
    memory: Fraction = 1.0


class DeviceSpec(_Strict):
    family: Literal["gpu", "cpu"]
    name: str = Field(min_length=1)
    source: str = ""
    sm_count: Annotated[int, Field(gt=0)] | None = None  # gpu
    cores: Annotated[int, Field(gt=0)] | None = None  # cpu
    clock_ghz: PositiveFloat
    tensor_tops: dict[Precision, PositiveFloat] = {}
    vector_tops: dict[Precision, PositiveFloat] = Field(min_length=1)
    registers_kib_per_sm: PositiveFloat | None = None
    memory: tuple[MemorySpec, ...] = Field(min_length=1)
    efficiency: EfficiencySpec = EfficiencySpec()
    interconnect: InterconnectSpec | None = None  # device-to-device link (multi-device runs)
    kernel_launch_us: Annotated[float, Field(ge=0)] = 0.0  # fixed cost per kernel (serving)
    sources: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> DeviceSpec:
        if self.family == "gpu" and self.sm_count is None:
            raise ValueError("a gpu needs sm_count")
        if self.family == "cpu" and self.cores is None:
            raise ValueError("a cpu needs cores")
        if self.memory[0].kind is not LevelKind.DRAM:
            raise ValueError("memory[0] (outermost) must be kind dram")
        if self.memory[0].bandwidth_gbps is None and self.memory[0].bandwidth_bytes_per_clk is None:
            raise ValueError("the dram level needs a bandwidth")
        names = [m.name for m in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names repeat: {names}")
        unknown = sorted(set(self.sources) - set(type(self).model_fields))
        if unknown:
            raise ValueError(f"sources name unknown fields {unknown}")
        return self


# -- frozen values ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MemoryLevel:
    """One memory level; ``bandwidth_bytes_per_s`` is the whole chip's (None: no roof known)."""

    name: str
    kind: LevelKind
    capacity_bytes: int | None  # whole chip (per-SM capacity times the SM count)
    capacity_bytes_per_sm: int | None  # only for per-SM levels
    bandwidth_bytes_per_s: float | None


@dataclass(frozen=True, slots=True)
class Device:
    """A roofline device: peaks (efficiency applied) and memory levels, DRAM first."""

    name: str
    family: str  # "gpu" | "cpu"
    compute_units: int  # SMs or cores
    clock_ghz: float
    tensor_peaks: tuple[tuple[Precision, float], ...]  # ops/s, efficiency applied
    vector_peaks: tuple[tuple[Precision, float], ...]
    levels: tuple[MemoryLevel, ...]
    registers_bytes_per_sm: int | None
    compute_efficiency: float
    memory_efficiency: float
    source: str
    sources: tuple[tuple[str, str], ...]
    source_path: str
    interconnect: Interconnect | None = None
    kernel_launch_s: float = 0.0  # fixed cost per launched kernel, added by serving scenarios

    @property
    def dram(self) -> MemoryLevel:
        return self.levels[0]

    def level(self, name: str) -> MemoryLevel:
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(name)

    @property
    def roofs(self) -> tuple[MemoryLevel, ...]:
        """Levels with a known bandwidth (one roof each), DRAM first."""
        return tuple(lv for lv in self.levels if lv.bandwidth_bytes_per_s is not None)

    def peak_ops_per_s(self, precision: Precision, unit: Unit) -> float:
        """Peak for `precision` on `unit`; InputError if the device quotes none."""
        table = dict(self.tensor_peaks if unit is Unit.TENSOR else self.vector_peaks)
        if precision in table:
            return table[precision]
        known = ", ".join(p.value for p in table) or "none"
        raise InputError(
            f"{self.name}: no {unit.value} peak for {precision.value} (known: {known})"
        )

    def compute_unit(self, precision: Precision, matrix: bool) -> tuple[Unit, float]:
        """Where an operation runs and its peak in ops/s.

        Matrix work (MACs) runs on tensor cores when the device has a tensor peak for the
        precision, else on the vector units.  Vector work at a precision without a vector peak
        (fp16 on a CPU, int8 elementwise) runs at the widest vector float peak, fp32 first,
        since that is what the compiler falls back to.
        """
        tensor = dict(self.tensor_peaks)
        vector = dict(self.vector_peaks)
        if matrix and precision in tensor:
            return Unit.TENSOR, tensor[precision]
        if precision in vector:
            return Unit.VECTOR, vector[precision]
        for fallback in (Precision.FP32, Precision.FP64):
            if fallback in vector:
                return Unit.VECTOR, vector[fallback]
        return Unit.VECTOR, self.peak_ops_per_s(precision, Unit.VECTOR)

    def ridge_ops_per_byte(self, peak_ops_per_s: float, level: MemoryLevel) -> float:
        """Intensity where `level`'s bandwidth roof meets the compute roof."""
        assert level.bandwidth_bytes_per_s is not None
        return peak_ops_per_s / level.bandwidth_bytes_per_s


_KIB = 1024


def _capacity_bytes(spec: MemorySpec) -> int | None:
    for value, scale in (
        (spec.capacity_kib, _KIB),
        (spec.capacity_mib, _KIB**2),
        (spec.capacity_gib, _KIB**3),
    ):
        if value is not None:
            return int(value * scale)
    return None


def _level(spec: MemorySpec, units: int, clock_ghz: float, efficiency: float) -> MemoryLevel:
    capacity = _capacity_bytes(spec)
    bandwidth: float | None = None
    if spec.bandwidth_gbps is not None:
        bandwidth = spec.bandwidth_gbps * 1e9
    elif spec.bandwidth_bytes_per_clk is not None:
        bandwidth = spec.bandwidth_bytes_per_clk * clock_ghz * 1e9 * (units if spec.per_sm else 1)
    return MemoryLevel(
        name=spec.name,
        kind=spec.kind,
        capacity_bytes=None if capacity is None else capacity * (units if spec.per_sm else 1),
        capacity_bytes_per_sm=capacity if spec.per_sm else None,
        bandwidth_bytes_per_s=None if bandwidth is None else bandwidth * efficiency,
    )


def device_from_spec(spec: DeviceSpec, source_path: str | Path = "") -> Device:
    units = spec.sm_count if spec.family == "gpu" else spec.cores
    assert units is not None
    eff = spec.efficiency

    def peaks(table: dict[Precision, float]) -> tuple[tuple[Precision, float], ...]:
        order = list(Precision)
        return tuple(
            (p, v * 1e12 * eff.compute)
            for p, v in sorted(table.items(), key=lambda kv: order.index(kv[0]))
        )

    return Device(
        name=spec.name,
        family=spec.family,
        compute_units=units,
        clock_ghz=spec.clock_ghz,
        tensor_peaks=peaks(spec.tensor_tops),
        vector_peaks=peaks(spec.vector_tops),
        levels=tuple(_level(m, units, spec.clock_ghz, eff.memory) for m in spec.memory),
        registers_bytes_per_sm=None
        if spec.registers_kib_per_sm is None
        else int(spec.registers_kib_per_sm * _KIB),
        compute_efficiency=eff.compute,
        memory_efficiency=eff.memory,
        source=spec.source,
        sources=tuple(sorted(spec.sources.items())),
        source_path=str(source_path),
        interconnect=None
        if spec.interconnect is None
        else interconnect_from_spec(spec.interconnect),
        kernel_launch_s=spec.kernel_launch_us * 1e-6,
    )


def load_gpu(path: str | Path) -> Device:
    """Validate a ``family: gpu`` (or ``cpu``) YAML into a frozen ``Device``.

    Raises ``InputError`` ``file:line: field.path: message`` on the first problem.
    """
    path = Path(path)
    return device_from_spec(load_validated(path, DeviceSpec), str(path))


_key = preset_key
# The device-only lookup also takes the tensor-core cards' names for their plain GPU.
_ALIASES = {**ALIASES, "a100_fp16": "a100_40g"}


def gpu_preset_names(preset_dir: Path = PRESET_DIR) -> tuple[str, ...]:
    """The bundled preset names (file stems), sorted."""
    return tuple(sorted(p.stem for p in preset_dir.glob("*.yaml")))


def gpu_preset(name: str, preset_dir: Path = PRESET_DIR) -> Device:
    """A bundled preset by name (``a100``, ``A100-80G``, ``h100_pcie`` ...).

    InputError listing the known names for an unknown one.
    """
    key = _key(name)
    key = _ALIASES.get(key, key)
    path = preset_dir / f"{key}.yaml"
    if not path.is_file():
        known = ", ".join((*gpu_preset_names(preset_dir), *sorted(_ALIASES)))
        raise InputError(f"unknown GPU {name!r} (known: {known})")
    return load_gpu(path)


def load_device(spec: str, preset_dir: Path = PRESET_DIR) -> Device:
    """``--hw`` resolution: a YAML path if it names a file, else a preset name."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise InputError(f"{spec}: no such hardware file")
        return load_gpu(path)
    return gpu_preset(spec, preset_dir)
