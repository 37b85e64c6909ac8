"""Roofline kernels from the IR's fused groups (`codesign.ir.groups`): one kernel per group.

A fused group becomes a `KernelGroup`; its boundary bytes follow from `sim.roofline`'s rule
(only tensors that cross the group's boundary move through DRAM).  A group that contains a
whole attention (QK^T .. softmax .. SV, found by `roofline_llm.attention_groups`) streams K
and V once per query block as flash attention does, so it takes that attention's re-reads.
`--flash-attention` stays a shorthand: its attention kernels are merged with the IR's groups
(a group sharing an Einsum with an attention kernel joins it).
"""

from __future__ import annotations

from collections.abc import Mapping

from codesign.hwmodels.gpu import Device
from codesign.ir.cascade import Cascade
from codesign.sim.roofline import KernelGroup
from codesign.sim.roofline_llm import attention_groups


def ir_kernel_groups(
    cascade: Cascade, device: Device, labels: Mapping[str, str]
) -> tuple[KernelGroup, ...]:
    """One kernel per fused group, labelled by its first contraction's layer label."""
    if not cascade.groups:
        return ()
    attention = attention_groups(cascade, device)
    kernels = []
    for group in cascade.groups:
        members = set(group.einsums)
        inside = [a for a in attention if members.issuperset(a.einsums)]
        reread: dict[str, int] = {}
        for a in inside:
            reread.update(a.reread)
        first = group.einsums[0]
        label = "fused_attention" if inside else labels.get(first, cascade.einsum(first).op)
        kernels.append(KernelGroup(group.name, label, group.einsums, tuple(reread.items())))
    return tuple(kernels)


def merge_kernel_groups(
    cascade: Cascade, first: tuple[KernelGroup, ...], second: tuple[KernelGroup, ...]
) -> tuple[KernelGroup, ...]:
    """`first` and `second` as disjoint kernels: overlapping ones become one (the union, named
    and labelled after the `first` kernel, re-reads of both)."""
    order = {e.name: i for i, e in enumerate(cascade.einsums)}
    merged: list[KernelGroup] = list(first)
    for kernel in second:
        overlapping = [k for k in merged if set(k.einsums) & set(kernel.einsums)]
        if not overlapping:
            merged.append(kernel)
            continue
        base = overlapping[0]
        names = set(kernel.einsums).union(*(k.einsums for k in overlapping))
        reread = dict(kernel.reread)
        for k in overlapping:
            reread.update(k.reread)
        union = KernelGroup(base.name, base.label, tuple(sorted(names, key=order.__getitem__)),
                            tuple(reread.items()))  # fmt: skip
        merged = [k for k in merged if k not in overlapping] + [union]
    return tuple(merged)
