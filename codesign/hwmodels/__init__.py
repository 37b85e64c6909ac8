"""Hardware descriptions: YAML schema, energy tables and the frozen ``Arch`` they load into.

The value types are imported here; the loaders and the family registry (which need pydantic
and the schema) on first use (PEP 562), so that importing the value types stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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

_LAZY = {
    "energy_scale": "codesign.hwmodels.energy",
    "load_arch": "codesign.hwmodels.loader",
    "load_energy_table": "codesign.hwmodels.loader",
    "Command": "codesign.hwmodels.registry",
    "Family": "codesign.hwmodels.registry",
    "load_hardware": "codesign.hwmodels.registry",
    "register_family": "codesign.hwmodels.registry",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'codesign.hwmodels' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
