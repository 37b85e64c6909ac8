"""`fuse-elementwise`: fold elementwise Einsums into the contraction that produces (epilogue) or
consumes (prologue) their data, as one fused group whose intermediates stay on chip.

Epilogue: from each contraction ``C`` (a sum-reduced product of two accesses), follow its
result ``T``: while ``T`` is an intermediate with one producer and exactly one consumer ``E``,
and ``E`` is elementwise (no reduction, no gather; a pointwise view such as a cast counts) and
reads ``T`` pointwise (at its own output indices, same shape), ``E`` joins the group and ``T``
stays on chip.  Bias, activation, residual add (the other operand is loaded from the backing
store), scaling, casts and quantize/dequantize steps are all such Einsums.  Contractions are
visited last-first, so an elementwise Einsum reading two contractions (a residual add of two
branches) joins the later one, whose result arrives last.

Prologue (``prologue=true``): an ungrouped elementwise Einsum whose result only one
contraction reads joins that contraction's group, its result kept on chip.

The pass only records `FusedGroup`s (`codesign.ir.groups`); Einsum bodies are untouched, so the
interpreter's result is the same bit for bit.  `plan_fuse_elementwise` returns the cascade and
one `FusionDecision` per candidate edge with the reason it was or was not fused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.groups import Dataflow, FusedGroup, GroupKind, group_of
from codesign.ir.index import Affine, Gathered
from codesign.passes.pipeline import PassContext, register_pass


@dataclass(frozen=True, slots=True)
class FuseElementwiseOptions:
    prologue: bool = True  # also fold elementwise producers that one contraction alone reads
    max_epilogue: int = 8  # most elementwise Einsums chained after one contraction


@dataclass(frozen=True, slots=True)
class FusionDecision:
    """Whether `tensor` (from `producer` to `consumer`) stays on chip in a fused group."""

    producer: str
    consumer: str
    tensor: str
    fused: bool
    reason: str
    tile_bytes: int = 0  # the on-chip tile the shared nest needs (0: not computed)

    def line(self) -> str:
        mark = "fused" if self.fused else "kept apart"
        tile = f", tile {self.tile_bytes:,} B" if self.tile_bytes else ""
        return f"{self.producer} -> {self.consumer} via {self.tensor}: {mark} ({self.reason}{tile})"


def is_contraction(einsum: Einsum) -> bool:
    """A sum-reduced product of two tensor reads (GEMM, convolution, batched matmul)."""
    body = einsum.body
    return (
        einsum.reduce is ReduceOp.SUM
        and isinstance(body, Binary)
        and body.op is BinaryOp.MUL
        and isinstance(body.lhs, Access)
        and isinstance(body.rhs, Access)
    )


def is_elementwise(einsum: Einsum) -> bool:
    """No reduction and no gathered index: one output element from one point of each input."""
    if einsum.reduce is not None:
        return False
    return not any(isinstance(i, Gathered) for a in einsum.inputs for i in a.indices)


def reads_pointwise(cascade: Cascade, einsum: Einsum, tensor: str) -> bool:
    """Every read of `tensor` in `einsum` is at the output's own plain indices, same shape."""
    out = einsum.output
    if any(not (isinstance(i, Affine) and i.plain_var) for i in out.indices):
        return False
    if cascade.tensor(tensor).shape != cascade.tensor(out.tensor).shape:
        return False
    reads = [a for a in einsum.inputs if a.tensor == tensor]
    return bool(reads) and all(a.indices == out.indices for a in reads)


def _next_group_name(taken: set[str]) -> str:
    i = 0
    while f"g{i}" in taken:
        i += 1
    taken.add(f"g{i}")
    return f"g{i}"


