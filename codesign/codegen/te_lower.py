"""Lowering of a Cascade to TVM Tensor Expressions: one PrimFunc per fused group or Einsum.

Each Einsum becomes one ``te.compute`` (a reduction over ``te.reduce_axis`` when it has one).
An Einsum outside any fused group reads fresh placeholders of the tensors it reads, so it is a
separate PrimFunc that can be scheduled and timed on its own; the members of a fused group
(`codesign.codegen.groups`) are computes of ONE PrimFunc, whose inner tensors never leave it.
Expressions follow the reference interpreter (`codesign.ir.interpreter`, the oracle), as
`codesign.codegen.te_exprs` describes.  Kernel forms:

* a fused group is ONE PrimFunc whatever its number of reductions (matmul -> softmax -> matmul,
  conv -> conv): its members' computes are composed by ``te.create_prim_func``, only the last
  member's output is an argument, every other member's output is an internal allocation;
* a recurrent state tensor (initialising Einsums + one iterative step, `ir.recurrence`) is one
  ``te.extern`` with an ordered loop over the iterated rank (`codesign.codegen.te_recurrence`),
  inside its group's kernel or a kernel of its own;
* a tensor with several producers (concat), or a producer whose output indices are not plain
  variables, is computed into a *piece* buffer per producer and assembled by one extra
  ``combine`` PrimFunc that copies each region (an ``if_then_else`` chain over regions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codesign.codegen.groups import Group, check_groups, main_member
from codesign.codegen.te_exprs import (
    PAD_SUFFIX,  # noqa: F401 - re-exported: the schedules name padded copies by it
    Scope,
    all_of,
    cast,
    expr_value,
    identity,
    padding_for,
    reducer,
    store,
)
from codesign.codegen.te_recurrence import (
    RecurrenceUnit,
    recurrence_tensor,
    recurrence_units,
    unit_inputs,
)
from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.index import Affine
from codesign.ir.interpreter import REDUCE

if TYPE_CHECKING:
    from tvm.te import Tensor
    from tvm.tirx import PrimExpr, PrimFunc, Var

# Prefix of every PrimFunc symbol: an Einsum called `exp` must not shadow libm's exp.
SYMBOL_PREFIX = "cs_"
PIECE_SUFFIX = "__piece"


@dataclass(frozen=True, slots=True)
class Buffer:
    """A buffer the compiled cascade allocates or receives (cascade tensor or piece)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # NumPy / TVM dtype name, e.g. "float32"


@dataclass(frozen=True, slots=True)
class Stage:
    """One PrimFunc: reads `inputs`, writes `output` (buffer names), in cascade order.

    `einsum` is the Einsum it computes (for a fused group: its main member, the one the kernel
    is scheduled around; `einsums` lists them all), or "" for a combine stage assembling a
    multi-producer tensor.  `block` names the TE compute block that the schedules transform;
    `loop_vars` names the IR iteration variable of each of its loops ("" for a constant output
    index), so tile sizes keyed by IR variable reach the right loop.

    `reductions` counts the reduction members of the kernel; `recurrences` names the state
    tensors it computes by an ordered loop (`te_recurrence`), and `pinned` the blocks that loop
    reads (schedules must neither inline nor move them: the loop's block declares no reads).
    `gpu_func` is the same kernel with its recurrence loops bound to CUDA threads (None when it
    has no recurrence: GPU schedules transform `func`).
    """

    symbol: str
    einsum: str
    inputs: tuple[str, ...]
    output: str
    block: str
    loop_vars: tuple[str, ...]
    func: PrimFunc
    einsums: tuple[str, ...] = ()  # every Einsum the kernel computes (a fused group)
    reductions: int = 0
    recurrences: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    gpu_func: PrimFunc | None = None

    @property
    def multi_stage(self) -> bool:
        """True for a kernel the single-contraction schedules do not cover: several
        reductions, or a recurrence (`codesign.codegen.group_kernels` schedules it)."""
        return self.reductions > 1 or bool(self.recurrences)


@dataclass(frozen=True, slots=True)
class LoweredCascade:
    """The cascade as PrimFuncs over named buffers."""

    name: str
    stages: tuple[Stage, ...]
    buffers: tuple[Buffer, ...]
    inputs: tuple[str, ...]  # INPUT tensors, in declaration order
    weights: tuple[str, ...]
    outputs: tuple[str, ...]

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)


def _tvm():  # noqa: ANN202 - the module object
    try:
        import tvm  # noqa: PLC0415
        from tvm import te  # noqa: F401, PLC0415
    except ImportError:
        raise InputError("TVM codegen needs apache-tvm: pip install 'codesign[tvm]'") from None
    return tvm


