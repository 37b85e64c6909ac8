"""`flash-attention`: one fused group per attention (QK^T .. softmax .. SV), scores on chip.

Attention is found by structure, not by names, so it works for ONNX models as for the LLM
builder (`find_attentions`): a connected set of ``Softmax`` Einsums whose scores come from a
contraction (QK^T, through any scale/mask maps and views) and whose probabilities feed a
contraction (SV), through views only.

The pass records each attention as one `FusedGroup` (kind ``chain``) whose on-chip tensors are
the scores, probabilities and every other intermediate produced and consumed inside it.  A
group the cascade already records that shares an Einsum with an attention joins it (the union;
e.g. `fuse{contractions=false}`'s softmax group); a union that would not be convex is left
alone.  Einsum bodies are untouched, so the interpreter's result is the same bit for bit.

How a group that holds a whole attention is priced -- K and V streamed once per block of query
rows, as FlashAttention-2 does -- is the roofline's business (`codesign.sim.roofline_fused`);
`Attention` carries what it needs (the K/V source tensors, head dimension, query rows).
`codesign roofline --flash-attention` is an alias that appends this pass to ``--passes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.expr import Access, Binary
from codesign.ir.groups import Dataflow, FusedGroup, GroupKind, group_errors
from codesign.passes.pipeline import PassContext, register_pass

SOFTMAX_OP = "Softmax"


@dataclass(frozen=True, slots=True)
class FlashAttentionOptions:
    """No options: every attention found becomes one group."""


@dataclass(frozen=True, slots=True)
class Attention:
    """One attention: its Einsums in cascade order, the QK^T contraction, the tensors outside
    it that K and V are views of, the head dimension (QK^T's reduced extent) and the number
    of query rows (the scores' second-to-last extent)."""

    einsums: tuple[str, ...]
    qk: str
    kv: tuple[str, ...]
    head_dim: int
    query_rows: int


def _producer(flow: Dataflow, tensor: str) -> Einsum | None:
    producers = flow.producers(tensor)
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


def _walk_back(
    cascade: Cascade, flow: Dataflow, tensor: str, members: list[Einsum]
) -> Einsum | None:
    """From the scores back through maps/views to the QK^T contraction (added to members)."""
    while True:
        e = _producer(flow, tensor)
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
        big = [t for t in e.input_tensors if _producer(flow, t) is not None]
        if not big:
            return None
        tensor = max(big, key=lambda t: cascade.tensor(t).size)


def _walk_forward(flow: Dataflow, tensor: str, members: list[Einsum]) -> Einsum | None:
    """From the probabilities forward through views to the SV contraction."""
    while True:
        consumers = flow.consumers(tensor)
        if len(consumers) != 1:
            return None
        e = consumers[0]
        members.append(e)
        if e.is_contraction:
            return e
        if not e.is_view:
            return None
        tensor = e.output.tensor


def _external_sources(flow: Dataflow, tensor: str, members: set[str]) -> list[str]:
    """The tensors outside the group that `tensor` is a view of (itself if external)."""
    e = _producer(flow, tensor)
    if e is None or e.name not in members or not e.is_view:
        return [tensor]
    out: list[str] = []
    for t in e.input_tensors:
        out += _external_sources(flow, t, members)
    return out


def _rhs_tensor(e: Einsum) -> str:
    assert isinstance(e.body, Binary) and isinstance(e.body.rhs, Access)
    return e.body.rhs.tensor


def find_attentions(cascade: Cascade, flow: Dataflow | None = None) -> tuple[Attention, ...]:
    """Every attention (QK^T .. softmax .. SV) in `cascade`, in cascade order; `flow` is
    `Dataflow.of(cascade)` when the caller has it."""
    flow = flow or Dataflow.of(cascade)
    found = []
    for softmax in _softmax_components(cascade):
        names = {e.name for e in softmax}
        inputs = [t for e in softmax for t in e.input_tensors if _producer(flow, t)]
        scores = [t for t in inputs if _producer(flow, t).name not in names]  # type: ignore[union-attr]
        consumed = [
            e.output.tensor
            for e in softmax
            if any(c.name not in names for c in flow.consumers(e.output.tensor))
        ]
        if len(set(scores)) != 1 or len(consumed) != 1:
            continue
        members = list(softmax)
        qk = _walk_back(cascade, flow, scores[0], members)
        sv = _walk_forward(flow, consumed[0], members)
        if qk is None or sv is None:
            continue
        member_names = {e.name for e in members}
        order = tuple(e.name for e in cascade.einsums if e.name in member_names)
        kv = _external_sources(flow, _rhs_tensor(qk), member_names)
        kv += _external_sources(flow, _rhs_tensor(sv), member_names)
        head_dim = math.prod(n for v, n in qk.space if v in qk.reduced)
        query_rows = cascade.tensor(qk.output.tensor).shape[-2]
        found.append(Attention(order, qk.name, tuple(dict.fromkeys(kv)), head_dim, query_rows))
    return tuple(found)


def _on_chip(cascade: Cascade, members: set[str], flow: Dataflow) -> tuple[str, ...]:
    """Intermediates whose producers and consumers are all members, in the members' order."""
    out: dict[str, None] = {}
    for name in sorted(members, key=flow.order.__getitem__):
        einsum = flow.einsum(name)
        for tensor in (*einsum.input_tensors, einsum.output.tensor):
            if cascade.tensor(tensor).role is not Role.INTERMEDIATE or not flow.producers(tensor):
                continue
            users = flow.producers(tensor) + flow.consumers(tensor)
            if all(e.name in members for e in users):
                out[tensor] = None
    return tuple(out)


def _fresh_name(taken: set[str], k: int) -> str:
    name = f"attention{k}"
    while name in taken:
        name += "_"
    return name


@register_pass("flash-attention", FlashAttentionOptions)
def flash_attention(
    cascade: Cascade, options: FlashAttentionOptions, context: PassContext
) -> Cascade:
    """One fused group per attention (QK^T .. softmax .. SV), merged with overlapping groups."""
    return record_attention_groups(cascade)


def record_attention_groups(cascade: Cascade) -> Cascade:
    """`cascade` with one fused group per attention (see the module docstring)."""
    flow = Dataflow.of(cascade)
    order = flow.order
    groups = list(cascade.groups)
    for k, attention in enumerate(find_attentions(cascade, flow)):
        members = set(attention.einsums)
        overlapping = [g for g in groups if members & set(g.einsums)]
        for g in overlapping:
            members |= set(g.einsums)
        rest = [g for g in groups if g not in overlapping]
        name = overlapping[0].name if overlapping else _fresh_name({g.name for g in groups}, k)
        group = FusedGroup(
            name,
            GroupKind.CHAIN,
            tuple(sorted(members, key=order.__getitem__)),
            _on_chip(cascade, members, flow),
        )
        if not group_errors(replace(cascade, groups=(group,)), flow):
            groups = [*rest, group]
    groups.sort(key=lambda g: order[g.einsums[0]])
    return replace(cascade, groups=tuple(groups))


__all__ = [
    "Attention", "FlashAttentionOptions", "find_attentions", "flash_attention",
    "record_attention_groups",
]  # fmt: skip
