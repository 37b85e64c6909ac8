"""Roofline options for transformers: fused (flash) attention groups, KV cache, layer labels.

Attention is found by structure, not by names, so it works for ONNX models as for the LLM
builder: a connected set of ``Softmax`` Einsums whose scores come from a contraction (QK^T,
through any scale/mask maps and views) and whose probabilities feed a contraction (SV).

Flash attention (FlashAttention-2, Dao 2023, Algorithm 1) keeps the scores on chip and streams
K and V once per block of ``Br`` query rows, ``Br = min(ceil(M / (4 d)), d)`` with ``M`` the
on-chip memory per SM in elements and ``d`` the head dimension, so K and V are read
``ceil(Sq / Br)`` times from DRAM, Q read and O written once (the paper's
Θ(N² d² / M) HBM accesses).
"""

from __future__ import annotations

import math
import re

from codesign.hwmodels.gpu import Device, LevelKind
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.expr import Access, Binary
from codesign.sim.roofline import KernelGroup, RooflineOptions

SOFTMAX_OP = "Softmax"


def _producer(cascade: Cascade, tensor: str) -> Einsum | None:
    producers = cascade.producers(tensor)
    return producers[0] if len(producers) == 1 else None


def _softmax_components(cascade: Cascade) -> list[list[Einsum]]:
    """Connected groups of Softmax Einsums, in cascade order."""
    softmax = [e for e in cascade.einsums if e.op == SOFTMAX_OP]
    outputs = {e.output.tensor: e for e in softmax}
    parent = {e.name: e.name for e in softmax}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for e in softmax:
        for t in e.input_tensors:
            if t in outputs:
                parent[find(e.name)] = find(outputs[t].name)
    groups: dict[str, list[Einsum]] = {}
    for e in softmax:
        groups.setdefault(find(e.name), []).append(e)
    return list(groups.values())


def _walk_back(cascade: Cascade, tensor: str, members: list[Einsum]) -> Einsum | None:
    """From the scores back through maps/views to the QK^T contraction (added to members)."""
    while True:
        e = _producer(cascade, tensor)
        if e is None:
            return None
        if e.is_contraction:
            members.append(e)
            return e
        if e.reduce is not None or any(
            cascade.tensor(t).role is Role.WEIGHT for t in e.input_tensors
        ):
            return None
        members.append(e)
        # follow the operand with the scores' shape (the mask/scale operands are smaller or const)
        big = [t for t in e.input_tensors if _producer(cascade, t) is not None]
        if not big:
            return None
        tensor = max(big, key=lambda t: cascade.tensor(t).size)


def _walk_forward(cascade: Cascade, tensor: str, members: list[Einsum]) -> Einsum | None:
    """From the probabilities forward through views to the SV contraction."""
    while True:
        consumers = cascade.consumers(tensor)
        if len(consumers) != 1:
            return None
        e = consumers[0]
        members.append(e)
        if e.is_contraction:
            return e
        if not e.is_view:
            return None
        tensor = e.output.tensor


def _external_sources(cascade: Cascade, tensor: str, members: set[str]) -> list[str]:
    """The tensors outside the group that `tensor` is a view of (itself if external)."""
    e = _producer(cascade, tensor)
    if e is None or e.name not in members or not e.is_view:
        return [tensor]
    out: list[str] = []
    for t in e.input_tensors:
        out += _external_sources(cascade, t, members)
    return out


def _rhs_tensor(e: Einsum) -> str:
    assert isinstance(e.body, Binary) and isinstance(e.body.rhs, Access)
    return e.body.rhs.tensor


def _onchip_elements(device: Device, element_bits: int) -> int | None:
    """On-chip memory per SM (or per core) in elements: the ``M`` of FlashAttention."""
    per_sm = [lv for lv in device.levels if lv.capacity_bytes_per_sm is not None]
    smem = [lv for lv in per_sm if lv.kind is LevelKind.SMEM] or per_sm
    if not smem:
        return None
    assert smem[0].capacity_bytes_per_sm is not None
    return smem[0].capacity_bytes_per_sm * 8 // element_bits


