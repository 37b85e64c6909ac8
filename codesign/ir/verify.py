"""Structural verifier: run after every pass in tests (as JAX's check_jaxpr).

A failure raises `VerifyError` whose message names the Einsum and shows the printed IR around it.
"""

from __future__ import annotations

import math
import re

from codesign.ir.cascade import Cascade, Einsum, Role, SparseFormat, TensorSpec
from codesign.ir.expr import Access, walk
from codesign.ir.groups import group_errors
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
from codesign.ir.printer import print_cascade
from codesign.ir.recurrence import Recurrence, RecurrenceError, recurrence_of

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RESERVED = frozenset(
    {"cascade", "over", "select", "sum", "max", "min", "prod", "inf", "nan", "pow", "and", "or"}
)


class VerifyError(Exception):
    """The cascade breaks an IR invariant; the message shows the IR around the fault."""


def _context(cascade: Cascade, einsum: Einsum | None, radius: int = 2) -> str:
    try:
        lines = print_cascade(cascade).splitlines()
    except Exception:  # the printer itself may choke on badly broken IR
        return ""
    if einsum is None:
        return ""
    prefix = f"  {einsum.name} "
    prefix2 = f"  {einsum.name}:"
    hit = next((i for i, line in enumerate(lines) if line.startswith((prefix, prefix2))), None)
    if hit is None:
        return ""
    lo, hi = max(0, hit - radius), min(len(lines), hit + radius + 1)
    shown = [(">>" if i == hit else "  ") + lines[i] for i in range(lo, hi)]
    return "\n" + "\n".join(shown)


def verify(cascade: Cascade) -> None:
    """Raise VerifyError if `cascade` breaks an invariant of the IR; return None otherwise."""
    _check_tensors(cascade)
    written: dict[str, int] = {}
    names: set[str] = set()
    last_producer = {e.output.tensor: k for k, e in enumerate(cascade.einsums)}
    for position, einsum in enumerate(cascade.einsums):
        try:
            if einsum.name in names:
                raise VerifyError(f"duplicate einsum name {einsum.name}")
            names.add(einsum.name)
            _check_einsum(cascade, einsum, written)
            _check_iteration(cascade, position, last_producer)
        except VerifyError as exc:
            raise VerifyError(f"einsum {einsum.name}: {exc}{_context(cascade, einsum)}") from None
        written[einsum.output.tensor] = written.get(einsum.output.tensor, 0) + math.prod(
            n for v, n in einsum.space if v not in einsum.reduced
        )
    for tensor in cascade.tensors:
        if tensor.role in (Role.INTERMEDIATE, Role.OUTPUT):
            count = written.get(tensor.name, 0)
            if count != tensor.size:
                raise VerifyError(
                    f"tensor {tensor.name}: producers write {count} elements, it has {tensor.size}"
                )
    _check_groups(cascade)


def _check_groups(cascade: Cascade) -> None:
    """Fused-group invariants (`codesign.ir.groups`); the first broken one is raised."""
    errors = group_errors(cascade)
    if errors:
        raise VerifyError(errors[0])


def _check_tensors(cascade: Cascade) -> None:
    seen: set[str] = set()
    for t in cascade.tensors:
        if t.name in seen:
            raise VerifyError(f"duplicate tensor name {t.name}")
        seen.add(t.name)
        if not _IDENT.match(t.name) or t.name in RESERVED:
            raise VerifyError(f"tensor name {t.name!r} is not a valid identifier")
        if len(t.ranks) != len(t.shape):
            raise VerifyError(f"tensor {t.name}: {len(t.ranks)} ranks but {len(t.shape)} dims")
        if any(n <= 0 for n in t.shape):
            raise VerifyError(f"tensor {t.name}: non-positive dimension in {t.shape}")
        if t.data is not None and tuple(t.data.shape) != t.shape:
            raise VerifyError(f"tensor {t.name}: data shape {t.data.shape} != {t.shape}")
        q = t.quant
        if q is not None and (
            (q.axis is not None and not 0 <= q.axis < len(t.shape))
            or (q.group_size is not None and (q.axis is None or q.group_size <= 0))
        ):
            raise VerifyError(f"tensor {t.name}: bad quantization axis/group {q}")
        if t.sparse is not None:
            _check_sparsity(t)