def lower_cascade(cascade: Cascade, groups: Sequence[Sequence[str]] = ()) -> LoweredCascade:
    """One PrimFunc per fused group (`groups`, see `codesign.codegen.groups`), per recurrence
    unit and per Einsum outside any group, plus one per multi-producer tensor; raises
    InputError for forms TVM lowering does not support (multi-variable output indices, the
    recurrence forms `te_recurrence` refuses) and for invalid groups."""
    units = recurrence_units(cascade)  # refuses unsupported recurrences before TVM loads
    tvm = _tvm()
    checked = check_groups(cascade, groups)
    group_of = {name: g for g in checked for name in g}
    buffers: dict[str, Buffer] = {
        t.name: Buffer(t.name, t.shape, str(t.dtype.numpy)) for t in cascade.tensors
    }
    last_producer: dict[str, str] = {}
    for einsum in cascade.einsums:
        last_producer[einsum.output.tensor] = einsum.name
    stages: list[Stage] = []
    for einsum in cascade.einsums:
        tensor = einsum.output.tensor
        group = group_of.get(einsum.name)
        if group is not None:
            if einsum.name == group[-1]:  # a group runs where its last member would
                stages.append(_lower_group(cascade, group, buffers, units))
            continue
        unit = units.get(einsum.name)
        if unit is not None:
            if einsum.name == unit.step:  # the unit runs where its step would
                stages.append(_lower_group(cascade, unit.members, buffers, units))
            continue
        producers = cascade.producers(tensor)
        direct = len(producers) == 1 and _direct_output(cascade, einsum)
        out_name = tensor if direct else einsum.name + PIECE_SUFFIX
        stage, dtype = _lower_einsum(tvm, cascade, einsum, buffers, out_name, direct)
        buffers[out_name] = Buffer(out_name, _stage_shape(cascade, einsum, direct), dtype)
        stages.append(stage)
        if not direct and last_producer[tensor] == einsum.name:
            stages.append(_combine(tvm, cascade, tensor, producers, buffers))
    internal = {cascade.einsum(name).output.tensor for g in checked for name in g} - {
        cascade.einsum(g[-1]).output.tensor for g in checked
    }
    return LoweredCascade(
        cascade.name,
        tuple(stages),
        tuple(b for name, b in buffers.items() if name not in internal),
        tuple(t.name for t in cascade.inputs),
        tuple(t.name for t in cascade.weights),
        tuple(t.name for t in cascade.outputs),
    )


def _out_vars(einsum: Einsum) -> list[str]:
    return [v for v, _ in einsum.space if v not in einsum.reduced]


def _direct_output(cascade: Cascade, einsum: Einsum) -> bool:
    """True when the output access is a permutation of plain variables over the whole tensor
    (constant 0 allowed on size-1 dimensions), so the compute can be shaped like the tensor."""
    shape = cascade.tensor(einsum.output.tensor).shape
    extents = einsum.extents
    seen: set[str] = set()
    for index, size in zip(einsum.output.indices, shape, strict=True):
        if not isinstance(index, Affine):
            return False
        var = index.plain_var
        if var is None:
            if index.terms or index.const != 0 or size != 1:
                return False
            continue
        if var in seen or extents[var] != size:
            return False
        seen.add(var)
    return True


def _stage_shape(cascade: Cascade, einsum: Einsum, direct: bool) -> tuple[int, ...]:
    if direct:
        return cascade.tensor(einsum.output.tensor).shape
    extents = einsum.extents
    return tuple(extents[v] for v in _out_vars(einsum))


