"""`fuse`: producer-consumer groups whose intermediates stay on chip when a buffer holds the tile
that the group's shared loop nest needs.

Model.  For an intermediate ``T`` between a producer kernel and a consumer kernel (an Einsum, or
a group that `fuse-elementwise` already formed), the *shared outer nest* is the longest prefix
of ``T``'s ranks that the producer writes at a plain variable and every consumer reads at a
plain variable it does not reduce: both kernels can walk those ranks in step.  One iteration of
the shared nest needs the rest of ``T`` on chip, so the tile is ``T.size_bytes / prod(prefix
extents)`` (the whole of ``T`` when the prefix is empty).  A group's tiles are all live at once
(a conservative choice: no tile is freed early), so an edge fuses when the sum of the tiles of
the merged group fits `buffer_kib`.  Edges are visited in cascade order; an edge is refused,
with the reason, when ``T`` is a cascade input/output, is read by several kernels, its merge would
make a group non-convex (some outside Einsum would run between members), the merged group would
exceed `max_einsums`, or the tiles overflow the buffer.

`plan_fuse` returns the cascade and one `FusionDecision` per considered edge (``--explain``).
With ``elementwise=true`` (default) `fuse-elementwise` runs first, so contractions keep their
epilogues and the chain fusion joins whole kernels.  ``contractions=false`` fuses only
Einsums that are not contractions (the pieces of a softmax or a normalization become one
kernel, as LLM-Viewer counts them; no contraction gains an epilogue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.groups import Dataflow, FusedGroup, GroupKind
from codesign.ir.index import Affine
from codesign.passes.fuse_elementwise import (
    FuseElementwiseOptions,
    FusionDecision,
    is_contraction,
    plan_fuse_elementwise,
)
from codesign.passes.pipeline import PassContext, register_pass


@dataclass(frozen=True, slots=True)
class FuseOptions:
    buffer_kib: float = 256.0  # on-chip buffer the fused tiles must fit (KiB)
    max_einsums: int = 32  # most Einsums in one group
    elementwise: bool = True  # run fuse-elementwise first (not with contractions=false)
    contractions: bool = True  # false: only non-contraction Einsums fuse (softmax, norm pieces)

    def __post_init__(self) -> None:
        if self.buffer_kib <= 0 or self.max_einsums < 1:
            raise ValueError("buffer_kib must be > 0 and max_einsums >= 1")


def shared_tile_bytes(
    cascade: Cascade, tensor: str, flow: Dataflow | None = None
) -> tuple[int, tuple[str, ...]]:
    """Bytes of `tensor` one iteration of the shared outer nest needs, and the shared ranks
    (`flow`: `Dataflow.of(cascade)` when the caller has it)."""
    spec = cascade.tensor(tensor)
    producers = flow.producers(tensor) if flow else cascade.producers(tensor)
    consumers = flow.consumers(tensor) if flow else cascade.consumers(tensor)
    shared: list[str] = []
    for k, rank in enumerate(spec.ranks):
        if len(producers) != 1 or not _plain(producers[0].output.indices[k]):
            break
        if not all(_reads_in_step(e, tensor, k) for e in consumers):
            break
        shared.append(rank)
    outer = math.prod(spec.shape[: len(shared)])
    return math.ceil(spec.size_bytes / outer), tuple(shared)


def _plain(index) -> bool:
    return isinstance(index, Affine) and index.plain_var is not None


def _reads_in_step(einsum: Einsum, tensor: str, k: int) -> bool:
    reads = [a for a in einsum.inputs if a.tensor == tensor]
    for access in reads:
        index = access.indices[k]
        if not _plain(index):
            return False
        assert isinstance(index, Affine)
        if index.plain_var in einsum.reduced:
            return False
    return bool(reads)


def plan_fuse(cascade: Cascade, options: FuseOptions) -> tuple[Cascade, tuple[FusionDecision, ...]]:
    """The cascade with producer-consumer groups, and one decision per considered edge."""
    decisions: list[FusionDecision] = []
    if options.elementwise and options.contractions:
        cascade, first = plan_fuse_elementwise(cascade, FuseElementwiseOptions())
        decisions += [d for d in first if d.fused]
    budget = options.buffer_kib * 1024
    # kernels: group name -> (members, on_chip); ungrouped Einsums are their own kernel
    kernels: Kernels = {g.name: (g.einsums, g.on_chip, g.kind) for g in cascade.groups}
    where = {m: name for name, (ms, _, _) in kernels.items() for m in ms}
    for e in cascade.einsums:
        if e.name not in where:
            kernels[e.name] = ((e.name,), (), GroupKind.CHAIN)
            where[e.name] = e.name
    flow = Dataflow.of(cascade)
    tiles: dict[str, tuple[int, tuple[str, ...]]] = {}
    edges: dict[str, FusionDecision] = {}
    merged = True
    while merged:  # to a fixed point: a merge can make a tensor's readers one kernel
        merged = False
        for spec in cascade.tensors:
            if spec.role is not Role.INTERMEDIATE or not flow.producers(spec.name):
                continue
            decision = _consider(cascade, spec.name, kernels, where, budget, options, flow, tiles)
            if decision is None:
                continue
            edges[spec.name] = decision
            merged = merged or decision.fused
    decisions += edges.values()
    return replace(cascade, groups=_groups(cascade, kernels, flow)), tuple(decisions)


Kernels = dict[str, tuple[tuple[str, ...], tuple[str, ...], GroupKind]]


def _consider(
    cascade: Cascade,
    tensor: str,
    kernels: Kernels,
    where: dict[str, str],
    budget: float,
    options: FuseOptions,
    flow: Dataflow,
    tiles: dict[str, tuple[int, tuple[str, ...]]],
) -> FusionDecision | None:
    """Fuse the kernels on both sides of `tensor` (updating `kernels`/`where`) when it fits;
    None when there is nothing to decide (no reader, or already on chip)."""
    writer = flow.producers(tensor)[0].name
    producer = where[writer]
    users = sorted({where[e.name] for e in flow.consumers(tensor)})
    if not users or tensor in kernels[producer][1]:
        return None
    reader = flow.consumers(tensor)[0].name
    if len(users) > 1 or len({where[p.name] for p in flow.producers(tensor)}) > 1:
        return FusionDecision(writer, reader, tensor, False, f"read by {len(users)} kernels")
    consumer = users[0]
    for t in (tensor, *kernels[producer][1], *kernels[consumer][1]):
        if t not in tiles:
            tiles[t] = shared_tile_bytes(cascade, t, flow)
    tile, shared = tiles[tensor]
    inside = consumer == producer  # both sides already in one kernel: keep it on chip too
    members = kernels[producer][0] + (() if inside else kernels[consumer][0])
    on_chip = kernels[producer][1] + (() if inside else kernels[consumer][1]) + (tensor,)
    need = sum(tiles[t][0] for t in on_chip)
    nest = f"shared nest [{','.join(shared)}]" if shared else "no shared rank"
    reason = ""
    if not options.contractions and any(is_contraction(flow.einsum(m)) for m in members):
        reason = "joins a contraction (contractions=false)"
    elif len(members) > options.max_einsums:
        reason = f"group would hold {len(members)} > {options.max_einsums} Einsums"
    elif need > budget:
        reason = f"{nest}; tiles {need:,} B > buffer {budget:,.0f} B"
    else:
        outside = flow.between(set(members))
        reason = f"not convex (Einsum {outside} lies between members)" if outside else ""
    if reason:
        return FusionDecision(writer, reader, tensor, False, reason, tile)
    kind = kernels[producer][2] if inside else GroupKind.CHAIN
    if not inside:
        del kernels[consumer]
    kernels[producer] = (members, on_chip, kind)
    for m in members:
        where[m] = producer
    return FusionDecision(writer, reader, tensor, True, f"{nest}; group tiles {need:,} B fit", tile)


def _groups(cascade: Cascade, kernels: Kernels, flow: Dataflow) -> tuple[FusedGroup, ...]:
    """Multi-Einsum kernels as groups named g0, g1, ... in cascade order of their first member."""
    order = {e.name: i for i, e in enumerate(cascade.einsums)}
    multi = [k for k in kernels.values() if len(k[0]) > 1]
    multi.sort(key=lambda k: min(order[m] for m in k[0]))
    groups = []
    for i, (members, on_chip, kind) in enumerate(multi):
        ordered = tuple(sorted(members, key=order.__getitem__))
        chip = tuple(sorted(on_chip, key=lambda t: order[flow.producers(t)[0].name]))
        groups.append(FusedGroup(f"g{i}", kind, ordered, chip))
    return tuple(groups)


@register_pass("fuse", FuseOptions)
def fuse(cascade: Cascade, options: FuseOptions, context: PassContext) -> Cascade:
    """Producer-consumer groups whose intermediate tiles fit the on-chip buffer (--explain)."""
    return plan_fuse(cascade, options)[0]


__all__ = ["FuseOptions", "fuse", "plan_fuse", "shared_tile_bytes"]
