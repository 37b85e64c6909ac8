"""GPUs with MMA or LUT tensor cores (LUT Tensor Core, Mo et al., ISCA 2025).

``family: tensor_core`` YAML, validated once into a frozen `TensorCoreGpu`.  The host GPU (SMs,
clock, DRAM bandwidth, vector peaks, MMA tensor-core peaks) is a ``family: gpu`` preset
(`codesign.hwmodels.gpu`) named by ``host:``; the YAML adds the tensor core:

* ``kind: mma`` - the host's own tensor cores (the A100 FP16 baseline);
* ``kind: lut`` - LUT-based mixed-precision units.  A unit holds an ``M x N x K`` tile (M2N64K4
  chosen in the paper): for every ``K`` activations of each of its ``M`` rows it looks up a
  precomputed table of ``2^(K-1)`` entries (``2^K`` without symmetrization: the table of
  ``-x`` is the negated table of ``x``) indexed by one bit of ``K`` weights of each of ``N``
  columns.  Weights are bit-serial: one LMMA over a ``W``-bit weight takes ``W`` cycles, so a
  unit does ``M*N*K / W`` MACs per cycle at ``W`` bits.  Table entries are quantized to
  ``table_bits``; activations run at ``activation_bits``.

Area and power per SM come from a linear model ``fixed + per_unit * units`` fitted to published
synthesis points (`fit_unit_cost`); compute density and energy efficiency follow (Table 1:
``density = peak / (TC area per SM * SMs)``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from codesign.hwmodels.gpu import Device, Precision, load_gpu
from codesign.hwmodels.presets import resolve_relative
from codesign.hwmodels.yamlio import input_error, load_validated

FAMILY = "tensor_core"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class CoreKind(enum.Enum):
    MMA = "mma"  # multiply-accumulate tensor cores (dequantize low-bit weights first)
    LUT = "lut"  # table-lookup mixed-precision units


# -- schema (validation only) -------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TileSpec(_Strict):
    m: PositiveInt
    n: PositiveInt
    k: Annotated[int, Field(gt=0, le=8)]  # table index width: 2^(k-1) entries


class SynthesisPoint(_Strict):
    """A published synthesis result: TC area per SM and TC energy efficiency at peak."""

    units_per_sm: PositiveFloat
    area_mm2_per_sm: PositiveFloat
    tops_per_w: PositiveFloat
    peak_tops: PositiveFloat
    source: str = ""


class CoreSpec(_Strict):
    kind: CoreKind
    units_per_sm: PositiveInt = 1
    tile: TileSpec | None = None  # lut only
    activation_bits: Annotated[int, Field(ge=1, le=16)] = 8
    max_weight_bits: Annotated[int, Field(ge=1, le=8)] = 4  # widest weight the LUT runs
    table_bits: Annotated[int, Field(ge=1, le=16)] = 8
    symmetrize: bool = True
    synthesis: tuple[SynthesisPoint, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> CoreSpec:
        if self.kind is CoreKind.LUT and self.tile is None:
            raise ValueError("a lut tensor core needs a tile {m, n, k}")
        if self.kind is CoreKind.MMA and self.tile is not None:
            raise ValueError("an mma tensor core takes its peaks from the host, not a tile")
        return self


class PrecomputeSpec(_Strict):
    """Table precompute on the vector units, optionally fused into the preceding elementwise
    op (then it adds its operations there and no kernel of its own)."""

    fused: bool = False
    ops_per_entry: PositiveFloat = 1.0  # one add per entry, tables built incrementally


class EfficiencySpec(_Strict):
    """Fractions of peak reached (1.0: roofline); measured factors belong here with a source."""

    tensor: Fraction = 1.0
    vector: Fraction = 1.0
    memory: Fraction = 1.0


class EnergySpec(_Strict):
    """Energy outside the tensor cores (whose energy follows from their TOPS/W)."""

    dram_pj_per_bit: PositiveFloat
    vector_pj_per_op: PositiveFloat
    mma_tops_per_w: PositiveFloat  # the host's MMA tensor cores (a LUT GPU keeps them)


class TensorCoreSpec(_Strict):
    family: Literal["tensor_core"]
    name: str = Field(min_length=1)
    source: str = ""
    host: str = Field(min_length=1)  # a family: gpu YAML, relative to this file
    tensor_core: CoreSpec
    precompute: PrecomputeSpec = PrecomputeSpec()
    efficiency: EfficiencySpec = EfficiencySpec()
    energy: EnergySpec
    sources: dict[str, str] = {}


# -- frozen hardware ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UnitCost:
    """Tensor-core area per SM and chip TC power at peak, linear in units per SM."""

    fixed_area_mm2: float
    area_mm2_per_unit: float
    fixed_power_w: float
    power_w_per_unit: float

    def area_mm2_per_sm(self, units: float) -> float:
        return self.fixed_area_mm2 + self.area_mm2_per_unit * units

    def power_w(self, units: float) -> float:
        return self.fixed_power_w + self.power_w_per_unit * units


def fit_unit_cost(points: tuple[SynthesisPoint, ...]) -> UnitCost:
    """Least-squares line through the points (through the origin when there is one point, or
    when every point has the same unit count)."""
    units = np.array([p.units_per_sm for p in points])
    area = np.array([p.area_mm2_per_sm for p in points])
    power = np.array([p.peak_tops / p.tops_per_w for p in points])
    if len(set(units.tolist())) < 2:
        return UnitCost(0.0, float(area.mean() / units[0]), 0.0, float(power.mean() / units[0]))
    design = np.stack([np.ones_like(units), units], axis=1)
    (a0, a1), *_ = np.linalg.lstsq(design, area, rcond=None)
    (p0, p1), *_ = np.linalg.lstsq(design, power, rcond=None)
    return UnitCost(float(a0), float(a1), float(p0), float(p1))


@dataclass(frozen=True, slots=True)
class TensorCoreGpu:
    """A host GPU with MMA or LUT tensor cores (module docstring)."""

    name: str
    host: Device
    kind: CoreKind
    units_per_sm: int
    tile_m: int
    tile_n: int
    tile_k: int
    activation_bits: int
    max_weight_bits: int
    table_bits: int
    symmetrize: bool
    unit_cost: UnitCost
    precompute_fused: bool
    precompute_ops_per_entry: float
    tensor_efficiency: float
    vector_efficiency: float
    memory_efficiency: float
    dram_pj_per_bit: float
    vector_pj_per_op: float
    mma_tops_per_w: float
    source_path: str = ""
    family: str = FAMILY

    @property
    def clock_ghz(self) -> float:
        return self.host.clock_ghz

    @property
    def sm_count(self) -> int:
        return self.host.compute_units

    @property
    def table_entries(self) -> int:
        """Entries per table of ``tile_k`` activations: ``2^(K-1)`` with symmetrization (0 for
        MMA tensor cores, which have no tables)."""
        if self.kind is not CoreKind.LUT:
            return 0
        return 2 ** (self.tile_k - 1) if self.symmetrize else 2**self.tile_k

    def lut_macs_per_cycle(self, weight_bits: int) -> float:
        """MACs per cycle of the whole chip's LUT units at a weight width (one LMMA takes
        ``weight_bits`` cycles)."""
        per_unit = self.tile_m * self.tile_n * self.tile_k
        return per_unit * self.units_per_sm * self.sm_count / weight_bits

    def peak_ops_per_s(self, weight_bits: int = 2) -> float:
        """Peak ops/s (a MAC = 2 ops) of the tensor cores: LUT at ``weight_bits``, else the
        host's FP16 MMA peak."""
        if self.kind is CoreKind.LUT:
            return 2 * self.lut_macs_per_cycle(weight_bits) * self.clock_ghz * 1e9
        return dict(self.host.tensor_peaks)[Precision.FP16]

    @property
    def tc_area_mm2_per_sm(self) -> float:
        return self.unit_cost.area_mm2_per_sm(self.units_per_sm)

    @property
    def tc_power_w(self) -> float:
        return self.unit_cost.power_w(self.units_per_sm)

    def compute_density_tops_per_mm2(self, weight_bits: int = 2) -> float:
        """Peak TOPS over the chip's tensor-core area (Table 1's density)."""
        return self.peak_ops_per_s(weight_bits) / 1e12 / (self.tc_area_mm2_per_sm * self.sm_count)

    def energy_efficiency_tops_per_w(self, weight_bits: int = 2) -> float:
        return self.peak_ops_per_s(weight_bits) / 1e12 / self.tc_power_w