def _einsum_compute(
    cascade: Cascade, einsum: Einsum, tensors: dict[str, Tensor], direct: bool
) -> tuple[Tensor, str, tuple[str, ...]]:
    """The TE compute of `einsum` reading `tensors` (placeholders, or computes of the same
    kernel); returns (result, stored dtype, IR variable of each loop of its main block)."""
    from tvm import te, tirx  # noqa: PLC0415

    extents = einsum.extents
    out_spec = cascade.tensor(einsum.output.tensor)
    out_dtype = out_spec.dtype.numpy
    shape = _stage_shape(cascade, einsum, direct)
    out_vars = _out_vars(einsum)
    raxes = {v: te.reduce_axis((0, extents[v]), name=v) for v in einsum.reduced}

    def bind(xs: tuple[Var, ...]) -> dict[str, PrimExpr]:
        if not direct:
            return dict(zip(out_vars, xs, strict=True))
        bound: dict[str, PrimExpr] = {}
        for index, x in zip(einsum.output.indices, xs, strict=True):
            var = index.plain_var if isinstance(index, Affine) else None
            if var is not None:
                bound[var] = x
        return bound

    def body_value(xs: tuple[Var, ...]) -> tuple[PrimExpr, np.dtype]:
        variables: dict[str, PrimExpr] = bind(xs)
        variables.update({v: ax.var for v, ax in raxes.items()})
        scope = Scope(cascade, tensors, variables, extents, [], padding_for(einsum))
        value, dtype = expr_value(tirx, einsum.body, scope, einsum.reduce is not None)
        if einsum.reduce is not None:
            acc = REDUCE[einsum.reduce](np.ones((1,), dtype)).dtype
            value, dtype = cast(tirx, value, dtype, acc), acc
        if scope.guards:
            fill = identity(tirx, einsum.reduce, dtype)
            value = tirx.if_then_else(all_of(tirx, scope.guards), value, fill)
        return value, dtype

    probe: dict[str, np.dtype] = {}

    def compute(*xs: Var) -> PrimExpr:
        value, dtype = body_value(xs)
        probe["dtype"] = dtype
        if einsum.reduce is None:
            return store(tirx, value, dtype, out_dtype)
        return reducer(te, tirx, einsum.reduce, dtype)(value, axis=list(raxes.values()))

    name = einsum.name
    result = te.compute(shape, compute, name=name)
    acc_dtype = probe["dtype"]
    if einsum.reduce is not None:
        acc_dtype = REDUCE[einsum.reduce](np.ones((1,), acc_dtype)).dtype
        if acc_dtype != out_dtype:  # a reduction must be the top of its compute: cast after
            acc = result
            result = te.compute(
                shape, lambda *xs: store(tirx, acc(*xs), acc_dtype, out_dtype), name=name + "_cast"
            )
    if direct:
        names = [i.plain_var if isinstance(i, Affine) else None for i in einsum.output.indices]
        spatial = [n or "" for n in names]
    else:
        spatial = out_vars
    return result, str(out_dtype), (*spatial, *einsum.reduced)


def _lower_einsum(
    tvm, cascade: Cascade, einsum: Einsum, buffers: dict[str, Buffer], out: str, direct: bool
) -> tuple[Stage, str]:
    from tvm import te  # noqa: PLC0415

    placeholders = {
        name: te.placeholder(buffers[name].shape, buffers[name].dtype, name=name)
        for name in einsum.input_tensors
    }
    result, dtype, loop_vars = _einsum_compute(cascade, einsum, dict(placeholders), direct)
    symbol = SYMBOL_PREFIX + einsum.name
    func = te.create_prim_func([*placeholders.values(), result])
    func = func.with_attr("global_symbol", symbol)
    name = einsum.name
    reductions = int(einsum.reduce is not None)
    stage = Stage(
        symbol, name, tuple(placeholders), out, name, loop_vars, func, (name,), reductions
    )
    return stage, dtype


def _lower_group(
    cascade: Cascade,
    group: Group,
    buffers: dict[str, Buffer],
    units: dict[str, RecurrenceUnit],
) -> Stage:
    """One PrimFunc computing every member of `group` (any number of reductions, recurrence
    units whole); only the last member's output is an argument, the others are buffers inside
    the kernel.  With a recurrence, the kernel is built twice: CPU loops and CUDA threads."""
    func, placeholders, pinned, loop_vars = _group_func(cascade, group, buffers, units, False)
    recurrences = tuple(dict.fromkeys(units[n].tensor for n in group if n in units))
    gpu_func = None
    if recurrences:
        gpu_func = _group_func(cascade, group, buffers, units, True)[0]
    main = main_member(cascade, group)
    symbol = SYMBOL_PREFIX + main
    reductions = sum(cascade.einsum(n).reduce is not None for n in group)
    out = cascade.einsum(group[-1]).output.tensor
    return Stage(
        symbol, main, placeholders, out, main, loop_vars,
        func.with_attr("global_symbol", symbol), tuple(group), reductions, recurrences, pinned,
        None if gpu_func is None else gpu_func.with_attr("global_symbol", symbol),
    )  # fmt: skip


