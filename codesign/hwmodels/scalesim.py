"""A SCALE-Sim ``.cfg`` as a codesign ``Arch``, so SCALE-Sim users keep their files.

The array becomes the fan-out (``ArrayWidth`` along x, ``ArrayHeight`` along y) below one on-chip
level holding SCALE-Sim's three operand SRAMs (their sizes added), above a one-word PE register
that keeps the dataflow's stationary operand.  ``InterfaceBandwidth: CALC`` (SCALE-Sim sizes the
interface so it never stalls) is an unlimited DRAM bandwidth; ``USER`` takes the first
``Bandwidth`` value in words per cycle.  SCALE-Sim has no energy model: energies come from
``data/scalesim_default_ert.json`` (ZigZag's tpu_like numbers, with their source; JSON so
that a ``.cfg`` run needs no YAML parser, and still loadable by `load_energy_table`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from codesign.hwmodels.arch import (
    Action,
    ActionEnergy,
    Arch,
    ComponentEnergy,
    ComputeUnit,
    EnergyTable,
    MemoryKind,
    StorageLevel,
    TensorRole,
)  # fmt: skip
from codesign.hwmodels.scalesim_config import InterfaceBandwidth, ScaleSimConfig, load_config

DEFAULT_ERT = Path(__file__).parent / "data" / "scalesim_default_ert.json"
_SRAM_BLOCK_WORDS = 256  # the ERT's SRAM energies are per 2048-bit access
_DRAM_BLOCK_WORDS = 8


@functools.cache
def default_energy_table() -> EnergyTable:
    """`DEFAULT_ERT`, read without the pydantic schema and YAML: the file ships with the package
    (no user input to validate) and a ``.cfg`` run then imports neither.  Equal to
    ``load_energy_table(DEFAULT_ERT)`` (tests/test_scalesim_config.py checks it)."""
    data = json.loads(DEFAULT_ERT.read_text(encoding="utf-8"))
    components = tuple(
        ComponentEnergy(
            component["name"],
            tuple(
                ActionEnergy(
                    Action(action["name"]), float(action["energy_pj"]),
                    action.get("source") or component.get("source") or data["source"],
                    action.get("bits"),
                )  # fmt: skip
                for action in component["actions"]
            ),
            float(component.get("area_um2", 0.0)),
            component.get("source") or data["source"],
        )
        for component in data["components"]
    )
    return EnergyTable(data["name"], float(data["technology_nm"]), components, data["source"])


def _level(
    name: str,
    kind: MemoryKind,
    size_words: int | None,
    block: int,
    bandwidth: float | None,
    keeps: frozenset[TensorRole],
    fanout: tuple[int, int],
    table: EnergyTable,
    component: str,
) -> StorageLevel:
    entry = table.component(component)
    assert entry is not None, component
    read, write = entry.energy_pj(Action.READ), entry.energy_pj(Action.WRITE)
    update = entry.energy_pj(Action.UPDATE)
    assert read is not None and write is not None
    return StorageLevel(
        name=name, kind=kind, size_words=size_words, word_bits=8, block_words=block, banks=1,
        read_bandwidth_words_per_cycle=bandwidth, write_bandwidth_words_per_cycle=bandwidth,
        keeps=keeps, fanout_x=fanout[0], fanout_y=fanout[1], read_energy_pj=read / block,
        write_energy_pj=write / block, update_energy_pj=(update or write) / block,
        leak_energy_pj_per_cycle=0.0, area_um2=entry.area_um2,
    )  # fmt: skip


def arch_from_scalesim(config: ScaleSimConfig, source_path: str = "") -> Arch:
    table = default_energy_table()
    bandwidth = (
        float(config.bandwidth_words_per_cycle[0])
        if config.interface_bandwidth is InterfaceBandwidth.USER
        else None
    )
    sram_words = (config.ifmap_sram_kb + config.filter_sram_kb + config.ofmap_sram_kb) * 1024
    everything = frozenset(TensorRole)
    stationary = frozenset({config.dataflow.stationary_role})
    levels = (
        _level(
            "dram",
            MemoryKind.DRAM,
            None,
            _DRAM_BLOCK_WORDS,
            bandwidth,
            everything,
            (1, 1),
            table,
            "dram",
        ),
        _level(
            "sram",
            MemoryKind.SRAM,
            sram_words,
            _SRAM_BLOCK_WORDS,
            None,
            everything,
            (config.array_width, config.array_height),
            table,
            "sram",
        ),
        _level("pe_reg", MemoryKind.REGFILE, 1, 1, None, stationary, (1, 1), table, "pe_reg"),
    )
    mac = table.component("mac")
    assert mac is not None
    mac_pj = mac.energy_pj(Action.MAC, 8)
    assert mac_pj is not None
    compute = ComputeUnit(
        "mac", 8, config.array_height * config.array_width, mac_pj, 0.0, mac.area_um2
    )
    return Arch(
        config.run_name,
        1.0,
        table.technology_nm,
        config.dataflow,
        levels,
        compute,
        table,
        source_path,
    )


def load_scalesim_arch(path: str | Path) -> Arch:
    return arch_from_scalesim(load_config(path), str(path))
