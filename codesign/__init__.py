"""codesign: hardware/software co-design over an Einsum-cascade IR.

The same functions the CLI uses are importable here::

    import codesign
    cascade = codesign.load("examples/models/mlp.onnx")
    outputs = codesign.interpret(cascade, codesign.sample_inputs(cascade))
    report = codesign.map_model(cascade, "eyeriss_like", passes="quantize{bits=8}")

The names below are imported on first use (PEP 562), so ``import codesign`` -- and the CLI's
start-up -- does not pay for numpy, onnx or the IR until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from codesign.errors import InputError

if TYPE_CHECKING:
    from codesign.api import PassOptions, Report, map_model
    from codesign.frontends import load_model as load
    from codesign.ir import Cascade, cascade_stats, interpret, parse_cascade, print_cascade, verify
    from codesign.ir.inputs import sample_inputs

__version__ = "0.1.0"
__all__ = [
    "Cascade", "InputError", "PassOptions", "Report", "cascade_stats", "interpret", "load",
    "map_model", "parse_cascade", "print_cascade", "sample_inputs", "verify",
]  # fmt: skip

# public name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "PassOptions": ("codesign.api", "PassOptions"),
    "Report": ("codesign.api", "Report"),
    "map_model": ("codesign.api", "map_model"),
    "load": ("codesign.frontends", "load_model"),
    "Cascade": ("codesign.ir", "Cascade"),
    "cascade_stats": ("codesign.ir", "cascade_stats"),
    "interpret": ("codesign.ir", "interpret"),
    "parse_cascade": ("codesign.ir", "parse_cascade"),
    "print_cascade": ("codesign.ir", "print_cascade"),
    "verify": ("codesign.ir", "verify"),
    "sample_inputs": ("codesign.ir.inputs", "sample_inputs"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'codesign' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