def attention_groups(cascade: Cascade, device: Device) -> tuple[KernelGroup, ...]:
    """One fused kernel per attention (QK^T .. softmax .. SV) found in `cascade`."""
    groups = []
    for k, softmax in enumerate(_softmax_components(cascade)):
        names = {e.name for e in softmax}
        inputs = [t for e in softmax for t in e.input_tensors if _producer(cascade, t)]
        scores = [t for t in inputs if _producer(cascade, t).name not in names]  # type: ignore[union-attr]
        consumed = [
            e.output.tensor
            for e in softmax
            if any(c.name not in names for c in cascade.consumers(e.output.tensor))
        ]
        if len(set(scores)) != 1 or len(consumed) != 1:
            continue
        members = list(softmax)
        qk = _walk_back(cascade, scores[0], members)
        sv = _walk_forward(cascade, consumed[0], members)
        if qk is None or sv is None:
            continue
        member_names = {e.name for e in members}
        order = [e.name for e in cascade.einsums if e.name in member_names]
        kv = _external_sources(cascade, _rhs_tensor(qk), member_names)
        kv += _external_sources(cascade, _rhs_tensor(sv), member_names)
        head_dim = math.prod(n for v, n in qk.space if v in qk.reduced)
        query_rows = cascade.tensor(qk.output.tensor).shape[-2]
        bits = max(cascade.tensor(t).dtype.bits for t in kv)
        onchip = _onchip_elements(device, bits)
        block_rows = (
            head_dim if onchip is None else min(math.ceil(onchip / (4 * head_dim)), head_dim)
        )
        blocks = math.ceil(query_rows / max(block_rows, 1))
        label = "fused_attention"
        groups.append(
            KernelGroup(
                name=f"{_layer_prefix(qk.name)}{label}"
                if _layer_prefix(qk.name)
                else f"{label}_{k}",
                label=label,
                einsums=tuple(order),
                reread=tuple((t, blocks) for t in dict.fromkeys(kv)) if blocks > 1 else (),
            )
        )
    return tuple(groups)


def attention_options(cascade: Cascade, device: Device, tf32: bool = False) -> RooflineOptions:
    """Options fusing every attention of a (non-LLM-builder) model."""
    return RooflineOptions(groups=attention_groups(cascade, device), tf32=tf32)


# -- the LLM builder's cascades -----------------------------------------------------------------
_LAYER = re.compile(r"^(?:l|layer|layers|blk|block|h)[._]?(\d+)[._]", re.IGNORECASE)


def _layer_prefix(name: str) -> str:
    match = _LAYER.match(name)
    return match.group(0) if match else ""


# Suffixes CascadeBuilder gives the Einsums of its multi-Einsum lowerings (softmax, layernorm).
_LOWERING_SUFFIXES = (
    "_max", "_exp", "_sum", "_div", "_mean", "_centre", "_sq", "_var", "_rstd", "_norm",
    "_scale", "_bias",
)  # fmt: skip


def layer_label(einsum: Einsum) -> str:
    """The layer type of an Einsum: its name without the layer prefix (``l3_``, ``layers.3.``)
    and without the suffix of a multi-Einsum lowering (``attn_norm_rstd`` -> ``attn_norm``)."""
    name = einsum.name[len(_layer_prefix(einsum.name)) :]
    for suffix in _LOWERING_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def kv_cache_tensors(cascade: Cascade) -> frozenset[str]:
    """Tensors that hold the KV cache: the LLM builder's ``L{i}_k``/``_v`` (prefill outputs),
    ``L{i}_k_cache`` (decode inputs), ``L{i}_k_all`` (decode outputs); ONNX-style ``past_key*``,
    ``present_v*``, ``*k_cache*``.

    Views propagate KV-ness (``tensor_kinds``), so the concat of the cache and the new entries,
    and the new entries themselves, count as KV too.
    """
    pattern = re.compile(
        r"^L\d+_[kv](_cache|_all)?$"  # the LLM builder's cache inputs and outputs
        r"|(^|_)(k|v|kv)_?cache|(past|present)_(key|value|k|v)(?![a-z])"  # ONNX exports
    )
    return frozenset(t.name for t in cascade.tensors if pattern.search(t.name))


def _llm_label(einsum: Einsum) -> str:
    """The LLM builder's layer-type label (``L3_rope_q_0`` -> ``rope``), else `layer_label`."""
    from codesign.frontends.llm import label_of

    return label_of(einsum.name) or layer_label(einsum)


def llm_options(
    cascade: Cascade, device: Device, flash_attention: bool = False, tf32: bool = False
) -> RooflineOptions:
    """Options for an LLM-builder cascade: layer-type labels, KV cache, optional fused attention."""
    return RooflineOptions(
        groups=attention_groups(cascade, device) if flash_attention else (),
        labels=tuple((e.name, _llm_label(e)) for e in cascade.einsums),
        kv_tensors=kv_cache_tensors(cascade),
        tf32=tf32,
    )
