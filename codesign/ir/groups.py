"""Fused groups: which Einsums of a Cascade run as one kernel, and which intermediates stay on chip.

A `FusedGroup` is an annotation, not a rewrite: the Einsums keep their bodies, so the reference
interpreter's result never depends on the groups.  Cost models read the groups (``mapper/fused``)
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
    from codesign.ir.cascade import Cascade

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


def group_errors(cascade: Cascade) -> list[str]:
    """Every broken group invariant, one line each (empty when the groups are valid)."""
    errors: list[str] = []
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
        outside = _nonconvex_member(cascade, group)
        if outside is not None:
            errors.append(f"{where}: not convex (Einsum {outside} lies between members)")
        errors += _on_chip_errors(cascade, group)
    return errors


def _on_chip_errors(cascade: Cascade, group: FusedGroup) -> list[str]:
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
        users = {e.name for e in cascade.producers(name) + cascade.consumers(name)}
        strays = sorted(users - members)
        if strays or not cascade.producers(name):
            strays_text = ", ".join(strays) or "no producer"
            errors.append(f"{where} is used outside the group ({strays_text})")
    return errors


def _nonconvex_member(cascade: Cascade, group: FusedGroup) -> str | None:
    """An Einsum outside `group` reachable from a member that reaches a member, or None."""
    import networkx as nx

    graph = cascade.graph()
    members = set(group.einsums)
    below: set[str] = set()
    for m in members:
        below |= nx.descendants(graph, m)
    for node in sorted(below - members):
        if nx.descendants(graph, node) & members:
            return node
    return None


def valid_groups(cascade: Cascade, groups: tuple[FusedGroup, ...]) -> tuple[FusedGroup, ...]:
    """The groups restricted to what `cascade` still holds (members present, on-chip tensors
    declared), keeping those that still fuse two or more Einsums and satisfy the invariants."""
    from dataclasses import replace

    present = {e.name for e in cascade.einsums}
    kept: list[FusedGroup] = []
    for group in groups:
        members = tuple(n for n in group.einsums if n in present)
        on_chip = tuple(t for t in group.on_chip if cascade.has_tensor(t))
        restricted = replace(group, einsums=members, on_chip=on_chip)
        if len(members) > 1 and not group_errors(replace(cascade, groups=(restricted,))):
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