def _check_sparsity(t: TensorSpec) -> None:
    """Density in [0, 1], N:M fields only (and all) for N:M with 0 < n <= m, axis a rank of the
    tensor; with data, the N:M pattern and the density hold for the data (density to 1e-6)."""
    sp = t.sparse
    assert sp is not None
    if not 0.0 <= sp.density <= 1.0:
        raise VerifyError(f"tensor {t.name}: sparse density {sp.density} outside [0, 1]")
    if sp.axis is not None and not 0 <= sp.axis < len(t.shape):
        raise VerifyError(f"tensor {t.name}: sparse axis {sp.axis} is not a rank of the tensor")
    is_nm = sp.format is SparseFormat.NM
    if is_nm != (sp.n is not None and sp.m is not None) or (
        not is_nm and (sp.n is not None or sp.m is not None)
    ):
        raise VerifyError(f"tensor {t.name}: n and m go with (and only with) format=nm")
    if is_nm:
        assert sp.n is not None and sp.m is not None
        if not 0 < sp.n <= sp.m or sp.axis is None:
            raise VerifyError(f"tensor {t.name}: N:M needs 0 < n <= m and an axis, got {sp}")
        if t.shape[sp.axis] % sp.m:
            raise VerifyError(
                f"tensor {t.name}: rank {sp.axis} ({t.shape[sp.axis]}) is not a multiple of "
                f"m={sp.m}"
            )
    if t.data is None:
        return
    import numpy as np  # only tensors that carry data need it

    nonzero = np.asarray(t.data) != 0
    measured = float(nonzero.mean()) if nonzero.size else 1.0
    if sp.format is not SparseFormat.DENSE and abs(measured - sp.density) > 1e-6:
        raise VerifyError(
            f"tensor {t.name}: sparse density {sp.density} but its data has {measured:.6g}"
        )
    if is_nm:
        assert sp.n is not None and sp.m is not None and sp.axis is not None
        groups = np.moveaxis(nonzero, sp.axis, -1).reshape(-1, sp.m)
        if int(groups.sum(axis=1).max(initial=0)) > sp.n:
            raise VerifyError(f"tensor {t.name}: data breaks the {sp.n}:{sp.m} pattern")


def _check_einsum(cascade: Cascade, einsum: Einsum, written: dict[str, int]) -> None:
    if not _IDENT.match(einsum.name) or einsum.name in RESERVED:
        raise VerifyError(f"name {einsum.name!r} is not a valid identifier")
    extents = einsum.extents
    if len(extents) != len(einsum.space):
        raise VerifyError("repeated variable in iteration space")
    if any(n <= 0 for n in extents.values()):
        raise VerifyError("non-positive extent in iteration space")
    if (einsum.reduce is None) != (len(einsum.reduced) == 0):
        raise VerifyError("reduce operator and reduced variables must come together")
    out = einsum.output
    if not cascade.has_tensor(out.tensor):
        raise VerifyError(f"output tensor {out.tensor} is not declared")
    out_spec = cascade.tensor(out.tensor)
    if out_spec.role in (Role.INPUT, Role.WEIGHT):
        raise VerifyError(f"writes {out_spec.role.value} tensor {out.tensor}")
    out_vars: list[str] = []
    for index in out.indices:
        if not isinstance(index, Affine):
            raise VerifyError(f"output index of {out.tensor} must be affine")
        out_vars += [v for v in index.variables if v not in out_vars]
    expected = tuple(out_vars) + einsum.reduced
    if tuple(v for v, _ in einsum.space) != expected:
        raise VerifyError(
            f"iteration space {[v for v, _ in einsum.space]} should list output variables then "
            f"reduced ones: {list(expected)}"
        )
    if set(out_vars) & set(einsum.reduced):
        raise VerifyError("a reduced variable appears in the output")
    _check_access(cascade, einsum, out, extents, guarded=False)
    for node in walk(einsum.body):
        if isinstance(node, Access):
            spec = _check_access(cascade, einsum, node, extents, guarded=einsum.reduce is not None)
            if spec.role in (Role.INTERMEDIATE, Role.OUTPUT) and node.tensor not in written:
                raise VerifyError(f"reads {node.tensor} before any einsum writes it")
    for index in out.indices:
        assert isinstance(index, Affine)
    _check_disjoint_regions(cascade, einsum)


# -- iterative Einsums (codesign.ir.recurrence) ------------------------------------------------


