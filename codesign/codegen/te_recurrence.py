"""Lowering of iterative (recurrent) Einsums to TVM: an ordered loop over the iterated rank.

A recurrent state tensor (`codesign.ir.recurrence`) has a *unit* of producers: element-wise
Einsums that write its initial positions, then one iterative *step* Einsum that reads earlier
positions of the tensor it writes::

    rm_init: RM[p,0]    = (-inf)
    rm_step: RM[p,m1+1] = max(RM[p,m1], LM[p,m1]) over {m1:4}

A ``te.compute`` computes every point of its output at once, so it cannot express the order.
The unit becomes one ``te.extern`` instead: hand-written TIR that, for every point ``p`` of the
non-iterated ranks (one fused loop, parallel on the CPU, one GPU thread per point on CUDA),
zero-fills the state row (the interpreter's start for a tensor written in pieces), stores the
initial positions, then runs the steps ``t = 0 .. steps-1`` in order.  Bodies are lowered by
`codesign.codegen.te_exprs`, so types, guards and saturation follow the interpreter.

The extern may sit inside a fused group's PrimFunc (its state is then an internal buffer) or be
a kernel of its own.  Its block declares no reads or writes, so schedules must not move the
computes it reads past it (`RecurrenceUnit` names them: `pinned` in `te_lower.Stage`).

Forms lowered: one step Einsum per state tensor, written after all its initialising Einsums and
read by no Einsum between them; initialising Einsums element-wise (no reduction), plain full
indices in the non-iterated ranks; the step's non-iterated output indices plain variables over
the whole tensor.  Anything else is an InputError naming the Einsum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codesign.codegen.te_exprs import (
    BufferReader,
    Reader,
    Scope,
    all_of,
    expr_value,
    identity,
    store,
)
from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.index import Affine
from codesign.ir.recurrence import Recurrence, RecurrenceError, is_iterative, recurrence_of

if TYPE_CHECKING:
    from tvm.te import Tensor
    from tvm.tirx import PrimExpr, Stmt

# Threads per CUDA block of a recurrence kernel (one thread per point of the non-iterated ranks)
GPU_THREADS = 128


@dataclass(frozen=True, slots=True)
class RecurrenceUnit:
    """The producers of one recurrent state tensor: `inits` (cascade order) then `step`."""

    tensor: str
    inits: tuple[str, ...]
    step: str
    recurrence: Recurrence

    @property
    def members(self) -> tuple[str, ...]:
        return (*self.inits, self.step)


def recurrence_units(cascade: Cascade) -> dict[str, RecurrenceUnit]:
    """The recurrence unit of every iterative Einsum, keyed by Einsum name (each member of a
    unit maps to it); InputError naming the Einsum for a form TVM lowering does not support."""
    order = {e.name: k for k, e in enumerate(cascade.einsums)}
    units: dict[str, RecurrenceUnit] = {}
    for step in cascade.einsums:
        if not is_iterative(step):
            continue
        try:
            rec = recurrence_of(step)
        except RecurrenceError as exc:
            raise InputError(f"einsum {step.name}: {exc}") from None
        assert rec is not None
        tensor = step.output.tensor
        producers = cascade.producers(tensor)
        inits = tuple(p.name for p in producers if p.name != step.name)
        for other in producers:
            if other.name != step.name and is_iterative(other):
                raise InputError(
                    f"einsum {other.name}: a second recurrence writing {tensor} (TVM lowering "
                    f"supports one step Einsum per state tensor, {step.name})"
                )
            if order[other.name] > order[step.name]:
                raise InputError(
                    f"einsum {other.name}: writes recurrence state {tensor} after its step "
                    f"{step.name} (not supported by the TVM lowering)"
                )
        first = min(order[n] for n in (*inits, step.name))
        for reader in cascade.consumers(tensor):
            if first < order[reader.name] < order[step.name]:
                raise InputError(
                    f"einsum {reader.name}: reads recurrence state {tensor} between its "
                    f"initialisation and its step {step.name} (not supported by the TVM lowering)"
                )
        _check_rows(cascade, step, rec)
        for name in inits:
            _check_init(cascade, cascade.einsum(name), rec)
        unit = RecurrenceUnit(tensor, inits, step.name, rec)
        for name in unit.members:
            units[name] = unit
    return units


def _check_rows(cascade: Cascade, step: Einsum, rec: Recurrence) -> None:
    shape = cascade.tensor(step.output.tensor).shape
    extents = step.extents
    for k, (index, size) in enumerate(zip(step.output.indices, shape, strict=True)):
        var = index.plain_var if isinstance(index, Affine) else None
        if k != rec.dim and (var is None or extents[var] != size):
            raise InputError(
                f"einsum {step.name}: recurrence output index {k} does not cover its rank "
                "(not supported by the TVM lowering)"
            )


def _check_init(cascade: Cascade, init: Einsum, rec: Recurrence) -> None:
    if init.reduce is not None:
        raise InputError(
            f"einsum {init.name}: initialises recurrence state {init.output.tensor} with a "
            f"reduction ({init.reduce.value}); the TVM lowering supports element-wise "
            "initialisation only"
        )
    shape = cascade.tensor(init.output.tensor).shape
    extents = init.extents
    for k, (index, size) in enumerate(zip(init.output.indices, shape, strict=True)):
        var = index.plain_var if isinstance(index, Affine) else None
        ok = isinstance(index, Affine) if k == rec.dim else var is not None and extents[var] == size
        if not ok:
            raise InputError(
                f"einsum {init.name}: initialisation index {k} of {init.output.tensor} is not "
                "supported by the TVM lowering (plain variables over the non-iterated ranks)"
            )


def unit_inputs(cascade: Cascade, unit: RecurrenceUnit) -> tuple[str, ...]:
    """Tensors the unit reads (its own state excluded), in first-read order."""
    names: list[str] = []
    for member in unit.members:
        for tensor in cascade.einsum(member).input_tensors:
            if tensor != unit.tensor and tensor not in names:
                names.append(tensor)
    return tuple(names)


def recurrence_tensor(
    cascade: Cascade, unit: RecurrenceUnit, tensors: Mapping[str, Tensor], gpu: bool
) -> Tensor:
    """The state tensor of `unit` as one ``te.extern`` reading `tensors` (TE tensors of the
    kernel: placeholders or computes); `gpu` binds the point loop to CUDA threads."""
    from tvm import te  # noqa: PLC0415

    spec = cascade.tensor(unit.tensor)
    names = unit_inputs(cascade, unit)

    def build(ins: list, outs: list) -> Stmt:
        readers: dict[str, Reader] = {n: BufferReader(b) for n, b in zip(names, ins, strict=True)}
        readers[unit.tensor] = BufferReader(outs[0])
        return _loop_nest(cascade, unit, readers, outs[0], gpu)

    return te.extern(
        spec.shape,
        [tensors[n] for n in names],
        build,
        name=unit.tensor,
        dtype=str(spec.dtype.numpy),
    )


def _loop_nest(
    cascade: Cascade, unit: RecurrenceUnit, readers: dict[str, Reader], out, gpu: bool
) -> Stmt:
    """For each point of the non-iterated ranks: zero-fill, initialise, step in order."""
    from tvm import ir, tirx  # noqa: PLC0415

    spec = cascade.tensor(unit.tensor)
    dim = unit.recurrence.dim
    rows = [k for k in range(len(spec.shape)) if k != dim]
    points = int(np.prod([spec.shape[k] for k in rows], dtype=np.int64))
    threads = min(GPU_THREADS, points)
    blocks = -(-points // threads)
    p, bx, tx = tirx.Var("p", "int32"), tirx.Var("bx", "int32"), tirx.Var("tx", "int32")
    point: PrimExpr = bx * threads + tx if gpu else p  # GPU: one thread per point
    coords: dict[int, PrimExpr] = {}
    rest = point
    for k in reversed(rows):  # row-major decode of the fused point index
        coords[k] = tirx.floormod(rest, spec.shape[k])
        rest = tirx.floordiv(rest, spec.shape[k])
    j = tirx.Var("j", "int32")
    zero = tirx.const(0, str(spec.dtype.numpy))
    fill = tirx.For(j, 0, spec.shape[dim], tirx.ForKind.SERIAL,
                    tirx.BufferStore(out, zero, _point(coords, dim, j)))  # fmt: skip
    body: list[Stmt] = [fill]
    for name in unit.inits:
        body.append(_member(cascade, cascade.einsum(name), unit, readers, out, coords, None))
    body.append(_member(cascade, cascade.einsum(unit.step), unit, readers, out, coords,
                        unit.recurrence))  # fmt: skip
    row: Stmt = tirx.SeqStmt(body)
    if not gpu:
        return tirx.For(p, 0, points, tirx.ForKind.PARALLEL, row)
    if blocks * threads != points:
        row = tirx.IfThenElse(point < points, row, None)

    def bound(var, extent: int, tag: str):  # noqa: ANN001, ANN202 - tirx objects
        return tirx.IterVar(ir.Range(0, extent), var, 1, tag)  # 1: a thread index

    inner = tirx.For(tx, 0, threads, tirx.ForKind.THREAD_BINDING, row,
                     thread_binding=bound(tx, threads, "threadIdx.x"))  # fmt: skip
    return tirx.For(bx, 0, blocks, tirx.ForKind.THREAD_BINDING, inner,
                    thread_binding=bound(bx, blocks, "blockIdx.x"))  # fmt: skip


def _point(coords: Mapping[int, PrimExpr], dim: int, position: PrimExpr) -> list[PrimExpr]:
    return [position if k == dim else coords[k] for k in range(len(coords) + 1)]


def _member(
    cascade: Cascade,
    einsum: Einsum,
    unit: RecurrenceUnit,
    readers: dict[str, Reader],
    out,  # noqa: ANN001 - the state tirx.Buffer
    coords: Mapping[int, PrimExpr],
    rec: Recurrence | None,
) -> Stmt:
    """The stores of one init (rec None) or of the step (serial loop over the iterated rank)
    for one point of the non-iterated ranks."""
    from tvm import tirx  # noqa: PLC0415

    dim = unit.recurrence.dim
    spec = cascade.tensor(unit.tensor)
    variables: dict[str, PrimExpr] = {}
    for k, index in enumerate(einsum.output.indices):
        if k != dim:
            var = index.plain_var if isinstance(index, Affine) else None
            assert var is not None
            variables[var] = coords[k]
    position = einsum.output.indices[dim]
    assert isinstance(position, Affine)
    free = [v for v, _ in einsum.space if v not in variables]
    loops = {v: tirx.Var(v, "int32") for v in free}
    variables.update(loops)
    scope = Scope(cascade, readers, variables, einsum.extents, [])
    value, dtype = expr_value(tirx, einsum.body, scope, False)
    if scope.guards:
        value = tirx.if_then_else(all_of(tirx, scope.guards), value, identity(tirx, None, dtype))
    value = store(tirx, value, dtype, spec.dtype.numpy)
    at = _affine(tirx, position, variables)
    stmt: Stmt = tirx.BufferStore(out, value, _point(coords, dim, at))
    extents = einsum.extents
    for v in reversed(free):  # the step's iterated variable: in order, serial
        stmt = tirx.For(loops[v], 0, extents[v], tirx.ForKind.SERIAL, stmt)
    return stmt


def _affine(tirx, index: Affine, variables: Mapping[str, PrimExpr]) -> PrimExpr:  # noqa: ANN001
    value: PrimExpr = tirx.const(index.const, "int32")
    for name, coeff in index.terms:
        value = value + variables[name] * coeff
    return value


__all__ = ["GPU_THREADS", "RecurrenceUnit", "recurrence_tensor", "recurrence_units", "unit_inputs"]
