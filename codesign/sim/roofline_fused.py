"""Roofline kernels from the IR's fused groups (`codesign.ir.groups`): one kernel per group.

A fused group becomes a `KernelGroup`; its boundary bytes follow from `sim.roofline`'s rule
(only tensors that cross the group's boundary move through DRAM).  A group that contains a
whole attention (QK^T .. softmax .. SV, `codesign.passes.flash_attention.find_attentions`) is
priced as flash attention (FlashAttention-2, Dao 2023, Algorithm 1): the scores stay on chip
and K and V are streamed once per block of ``Br`` query rows, ``Br = min(ceil(M / (4 d)), d)``
with ``M`` the on-chip memory per SM in elements and ``d`` the head dimension, so K and V are
read ``ceil(Sq / Br)`` times from DRAM, Q read and O written once (the paper's Θ(N² d² / M) HBM
accesses).  `--flash-attention` is the pass `flash-attention` appended to ``--passes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from codesign.hwmodels.gpu import Device, LevelKind
from codesign.ir.cascade import Cascade
from codesign.passes.flash_attention import Attention, find_attentions
from codesign.sim.roofline import KernelGroup

FUSED_ATTENTION = "fused_attention"  # the label of a kernel that holds a whole attention


def _onchip_elements(device: Device, element_bits: int) -> int | None:
    """On-chip memory per SM (or per core) in elements: the ``M`` of FlashAttention."""
    per_sm = [lv for lv in device.levels if lv.capacity_bytes_per_sm is not None]
    smem = [lv for lv in per_sm if lv.kind is LevelKind.SMEM] or per_sm
    if not smem:
        return None
    assert smem[0].capacity_bytes_per_sm is not None
    return smem[0].capacity_bytes_per_sm * 8 // element_bits


def flash_reread(cascade: Cascade, attention: Attention, device: Device) -> dict[str, int]:
    """How many times a fused `attention` reads each K/V source tensor from DRAM on `device`
    (empty when once: one query block)."""
    bits = max(cascade.tensor(t).dtype.bits for t in attention.kv)
    onchip = _onchip_elements(device, bits)
    d = attention.head_dim
    block_rows = d if onchip is None else min(math.ceil(onchip / (4 * d)), d)
    blocks = math.ceil(attention.query_rows / max(block_rows, 1))
    return {t: blocks for t in attention.kv} if blocks > 1 else {}


def ir_kernel_groups(
    cascade: Cascade, device: Device, labels: Mapping[str, str]
) -> tuple[KernelGroup, ...]:
    """One kernel per fused group, labelled by its first Einsum's layer label, or
    `FUSED_ATTENTION` when it holds a whole attention (then priced as flash attention)."""
    if not cascade.groups:
        return ()
    attentions = find_attentions(cascade)
    kernels = []
    for group in cascade.groups:
        members = set(group.einsums)
        inside = [a for a in attentions if members.issuperset(a.einsums)]
        reread: dict[str, int] = {}
        for a in inside:
            reread.update(flash_reread(cascade, a, device))
        first = group.einsums[0]
        label = FUSED_ATTENTION if inside else labels.get(first, cascade.einsum(first).op)
        kernels.append(KernelGroup(group.name, label, group.einsums, tuple(reread.items())))
    return tuple(kernels)
