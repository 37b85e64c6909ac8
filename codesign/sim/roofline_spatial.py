"""Roofline bytes for spatial arrays: each on-chip level sees only the tensors it keeps."""

from __future__ import annotations

from codesign.hwmodels.arch import Arch, TensorRole
from codesign.ir.cascade import Cascade
from codesign.ir.stats import cascade_stats
from codesign.sim.roofline import TensorKind, tensor_kinds


def keeps_bytes_override(
    cascade: Cascade, arch: Arch
) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
    """Per non-view Einsum, the compulsory bytes each on-chip level sees given what it keeps.

    The value is ``RooflineOptions.bytes_override`` (kernel -> (level, bytes)); DRAM keeps every
    tensor and is left to the analyzer.
    """
    kinds = tensor_kinds(cascade, frozenset())
    override = []
    for stats in cascade_stats(cascade).einsums:
        if cascade.einsum(stats.name).is_view:
            continue
        roles = {}
        for tensor, _ in stats.tensor_bytes:
            if tensor == stats.output_tensor:
                roles[tensor] = TensorRole.OUTPUT
            elif kinds[tensor] is TensorKind.WEIGHT:
                roles[tensor] = TensorRole.WEIGHT
            else:
                roles[tensor] = TensorRole.INPUT
        levels = tuple(
            (level.name, sum(n for t, n in stats.tensor_bytes if roles[t] in level.keeps))
            for level in arch.levels[1:]
        )
        override.append((stats.name, levels))
    return tuple(override)
