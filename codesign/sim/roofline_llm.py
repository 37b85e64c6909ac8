"""Roofline options for transformers: fused (flash) attention, KV cache, layer labels.

Flash attention is the pass `flash-attention` (`codesign.passes.flash_attention`: one fused
group per attention, found by structure), priced by `codesign.sim.roofline_fused` (K and V
streamed once per block of query rows); `flash_attention=True` here applies that pass to the
cascade before taking its fused groups as kernels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from codesign.hwmodels.gpu import Device
from codesign.ir.cascade import Cascade, Einsum
from codesign.passes.flash_attention import record_attention_groups
from codesign.sim.roofline import KernelGroup, RooflineOptions
from codesign.sim.roofline_fused import ir_kernel_groups


def fused_kernel_groups(
    cascade: Cascade, device: Device, labels: Mapping[str, str], flash_attention: bool
) -> tuple[KernelGroup, ...]:
    """One roofline kernel per fused group of `cascade` (after the `flash-attention` pass when
    `flash_attention`)."""
    if flash_attention:
        cascade = record_attention_groups(cascade)
    return ir_kernel_groups(cascade, device, labels)


def attention_options(cascade: Cascade, device: Device, tf32: bool = False) -> RooflineOptions:
    """Options fusing every attention of a (non-LLM-builder) model, and its fused groups."""
    return RooflineOptions(groups=fused_kernel_groups(cascade, device, {}, True), tf32=tf32)


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
    """Options for an LLM-builder cascade: layer-type labels, KV cache, one kernel per fused
    group (with `flash_attention`, one per attention too)."""
    labels = tuple((e.name, _llm_label(e)) for e in cascade.einsums)
    return RooflineOptions(
        groups=fused_kernel_groups(cascade, device, dict(labels), flash_attention),
        labels=labels,
        kv_tensors=kv_cache_tensors(cascade),
        tf32=tf32,
    )
