"""Frontends: the only place foreign model formats are read.

`load_model` dispatches on what the user named: an ``.onnx`` file, a printed cascade (``.ein``
text, see docs/ir.md), a SCALE-Sim topology ``.csv``, or a single layer spec (``gemm:M=..``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from numbers import Integral
from pathlib import Path

from codesign.errors import InputError, read_utf8
from codesign.ir.cascade import Cascade


def _checked_dims(dims: object) -> dict[str, int]:
    """`dims` as a name -> positive int dict; InputError for anything else (2.7 is not 2)."""
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        kind = type(dims).__name__
        raise InputError(f"dims: expected a mapping of dim names to sizes, got {kind}")
    out: dict[str, int] = {}
    for name, size in dims.items():
        if not isinstance(name, str):
            raise InputError(f"dims: name {name!r} is not a string")
        if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
            raise InputError(f"dims[{name!r}] = {size!r}: expected a positive integer")
        out[name] = int(size)
    return out


def load_model(spec: str | os.PathLike[str], dims: Mapping[str, int] | None = None) -> Cascade:
    """The Cascade for a model file (path string or Path) or layer spec; InputError for anything
    unreadable or of the wrong type."""
    from codesign.frontends.layers import is_layer_spec, parse_layer_spec

    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise InputError(f"model: expected a path or layer spec, got {type(spec).__name__}")
    dims = _checked_dims(dims)

    if is_layer_spec(spec):
        return parse_layer_spec(spec)
    path = Path(spec)
    if not path.exists():
        raise InputError(f"{spec}: no such file")
    if path.is_dir():
        raise InputError(f"{spec}: is a directory, expected a model file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from codesign.frontends.onnx import load_onnx

        return load_onnx(path, dims=dims)
    if suffix in (".ein", ".cascade"):
        from codesign.ir.parser import parse_cascade
        from codesign.ir.verify import VerifyError, verify

        text = read_utf8(path)
        try:
            cascade = parse_cascade(text)
            verify(cascade)  # a hand-written file may break what the builders guarantee
        except (InputError, VerifyError) as exc:
            raise InputError(f"{spec}: {str(exc).splitlines()[0]}") from None
        return cascade
    if suffix == ".csv":
        from codesign.frontends.scalesim import load_topology_cascade

        return load_topology_cascade(path)
    raise InputError(
        f"{spec}: unknown model format {suffix or '(no suffix)'} "
        "(expected .onnx, .ein, a SCALE-Sim .csv, or gemm:/conv: layer spec)"
    )