def _check_iteration(cascade: Cascade, position: int, last_producer: dict[str, int]) -> None:
    """A self-read must have the supported recurrence form with its initial positions written
    by earlier Einsums; any other read may not touch a region a *later* Einsum writes (a
    recurrence spread over several Einsums is not supported and would interpret wrongly)."""
    einsum = cascade.einsums[position]
    try:
        rec = recurrence_of(einsum)
    except RecurrenceError as exc:
        raise VerifyError(str(exc)) from None
    if rec is not None:
        _check_initialised(cascade, position, rec)
    for access in einsum.inputs:
        if access.tensor == einsum.output.tensor:
            continue
        if last_producer.get(access.tensor, -1) <= position:
            continue
        read = _read_box(cascade, einsum, access)
        for later in cascade.einsums[position + 1 :]:
            if later.output.tensor == access.tensor and _overlap(read, _box(later)):
                raise VerifyError(
                    f"reads {access.tensor} where the later einsum {later.name} writes it (a "
                    "recurrence across einsums is unsupported: write it as one self-referential "
                    "einsum)"
                )


def _check_initialised(cascade: Cascade, position: int, rec: Recurrence) -> None:
    einsum = cascade.einsums[position]
    first, last = rec.initial_positions
    earlier = [e for e in cascade.einsums[:position] if e.output.tensor == einsum.output.tensor]
    for pos in range(first, last + 1):
        if not any(_box(e)[rec.dim][0] <= pos <= _box(e)[rec.dim][1] for e in earlier):
            raise VerifyError(
                f"iterative einsum reads {einsum.output.tensor} at {rec.variable}+{pos} on its "
                "first step, which no earlier einsum initialises"
            )


def _read_box(cascade: Cascade, einsum: Einsum, access: Access) -> list[tuple[int, int]]:
    shape = cascade.tensor(access.tensor).shape
    extents = einsum.extents
    return [
        i.bounds(extents) if isinstance(i, (Affine, FloorDiv, Mod)) else (0, n - 1)
        for i, n in zip(access.indices, shape, strict=True)
    ]


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return all(lo1 <= hi2 and lo2 <= hi1 for (lo1, hi1), (lo2, hi2) in zip(a, b, strict=True))


def _check_access(
    cascade: Cascade, einsum: Einsum, access: Access, extents: dict[str, int], guarded: bool
):
    if not cascade.has_tensor(access.tensor):
        raise VerifyError(f"tensor {access.tensor} is not declared")
    spec = cascade.tensor(access.tensor)
    if len(access.indices) != len(spec.shape):
        raise VerifyError(
            f"access {access.tensor} has {len(access.indices)} indices, tensor has "
            f"{len(spec.shape)} dims"
        )
    for dim, (index, size) in enumerate(zip(access.indices, spec.shape, strict=True)):
        for var in index.variables:
            if var not in extents:
                raise VerifyError(f"variable {var} in {access.tensor} is not in the space")
        if isinstance(index, Gathered):
            inner = _check_access(
                cascade, einsum, Access(index.tensor, index.indices), extents, guarded=False
            )
            if not (inner.dtype.is_int):
                raise VerifyError(f"gather index tensor {index.tensor} must be integer")
            continue
        if isinstance(index, (FloorDiv, Mod)) and index.divisor <= 0:
            raise VerifyError(f"non-positive divisor in {access.tensor} dim {dim}")
        lo, hi = index.bounds(extents)
        if (lo < 0 or hi >= size) and not guarded:
            raise VerifyError(
                f"{access.tensor} dim {dim} index ranges over [{lo}, {hi}], outside [0, {size - 1}]"
            )
    return spec


def _check_disjoint_regions(cascade: Cascade, einsum: Einsum) -> None:
    """Several producers of one tensor must write disjoint boxes."""
    mine = _box(einsum)
    for other in cascade.einsums:
        if other is einsum:
            break
        if other.output.tensor == einsum.output.tensor:
            theirs = _box(other)
            if all(
                a_lo <= b_hi and b_lo <= a_hi
                for (a_lo, a_hi), (b_lo, b_hi) in zip(mine, theirs, strict=True)
            ):
                raise VerifyError(
                    f"writes a region of {einsum.output.tensor} that {other.name} also writes"
                )


def _box(einsum: Einsum) -> list[tuple[int, int]]:
    extents = einsum.extents
    return [idx.bounds(extents) for idx in einsum.output.indices if isinstance(idx, Affine)]


def index_tensors(indices: tuple[IndexExpr, ...]) -> list[str]:
    return [i.tensor for i in indices if isinstance(i, Gathered)]


__all__ = ["VerifyError", "verify", "RESERVED"]
