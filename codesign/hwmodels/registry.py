"""One registry of hardware families: every kind of card is one `Family` entry.

A family is a pydantic spec (what its YAML may say), a build function (validated spec + the
card's path -> a frozen hardware object), its cost model (a factory of
`codesign.sim.cost.HardwareModel`), the commands that accept it, and optionally the roofline
device it stands for.  `load_hardware` parses a card once, reads its ``family:`` (none: a
spatial array), validates it against that family's spec and builds it; commands look the family
up here instead of sniffing files or branching on types.

Adding a family is two files: the module that defines its spec, hardware, build and model, and
one `register_family` call (the built-in ones are listed at the bottom of this module; a plug-in
registers from its own module, as ``tests/test_registry.py`` does).

The built-in families are registered as `_Builtin` stubs -- the keys and suffixes a card lookup
needs -- and a family's modules (pydantic specs, hardware, roofline) are imported when the family
is first used, so a SCALE-Sim ``.cfg`` run never loads pydantic or the other families.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from codesign.errors import InputError
from codesign.hwmodels.presets import PRESET_DIR, resolve_card

if TYPE_CHECKING:
    from pydantic import BaseModel

    from codesign.hwmodels.spatial_device import RooflineHardware
    from codesign.sim.cost import HardwareModel
    from codesign.sim.family_models import CostOptions


class Command(enum.Enum):
    """The commands that take ``--hw``."""

    MAP = "map"
    ROOFLINE = "roofline"
    BENCH = "bench"
    GRAPH = "graph"
    DSE = "dse"


class Hardware(Protocol):
    """What every built hardware object answers: its name and clock."""

    @property
    def name(self) -> str: ...

    @property
    def clock_ghz(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Family:
    """One hardware kind.

    ``keys``: the values of ``family:`` its YAML cards carry (a card without the line is a
    spatial array).  ``suffixes``: card file suffixes; a non-YAML
    format gives ``parse`` (file -> spec) instead of validating YAML against ``spec``.
    ``hardware``: the types `build` returns, so a hardware object finds its family.
    ``roofline``: the roofline device a card of this family stands for (None: ``roofline``
    does not take it).
    """

    name: str
    spec: type
    build: Callable[[Any, Path], Any]
    model: Callable[[CostOptions], HardwareModel]
    hardware: tuple[type, ...]
    commands: frozenset[Command]
    keys: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = (".yaml", ".yml")
    parse: Callable[[Path], Any] | None = None
    roofline: Callable[[Any], RooflineHardware] | None = None
    takes_mappings: bool = False  # the schedule is open: given loop-nest mappings apply

    def require(self, command: Command, card: str) -> None:
        """InputError naming the commands that take this family when `command` is not one."""
        if command not in self.commands:
            takes = ", ".join(sorted(c.value for c in self.commands))
            raise InputError(
                f"{card}: {self.name} cards cannot be used by `{command.value}` "
                f"({self.name} cards are taken by: {takes})"
            )


@dataclass(frozen=True, slots=True)
class LoadedHardware:
    """A card, loaded: the hardware object, its family and where it came from."""

    hw: Any
    family: Family
    path: Path


@dataclass(frozen=True, slots=True)
class _Builtin:
    """A built-in family not yet imported: what finding a card's family needs, and `make`,
    which imports the family's modules and returns its `Family` (same name, keys, suffixes)."""

    keys: tuple[str, ...]
    suffixes: tuple[str, ...]
    parses: bool  # the Family has a ``parse`` (a non-YAML card format)
    make: Callable[[], Family]


_FAMILIES: dict[str, Family | _Builtin] = {}  # in registration order; stubs made on first use


def _made(name: str) -> Family:
    entry = _FAMILIES[name]
    if isinstance(entry, _Builtin):
        made = entry.make()
        if (made.name, made.keys, made.suffixes, made.parse is not None) != (
            name, entry.keys, entry.suffixes, entry.parses
        ):
            raise RuntimeError(f"built-in family {name!r} differs from its registry stub")
        _FAMILIES[name] = entry = made
    return entry


def register_family(family: Family, replace: bool = False) -> Family:
    """Add `family` to the registry (ValueError on a taken name or key unless `replace`)."""
    if not replace:
        if family.name in _FAMILIES:
            raise ValueError(f"hardware family {family.name!r} is already registered")
        taken = {k for f in _FAMILIES.values() for k in f.keys}
        if set(family.keys) & taken:
            raise ValueError(f"family keys {sorted(set(family.keys) & taken)} are taken")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    _FAMILIES.pop(name, None)


def families() -> tuple[Family, ...]:
    return tuple(_made(name) for name in list(_FAMILIES))


