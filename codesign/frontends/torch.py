"""PyTorch frontend: an ``nn.Module`` plus example inputs to a Cascade, through ONNX export.

``load_torch(module, example_inputs)`` exports the module with ``torch.onnx.export(dynamo=True)``
(opset `OPSET`, fixed shapes taken from the example inputs, the exporter's graph optimiser on,
which folds eval-mode BatchNorm into the preceding convolution and constant-folds shape
arithmetic) to an in-memory ``ModelProto`` and imports it with
`codesign.frontends.onnx.load_onnx`.

Why ONNX export rather than lowering torch.export's FX graph (ATen ops) directly:

* one lowering per operator.  The ONNX frontend already owns the lowering of every operator
  codesign supports; an FX frontend would be a second, parallel table over ~2000 ATen ops
  (or the ~200 core-ATen decompositions) that would drift from the ONNX one.
* the dynamo ONNX exporter *is* torch.export: it traces with torch.export and translates core
  ATen to ONNX with onnxscript's torchlib, so we get torch.export's capture (no TorchScript
  tracing) and torch's maintained ATen -> ONNX table for free.
* the exported file is an artefact users can inspect, run under onnxruntime to cross-check
  codesign's interpreter, and feed to the CLI.

The cost is a dependency on ``onnxscript`` (in the ``torch`` extra) and export time (about 1 s
for a small module, ~10 s for ResNet-50, dominated by torch.export tracing).  torch is imported
lazily: importing this module never needs it.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from codesign.errors import InputError
from codesign.ir.builder import sanitize
from codesign.ir.cascade import Cascade

if TYPE_CHECKING:
    import onnx
    import torch

OPSET = 18
"""ONNX opset the exporter targets (LayerNormalization needs >= 17)."""

_MISSING_TORCH = "PyTorch frontend needs torch: pip install 'codesign[torch]'"
# torch logs one warning per torchvision op it cannot register when torchvision is absent.
_NOISY_LOGGER = "torch.onnx._internal.exporter._registration"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _import_torch():  # -> module torch
    try:
        import torch
    except ImportError:
        raise InputError(_MISSING_TORCH) from None
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's translation library)
    except ImportError:
        raise InputError(
            "PyTorch frontend needs onnxscript for ONNX export: pip install 'codesign[torch]'"
        ) from None
    return torch


def _as_tuple(example_inputs: object) -> tuple:
    if isinstance(example_inputs, tuple):
        return example_inputs
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    return (example_inputs,)


def _root_reason(exc: BaseException) -> str:
    """First line of the innermost cause (the exporter wraps the tracer's error in a long
    banner with terminal colour codes)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = _ANSI.sub("", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def export_onnx(
    module: torch.nn.Module,
    example_inputs: object,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """The ONNX model of `module` called on `example_inputs` (a tensor or a tuple of them).

    Shapes are fixed to those of the example inputs; the module is exported as it is (call
    ``.eval()`` first for inference behaviour of BatchNorm and dropout).  Input names default to
    the parameter names of ``forward``.  Export failures raise InputError with the exporter's
    first message line.
    """
    torch = _import_torch()
    args = _as_tuple(example_inputs)
    noisy = logging.getLogger(_NOISY_LOGGER)
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                args,
                input_names=list(input_names) if input_names else None,
                output_names=list(output_names) if output_names else None,
                opset_version=opset,
                dynamo=True,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        reason = _root_reason(exc)
        raise InputError(f"{type(module).__name__}: torch.onnx.export failed: {reason}") from exc
    finally:
        noisy.setLevel(level)
    return program.model_proto


def load_torch(
    module: torch.nn.Module,
    example_inputs: object,
    name: str | None = None,
) -> Cascade:
    """The Cascade of `module` on `example_inputs` (a tensor or a tuple of tensors).

    Inputs keep the names of ``forward``'s parameters (sanitized); weights carry their data, so
    `interpret` runs the cascade as is.  The cascade is named `name`, else the module's class.
    """
    from codesign.frontends.onnx import load_onnx

    label = sanitize(name or type(module).__name__)
    model = export_onnx(module, example_inputs)
    try:
        return load_onnx(model, name=label)
    except InputError as exc:  # name the module rather than the in-memory "<model>"
        raise InputError(str(exc).replace("<model>", f"{label} (exported)", 1)) from None