def _group_func(
    cascade: Cascade,
    group: Group,
    buffers: dict[str, Buffer],
    units: dict[str, RecurrenceUnit],
    gpu: bool,
) -> tuple[PrimFunc, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(PrimFunc, its input buffer names, pinned block names, main block's loop variables)."""
    from tvm import te  # noqa: PLC0415

    tensors: dict[str, Tensor] = {}
    placeholders: dict[str, Tensor] = {}
    pinned: list[str] = []
    main = main_member(cascade, group)
    loop_vars: tuple[str, ...] = ()
    result = None

    def read(names: Sequence[str]) -> None:
        for tensor in names:
            if tensor not in tensors:
                buf = buffers[tensor]
                placeholders[tensor] = te.placeholder(buf.shape, buf.dtype, name=tensor)
                tensors[tensor] = placeholders[tensor]

    for name in group:
        einsum = cascade.einsum(name)
        unit = units.get(name)
        if unit is not None:
            if name != unit.step:
                continue  # an initialisation: part of its unit's loop
            names = unit_inputs(cascade, unit)
            read(names)
            pinned += [tensors[n].op.name for n in names if n not in placeholders]
            result = recurrence_tensor(cascade, unit, tensors, gpu)
        else:
            read(einsum.input_tensors)
            result, _, member_vars = _einsum_compute(cascade, einsum, tensors, direct=True)
            if name == main:
                loop_vars = member_vars
        tensors[einsum.output.tensor] = result
    assert result is not None
    func = te.create_prim_func([*placeholders.values(), result])
    return func, tuple(placeholders), tuple(dict.fromkeys(pinned)), loop_vars


def _combine(tvm, cascade: Cascade, tensor: str, producers, buffers: dict[str, Buffer]) -> Stage:
    """``T[x] = piece_p[(x - c) / a]`` in the region of the producer p that covers x."""
    from tvm import te, tirx  # noqa: PLC0415

    spec = cascade.tensor(tensor)
    dtype = str(spec.dtype.numpy)
    pieces = {
        p.name + PIECE_SUFFIX: te.placeholder(
            buffers[p.name + PIECE_SUFFIX].shape, dtype, name=p.name + PIECE_SUFFIX
        )
        for p in producers
    }

    def compute(*xs: Var) -> PrimExpr:
        value: PrimExpr = tirx.const(0, dtype)
        for p in reversed(producers):
            conds, point = _region(tirx, p, xs, spec.shape)
            read = pieces[p.name + PIECE_SUFFIX](*point)
            value = read if not conds else tirx.if_then_else(all_of(tirx, conds), read, value)
        return value

    result = te.compute(spec.shape, compute, name=tensor + "_combine")
    func = te.create_prim_func([*pieces.values(), result])
    symbol = SYMBOL_PREFIX + tensor + "_combine"
    func = func.with_attr("global_symbol", symbol)
    loop_vars = ("",) * len(spec.shape)
    return Stage(symbol, "", tuple(pieces), tensor, tensor + "_combine", loop_vars, func, ())


def _region(tirx, einsum: Einsum, xs, shape) -> tuple[list, list]:
    """Conditions for output point `xs` to lie in `einsum`'s region, and the piece point."""
    conds: list = []
    bound: dict[str, object] = {}
    for index, x, size in zip(einsum.output.indices, xs, shape, strict=True):
        assert isinstance(index, Affine)
        if not index.terms:
            conds.append(x == index.const)
            continue
        shifted = x - index.const if index.const else x
        for var, value, cond in _digits(tirx, einsum, index, shifted, size):
            conds += cond
            if var in bound:
                conds.append(bound[var] == value)
            else:
                bound[var] = value
    return conds, [bound[v] for v in _out_vars(einsum)]


def _digits(
    tirx, einsum: Einsum, index: Affine, shifted, size: int
) -> list[tuple[str, object, list]]:
    """(variable, its value, region conditions) for each variable of output index `index`
    read at `shifted` (the point minus the index's constant).  Several variables must form a
    dense mixed radix (``32g + 16r + e`` over ``e:16, r:2``: each coefficient the previous one
    times its extent), so every point has one digit per variable."""
    extents = einsum.extents
    terms = sorted(index.terms, key=lambda t: t[1])
    if any(c < 0 for _, c in terms):
        raise InputError(f"einsum {einsum.name}: negative output stride not supported")
    for (var, coeff), (_, nxt) in zip(terms, terms[1:], strict=False):
        if nxt != coeff * extents[var]:
            raise InputError(
                f"einsum {einsum.name}: output index {index} is not a dense mixed radix of its "
                "variables (not supported by the TVM codegen)"
            )
    lo, hi = index.bounds(extents)
    conds: list = []
    if lo > 0:
        conds.append(shifted >= 0)
    first = terms[0][1]
    if first != 1:
        conds.append(tirx.floormod(shifted, first) == 0)
    out = []
    for k, (var, coeff) in enumerate(terms):
        value = shifted if coeff == 1 else tirx.floordiv(shifted, coeff)
        if k < len(terms) - 1:
            value = tirx.floormod(value, extents[var])
        elif hi < size - 1:
            conds.append(value < extents[var])
        out.append((var, value, conds if k == 0 else []))
    return out
