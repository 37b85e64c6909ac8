"""Fused groups for code generation: which Einsums become ONE kernel (PrimFunc).

A *group* is a tuple of Einsum names, in cascade order.  `lower_cascade` turns each group into
one PrimFunc, whatever its number of reductions: a contraction with element-wise epilogues
(bias add, activation, residual add), matmul -> softmax -> matmul, conv -> conv, and recurrence
units (a state tensor's initialisations and its iterative step, lowered as an ordered loop).
Only the last member's output leaves the kernel; the other members' outputs live inside it.

Where the groups come from (`kernel_plan`): a cascade that carries fused-group records
(`Cascade.groups`, written by the fusion passes `fuse-elementwise` / `fuse`, see docs/passes.md)
compiles one kernel per recorded group; a cascade without records gets `default_groups`, which
derives contraction + epilogue groups from the cascade alone.  A recorded group that one
PrimFunc cannot hold (a member's result is also read after the group, so the kernel would have
two outputs; a member writes a concat piece / a non-plain output index; a recurrence unit only
partly in the group) is split into the fewest kernels that can, and the plan says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.index import Affine
from codesign.ir.recurrence import is_iterative

Group = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """The kernels (fused groups of Einsum names) a cascade compiles to, and where they came
    from: `source` is "ir" (the cascade's fused-group records) or "default" (`default_groups`);
    `notes` says, one line per recorded group that had to be split, why."""

    groups: tuple[Group, ...]
    source: str
    notes: tuple[str, ...] = ()


def kernel_plan(cascade: Cascade) -> KernelPlan:
    """One kernel per fused group the cascade records (split where one PrimFunc cannot hold
    it), or `default_groups` when it records none."""
    if not cascade.groups:
        return KernelPlan(default_groups(cascade), "default")
    groups: list[Group] = []
    notes: list[str] = []
    units = recurrence_members(cascade)
    grouped = {name for g in cascade.groups for name in g.einsums}
    order = {e.name: k for k, e in enumerate(cascade.einsums)}
    for group in cascade.groups:
        # a recurrence's initialisations that no group records join the kernel of its step
        joining = {m for n in group.einsums for m in units.get(n, ()) if m not in grouped}
        members = tuple(sorted({*group.einsums, *joining}, key=order.__getitem__))
        kernels, reasons = _split_for_kernels(cascade, members)
        groups += [k for k in kernels if len(k) > 1]
        if len(kernels) > 1:
            notes.append(
                f"group {group.name} ({len(group.einsums)} Einsums) as {len(kernels)} kernels: "
                + "; ".join(reasons)
            )
    return KernelPlan(tuple(groups), "ir", tuple(notes))


@dataclass(frozen=True, slots=True)
class GroupKernels:
    """The kernels that compute one fused group the cascade records: `kernels` are the Einsum
    tuples of those kernels (one when the group is one PrimFunc)."""

    group: str
    einsums: tuple[str, ...]
    kernels: tuple[Group, ...]


def kernels_per_group(
    cascade: Cascade, kernels: Sequence[Sequence[str]]
) -> tuple[GroupKernels, ...]:
    """For every fused group `cascade` records, the kernels (Einsum tuples of the compiled
    stages, `kernels`) that hold any of its members, in kernel order."""
    out: list[GroupKernels] = []
    for group in cascade.groups:
        members = set(group.einsums)
        held = tuple(tuple(k) for k in kernels if members & set(k))
        out.append(GroupKernels(group.name, group.einsums, held))
    return tuple(out)


def _split_for_kernels(cascade: Cascade, members: tuple[str, ...]) -> tuple[list[Group], list[str]]:
    """A group's `members` cut into consecutive runs that `check_groups` accepts (each run's
    members but the last are read only inside the run; a recurrence unit whole in one run),
    and the reason of every cut.  Reductions never cut: one PrimFunc holds any number."""
    reasons: dict[str, str] = {}
    cuts: set[int] = set()  # a cut at k: member k ends a kernel
    units = recurrence_members(cascade)
    position = {name: k for k, name in enumerate(members)}

    def alone(name: str, why: str) -> None:
        reasons.setdefault(name, f"{name} is its own kernel ({why})")
        cuts.update({position[name] - 1, position[name]})

    for name in members:
        unit = units.get(name)
        if unit is not None and not set(unit) <= set(members):
            alone(name, "its recurrence unit is not all in the group")
        elif unit is None and not _kernel_member(cascade, cascade.einsum(name)):
            alone(name, "not the one plain writer of its tensor")
    changed = True
    while changed:
        changed = False
        for run in _runs(members, cuts):
            inside = set(run)
            for name in run:
                unit = units.get(name)
                if unit is not None and len(run) > 1 and not set(unit) <= inside:
                    for member in unit:  # a cut fell inside the unit: the unit on its own
                        alone(member, f"recurrence {unit[-1]} cut apart by the group's kernels")
                    changed = True
            for name in run[:-1]:
                if name in units and name != units[name][-1]:
                    continue  # an initialisation: its state leaves with its step, if at all
                k = position[name]
                tensor = cascade.einsum(name).output.tensor
                outside = [c.name for c in cascade.consumers(tensor) if c.name not in inside]
                if k not in cuts and (outside or cascade.tensor(tensor).role is Role.OUTPUT):
                    reader = outside[0] if outside else "a cascade output"
                    reasons.setdefault(name, f"{tensor} leaves the kernel (read by {reader})")
                    cuts.add(k)
                    changed = True
            if changed:
                break
    return _runs(members, cuts), list(reasons.values())


def recurrence_members(cascade: Cascade) -> dict[str, tuple[str, ...]]:
    """For every producer of a recurrent state tensor (an iterative Einsum's output): all the
    producers of that tensor in cascade order (initialisations, then the step).  One kernel
    computes a unit whole (`codesign.codegen.te_recurrence`)."""
    units: dict[str, tuple[str, ...]] = {}
    for einsum in cascade.einsums:
        if is_iterative(einsum):
            unit = tuple(p.name for p in cascade.producers(einsum.output.tensor))
            units.update(dict.fromkeys(unit, unit))
    return units


def _runs(members: tuple[str, ...], cuts: set[int]) -> list[Group]:
    runs: list[Group] = []
    start = 0
    for k in range(len(members)):
        if k in cuts or k == len(members) - 1:
            runs.append(tuple(members[start : k + 1]))
            start = k + 1
    return [r for r in runs if r]


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


def _kernel_member(cascade: Cascade, einsum: Einsum) -> bool:
    """The single producer of its tensor, writing all of it at a permutation of plain variables:
    its result can be a buffer inside one kernel, looped like the tensor (a constant 0 on a
    size-1 dimension, as a keepdims reduction writes, counts as plain)."""
    if len(cascade.producers(einsum.output.tensor)) != 1:
        return False
    shape = cascade.tensor(einsum.output.tensor).shape
    extents = einsum.extents
    seen: set[str] = set()
    for index, size in zip(einsum.output.indices, shape, strict=True):
        var = index.plain_var if isinstance(index, Affine) else None
        if var is None and index == Affine.constant(0) and size == 1:
            continue  # a kept dimension of a reduction (keepdims)
        if var is None or var in seen or extents[var] != size:
            return False
        seen.add(var)
    return True


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
        units = recurrence_members(cascade)
        for name in members:
            einsum = cascade.einsum(name)
            if name in units and not set(units[name]) <= inside:
                raise InputError(
                    f"fused group {members}: Einsum {name} writes recurrence state "
                    f"{einsum.output.tensor} whose other writers are outside the group"
                )
            if name not in units and not _kernel_member(cascade, einsum):
                raise InputError(
                    f"fused group {members}: Einsum {name} has several producers of its output "
                    "or a non-plain output index"
                )
        for name in members[:-1]:
            if name in units and name != units[name][-1]:
                continue  # an initialisation: its state is checked at its step
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
