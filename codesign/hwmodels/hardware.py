"""One entry point for every hardware file format the CLI accepts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch

if TYPE_CHECKING:
    from codesign.hwmodels.bitserial import BitSerialArray
    from codesign.hwmodels.lut_tc import TensorCoreGpu


def _family(path: Path) -> str | None:
    """The top-level ``family:`` of a YAML file, if it has one (errors surface in the loader)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    family = data.get("family") if isinstance(data, dict) else None
    return family if isinstance(family, str) else None


def load_hardware(path: str | Path) -> Arch | BitSerialArray | TensorCoreGpu:
    """Hardware from a codesign YAML or a SCALE-Sim ``.cfg``: a spatial-array `Arch`, or a
    fixed-schedule family (``family: bitserial`` PE arrays, ``family: tensor_core`` GPUs with
    MMA or LUT tensor cores) that `CascadeMapper` prices with the family's own model."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such hardware file")
    if path.suffix.lower() == ".cfg":
        from codesign.hwmodels.scalesim import load_scalesim_arch

        return load_scalesim_arch(path)
    family = _family(path)
    if family == "bitserial":
        from codesign.hwmodels.bitserial import load_bitserial

        return load_bitserial(path)
    if family == "tensor_core":
        from codesign.hwmodels.lut_tc import load_tensor_core

        return load_tensor_core(path)
    from codesign.hwmodels.loader import load_arch

    return load_arch(path)
