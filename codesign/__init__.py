"""codesign: hardware/software co-design over an Einsum-cascade IR.

The same functions the CLI uses are importable here::

    import codesign
    cascade = codesign.load("examples/models/mlp.onnx")
    outputs = codesign.interpret(cascade, codesign.sample_inputs(cascade))
    report = codesign.map_model(cascade, "eyeriss_like", passes="quantize{bits=8}")
"""

from codesign.api import PassOptions, Report, map_model
from codesign.errors import InputError
from codesign.frontends import load_model as load
from codesign.ir import Cascade, cascade_stats, interpret, parse_cascade, print_cascade, verify
from codesign.ir.inputs import sample_inputs

__version__ = "0.1.0"
__all__ = [
    "Cascade", "InputError", "PassOptions", "Report", "cascade_stats", "interpret", "load",
    "map_model", "parse_cascade", "print_cascade", "sample_inputs", "verify",
]  # fmt: skip
