"""One entry point for every hardware file format the CLI accepts."""

from __future__ import annotations

from pathlib import Path

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch


def load_hardware(path: str | Path) -> Arch:
    """A spatial-array Arch from a codesign YAML or a SCALE-Sim ``.cfg``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such hardware file")
    if path.suffix.lower() == ".cfg":
        from codesign.hwmodels.scalesim import load_scalesim_arch

        return load_scalesim_arch(path)
    from codesign.hwmodels.loader import load_arch

    return load_arch(path)
