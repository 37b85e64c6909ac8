"""Fused groups: which Einsums of a Cascade run as one kernel, and which intermediates stay on chip.

A `FusedGroup` is an annotation, not a rewrite: the Einsums keep their bodies, so the reference
interpreter's result never depends on the groups.  Cost models read the groups (``sim/fused``)
to price a group as one kernel whose `on_chip` intermediates never cross the backing store.

Invariants (checked by `group_errors`, which the verifier calls):

* group names are distinct identifiers; every member is an Einsum of the cascade, listed in
  cascade order, and belongs to exactly one group;
* the group is *convex*: no Einsum outside it both depends on a member and feeds a member (else
  the group could not run as one kernel);
* every `on_chip` tensor is an intermediate whose producers and consumers are all members.

Printed form (one line per group after the Einsums, see docs/ir.md)::

    group g0 (epilogue) [conv, conv_bias, relu] on_chip [conv_out, conv_biased]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cascade.py imports this module; the annotation only needs the name
    from codesign.ir.cascade import Cascade, Einsum

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class GroupKind(Enum):
    EPILOGUE = "epilogue"  # a contraction with elementwise prologues/epilogues (fuse-elementwise)
    CHAIN = "chain"  # producer-consumer Einsums sharing an outer loop nest (fuse)


@dataclass(frozen=True, slots=True)
class FusedGroup:
    """Einsums (by name, in cascade order) run as one kernel; `on_chip` tensors (by name) are
    produced and consumed inside it and never written to the backing store."""

    name: str
    kind: GroupKind
    einsums: tuple[str, ...]
    on_chip: tuple[str, ...] = ()


def format_group(group: FusedGroup) -> str:
    members = ", ".join(group.einsums)
    text = f"group {group.name} ({group.kind.value}) [{members}]"
    if group.on_chip:
        text += f" on_chip [{', '.join(group.on_chip)}]"
    return text


def group_errors(cascade: Cascade, flow: Dataflow | None = None) -> list[str]:
    """Every broken group invariant, one line each (empty when the groups are valid); `flow`
    is `Dataflow.of(cascade)` when the caller has it."""
    errors: list[str] = []
    if cascade.groups and flow is None:
        flow = Dataflow.of(cascade)
    order = {e.name: i for i, e in enumerate(cascade.einsums)}
    owner: dict[str, str] = {}
    names: set[str] = set()
    for group in cascade.groups:
        where = f"group {group.name}"
        if not _IDENT.match(group.name) or group.name in names:
            errors.append(f"{where}: name is not a distinct identifier")
        names.add(group.name)
        if not group.einsums:
            errors.append(f"{where}: no Einsums")
        missing = [n for n in group.einsums if n not in order]
        if missing:
            errors.append(f"{where}: no Einsum {missing[0]}")
            continue
        if [order[n] for n in group.einsums] != sorted(order[n] for n in group.einsums):
            errors.append(f"{where}: members are not in cascade order")
        for n in group.einsums:
            if n in owner:
                errors.append(f"{where}: Einsum {n} is already in group {owner[n]}")
            owner[n] = group.name
        outside = _nonconvex_member(cascade, group, flow)
        if outside is not None:
            errors.append(f"{where}: not convex (Einsum {outside} lies between members)")
        errors += _on_chip_errors(cascade, group, flow)
    return errors


def _on_chip_errors(cascade: Cascade, group: FusedGroup, flow: Dataflow | None) -> list[str]:
    from codesign.ir.cascade import Role

    errors: list[str] = []
    members = set(group.einsums)
    for name in group.on_chip:
        where = f"group {group.name}: on_chip {name}"
        if not cascade.has_tensor(name):
            errors.append(f"{where} is not declared")
            continue
        if cascade.tensor(name).role is not Role.INTERMEDIATE:
            errors.append(f"{where} is not an intermediate")
        assert flow is not None
        users = {e.name for e in flow.producers(name) + flow.consumers(name)}
        strays = sorted(users - members)
        if strays or not flow.producers(name):
            strays_text = ", ".join(strays) or "no producer"
            errors.append(f"{where} is used outside the group ({strays_text})")
    return errors


@dataclass(frozen=True, slots=True)
class Dataflow:
    """Einsum order and producer -> consumer adjacency, built once for many group checks."""

    order: dict[str, int]
    succ: dict[str, tuple[str, ...]]
    pred: dict[str, tuple[str, ...]]
    writers: dict[str, tuple[Einsum, ...]]  # tensor -> its producers, in cascade order
    readers: dict[str, tuple[Einsum, ...]]  # tensor -> its consumers, in cascade order
    by_name: dict[str, Einsum]

    @staticmethod
    def of(cascade: Cascade) -> Dataflow:
        order = {e.name: i for i, e in enumerate(cascade.einsums)}
        writers: dict[str, list[Einsum]] = {}
        readers: dict[str, list[Einsum]] = {}
        for e in cascade.einsums:
            writers.setdefault(e.output.tensor, []).append(e)
            for t in e.input_tensors:
                readers.setdefault(t, []).append(e)
        succ: dict[str, list[str]] = {n: [] for n in order}
        pred: dict[str, list[str]] = {n: [] for n in order}
        for t, users in readers.items():
            for w in writers.get(t, ()):
                for e in users:
                    succ[w.name].append(e.name)
                    pred[e.name].append(w.name)
        return Dataflow(
            order,
            {k: tuple(v) for k, v in succ.items()},
            {k: tuple(v) for k, v in pred.items()},
            {k: tuple(v) for k, v in writers.items()},
            {k: tuple(v) for k, v in readers.items()},
            {e.name: e for e in cascade.einsums},
        )

    def einsum(self, name: str) -> Einsum:
        return self.by_name[name]

    def producers(self, tensor: str) -> tuple[Einsum, ...]:
        return self.writers.get(tensor, ())

    def consumers(self, tensor: str) -> tuple[Einsum, ...]:
        return self.readers.get(tensor, ())

    def between(self, members: set[str]) -> str | None:
        """An Einsum outside `members` reachable from a member that reaches a member (the
        group is then not convex), or None.  Searches stay inside the members' order window."""
        lo = min(self.order[m] for m in members)
        hi = max(self.order[m] for m in members)
        below = _reach(members, self.succ, lambda n: self.order[n] <= hi)
        above = _reach(members, self.pred, lambda n: self.order[n] >= lo)
        inside = sorted((below & above) - members, key=self.order.__getitem__)
        return inside[0] if inside else None


