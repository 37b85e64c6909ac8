"""Fused groups for code generation: which Einsums become ONE kernel (PrimFunc).

A *group* is a tuple of Einsum names, in cascade order.  `lower_cascade` turns each group into
one PrimFunc: a contraction (or any Einsum) followed by element-wise epilogues such as a bias
add, an activation or a residual add.  Only the last member's output leaves the kernel; the
other members' outputs live inside it.

`default_groups` derives a grouping from the cascade alone.  It exists only until the IR carries
fused-group records (the fusion issue); switching to the record means replacing its body by a
read of that record -- nothing else in codegen depends on how groups are chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.index import Affine

Group = tuple[str, ...]


def default_groups(cascade: Cascade) -> tuple[Group, ...]:
    """Each non-view Einsum with the chain of element-wise Einsums that consume only its output.

    An epilogue joins when it is element-wise (no reduction, plain-variable output of the same
    shape), reads the group's current output, and that output has no other consumer and is not
    a cascade output.  Singleton groups are left out (they lower as before).
    """
    groups: list[Group] = []
    taken: set[str] = set()
    order = {e.name: k for k, e in enumerate(cascade.einsums)}
    for einsum in cascade.einsums:
        if einsum.name in taken or einsum.is_view or not _fusable_member(cascade, einsum):
            continue
        members = [einsum]
        while True:
            tensor = members[-1].output.tensor
            consumers = cascade.consumers(tensor)
            if cascade.tensor(tensor).role is Role.OUTPUT or len(consumers) != 1:
                break
            nxt = consumers[0]
            if nxt.name in taken or not _is_epilogue(cascade, nxt, tensor):
                break
            if not _ready_before(cascade, nxt, order[einsum.name], order):
                break  # a residual add joins the later of its two producers' kernels
            members.append(nxt)
        if len(members) > 1:
            groups.append(tuple(m.name for m in members))
            taken.update(m.name for m in members)
    return tuple(groups)


def _fusable_member(cascade: Cascade, einsum: Einsum) -> bool:
    """A single producer whose output index is a permutation of plain variables."""
    if len(cascade.producers(einsum.output.tensor)) != 1:
        return False
    return all(isinstance(i, Affine) and i.plain_var is not None for i in einsum.output.indices)


def _ready_before(cascade: Cascade, einsum: Einsum, position: int, order: dict[str, int]) -> bool:
    """True when every tensor `einsum` reads is an input/weight or is produced before
    `position` (or inside the group being grown, which starts at `position`)."""
    for tensor in einsum.input_tensors:
        producers = cascade.producers(tensor)
        if any(order[p.name] > position and p.name != einsum.name for p in producers):
            inside = all(order[p.name] >= position for p in producers)
            if not inside or not _in_chain(cascade, tensor, position, order):
                return False
    return True


def _in_chain(cascade: Cascade, tensor: str, position: int, order: dict[str, int]) -> bool:
    """True when `tensor` is produced by the chain that starts at `position` (the group's own
    output passed along its epilogues)."""
    start = cascade.einsums[position]
    current = start.output.tensor
    while current != tensor:
        consumers = cascade.consumers(current)
        if len(consumers) != 1:
            return False
        current = consumers[0].output.tensor
    return True


def _is_epilogue(cascade: Cascade, einsum: Einsum, reads: str) -> bool:
    if einsum.reduce is not None or einsum.is_view or not _fusable_member(cascade, einsum):
        return False
    out_shape = cascade.tensor(einsum.output.tensor).shape
    if cascade.tensor(reads).shape != out_shape:
        return False
    # the group's tensor is read at exactly the output point (element-wise, no shift)
    return all(
        access.indices == einsum.output.indices
        for access in einsum.inputs
        if access.tensor == reads
    )


def check_groups(cascade: Cascade, groups: Sequence[Sequence[str]]) -> tuple[Group, ...]:
    """`groups` as tuples in cascade order, or InputError naming the offending Einsum.

    Each Einsum is in at most one group; every member's output but the last is consumed only
    inside the group (and is not a cascade output); members have a single producer and plain
    output indices (so their tensors can live inside one kernel).
    """
    order = {e.name: k for k, e in enumerate(cascade.einsums)}
    seen: set[str] = set()
    out: list[Group] = []
    for group in groups:
        for name in group:
            if name not in order:
                raise InputError(f"fused group {list(group)}: no Einsum named {name!r}")
            if name in seen:
                raise InputError(f"fused group {list(group)}: Einsum {name} is in two groups")
            seen.add(name)
        members = sorted(group, key=order.__getitem__)
        if len(members) < 2:
            continue
        inside = set(members)
        for name in members:
            einsum = cascade.einsum(name)
            if not _fusable_member(cascade, einsum):
                raise InputError(
                    f"fused group {members}: Einsum {name} has several producers of its output "
                    "or a non-plain output index"
                )
        for name in members[:-1]:
            tensor = cascade.einsum(name).output.tensor
            outside = [c.name for c in cascade.consumers(tensor) if c.name not in inside]
            if outside or cascade.tensor(tensor).role is Role.OUTPUT:
                raise InputError(
                    f"fused group {members}: {tensor} (from {name}) is also needed outside the "
                    f"group ({', '.join(outside) or 'a cascade output'})"
                )
        out.append(tuple(members))
    return tuple(out)


def main_member(cascade: Cascade, group: Group) -> str:
    """The member the kernel is scheduled around: the first reduction, else the last member."""
    for name in group:
        if cascade.einsum(name).reduce is not None:
            return name
    return group[-1]
