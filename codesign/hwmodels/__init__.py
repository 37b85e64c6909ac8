"""Hardware descriptions: YAML schema, energy tables and the frozen ``Arch`` they load into."""

from codesign.hwmodels.arch import (
    Action,
    Arch,
    ComputeUnit,
    Dataflow,
    EnergyTable,
    MemoryKind,
    StorageLevel,
    TensorRole,
)
from codesign.hwmodels.energy import energy_scale
from codesign.hwmodels.loader import load_arch, load_energy_table
from codesign.hwmodels.registry import Command, Family, load_hardware, register_family

__all__ = [
    "Action",
    "Arch",
    "Command",
    "Family",
    "ComputeUnit",
    "Dataflow",
    "EnergyTable",
    "MemoryKind",
    "StorageLevel",
    "TensorRole",
    "energy_scale",
    "load_arch",
    "load_energy_table",
    "load_hardware",
    "register_family",
]
