"""The manifest of a build: stage order and buffers, the data the runner (`runner.py`) reads.

A kernel whose PrimFunc carries `PREPACK_ATTR` takes a weight in panel layout: its argument is
a *derived* buffer (``<weight>@panels<dim>x<tile>``, with ``packed_from``) that the runner fills
once, when it allocates the buffers, with `runner.pack_panels` of the weight.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from codesign.codegen.cpu_schedule import PREPACK_ATTR
from codesign.codegen.te_lower import LoweredCascade

if TYPE_CHECKING:
    from tvm.ir import IRModule


def manifest(
    lowered: LoweredCascade, target: str, module: IRModule | None = None
) -> dict[str, Any]:
    """JSON-ready stages and buffers of `lowered`, built as `module` (the scheduled kernels;
    None: as lowered, no pre-packed weights)."""
    buffers: list[dict[str, Any]] = [
        {"name": b.name, "shape": list(b.shape), "dtype": b.dtype} for b in lowered.buffers
    ]
    by_name: dict[str, dict[str, Any]] = {b["name"]: b for b in buffers}
    stages = []
    for s in lowered.stages:
        inputs = list(s.inputs)
        for packed in _prepacked(module, s.symbol):
            source, dim, tile = packed["buffer"], int(packed["dim"]), int(packed["tile"])
            name = f"{source}@panels{dim}x{tile}"
            if name not in by_name:
                shape = list(by_name[source]["shape"])
                rest = [n for d, n in enumerate(shape) if d != dim]
                by_name[name] = {
                    "name": name,
                    "shape": [shape[dim] // tile, *rest, tile],
                    "dtype": by_name[source]["dtype"],
                    "packed_from": {"buffer": source, "dim": dim, "tile": tile},
                }
                buffers.append(by_name[name])
            inputs = [name if n == source else n for n in inputs]
        stages.append(
            {
                "symbol": s.symbol,
                "einsum": s.einsum,
                "einsums": list(s.einsums),
                "inputs": inputs,
                "output": s.output,
            }
        )
    return {
        "name": lowered.name,
        "target": target,
        "inputs": list(lowered.inputs),
        "weights": list(lowered.weights),
        "outputs": list(lowered.outputs),
        "buffers": buffers,
        "stages": stages,
    }


def _prepacked(module: IRModule | None, symbol: str) -> list[dict[str, Any]]:
    if module is None or symbol not in [gv.name_hint for gv in module.get_global_vars()]:
        return []
    attrs = module[symbol].attrs
    if attrs is None or PREPACK_ATTR not in attrs:
        return []
    return list(json.loads(str(attrs[PREPACK_ATTR])))
