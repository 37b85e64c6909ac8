"""Energy/area estimators (Accelergy-style plug-ins): a component's ERT/ART row from its attributes.

One interface: an estimator is a function ``ComponentQuery -> ComponentEnergy`` registered in
``ESTIMATORS`` under its ``ComponentClass``.  A hardware YAML without ``energy_table`` gets its
table from these (``estimate_energy_table``); one with a table keeps the table's numbers.

Fits and their sources (every coefficient below is one of these, nothing else):

* **SRAM** (``sram``): power laws fitted to CACTI 7 (HewlettPackard/cacti @1ffd8df, built from
  source, ``cache type "ram"``, 1 read-write port, 1 bank, associativity 1, itrs-hp cells and
  peripherals, 360 K, access mode normal) over capacity 1 KiB..1 MiB and width 32..128 bits at
  45 nm (exponents), with one constant per node at 32, 45 and 65 nm (64-bit series)::

      read_pj  = R(node) * (width/64)^0.455 * (capacity/1KiB)^0.557
      write_pj = W(node) * (width/64)^0.764 * (capacity/1KiB)^0.430
      area_mm2 = A(node) * (capacity/1KiB)^0.973 * ports^1.05
      leak_mw  = L(node) * (capacity/1KiB)^0.968      (per instance; pJ/cycle = mW / GHz)

  Dynamic energy grows as ports^0.45 (CACTI 16/64 KiB: x1.24/x1.54 from 1 to 2 ports). Largest
  residual of the fit over the 45 nm grid: read 42 %, write 18 %, area 33 %, leak 10 % (CACTI
  changes the array organisation between sizes); the reference points and tolerances are in
  tests/validation/cacti.yaml.  Between 32 and 65 nm the constants are interpolated log-linearly
  in the node; outside, they are scaled from the nearest fitted node by
  ``hwmodels.energy.energy_scale`` (Stillmaker & Baas 2017) and area by the square of the node.
* **Register file** (``regfile``, below 1 KiB): Accelergy's 65 nm Eyeriss-like ERT
  (timeloop-accelergy-exercises@2d55108, the ifmap/psum/weights scratchpads) fits
  ``read_pj = 0.251 * (width/16) * (capacity_bits/256)^0.82`` (all three within 3 %); write is
  0.88x read (the same ERT's ratio); area 0.42 um^2 per bit (mean of the ifmap and psum pads).
* **MAC / adder / LUT units**: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: 8-bit
  multiply 0.2 pJ / 282 um^2, 32-bit 3.1 pJ / 3495 um^2 (energy ~ bits^2, area ~ bits^1.82);
  8-bit add 0.03 pJ / 36 um^2, 32-bit 0.1 pJ / 137 um^2 (energy ~ bits^0.87, area ~ bits^0.96).
  A MAC is a multiply plus a 2*bits-wide add; a LUT unit is one table (register-file) read of
  2^(index_bits) entries of ``bits`` plus a ``bits``-wide add.
* **DRAM** pJ/bit by kind: Accelergy cacti plug-in ``DRAM_estimate_energy`` (LPDDR4 8, LPDDR 40
  (Malladi ISCA'12), DDR3 70, GDDR5 14 and HBM2 3.9 (Chatterjee MICRO'17)); area 0 (off chip).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codesign.errors import InputError
from codesign.hwmodels.arch import (
    Action,
    ActionEnergy,
    ComponentEnergy,
    EnergyTable,
    MemoryKind,
)
from codesign.hwmodels.energy import energy_scale

if TYPE_CHECKING:
    from codesign.hwmodels.schema import ArchSpec  # pydantic: for type checks only


class ComponentClass(enum.Enum):
    """Primitive component classes an estimator prices (Accelergy's primitive classes)."""

    SRAM = "sram"
    REGFILE = "regfile"
    DRAM = "dram"
    MAC = "mac"
    ADDER = "adder"
    LUT = "lut"


@dataclass(frozen=True, slots=True)
class ComponentQuery:
    """Attributes of one component; sizes in bits, node in nm, clock in GHz (for leakage)."""

    name: str
    component_class: ComponentClass
    technology_nm: float
    clock_ghz: float = 1.0
    capacity_bits: int = 0  # storage only
    width_bits: int = 8  # bits per access (a storage block) or operand width (units)
    ports: int = 1
    index_bits: int = 4  # LUT units: the table has 2**index_bits entries
    dram_kind: str = "lpddr4"


# --- SRAM: CACTI 7 fit (see module docstring) --------------------------------------------------
_SRAM_NODES_NM = (32.0, 45.0, 65.0)
# node -> (read pJ, write pJ, area mm^2, leakage mW) of 1 KiB at 64 bits, 1 port
_SRAM_AT_1KIB: dict[float, tuple[float, float, float, float]] = {
    32.0: (1.00464, 1.69278, 0.00207, 0.76458),
    45.0: (1.90554, 3.30449, 0.00411, 1.45622),
    65.0: (3.44757, 5.67558, 0.00827, 1.55304),
}
SRAM_FIT_CAPACITY_BYTES = (1024, 1 << 20)
SRAM_FIT_WIDTH_BITS = (32, 128)
_SRAM_SOURCE = (
    "CACTI 7 fit (HewlettPackard/cacti@1ffd8df, ram, itrs-hp; 1 KiB..1 MiB, 32..128 bit, "
    "32/45/65 nm)"
)


def _sram_constants(node_nm: float) -> tuple[float, float, float, float]:
    """The 1 KiB constants at ``node_nm``: log-linear between fitted nodes, scaled outside."""
    low, high = _SRAM_NODES_NM[0], _SRAM_NODES_NM[-1]
    if node_nm < low or node_nm > high:
        anchor = low if node_nm < low else high
        e = energy_scale(anchor, node_nm)
        r, w, a, leak = _SRAM_AT_1KIB[anchor]
        return r * e, w * e, a * (node_nm / anchor) ** 2, leak * e
    for small, big in zip(_SRAM_NODES_NM, _SRAM_NODES_NM[1:], strict=False):
        if small <= node_nm <= big:
            t = math.log(node_nm / small) / math.log(big / small)
            lo, hi = _SRAM_AT_1KIB[small], _SRAM_AT_1KIB[big]
            return tuple(  # type: ignore[return-value]
                math.exp(math.log(x) + t * (math.log(y) - math.log(x)))
                for x, y in zip(lo, hi, strict=True)
            )
    raise AssertionError("unreachable")


def _row(
    query: ComponentQuery, energies: dict[Action, float], area_um2: float, source: str
) -> ComponentEnergy:
    actions = tuple(ActionEnergy(action, pj, source) for action, pj in energies.items())
    return ComponentEnergy(query.name, actions, area_um2, source)


def sram(query: ComponentQuery) -> ComponentEnergy:
    """SRAM read/write/leak per access of ``width_bits`` and area (CACTI 7 fit)."""
    r, w, a, leak_mw = _sram_constants(query.technology_nm)
    kib = max(query.capacity_bits, 8) / 8 / 1024
    width = query.width_bits / 64
    ports = max(query.ports, 1)
    read_pj = r * width**0.455 * kib**0.557 * ports**0.45
    write_pj = w * width**0.764 * kib**0.430 * ports**0.45
    area_um2 = a * kib**0.973 * ports**1.05 * 1e6
    leak_pj_per_cycle = leak_mw * kib**0.968 / query.clock_ghz
    energies = {
        Action.READ: read_pj,
        Action.WRITE: write_pj,
        Action.UPDATE: write_pj,
        Action.LEAK: leak_pj_per_cycle,
    }
    return _row(query, energies, area_um2, _SRAM_SOURCE)


_RF_SOURCE = "regfile fit to Accelergy's 65 nm Eyeriss-like ERT (timeloop-accelergy-exercises)"


def regfile(query: ComponentQuery) -> ComponentEnergy:
    """Register file read/write per access and area (65 nm ERT fit, scaled by node)."""
    e = energy_scale(65.0, query.technology_nm)
    read_pj = 0.251 * (query.width_bits / 16) * (max(query.capacity_bits, 1) / 256) ** 0.82 * e
    area_um2 = 0.42 * query.capacity_bits * (query.technology_nm / 65.0) ** 2 * query.ports
    energies = {
        Action.READ: read_pj,
        Action.WRITE: 0.88 * read_pj,
        Action.UPDATE: 0.88 * read_pj,
        Action.LEAK: 0.0,
    }
    return _row(query, energies, area_um2, _RF_SOURCE)


DRAM_PJ_PER_BIT: dict[str, float] = {
    "lpddr4": 8.0,
    "lpddr": 40.0,
    "ddr3": 70.0,
    "gddr5": 14.0,
    "hbm2": 3.9,
}
_DRAM_SOURCE = "Accelergy cacti plug-in DRAM table (Malladi ISCA'12; Chatterjee MICRO'17)"


def dram(query: ComponentQuery) -> ComponentEnergy:
    """Off-chip DRAM: pJ/bit by kind times the access width; no area, no scaling with node."""
    kind = query.dram_kind.lower()
    if kind not in DRAM_PJ_PER_BIT:
        known = ", ".join(DRAM_PJ_PER_BIT)
        raise InputError(f"{query.name}: unknown dram_kind {query.dram_kind!r} (known: {known})")
    pj = DRAM_PJ_PER_BIT[kind] * query.width_bits
    energies = {Action.READ: pj, Action.WRITE: pj, Action.UPDATE: pj, Action.LEAK: 0.0}
    return _row(query, energies, 0.0, f"{_DRAM_SOURCE}: {kind}")


_HOROWITZ = "Horowitz ISSCC 2014 45 nm (mult 8b 0.2 pJ/282 um^2, add 8b 0.03 pJ/36 um^2)"


def multiplier_pj(bits: int, node_nm: float) -> float:
    return 0.2 * (bits / 8) ** 2 * energy_scale(45.0, node_nm)


def multiplier_um2(bits: int, node_nm: float) -> float:
    return 282.0 * (bits / 8) ** 1.82 * (node_nm / 45.0) ** 2


def adder_pj(bits: int, node_nm: float) -> float:
    return 0.03 * (bits / 8) ** 0.87 * energy_scale(45.0, node_nm)


def adder_um2(bits: int, node_nm: float) -> float:
    return 36.0 * (bits / 8) ** 0.96 * (node_nm / 45.0) ** 2


def mac(query: ComponentQuery) -> ComponentEnergy:
    """Integer MAC of ``width_bits`` operands: a multiply and a 2*bits accumulate."""
    bits, node = query.width_bits, query.technology_nm
    energy = multiplier_pj(bits, node) + adder_pj(2 * bits, node)
    area = multiplier_um2(bits, node) + adder_um2(2 * bits, node)
    row = _row(query, {Action.MAC: energy, Action.LEAK: 0.0}, area, _HOROWITZ)
    macs = tuple(
        ActionEnergy(a.action, a.energy_pj, a.source, bits if a.action is Action.MAC else None)
        for a in row.actions
    )
    return ComponentEnergy(row.name, macs, row.area_um2, row.source)


def adder(query: ComponentQuery) -> ComponentEnergy:
    bits, node = query.width_bits, query.technology_nm
    return _row(query, {Action.MAC: adder_pj(bits, node)}, adder_um2(bits, node), _HOROWITZ)


def lut(query: ComponentQuery) -> ComponentEnergy:
    """A LUT unit: one read of a 2**index_bits-entry table of ``width_bits`` plus an add."""
    entries = 2**query.index_bits
    table = regfile(
        ComponentQuery(
            query.name, ComponentClass.REGFILE, query.technology_nm, query.clock_ghz,
            capacity_bits=entries * query.width_bits, width_bits=query.width_bits,
        )
    )  # fmt: skip
    table_pj = table.energy_pj(Action.READ) or 0.0
    energy = table_pj + adder_pj(query.width_bits, query.technology_nm)
    area = table.area_um2 + adder_um2(query.width_bits, query.technology_nm)
    return _row(query, {Action.MAC: energy}, area, f"{_RF_SOURCE} + {_HOROWITZ}")


Estimator = Callable[[ComponentQuery], ComponentEnergy]

ESTIMATORS: dict[ComponentClass, Estimator] = {
    ComponentClass.SRAM: sram,
    ComponentClass.REGFILE: regfile,
    ComponentClass.DRAM: dram,
    ComponentClass.MAC: mac,
    ComponentClass.ADDER: adder,
    ComponentClass.LUT: lut,
}

REGFILE_MAX_BITS = 8 * 1024  # below 1 KiB a storage level is a register file


def estimate(query: ComponentQuery) -> ComponentEnergy:
    """The registered estimator's row for ``query``."""
    return ESTIMATORS[query.component_class](query)


def storage_class(kind: MemoryKind, capacity_bits: int | None) -> ComponentClass:
    """Which estimator prices a storage level: DRAM, a register file (< 1 KiB) or SRAM."""
    if kind is MemoryKind.DRAM or capacity_bits is None:
        return ComponentClass.DRAM
    if kind is MemoryKind.REGFILE or capacity_bits < REGFILE_MAX_BITS:
        return ComponentClass.REGFILE
    return ComponentClass.SRAM


def table_of(name: str, technology_nm: float, rows: tuple[ComponentEnergy, ...]) -> EnergyTable:
    return EnergyTable(name, technology_nm, rows, "estimated: codesign.hwmodels.estimators")


def estimate_arch_table(spec: ArchSpec) -> EnergyTable:
    """The ERT/ART of a spatial-array spec from its levels and compute unit: one row per level
    (named as the level's ``component`` or name) and one for the MAC, at the spec's node."""
    rows: list[ComponentEnergy] = []
    for level in spec.levels:
        words = level.words
        capacity_bits = None if words is None else words * level.word_bits
        banks = level.banks if capacity_bits is not None else 1
        klass = storage_class(level.kind, capacity_bits)
        query = ComponentQuery(
            name=level.component or level.name,
            component_class=klass,
            technology_nm=spec.technology_nm,
            clock_ghz=spec.clock_ghz,
            capacity_bits=(capacity_bits or 0) // banks,
            width_bits=level.block_words * level.word_bits,
            ports=level.ports,
            dram_kind=level.dram_kind,
        )
        row = estimate(query)
        if banks > 1:  # `banks` independent arrays of capacity/banks: area and leakage add up
            row = ComponentEnergy(
                row.name,
                tuple(
                    ActionEnergy(a.action, a.energy_pj * banks, a.source, a.bits)
                    if a.action is Action.LEAK
                    else a
                    for a in row.actions
                ),
                row.area_um2 * banks,
                row.source + f"; {banks} banks",
            )
        rows.append(row)
    unit = ComponentQuery(
        name=spec.compute.component or spec.compute.name,
        component_class=ComponentClass.MAC,
        technology_nm=spec.technology_nm,
        clock_ghz=spec.clock_ghz,
        width_bits=spec.compute.mac_bits,
    )
    rows.append(estimate(unit))
    return table_of(f"{spec.name}_estimated", spec.technology_nm, tuple(rows))


# --- area of a whole hardware, per component (mm^2) ---------------------------------------------
def _spatial_area(hw: Any) -> dict[str, float]:
    areas = {
        level.name: level.area_um2 * hw.instances(index) * 1e-6
        for index, level in enumerate(hw.levels)
    }
    areas[hw.compute.name] = hw.compute.area_um2 * hw.compute.count * 1e-6
    return areas


def _bitserial_area(hw: Any) -> dict[str, float]:
    """Buffers by the SRAM estimator (64-bit access); PEs as ``dp`` 8-bit MAC areas each
    (an assumption: the card gives PE energy from synthesis but no PE area)."""
    node = hw.technology_nm

    def buffer_mm2(name: str, size_bytes: int) -> float:
        query = ComponentQuery(name, ComponentClass.SRAM, node, hw.clock_ghz, size_bytes * 8, 64)
        return sram(query).area_um2 * 1e-6

    pe = mac(ComponentQuery("pe", ComponentClass.MAC, node, width_bits=8)).area_um2 * hw.dp
    return {
        "weight_buffer": buffer_mm2("weight_buffer", hw.weight_buffer_bytes),
        "input_buffer": buffer_mm2("input_buffer", hw.input_buffer_bytes),
        "pe_array": pe * hw.pe_count * 1e-6,
    }


# LUT Tensor Core's synthesis points (Table 1) are all of its M2N64K4 unit.
LUT_SYNTHESIS_TILE_MNK = (2, 64, 4)


def _tensor_core_area(hw: Any) -> dict[str, float]:
    """Tensor cores only (the card's synthesis fit per SM times the SMs); the host GPU's other
    area is not modelled.  A LUT unit of another tile shape is scaled by its MACs per cycle,
    M*N*K, relative to the synthesised M2N64K4 unit (an assumption: the paper gives no area per
    tile shape)."""
    per_sm = hw.tc_area_mm2_per_sm
    if hw.tile_m and hw.tile_n and hw.tile_k:
        m, n, k = LUT_SYNTHESIS_TILE_MNK
        per_sm *= hw.tile_m * hw.tile_n * hw.tile_k / (m * n * k)
    return {"tensor_cores": per_sm * hw.sm_count}


AREA_BY_FAMILY: dict[str, Callable[[Any], dict[str, float]]] = {
    "spatial": _spatial_area,
    "scalesim": _spatial_area,  # a SCALE-Sim .cfg is built into an `Arch`
    "bitserial": _bitserial_area,
    "tensor_core": _tensor_core_area,
}


def _family_name(hardware: Any, family: str | None) -> str:
    if family is not None:
        return family
    from codesign.hwmodels.registry import family_of

    return family_of(hardware).name


def has_area_model(hardware: Any, family: str | None = None) -> bool:
    """Whether `area_breakdown_mm2` can price this hardware's area (by its registry family;
    ``family``: its name where the caller loaded the card, None: looked up by type): not where
    every component comes out 0 (a spatial card whose energy table lists no areas)."""
    family = _family_name(hardware, family)
    return family in AREA_BY_FAMILY and sum(AREA_BY_FAMILY[family](hardware).values()) > 0


def area_breakdown_mm2(hardware: Any, family: str | None = None) -> dict[str, float]:
    """Area per component in mm^2 of any hardware whose registry family has an area model."""
    family = _family_name(hardware, family)
    if family not in AREA_BY_FAMILY:
        known = ", ".join(AREA_BY_FAMILY)
        raise InputError(f"{hardware.name}: no area model for family {family!r} (known: {known})")
    return AREA_BY_FAMILY[family](hardware)