def gpu_from_spec(spec: TensorCoreSpec, host: Device, source_path: str = "") -> TensorCoreGpu:
    core = spec.tensor_core
    tile = core.tile
    return TensorCoreGpu(
        name=spec.name,
        host=host,
        kind=core.kind,
        units_per_sm=core.units_per_sm,
        tile_m=tile.m if tile else 0,
        tile_n=tile.n if tile else 0,
        tile_k=tile.k if tile else 0,
        activation_bits=core.activation_bits,
        max_weight_bits=core.max_weight_bits,
        table_bits=core.table_bits,
        symmetrize=core.symmetrize,
        unit_cost=fit_unit_cost(core.synthesis),
        precompute_fused=spec.precompute.fused,
        precompute_ops_per_entry=spec.precompute.ops_per_entry,
        tensor_efficiency=spec.efficiency.tensor,
        vector_efficiency=spec.efficiency.vector,
        memory_efficiency=spec.efficiency.memory,
        dram_pj_per_bit=spec.energy.dram_pj_per_bit,
        vector_pj_per_op=spec.energy.vector_pj_per_op,
        mma_tops_per_w=spec.energy.mma_tops_per_w,
        source_path=source_path,
    )


def tensor_core_from_spec(spec: TensorCoreSpec, path: Path) -> TensorCoreGpu:
    """The `TensorCoreGpu` of a validated card at ``path``; its ``host:`` GPU resolves next to
    the card, else in the preset library."""
    host_path = resolve_relative(path, spec.host)
    if host_path is None:
        raise input_error(path, ("host",), f"no such host GPU file {spec.host!r}")
    host = load_gpu(host_path)
    if host.family != "gpu" or Precision.FP16 not in dict(host.tensor_peaks):
        raise input_error(path, ("host",), "the host must be a gpu with an fp16 tensor peak")
    return gpu_from_spec(spec, host, str(path))


def load_tensor_core(path: str | Path) -> TensorCoreGpu:
    """Validate a ``family: tensor_core`` YAML (and its host GPU) into a `TensorCoreGpu`."""
    path = Path(path)
    return tensor_core_from_spec(load_validated(path, TensorCoreSpec), path)