def plan_fuse_elementwise(
    cascade: Cascade, options: FuseElementwiseOptions
) -> tuple[Cascade, tuple[FusionDecision, ...]]:
    """The cascade with epilogue/prologue groups added, and the decisions with reasons."""
    owner = {name: g.name for name, g in group_of(cascade).items()}
    flow = Dataflow.of(cascade)
    decisions: list[FusionDecision] = []
    chains: dict[str, tuple[list[str], list[str]]] = {}  # contraction -> (members, on_chip)
    for c in reversed([e for e in cascade.einsums if is_contraction(e)]):
        if c.name in owner:
            continue
        members, on_chip = [c.name], []
        tensor = c.output.tensor
        while len(members) <= options.max_epilogue:
            consumer, reason = _epilogue_step(cascade, flow, tensor, owner)
            decisions.append(
                FusionDecision(members[-1], consumer.name if consumer else "-", tensor,
                               consumer is not None, reason)
            )  # fmt: skip
            if consumer is None:
                break
            members.append(consumer.name)
            on_chip.append(tensor)
            owner[consumer.name] = c.name
            tensor = consumer.output.tensor
        owner[c.name] = c.name
        chains[c.name] = (members, on_chip)
    if options.prologue:
        for name, (members, on_chip) in chains.items():
            for access in cascade.einsum(name).inputs:
                producer, reason = _prologue_step(cascade, flow, access.tensor, name, owner)
                if producer is None:
                    if reason:
                        decisions.append(FusionDecision("-", name, access.tensor, False, reason))
                    continue
                decisions.append(FusionDecision(producer.name, name, access.tensor, True, reason))
                members.append(producer.name)
                on_chip.append(access.tensor)
                owner[producer.name] = name
    order = {e.name: i for i, e in enumerate(cascade.einsums)}
    taken = {g.name for g in cascade.groups}
    new: list[FusedGroup] = []
    for members, on_chip in sorted(chains.values(), key=lambda mc: min(order[m] for m in mc[0])):
        if len(members) > 1:
            ordered = tuple(sorted(members, key=order.__getitem__))
            chip = tuple(sorted(set(on_chip), key=lambda t: order[flow.producers(t)[0].name]))
            new.append(FusedGroup(_next_group_name(taken), GroupKind.EPILOGUE, ordered, chip))
    return replace(cascade, groups=cascade.groups + tuple(new)), tuple(decisions)


def _epilogue_step(
    cascade: Cascade, flow: Dataflow, tensor: str, owner: dict[str, str]
) -> tuple[Einsum | None, str]:
    """The elementwise consumer that may fold onto `tensor`'s producer, or None and why not."""
    spec = cascade.tensor(tensor)
    if spec.role is not Role.INTERMEDIATE:
        return None, f"{spec.role.value} of the cascade is stored"
    if len(flow.producers(tensor)) != 1:
        return None, "written by several Einsums"
    consumers = flow.consumers(tensor)
    if len(consumers) != 1:
        return None, f"read by {len(consumers)} Einsums"
    consumer = consumers[0]
    if consumer.name in owner:
        return None, f"{consumer.name} already fused with {owner[consumer.name]}"
    if is_contraction(consumer) or not is_elementwise(consumer):
        return None, f"{consumer.name} is not elementwise"
    if not reads_pointwise(cascade, consumer, tensor):
        return None, f"{consumer.name} does not read it pointwise"
    return consumer, "elementwise epilogue"


def _prologue_step(
    cascade: Cascade, flow: Dataflow, tensor: str, contraction: str, owner: dict[str, str]
) -> tuple[Einsum | None, str]:
    """An ungrouped elementwise producer of `tensor` that only `contraction` reads."""
    if not cascade.has_tensor(tensor) or cascade.tensor(tensor).role is not Role.INTERMEDIATE:
        return None, ""
    producers = flow.producers(tensor)
    if len(producers) != 1:
        return None, "written by several Einsums"
    producer = producers[0]
    if producer.name in owner:
        return None, ""  # already in another group: its own decision was recorded there
    if is_contraction(producer) or not is_elementwise(producer):
        return None, f"{producer.name} is not elementwise"
    if {e.name for e in flow.consumers(tensor)} != {contraction}:
        return None, "read by other Einsums too"
    return producer, "elementwise prologue"


@register_pass("fuse-elementwise", FuseElementwiseOptions)
def fuse_elementwise(
    cascade: Cascade, options: FuseElementwiseOptions, context: PassContext
) -> Cascade:
    """Fold bias/activation/residual/scale/cast Einsums into their contraction (fused group)."""
    return plan_fuse_elementwise(cascade, options)[0]


__all__ = [
    "FuseElementwiseOptions", "FusionDecision", "fuse_elementwise", "is_contraction",
    "is_elementwise", "plan_fuse_elementwise", "reads_pointwise",
]  # fmt: skip