def family(name: str) -> Family:
    if name not in _FAMILIES:
        raise InputError(f"unknown hardware family {name!r} (known: {', '.join(_FAMILIES)})")
    return _made(name)


def family_of(hw: object) -> Family:
    """The family whose `build` makes objects of ``type(hw)`` (families are made in order until
    one matches: an `Arch` needs only the first)."""
    for name in list(_FAMILIES):
        entry = _made(name)
        if type(hw) in entry.hardware:
            return entry
    raise InputError(f"{type(hw).__name__} is not the hardware of any registered family")


DEFAULT_FAMILY = "spatial"  # a YAML card without ``family:``


def _family_for_key(key: str | None, path: Path) -> Family:
    from codesign.hwmodels.yamlio import input_error

    for name, entry in list(_FAMILIES.items()):
        if path.suffix.lower() in entry.suffixes and (
            key in entry.keys or (key is None and name == DEFAULT_FAMILY)
        ):
            return _made(name)
    yaml_keys = sorted(k for f in _FAMILIES.values() for k in f.keys)
    raise input_error(
        path, ("family",), f"unknown hardware family {key!r} (known: {', '.join(yaml_keys)}; "
        "none for a spatial array)"
    )  # fmt: skip


@functools.cache
def _card_head() -> type[BaseModel]:
    """A YAML card's top level before its family is known: ``family:`` plus everything else
    (built on first use: only YAML cards need pydantic)."""
    from pydantic import BaseModel, ConfigDict

    class _Card(BaseModel):
        model_config = ConfigDict(extra="allow")
        family: str | None = None

    return _Card


def _validate(path: Path, data: dict[str, Any], spec: type[BaseModel], key: str | None) -> Any:
    import pydantic

    from codesign.hwmodels.yamlio import check_numbers, input_error

    try:
        validated = spec.model_validate(data)
        check_numbers(path, validated)  # numbers written as strings became numbers just now
        return validated
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        loc = tuple(k for k in first["loc"] if not str(k).startswith("function-"))
        message = " ".join(str(first["msg"]).split())
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        checked = f" (checked as a `family: {key}` card)" if key is not None else ""
        raise input_error(path, loc, message + more + checked) from error


def load_card(path: Path) -> LoadedHardware:
    """Parse the card at `path` once, pick its family, validate and build it."""
    path = Path(path)
    suffix = path.suffix.lower()
    for name, stub in list(_FAMILIES.items()):
        parses = stub.parses if isinstance(stub, _Builtin) else stub.parse is not None
        if parses and suffix in stub.suffixes:
            entry = _made(name)
            assert entry.parse is not None
            return LoadedHardware(entry.build(entry.parse(path), path), entry, path)
    from codesign.hwmodels.yamlio import load_validated

    head: Any = load_validated(path, _card_head())
    entry = _family_for_key(head.family, path)
    data = dict(head.model_extra or {})
    if head.family is not None and "family" in getattr(entry.spec, "model_fields", {}):
        data["family"] = head.family
    spec = _validate(path, data, entry.spec, head.family)
    return LoadedHardware(entry.build(spec, path), entry, path)


def load_hardware_card(spec: str | Path, command: Command | None = None) -> LoadedHardware:
    """``--hw`` resolution: a card file or a preset name, loaded; with `command`, a family that
    command does not take is a one-line InputError naming the commands that do."""
    loaded = load_card(resolve_card(spec))
    if command is not None:
        loaded.family.require(command, str(spec))
    return loaded


def load_hardware(spec: str | Path) -> Any:
    """The hardware object of a card file or preset name (``eyeriss_like``, ``a100``)."""
    return load_hardware_card(spec).hw


# ---- the built-in families -------------------------------------------------------------------
# Each model factory imports its model when first called: the registry sits in hwmodels, below
# the sim room that prices hardware, and must not load it at import time.


def _spatial_model(options: CostOptions) -> HardwareModel:
    from codesign.sim.family_models import spatial_model

    return spatial_model(options)


def _bitserial_model(options: CostOptions) -> HardwareModel:
    from codesign.sim.family_models import bitserial_model

    return bitserial_model(options)


def _tensor_core_model(options: CostOptions) -> HardwareModel:
    from codesign.sim.family_models import tensor_core_model

    return tensor_core_model(options)


def _device_model(options: CostOptions) -> HardwareModel:
    from codesign.sim.family_models import device_model

    return device_model(options)


def _piuma_model(options: CostOptions) -> HardwareModel:
    from codesign.sim.family_models import piuma_model

    return piuma_model(options)


def _attention_array_model(options: CostOptions) -> HardwareModel:
    from codesign.sim.family_models import attention_array_model

    return attention_array_model(options)


_SPATIAL_COMMANDS = frozenset({Command.MAP, Command.ROOFLINE, Command.DSE})


