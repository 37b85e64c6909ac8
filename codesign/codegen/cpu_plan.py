"""The register-blocked micro-kernel of a CPU contraction: its shape for the target
(`Micro`) and, per contraction block, which loop is the vector variable, which the unrolled
row variable, and which operands are read in vector panels (`Plan`, `contraction_plan`).
`codesign.codegen.cpu_schedule` applies the plan; see its docstring for the schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tvm.target import Target

# Operands above this many bytes are packed into vector panels (about L1; smaller ones stay
# resident in L1 anyway, and packing would only add a copy).
PACK_MIN_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class Micro:
    """Register tile of the contraction micro-kernel, in elements.

    `lanes` is the vector width in f32 elements; the accumulator tile is ``row_tile`` rows by
    ``vector_tile`` columns (``row_tile * vector_tile / lanes`` vector registers: 16 of AVX-512's
    32 with the defaults).
    """

    lanes: int
    vector_tile: int
    row_tile: int


def micro_for(target: Target) -> Micro:
    """The micro-kernel shape for `target` (AVX-512: 32 x 8, AVX2: 16 x 8, else 8 x 4)."""
    from tvm.target import codegen  # noqa: PLC0415

    with target:
        bits = int(codegen.llvm_get_vector_width(target))
    lanes = max(4, bits // 32)
    return Micro(lanes, 2 * lanes, 8 if lanes >= 8 else 4)


def snap_tile(extent: int, tile: int) -> int:
    """Largest divisor of `extent` not above `tile` (at least 1)."""
    tile = max(1, min(tile, extent))
    while extent % tile:
        tile -= 1
    return tile


@dataclass(frozen=True, slots=True)
class Plan:
    """Loop positions (in the block's iteration order) of the micro-kernel's variables."""

    spatial: tuple[int, ...]
    reduced: tuple[int, ...]
    extents: tuple[int, ...]
    vector: int
    row: int
    vector_tile: int
    row_tile: int
    pack: tuple[tuple[int, int], ...]  # (read-buffer index, dimension of the vector var)


def contraction_plan(
    sch: Any,
    block: Any,
    names: tuple[str, ...],
    tiles: Mapping[str, int],
    micro: Micro,
    constants: frozenset[str] = frozenset(),
) -> Plan | None:
    """The micro-kernel plan of a contraction block, or None for any other block.

    The vector variable is the innermost output variable, unless its extent is not a multiple of
    the vector tile (a conv's 8- or 16-wide output rows; ResNet's 56-wide ones, whose 28-lane
    tiles ran its 3x3 convs at 11 ms instead of 0.5 ms on the dev host) or an operand reads it
    with a stride (a strided conv's input) and another output variable fills the vector tile,
    read only by constants (a conv weight's output channel, pre-packed) or as a last dimension:
    then that one, so every vector register is full and loaded contiguously (not when `tiles`
    are given).
    """
    stmt = sch.get(block)
    iters = stmt.iter_vars
    if len(sch.get_loops(block)) != len(iters):
        return None
    spatial = tuple(k for k, it in enumerate(iters) if int(it.iter_type) == 0)
    reduced = tuple(k for k, it in enumerate(iters) if int(it.iter_type) != 0)
    if not reduced or len(spatial) < 2:
        return None
    extents = tuple(int(it.dom.extent) for it in iters)
    uses = [read_uses(read, iters) for read in stmt.reads]
    innermost = spatial[-1]
    candidates = [innermost]
    narrow = extents[innermost] % micro.vector_tile != 0 or not all(
        _unit_stride(read, iters, innermost) for read in stmt.reads
    )
    if not tiles and narrow:  # explicit tiles: keep the layout
        wider = [k for k in spatial[:-1] if extents[k] >= micro.vector_tile]
        candidates = sorted(wider, key=lambda k: -extents[k]) + candidates
    for vector in candidates:
        plan = _plan_for(
            stmt, iters, uses, vector, spatial, reduced, extents, names, tiles, micro, constants
        )
        if plan is None:
            continue
        names_packed = [str(stmt.reads[index].source.name) for index, _ in plan.pack]
        if vector == innermost or all(n in constants for n in names_packed):
            return plan
    return None


def _plan_for(
    stmt: Any,
    iters: Any,
    uses: list[tuple[set[int], dict[int, int]]],
    vector: int,
    spatial: tuple[int, ...],
    reduced: tuple[int, ...],
    extents: tuple[int, ...],
    names: tuple[str, ...],
    tiles: Mapping[str, int],
    micro: Micro,
    constants: frozenset[str] = frozenset(),
) -> Plan | None:
    # the row variable: an output variable read by an operand that does not read the vector
    # variable (broadcast along the vector), while another operand reads the vector variable
    # but not it (one vector load serves every row)
    rows = [
        k for k in spatial
        if k != vector and extents[k] > 1
        and any(k in used and vector not in used for used, _ in uses)
        and any(vector in used and k not in used for used, _ in uses)
    ]  # fmt: skip
    if not rows or extents[vector] < 4:
        return None
    # among equals, the output's innermost variable: the accumulator tile's rows are then
    # contiguous in the output, so the write-back stores vectors instead of scattering them
    innermost_out = {
        k for k in spatial
        if _dims_reading(stmt.writes[0], iters, k) == [len(stmt.writes[0].region) - 1]
    }  # fmt: skip
    row = max(rows, key=lambda k: (extents[k] >= micro.row_tile, k in innermost_out, extents[k]))
    vector_tile = snap_tile(extents[vector], tiles.get(names[vector], micro.vector_tile))
    row_tile = snap_tile(extents[row], tiles.get(names[row], micro.row_tile))
    pack = []
    for index, (read, (used, dims)) in enumerate(zip(stmt.reads, uses, strict=True)):
        if vector not in used:
            continue
        last = len(read.region) - 1
        if dims.get(vector) is None:
            where = _dims_reading(read, iters, vector)
            if where == [last]:  # a window index such as q + s: contiguous
                continue
            # a grouped conv's weight W[g * M + m, ...]: whole panels of m when every other
            # term is a multiple of the vector tile, so a constant can still be pre-packed
            if (
                len(where) == 1
                and str(read.source.name) in constants
                and _aligned(read.region[where[0]].min, iters, vector, vector_tile)
                and output_dim(stmt, iters, vector, vector_tile) is not None
            ):
                pack.append((index, where[0]))
                continue
            return None
        if dims[vector] != last or region_bytes(read) > PACK_MIN_BYTES:
            pack.append((index, dims[vector]))
    return Plan(spatial, reduced, extents, vector, row, vector_tile, row_tile, tuple(pack))


def output_dim(stmt: Any, iters: Any, vector: int, tile: int) -> int | None:
    """The output dimension the vector variable indexes: alone, or with other terms that are
    multiples of the vector tile (a grouped conv's output channel ``g * M + m``); None when
    neither (the tile's lanes would not be contiguous in the output)."""
    write = stmt.writes[0]
    where = _dims_reading(write, iters, vector)
    if len(where) != 1:
        return None
    dim = where[0]
    if read_uses(write, iters)[1].get(vector) == dim:
        return dim
    return dim if _aligned(write.region[dim].min, iters, vector, tile) else None


def _aligned(expr: Any, iters: Any, k: int, tile: int) -> bool:
    """Whether index `expr` is ``1 * var_k`` plus terms (and a constant) that are all multiples
    of `tile`, so a `tile`-aligned run of var_k stays one contiguous, aligned run."""
    from tvm.sym.pattern import detect_linear_equation  # noqa: PLC0415

    coeffs = detect_linear_equation(expr, [it.var for it in iters])
    if len(coeffs) != len(iters) + 1:
        return False
    try:
        values = [int(c) for c in coeffs]
    except (TypeError, ValueError):
        return False
    return values[k] == 1 and all(v % tile == 0 for j, v in enumerate(values) if j != k)


def _unit_stride(read: Any, iters: Any, k: int) -> bool:
    """Whether `read` reads variable `k` at most in its last dimension, with coefficient 1."""
    from tvm.sym.pattern import detect_linear_equation  # noqa: PLC0415

    dims = _dims_reading(read, iters, k)
    if not dims:
        return True
    if dims != [len(read.region) - 1]:
        return False
    coeffs = detect_linear_equation(read.region[dims[0]].min, [iters[k].var])
    return len(coeffs) == 2 and _is_one(coeffs[0])


def _is_one(expr: Any) -> bool:
    try:
        return int(expr) == 1
    except (TypeError, ValueError):
        return False


def read_uses(read: Any, iters: Any) -> tuple[set[int], dict[int, int]]:
    """(iteration variables read, {variable: dimension} for dimensions that are one variable)."""
    from tvm import tirx  # noqa: PLC0415
    from tvm.tirx.analysis import undefined_vars  # noqa: PLC0415

    variables = {it.var: k for k, it in enumerate(iters)}
    used: set[int] = set()
    dims: dict[int, int] = {}
    for d, rng in enumerate(read.region):
        found = [variables[v] for v in undefined_vars(rng.min) if v in variables]
        used.update(found)
        if len(found) == 1 and isinstance(rng.min, tirx.Var):
            dims[found[0]] = d
    return used, dims


def _dims_reading(read: Any, iters: Any, k: int) -> list[int]:
    from tvm.tirx.analysis import undefined_vars  # noqa: PLC0415

    var = iters[k].var
    return [
        d for d, rng in enumerate(read.region)
        if any(v.same_as(var) for v in undefined_vars(rng.min))
    ]  # fmt: skip


def region_bytes(read: Any) -> int:
    shape = [int(x) for x in read.source.shape]
    size = 1
    for n in shape:
        size *= n
    return size * tvm_dtype_bytes(str(read.source.dtype))


def tvm_dtype_bytes(dtype: str) -> int:
    """Bytes of one element of a TVM dtype name ("float32" -> 4, "bool" -> 1)."""
    import numpy as np  # noqa: PLC0415

    return 1 if dtype == "bool" else np.dtype(dtype).itemsize
