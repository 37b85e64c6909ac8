"""SCALE-Sim v3 ``.cfg`` architecture files (INI, read with configparser; keys are
case-insensitive as in SCALE-Sim)::

    [general]              run_name
    [architecture_presets] ArrayHeight, ArrayWidth, IfmapSramSzkB, FilterSramSzkB, OfmapSramSzkB,
                           IfmapOffset, FilterOffset, OfmapOffset, Dataflow (ws|os|is),
                           Bandwidth (comma list, words/cycle; needed for USER), MemoryBanks,
                           ReadRequestBuffer, WriteRequestBuffer
    [run_presets]          InterfaceBandwidth (CALC|USER), UseRamulatorTrace
    [layout]               IfmapCustomLayout, FilterCustomLayout, ...        (optional here)
    [sparsity]             SparsitySupport, ...                               (optional here)
    [network_presets]      TopologyCsvLoc                                     (optional)

Array size, dataflow, SRAM sizes and InterfaceBandwidth are required; everything else defaults
to SCALE-Sim's own defaults.  Topology ``.csv`` files are workloads: `codesign.frontends.scalesim`.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from codesign.errors import InputError, read_utf8
from codesign.hwmodels.arch import Dataflow
from codesign.hwmodels.systolic_array import SystolicArray

_E = TypeVar("_E", bound=Enum)


class InterfaceBandwidth(Enum):
    """SCALE-Sim's DRAM interface mode: estimate the bandwidth needed, or use the user's."""

    CALC = "CALC"
    USER = "USER"


@dataclass(frozen=True, slots=True)
class ScaleSimConfig:
    """A SCALE-Sim ``.cfg``. SRAM sizes in kB (1024 bytes); offsets in words; bandwidth in
    words per cycle; request buffers in entries."""

    run_name: str
    array_height: int
    array_width: int
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    dataflow: Dataflow
    interface_bandwidth: InterfaceBandwidth
    bandwidth_words_per_cycle: tuple[int, ...] = ()
    ifmap_offset: int = 0
    filter_offset: int = 10_000_000
    ofmap_offset: int = 20_000_000
    memory_banks: int = 1
    read_request_buffer_entries: int = 60
    write_request_buffer_entries: int = 60
    use_ramulator_trace: bool = False
    ifmap_custom_layout: bool = False
    filter_custom_layout: bool = False
    sparsity_support: bool = False
    topology_path: str = ""

    def to_array(self) -> SystolicArray:
        """ArrayHeight rows × ArrayWidth columns running the configured dataflow."""
        return SystolicArray(self.array_height, self.array_width, self.dataflow)


def _parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    return None


class _Section:
    """Typed, error-reporting reads of one config section (only used while loading)."""

    def __init__(self, parser: configparser.ConfigParser, name: str, source: str) -> None:
        self._parser, self._name, self._source = parser, name, source

    def _raw(self, key: str) -> str | None:
        if not self._parser.has_section(self._name):
            return None
        value = self._parser.get(self._name, key, fallback=None)
        return None if value is None else value.strip()

    def _where(self, key: str) -> str:
        return f"{self._source}: [{self._name}] {key}"

    def text(self, key: str, default: str | None = None) -> str:
        value = self._raw(key)
        if value is None:
            if default is None:
                raise InputError(f"{self._where(key)}: missing")
            return default
        return value

    def integer(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        value = self._raw(key)
        if value is None or value == "":
            if default is None:
                raise InputError(f"{self._where(key)}: missing")
            return default
        try:
            number = int(value)
        except ValueError:
            raise InputError(f"{self._where(key)}: expected an integer, got {value!r}") from None
        if number < minimum:
            raise InputError(f"{self._where(key)}: must be >= {minimum}, got {number}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        parsed = _parse_bool(value)
        if parsed is None:
            raise InputError(f"{self._where(key)}: expected True or False, got {value!r}")
        return parsed

    def choice(self, key: str, enum: type[_E], normalise: Callable[[str], str]) -> _E:
        value = self.text(key)
        for member in enum:
            if member.value == normalise(value):
                return member
        known = ", ".join(str(member.value) for member in enum)
        raise InputError(f"{self._where(key)}: expected one of {known}, got {value!r}")


def parse_config_text(text: str, source: str = "<config>") -> ScaleSimConfig:
    """Parse the text of a SCALE-Sim ``.cfg``; ``source`` names it in error messages."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=source)
    except configparser.MissingSectionHeaderError as error:
        raise InputError(f"{source}:{error.lineno}: expected a [section] header first") from None
    except configparser.DuplicateSectionError as error:
        raise InputError(f"{source}:{error.lineno}: duplicate section [{error.section}]") from None
    except configparser.DuplicateOptionError as error:
        raise InputError(
            f"{source}:{error.lineno}: duplicate key {error.option!r} in [{error.section}]"
        ) from None
    except configparser.ParsingError as error:
        lineno = error.errors[0][0] if error.errors else 0
        raise InputError(f"{source}:{lineno}: not a 'key: value' line") from None
    arch = _Section(parser, "architecture_presets", source)
    run = _Section(parser, "run_presets", source)
    general = _Section(parser, "general", source)
    layout = _Section(parser, "layout", source)
    sparsity = _Section(parser, "sparsity", source)
    network = _Section(parser, "network_presets", source)

    interface = run.choice("InterfaceBandwidth", InterfaceBandwidth, str.upper)
    bandwidth_text = arch.text("Bandwidth", default="")
    bandwidths: list[int] = []
    for item in filter(None, (part.strip() for part in bandwidth_text.split(","))):
        try:
            bandwidths.append(int(item))
        except ValueError:
            raise InputError(
                f"{source}: [architecture_presets] Bandwidth: expected integers, got {item!r}"
            ) from None
        if bandwidths[-1] <= 0:
            raise InputError(
                f"{source}: [architecture_presets] Bandwidth: must be positive, got {item!r}"
            )
    if interface is InterfaceBandwidth.USER and not bandwidths:
        raise InputError(
            f"{source}: [architecture_presets] Bandwidth: missing (needed by "
            "InterfaceBandwidth: USER)"
        )
    return ScaleSimConfig(
        run_name=general.text("run_name", default="scale_run"),
        array_height=arch.integer("ArrayHeight"),
        array_width=arch.integer("ArrayWidth"),
        ifmap_sram_kb=arch.integer("IfmapSramSzkB"),
        filter_sram_kb=arch.integer("FilterSramSzkB"),
        ofmap_sram_kb=arch.integer("OfmapSramSzkB"),
        dataflow=arch.choice("Dataflow", Dataflow, str.lower),
        interface_bandwidth=interface,
        bandwidth_words_per_cycle=tuple(bandwidths),
        ifmap_offset=arch.integer("IfmapOffset", default=0, minimum=0),
        filter_offset=arch.integer("FilterOffset", default=10_000_000, minimum=0),
        ofmap_offset=arch.integer("OfmapOffset", default=20_000_000, minimum=0),
        memory_banks=arch.integer("MemoryBanks", default=1),
        read_request_buffer_entries=arch.integer("ReadRequestBuffer", default=60),
        write_request_buffer_entries=arch.integer("WriteRequestBuffer", default=60),
        use_ramulator_trace=run.boolean("UseRamulatorTrace", default=False),
        ifmap_custom_layout=layout.boolean("IfmapCustomLayout", default=False),
        filter_custom_layout=layout.boolean("FilterCustomLayout", default=False),
        sparsity_support=sparsity.boolean("SparsitySupport", default=False),
        topology_path=network.text("TopologyCsvLoc", default="").strip().strip('"'),
    )



def load_config(path: str | Path) -> ScaleSimConfig:
    """Read a SCALE-Sim ``.cfg`` file; errors name the file and the section/key."""
    return parse_config_text(read_utf8(path), source=str(path))
