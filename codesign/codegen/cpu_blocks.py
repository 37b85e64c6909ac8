"""The block-level pieces of the default CPU schedule, applied to one block of an existing
`tvm.s_tir.Schedule`: the register-blocked micro-kernel of a contraction (`micro_kernel`, from
a `codesign.codegen.cpu_plan.Plan`), the tiled nest of another reduction (`tiled`), the
vectorised nest of an element-wise block or padded copy (`tile_elementwise`, `rows_first`), and
the epilogue folded into an accumulator's write-back (`inline_epilogue`).  The fused outer loops
they make are recorded, and marked parallel or not, by one `Outer` per kernel.

`codesign.codegen.cpu_schedule` (a kernel around one contraction) and
`codesign.codegen.group_kernels` (a fused group with several reductions) compose them; the
schedule itself is described in `cpu_schedule`'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codesign.codegen.cpu_parallel import CpuCosts, row_blocks
from codesign.codegen.cpu_plan import (
    Micro,
    Plan,
    output_dim,
    read_uses,
    region_bytes,
    snap_tile,
)


class Outer:
    """The fused outer loops of one kernel as they are made, marked parallel or not; `chunks`
    is the extent of the first one made, `main_chunks` the least extent of a main block's one
    (a contraction's, or another reduction's)."""

    def __init__(self, parallel: bool) -> None:
        self.parallel = parallel
        self.chunks: int | None = None
        self.main_chunks: int | None = None

    def add(self, sch: Any, loop: Any, main: bool = False) -> None:
        extent = int(sch.get(loop).extent)
        self.chunks = extent if self.chunks is None else self.chunks
        if main:
            self.main_chunks = extent if self.main_chunks is None else min(self.main_chunks, extent)
        if self.parallel:
            sch.parallel(loop)

    def copy(self) -> Outer:
        """An independent copy (to try a schedule aside and keep it only when TVM accepts it)."""
        twin = Outer(self.parallel)
        twin.chunks, twin.main_chunks = self.chunks, self.main_chunks
        return twin


def rows_first(sch: Any, block: Any) -> None:
    """Move the block's row loop (its second-to-last, e.g. H of NCHW) outermost, so its
    parallel split gives each thread a band of rows."""
    loops = sch.get_loops(block)
    if len(loops) >= 3:
        sch.reorder(loops[-2], *loops[:-2])


def inline_epilogue(sch: Any, epilogue: Any) -> bool:
    """Fold the epilogue into the micro-kernel's accumulator write-back (the tile goes from
    registers through bias/activation/residual straight to the output, with no pass over an
    intermediate buffer); False when TVM cannot (the epilogue is not element-wise on it)."""
    try:
        sch.reverse_compute_inline(epilogue)
    except Exception:  # noqa: BLE001 - TVM raises its own error types; compute it per tile
        return False
    return True


def micro_kernel(
    sch: Any,
    block: Any,
    plan: Plan,
    costs: CpuCosts,
    constants: frozenset[str],
    prepacked: list[dict[str, Any]],
    par: Outer,
) -> Any:
    """Register-blocked contraction; returns the fused outer loop (where epilogues go, added
    to `par`).  Appends to `prepacked` each constant operand whose parameter now takes the
    panel layout."""
    vt, rt = plan.vector_tile, plan.row_tile
    others = [k for k in plan.spatial if k != plan.vector]
    tiles_of_row = plan.extents[plan.row] // rt
    blocks = row_blocks(tiles_of_row, _row_tile_bytes(sch, block, plan), costs.threads,
                        costs.l2_bytes)  # fmt: skip

    # the block's own iteration space becomes (vector outer, other outputs, reductions, vector
    # inner), so packed panels are indexed by plain block variables (a floordiv of a vector
    # lane index would become a gather)
    def relayout(*v: Any) -> list[Any]:
        return [v[plan.vector] // vt, *[v[k] for k in others],
                *[v[k] for k in plan.reduced], v[plan.vector] % vt]  # fmt: skip

    from tvm.tirx import IndexMap  # noqa: PLC0415

    stmt = sch.get(block)
    # the output dimension of the vector variable (`contraction_plan` checked it exists)
    out_dim = output_dim(stmt, stmt.iter_vars, plan.vector, vt)
    reads = stmt.reads
    for index, dim in plan.pack:  # first: the relayout below then simplifies the panel index
        name = str(reads[index].source.name)
        if name in constants:
            sch.transform_layout(block, ("read", index), _panel_map(dim, vt))
            prepacked.append({"buffer": name, "dim": dim, "tile": vt})
        else:
            _pack(sch, block, index, dim, vt, par)
    index_map = IndexMap.from_func(relayout, ndim=len(plan.extents), index_dtype="int32")
    sch.transform_block_layout(block, index_map)
    loops = sch.get_loops(block)
    v_outer, v_inner = loops[0], loops[-1]
    spatial_loops = dict(zip(others, loops[1 : 1 + len(others)], strict=True))
    reduced_loops = loops[1 + len(others) : -1]
    row_block, row_outer, row_inner = None, spatial_loops[plan.row], None
    if 1 < rt < plan.extents[plan.row]:
        row_outer, row_inner = sch.split(spatial_loops[plan.row], [None, rt])
    elif rt == plan.extents[plan.row] and rt > 1:
        row_outer, row_inner = None, spatial_loops[plan.row]
    if row_outer is not None and blocks > 1:
        row_block, row_outer = sch.split(row_outer, [blocks, None])
    band = _band(plan, others, costs.threads) if par.parallel else None
    outer = [spatial_loops[band]] if band is not None else []
    outer += [row_block] if row_block is not None else []
    outer += [v_outer] + [spatial_loops[k] for k in others if k not in (plan.row, band)]
    outer += [row_outer] if row_outer is not None else []
    inner = [row_inner] if row_inner is not None else []
    sch.reorder(*outer, *reduced_loops, *inner, v_inner)
    fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
    par.add(sch, fused, main=True)
    cache = sch.cache_write(block, 0, "local")
    if out_dim is not None and out_dim != len(stmt.writes[0].region) - 1:
        # the accumulator's lanes must be contiguous to live in vector registers
        sch.transform_layout(block, ("write", 0), _panel_map(out_dim, vt))
    sch.reverse_compute_at(cache, fused)
    if row_inner is not None:
        sch.unroll(row_inner)
    if vt > 1:
        sch.vectorize(v_inner)
    sch.decompose_reduction(block, reduced_loops[0])
    vectorize_innermost(sch, cache)
    return fused


def _band(plan: Plan, others: list[int], threads: int) -> int | None:
    """The output variable that splits a parallel contraction among the threads in bands (a
    conv's output rows), or None to split by row blocks.

    A conv's row variable is an output channel (its broadcast operand, the weight, is small):
    split by channel blocks, every thread reads the whole input, half of it written by the
    other core (the previous kernel's output and this kernel's padded copy), a transfer on
    every call.  Split by output rows, a thread reads the input rows it padded itself, from
    the rows the previous conv's same thread wrote, but for a halo.  The band variable is the
    longest output variable other than the row and vector ones whose extent is a multiple of
    the thread count (at least two bands per thread)."""
    candidates = [
        k for k in others
        if k != plan.row and plan.extents[k] >= 2 * threads and plan.extents[k] % threads == 0
    ]  # fmt: skip
    return max(candidates, key=lambda k: (plan.extents[k], -k), default=None)


def _row_tile_bytes(sch: Any, block: Any, plan: Plan) -> int:
    """Bytes of the broadcast operands (read with the row variable, not the vector one) per
    row tile: what a block of row tiles keeps in L2."""
    stmt = sch.get(block)
    total = 0
    for read in stmt.reads:
        used, _ = read_uses(read, stmt.iter_vars)
        if plan.row in used and plan.vector not in used:
            total += region_bytes(read) * plan.row_tile // max(1, plan.extents[plan.row])
    return total


def _pack(sch: Any, block: Any, index: int, dim: int, tile: int, par: Outer) -> None:
    """Copy read `index` of `block` into panels: dimension `dim` (the vector variable's) split
    by `tile`, its outer part first and its inner part last (contiguous)."""
    packed = sch.cache_read(block, index, "global")
    sch.transform_layout(packed, ("write", 0), _panel_map(dim, tile))
    # walk the panel layout in order: contiguous writes (reads contiguous too when `dim` is the
    # source's innermost dimension)
    loops = sch.get_loops(packed)
    outer, inner = sch.split(loops[dim], [None, tile])
    rest = [loop for d, loop in enumerate(loops) if d != dim]
    sch.reorder(outer, *rest, inner)
    par.add(sch, outer)
    sch.vectorize(inner)


def _panel_map(dim: int, tile: int) -> Any:
    """Index map of the panel layout (the same as `runner.pack_panels`)."""

    def panel(*idx: Any) -> list[Any]:
        rest = [x for d, x in enumerate(idx) if d != dim]
        return [idx[dim] // tile, *rest, idx[dim] % tile]

    return panel


def vectorize_innermost(sch: Any, block: Any) -> None:
    """Vectorise the block's innermost loop, where TVM allows it: an epilogue computed per tile
    whose loop nest also holds another block (ZFNet's and DenseNet's, after a local response
    normalisation) has no compact dataflow there, and stays scalar."""
    loops = sch.get_loops(block)
    if not loops or int(sch.get(loops[-1]).extent) <= 1:
        return
    try:
        sch.vectorize(loops[-1])
    except Exception:  # noqa: BLE001, S110 - TVM's own error types: keep the loop scalar
        pass


def tile_elementwise(sch: Any, block: Any, par: Outer, main: bool = False) -> None:
    """Outer loops fused (added to `par`), innermost loop vectorised (at most 64 lanes)."""
    loops = sch.get_loops(block)
    extents = [int(sch.get(loop).extent) for loop in loops]
    if not loops:
        return
    inner_tile = snap_tile(extents[-1], 64)
    if inner_tile > 1 and inner_tile < extents[-1]:
        outer_last, inner_last = sch.split(loops[-1], [None, inner_tile])
        loops = [*loops[:-1], outer_last, inner_last]
    if len(loops) > 1:
        fused = sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0]
        par.add(sch, fused, main)
    if inner_tile > 1:
        sch.vectorize(loops[-1])


def tiled(
    sch: Any,
    block: Any,
    names: tuple[str, ...],
    tiles: Mapping[str, int],
    micro: Micro,
    par: Outer,
) -> Any | None:
    """Spatial outer loops (fused, added to `par`), reduced loops, spatial inner loops; the
    innermost spatial loop is vectorised.  Returns the fused loop (None when there is none)."""
    loops = sch.get_loops(block)
    iters = sch.get(block).iter_vars
    if len(loops) != len(iters):
        tile_elementwise(sch, block, par, main=True)
        return None
    spatial = [k for k, it in enumerate(iters) if int(it.iter_type) == 0]
    reduced = [k for k, it in enumerate(iters) if int(it.iter_type) != 0]
    extents = [int(it.dom.extent) for it in iters]
    if not reduced:
        tile_elementwise(sch, block, par, main=True)
        return None
    defaults = {k: 1 for k in range(len(loops))}
    if spatial and not _strided_output_contiguous_reduction(sch, block, spatial[-1], reduced):
        defaults[spatial[-1]] = micro.vector_tile
    outer, inner = {}, {}
    for k, loop in enumerate(loops):
        want = tiles.get(names[k], defaults[k]) if names[k] else defaults[k]
        tile = snap_tile(extents[k], want) if k in spatial else extents[k]
        if tile == 1:
            outer[k] = loop
        elif tile == extents[k]:
            inner[k] = loop
        else:
            outer[k], inner[k] = sch.split(loop, [None, tile])
    order = (
        [outer[k] for k in spatial if k in outer]
        + [inner[k] for k in reduced if k in inner]
        + [inner[k] for k in spatial if k in inner]
    )
    if len(order) > 1:
        sch.reorder(*order)
    par_loops = [outer[k] for k in spatial if k in outer]
    fused = None
    if par_loops:
        fused = sch.fuse(*par_loops) if len(par_loops) > 1 else par_loops[0]
        par.add(sch, fused, main=True)
    vec = spatial[-1] if spatial else None
    reduced_inner = [inner[k] for k in reduced if k in inner]  # not the extent-1 ones
    if vec is not None and vec in inner and extents[vec] > 1:
        sch.vectorize(inner[vec])
    elif (
        fused is not None
        and reduced_inner
        and not any(k in inner for k in spatial)  # the reduced loops are the innermost
        and _partial_sums(sch, block, reduced_inner, micro)
    ):
        # rfactor rebuilt the loops: the epilogue goes under the block's new outer loop
        loops = sch.get_loops(block)
        return loops[0] if loops else None
    if reduced_inner:
        sch.decompose_reduction(block, reduced_inner[0])
    return fused


def _strided_output_contiguous_reduction(
    sch: Any, block: Any, vec: int, reduced: list[int]
) -> bool:
    """Whether some operand reads the innermost output variable `vec` in another than its last
    dimension, and a reduced variable as its last: a matrix-vector product over a transposed
    weight ``W[j, k]`` (a batch-1 linear layer, an LLM's decode step).  Vectorised over `vec`,
    every lane would load from another row of ``W`` (a gather per element: AlexNet's 4096 x 9216
    layer took 25 ms, 8.7x its DRAM time); such a reduction is vectorised over its reduced
    elements instead (`_partial_sums`), streaming each row once."""
    stmt = sch.get(block)
    for read in stmt.reads:
        _, dims = read_uses(read, stmt.iter_vars)
        last = len(read.region) - 1
        if dims.get(vec, last) != last and any(dims.get(k) == last for k in reduced):
            return True
    return False


def _partial_sums(sch: Any, block: Any, reduced_loops: list[Any], micro: Micro) -> bool:
    """Vectorise a reduction with no vector output loop (a mean over a channel's pixels)
    across its innermost reduced elements: one vector of partial results per output, in
    registers (``rfactor``), then their sum; True when done.

    Only when every operand that reads the reduced variables reads them as its last,
    contiguous dimensions (so the partial results load whole vectors) and TVM recognises the
    reduction (sum, max, min, product); the rounding differs from a sequential sum as a
    vectorised sum's does.
    """
    stmt = sch.get(block)
    iters = stmt.iter_vars
    reduced = [k for k, it in enumerate(iters) if int(it.iter_type) != 0]
    for read in stmt.reads:
        used, dims = read_uses(read, iters)
        if not used & set(reduced):
            continue
        last = len(read.region) - len(reduced)
        shape = [int(x) for x in read.source.shape]
        if any(dims.get(k) != last + j or shape[last + j] != int(iters[k].dom.extent)
               for j, k in enumerate(reduced)):  # fmt: skip
            return False
    extent = 1
    for loop in reduced_loops:
        extent *= int(sch.get(loop).extent)
    lanes = snap_tile(extent, micro.lanes)
    if lanes < 4:
        return False
    trial = sch.copy()  # rfactor refuses a reduction it does not recognise: try it aside
    try:
        _rfactor(trial, block, reduced_loops, lanes, len(stmt.writes[0].region))
    except Exception:  # noqa: BLE001 - TVM raises its own error types; keep the sequential sum
        return False
    _rfactor(sch, block, reduced_loops, lanes, len(stmt.writes[0].region))
    return True


def _rfactor(sch: Any, block: Any, reduced_loops: list[Any], lanes: int, out_dims: int) -> None:
    loop = sch.fuse(*reduced_loops) if len(reduced_loops) > 1 else reduced_loops[0]
    outer, inner = sch.split(loop, [None, lanes])
    partial = sch.rfactor(inner, factor_axis=out_dims)  # lanes last: one vector per output
    sch.set_scope(partial, 0, "local")
    loops = sch.get_loops(partial)
    sch.reverse_compute_at(block, loops[-3])
    sch.vectorize(sch.get_loops(partial)[-1])
    sch.decompose_reduction(partial, sch.get_loops(partial)[-2])
