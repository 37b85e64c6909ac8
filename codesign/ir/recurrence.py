"""Iterative (recurrent) extended Einsums, as FuseMax and TeAAL write them.

An Einsum that reads the tensor it writes is *iterative*: one of its variables, the *iterated
variable*, runs in order and each step reads what earlier steps (or an initialising Einsum)
wrote.  FuseMax's running maximum is the canonical example::

    rm_init: RM[p,0] = (-inf)
    rm_step: RM[p,m1+1] = max(RM[p,m1], LM[p,m1]) over {m1:4}

The supported form (anything else is rejected by the verifier with one line, never interpreted
wrongly):

* exactly one output index is ``v + c`` with ``v`` a plain variable and ``c >= 1`` (the
  iterated rank); every other output index is a plain variable;
* every self-read repeats the output indices except in the iterated dimension, where it reads
  ``v + c'`` with ``0 <= c' < c`` (an earlier step);
* no reduction (a reduction would fold the state into itself once per reduced point);
* the positions ``[c', c-1]`` that step 0 reads are written by earlier Einsums (the
  initialisation).

The text form needs no new syntax: a self-read is what marks an Einsum iterative, as in the
FuseMax paper's cascades.  The interpreter runs such an Einsum one step at a time
(`codesign.ir.interpreter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from codesign.ir.cascade import Einsum
from codesign.ir.expr import Access, Expr, map_accesses
from codesign.ir.index import Affine, Gathered, IndexExpr, map_affine


class RecurrenceError(ValueError):
    """An Einsum reads its own output in a form the IR does not support (one-line message)."""


@dataclass(frozen=True, slots=True)
class Recurrence:
    """The iteration of an iterative Einsum: `variable` runs 0..steps-1 in order and step t
    writes position ``t + write_offset`` of dimension `dim` of the output tensor."""

    variable: str
    dim: int
    write_offset: int
    steps: int
    read_offsets: tuple[int, ...]

    @property
    def initial_positions(self) -> tuple[int, int]:
        """Positions of the iterated dimension that step 0 reads before the recurrence writes
        them (inclusive range): they must come from earlier Einsums."""
        return min(self.read_offsets), self.write_offset - 1


def is_iterative(einsum: Einsum) -> bool:
    """True when the Einsum reads the tensor it writes."""
    return any(a.tensor == einsum.output.tensor for a in einsum.inputs)


def recurrence_of(einsum: Einsum) -> Recurrence | None:
    """The Einsum's recurrence, None when it does not read its output; `RecurrenceError` when
    it does so in an unsupported form."""
    if not is_iterative(einsum):
        return None
    out = einsum.output
    if einsum.reduce is not None:
        raise RecurrenceError(
            f"reads its own output {out.tensor} under a reduction (unsupported: compute the "
            "reduction in its own einsum and read it in the recurrence)"
        )
    dims = [k for k, i in enumerate(out.indices) if not _plain(i)]
    if len(dims) != 1:
        raise RecurrenceError(
            f"reads its own output {out.tensor}: exactly one output index must be 'v+c' "
            f"(the iterated rank), found {len(dims)}"
        )
    dim = dims[0]
    index = out.indices[dim]
    if not (isinstance(index, Affine) and len(index.terms) == 1 and index.terms[0][1] == 1
            and index.const >= 1):  # fmt: skip
        raise RecurrenceError(
            f"reads its own output {out.tensor}: the iterated output index must be 'v+c' with "
            "c >= 1"
        )
    variable = index.terms[0][0]
    offsets: list[int] = []
    for access in einsum.inputs:
        if access.tensor != out.tensor:
            continue
        read = access.indices[dim]
        same = all(a == b for k, (a, b) in enumerate(zip(access.indices, out.indices,
                                                          strict=True)) if k != dim)  # fmt: skip
        if (
            not same
            or not isinstance(read, Affine)
            or read.terms != index.terms
            or not 0 <= read.const < index.const
        ):
            raise RecurrenceError(
                f"self-read of {out.tensor} must repeat the output indices with an earlier step "
                f"'{variable}+c' (0 <= c < {index.const}) in the iterated rank"
            )
        offsets.append(read.const)
    for access in einsum.inputs:
        for k, i in enumerate(access.indices):
            if variable in i.variables and not (access.tensor == out.tensor and k == dim):
                if isinstance(i, Gathered):
                    raise RecurrenceError(f"iterated variable {variable} indexes a gather")
    return Recurrence(variable, dim, index.const, einsum.extents[variable], tuple(sorted(offsets)))


def _plain(index: IndexExpr) -> bool:
    return isinstance(index, Affine) and index.plain_var is not None


def step_einsum(einsum: Einsum, recurrence: Recurrence, step: int) -> Einsum:
    """The Einsum restricted to one step: the iterated variable replaced by the constant
    `step` everywhere and dropped from the iteration space."""
    values = {recurrence.variable: step}
    return Einsum(
        f"{einsum.name}_{step}",
        Access(einsum.output.tensor, tuple(_fix_index(i, values) for i in einsum.output.indices)),
        _fix_expr(einsum.body, values),
        tuple((v, n) for v, n in einsum.space if v != recurrence.variable),
        einsum.reduce,
        einsum.reduced,
        einsum.op,
    )


def _fix_index(index: IndexExpr, values: Mapping[str, int]) -> IndexExpr:
    """`index` with the variables of `values` replaced by their constants."""

    def fix(affine: Affine) -> Affine:
        const = affine.const + sum(c * values[v] for v, c in affine.terms if v in values)
        return Affine(tuple((v, c) for v, c in affine.terms if v not in values), const)

    return map_affine(index, fix)


def _fix_expr(expr: Expr, values: Mapping[str, int]) -> Expr:
    return map_accesses(
        expr, lambda a: Access(a.tensor, tuple(_fix_index(i, values) for i in a.indices))
    )


__all__ = ["Recurrence", "RecurrenceError", "is_iterative", "recurrence_of", "step_einsum"]