def _reach(start: set[str], edges: dict[str, tuple[str, ...]], keep) -> set[str]:
    seen: set[str] = set()
    stack = [n for m in start for n in edges[m]]
    while stack:
        n = stack.pop()
        if n in seen or not keep(n):
            continue
        seen.add(n)
        stack.extend(edges[n])
    return seen


def _nonconvex_member(cascade: Cascade, group: FusedGroup, flow: Dataflow | None) -> str | None:
    """An Einsum outside `group` reachable from a member that reaches a member, or None."""
    return (flow or Dataflow.of(cascade)).between(set(group.einsums))


def valid_groups(cascade: Cascade, groups: tuple[FusedGroup, ...]) -> tuple[FusedGroup, ...]:
    """The groups restricted to what `cascade` still holds (members present, on-chip tensors
    declared), keeping those that still fuse two or more Einsums and satisfy the invariants."""
    from dataclasses import replace

    present = {e.name for e in cascade.einsums}
    flow = Dataflow.of(cascade)
    kept: list[FusedGroup] = []
    for group in groups:
        members = tuple(n for n in group.einsums if n in present)
        on_chip = tuple(t for t in group.on_chip if cascade.has_tensor(t))
        restricted = replace(group, einsums=members, on_chip=on_chip)
        if len(members) > 1 and not group_errors(replace(cascade, groups=(restricted,)), flow):
            kept.append(restricted)
    return tuple(kept)


def carry_groups(before: Cascade, after: Cascade) -> Cascade:
    """`after` with its groups (or, when a pass rebuilt the Cascade without them, the groups of
    `before`) restricted to what still holds on it (`valid_groups`)."""
    from dataclasses import replace

    source = after.groups or before.groups
    if not source:
        return after
    kept = valid_groups(after, source)
    return after if kept == after.groups else replace(after, groups=kept)


def group_of(cascade: Cascade) -> dict[str, FusedGroup]:
    """Einsum name -> the group it belongs to (ungrouped Einsums absent)."""
    return {name: g for g in cascade.groups for name in g.einsums}