def _spatial_roofline(hw: Any) -> RooflineHardware:
    from codesign.hwmodels.spatial_device import spatial_roofline

    return spatial_roofline(hw)


def _make_spatial() -> Family:
    from codesign.hwmodels.arch import Arch
    from codesign.hwmodels.loader import arch_from_spec
    from codesign.hwmodels.nm_array import NMArray
    from codesign.hwmodels.schema import ArchSpec

    return Family("spatial", ArchSpec, arch_from_spec, _spatial_model, (Arch, NMArray),
                  _SPATIAL_COMMANDS, ("spatial",), roofline=_spatial_roofline,
                  takes_mappings=True)  # fmt: skip


def _make_scalesim() -> Family:
    from codesign.hwmodels.scalesim import ScaleSimConfig, arch_from_scalesim, load_config

    return Family("scalesim", ScaleSimConfig, lambda c, p: arch_from_scalesim(c, str(p)),
                  _spatial_model, (), _SPATIAL_COMMANDS, suffixes=(".cfg",), parse=load_config,
                  roofline=_spatial_roofline, takes_mappings=True)  # fmt: skip


def _make_bitserial() -> Family:
    from codesign.hwmodels.bitserial import BitSerialArray, BitSerialSpec, array_from_spec
    from codesign.hwmodels.roofline_devices import bitserial_roofline

    return Family("bitserial", BitSerialSpec, lambda s, p: array_from_spec(s, str(p)),
                  _bitserial_model, (BitSerialArray,), frozenset({Command.MAP, Command.ROOFLINE}),
                  ("bitserial",), roofline=bitserial_roofline)  # fmt: skip


def _make_tensor_core() -> Family:
    from codesign.hwmodels.lut_tc import TensorCoreGpu, TensorCoreSpec, tensor_core_from_spec
    from codesign.hwmodels.roofline_devices import tensor_core_roofline

    return Family("tensor_core", TensorCoreSpec, tensor_core_from_spec, _tensor_core_model,
                  (TensorCoreGpu,), frozenset({Command.MAP, Command.ROOFLINE}), ("tensor_core",),
                  roofline=tensor_core_roofline)  # fmt: skip


def _make_device() -> Family:
    from codesign.hwmodels.gpu import Device, DeviceSpec, device_from_spec
    from codesign.hwmodels.spatial_device import device_roofline

    return Family("device", DeviceSpec, device_from_spec, _device_model, (Device,),
                  frozenset({Command.MAP, Command.ROOFLINE, Command.BENCH}), ("gpu", "cpu"),
                  roofline=device_roofline)  # fmt: skip


def _make_piuma() -> Family:
    from codesign.hwmodels.piuma import PiumaArch, PiumaSpec, piuma_from_spec
    from codesign.hwmodels.roofline_devices import piuma_roofline

    return Family("piuma", PiumaSpec, piuma_from_spec, _piuma_model, (PiumaArch,),
                  frozenset({Command.MAP, Command.GRAPH, Command.ROOFLINE}), ("piuma",),
                  roofline=piuma_roofline)  # fmt: skip


def _make_attention_array() -> Family:
    from codesign.hwmodels.fusemax import AttentionArray, AttentionArraySpec
    from codesign.hwmodels.fusemax import attention_array_from_spec as attention_array_build
    from codesign.hwmodels.roofline_devices import attention_array_roofline

    return Family("attention_array", AttentionArraySpec, attention_array_build,
                  _attention_array_model, (AttentionArray,),
                  frozenset({Command.MAP, Command.ROOFLINE}), ("attention_array",),
                  roofline=attention_array_roofline)  # fmt: skip


_YAML = (".yaml", ".yml")
# the built-in families as stubs (`_made` checks each against the Family it makes)
_FAMILIES.update({
    "spatial": _Builtin(("spatial",), _YAML, False, _make_spatial),
    "scalesim": _Builtin((), (".cfg",), True, _make_scalesim),
    "bitserial": _Builtin(("bitserial",), _YAML, False, _make_bitserial),
    "tensor_core": _Builtin(("tensor_core",), _YAML, False, _make_tensor_core),
    "device": _Builtin(("gpu", "cpu"), _YAML, False, _make_device),
    "piuma": _Builtin(("piuma",), _YAML, False, _make_piuma),
    "attention_array": _Builtin(("attention_array",), _YAML, False, _make_attention_array),
})


__all__ = [
    "DEFAULT_FAMILY", "PRESET_DIR", "Command", "Family", "Hardware", "LoadedHardware",
    "families", "family", "family_of", "load_card", "load_hardware", "load_hardware_card",
    "register_family", "unregister_family",
]  # fmt: skip
