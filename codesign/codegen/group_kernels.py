"""Schedules of multi-stage kernels: fused groups with several reductions, and recurrences.

`codesign.codegen.cpu_schedule` schedules a kernel built around ONE contraction (a register-
blocked micro-kernel plus its epilogue).  A fused group such as matmul -> softmax -> matmul or
conv -> conv (`fuse{...}`, `flash-attention`) has several reduction blocks, and a recurrence
(`codesign.codegen.te_recurrence`) is a hand-written loop inside one opaque block; both are
scheduled here, block by block:

* element-wise blocks are inlined into element-wise consumers (not into a reduction, which
  would recompute them at every reduced point; a block the recurrence loop reads is *pinned*:
  that loop's block declares no reads, so inlining would drop the buffer it reads);
* on the CPU every remaining compute block gets a parallel outer loop (its spatial loops fused)
  and a vectorised inner loop; a reduction gets a ``row x vector`` register tile inside its
  reduction loops; the kernel's last block, when element-wise, is computed per tile of the
  reduction it reads (``reverse_compute_at`` under that reduction's parallel loop); outputs
  of inner members are internal allocations of the one PrimFunc, never arguments; a
  recurrence loop is parallel over its rows already;
* on CUDA every remaining compute block is one thread per output point (spatial loops fused,
  split over ``blockIdx.x`` x ``threadIdx.x``; reduction loops run inside the thread); the
  recurrence uses its thread-bound variant (`Stage.gpu_func`).  The functions are marked
  scheduled (``tirx.is_scheduled``).

A kernel with one contraction keeps the schedule it is given (`cpu_schedule`, dlight,
MetaSchedule): `with_multi_stage` wraps each function of `schedules.SCHEDULES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from codesign.codegen.cpu_plan import Micro, snap_tile
from codesign.codegen.te_lower import PAD_SUFFIX, LoweredCascade, Stage

if TYPE_CHECKING:
    from tvm.ir import IRModule
    from tvm.target import Target
    from tvm.tirx import PrimFunc

# Threads per CUDA block of a compute block of a multi-stage kernel
GPU_BLOCK_THREADS = 128
# The attribute dlight reads to skip a function that is scheduled already
SCHEDULED_ATTR = "tirx.is_scheduled"


ScheduleFn = Callable[["IRModule", LoweredCascade, "Target", Any], "IRModule"]


def with_multi_stage(schedule: ScheduleFn) -> ScheduleFn:
    """`schedule` (a function of `codesign.codegen.schedules.SCHEDULES`) applied to the
    kernels around one contraction, and the multi-stage kernels (`Stage.multi_stage`)
    scheduled here: `schedule_multi_stage_cpu`, or `schedule_multi_stage_gpu` on GPU targets.
    MetaSchedule thus never tunes a multi-stage kernel, and dlight never sees one."""

    def apply(mod: IRModule, lowered: LoweredCascade, target: Target, options: Any) -> IRModule:
        import tvm  # noqa: PLC0415

        from codesign.codegen.cpu_plan import micro_for  # noqa: PLC0415

        multi = [s for s in lowered.stages if s.multi_stage]
        if not multi:
            return schedule(mod, lowered, target, options)
        single = replace(lowered, stages=tuple(s for s in lowered.stages if not s.multi_stage))
        funcs: dict[str, Any] = {}
        if single.stages:
            part = tvm.IRModule({s.symbol: mod[s.symbol] for s in single.stages})
            done = schedule(part, single, target, options)
            funcs.update({gv.name_hint: done[gv] for gv in done.get_global_vars()})
        gpu = "gpu" in [str(k) for k in target.keys]
        for stage in multi:
            funcs[stage.symbol] = (
                schedule_multi_stage_gpu(stage)
                if gpu
                else schedule_multi_stage_cpu(stage, micro_for(target))
            )
        return tvm.IRModule({s.symbol: funcs[s.symbol] for s in lowered.stages})

    return apply


def schedule_multi_stage_cpu(stage: Stage, micro: Micro) -> PrimFunc:
    """Inline element-wise blocks; each other compute block parallel over its fused spatial
    loops, element-wise ones vectorised inside (see the module docstring)."""
    import tvm  # noqa: PLC0415

    sch = tvm.s_tir.Schedule(stage.func)
    blocks = _remaining_blocks(sch, stage)
    anchors: dict[str, Any] = {}  # reduction block name -> its parallel loop
    for k, block in enumerate(blocks):
        loops = sch.get_loops(block)
        iters = sch.get(block).iter_vars
        if not loops or len(loops) != len(iters):
            continue  # an opaque block (the recurrence loop): parallel by construction
        spatial = _leading_spatial(iters)
        if spatial == len(iters):
            if k == len(blocks) - 1 and _epilogue_at(sch, block, anchors):
                continue
            _parallel_vectorized(sch, loops, micro)
        elif spatial:
            par = _reduction_tiled(sch, block, loops, spatial, micro)
            if par is not None:
                anchors[sch.get(block).name_hint] = par
    return sch.mod["main"].with_attr("global_symbol", stage.symbol)


def _epilogue_at(sch: Any, block: Any, anchors: dict[str, Any]) -> bool:
    """Compute the kernel's last, element-wise block per tile of the reduction it reads (under
    that reduction's parallel loop, vectorised), while the tile is in cache; False when that
    is not possible (then it gets its own loop nest)."""
    producers = [sch.get(p).name_hint for p in sch.get_producers(block)]
    anchor = next((anchors[n] for n in producers if n in anchors), None)
    if anchor is None:
        return False
    try:
        sch.reverse_compute_at(block, anchor)
    except Exception:  # noqa: BLE001 - TVM's own error types: keep the separate nest
        return False
    loops = sch.get_loops(block)
    if int(sch.get(loops[-1]).extent) > 1:
        sch.vectorize(loops[-1])
    return True


def schedule_multi_stage_gpu(stage: Stage) -> PrimFunc:
    """Inline element-wise blocks; each other compute block one CUDA thread per output point;
    the recurrence loop from `Stage.gpu_func` (threads bound already)."""
    import tvm  # noqa: PLC0415

    sch = tvm.s_tir.Schedule(stage.gpu_func if stage.gpu_func is not None else stage.func)
    for block in _remaining_blocks(sch, stage):
        loops = sch.get_loops(block)
        iters = sch.get(block).iter_vars
        if not loops or len(loops) != len(iters):
            continue
        spatial = _leading_spatial(iters)
        if spatial == 0:  # a full reduction to one value: one thread
            outer = sch.add_unit_loop(block)
            sch.bind(outer, "blockIdx.x")
            continue
        fused = sch.fuse(*loops[:spatial]) if spatial > 1 else loops[0]
        extent = int(sch.get(fused).extent)
        threads = min(GPU_BLOCK_THREADS, extent)
        bx, tx = sch.split(fused, [None, threads])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
    func = sch.mod["main"].with_attr("global_symbol", stage.symbol)
    return func.with_attr(SCHEDULED_ATTR, True)


def _remaining_blocks(sch: Any, stage: Stage) -> list[Any]:
    """Inline every element-wise block that is not pinned and not the output; returns the
    root blocks left, in order (none for a kernel that is one recurrence loop: no root)."""
    try:
        root = sch.get_sblock("root")
    except Exception:  # noqa: BLE001 - TVM's own error type: the function is one block
        return []
    blocks = list(sch.get_child_blocks(root))
    pinned = set(stage.pinned)
    for block in blocks[:-1]:
        node = sch.get(block)
        if node.name_hint in pinned or node.name_hint.endswith(PAD_SUFFIX) or not node.iter_vars:
            continue  # a padded copy stays: inlined, the bounds test comes back
        if not _element_wise(node) or not all(
            _element_wise(sch.get(c)) for c in sch.get_consumers(block)
        ):
            continue  # a reduction consumer would recompute it at every reduced point
        try:
            sch.compute_inline(block)
        except Exception:  # noqa: BLE001, S112 - TVM's own error types: keep the block
            continue
    return list(sch.get_child_blocks(root))


def _element_wise(node: Any) -> bool:
    return bool(node.iter_vars) and all(int(it.iter_type) == 0 for it in node.iter_vars)


def _leading_spatial(iters: Any) -> int:
    """How many outer loops are spatial (TE puts reduction loops innermost)."""
    count = 0
    for it in iters:
        if int(it.iter_type) != 0:
            break
        count += 1
    return count


def _reduction_tiled(sch: Any, block: Any, loops: Any, spatial: int, micro: Micro) -> Any:
    """A register tile of ``row x vector`` outputs inside the reduction loops: the innermost
    spatial loop split to a vector tile (vectorised), the longest other spatial loop to a row
    tile (unrolled); the rest of the spatial loops outside, fused and parallel.  The
    initialisation is split off so the update vectorises.  Returns the parallel loop (None when
    every spatial loop is inside the tile)."""
    extents = [int(sch.get(loop).extent) for loop in loops[:spatial]]
    tiles = [1] * spatial
    tiles[-1] = snap_tile(extents[-1], micro.vector_tile)
    if spatial > 1:
        shared = _shared_by_some_operand(sch, block, spatial)
        row = max(range(spatial - 1), key=lambda k: (k in shared, extents[k], k))
        tiles[row] = snap_tile(extents[row], micro.row_tile)
    outer, inner = [], []
    for loop, extent, tile in zip(loops[:spatial], extents, tiles, strict=True):
        if tile == 1:
            outer.append(loop)
        elif tile == extent:
            inner.append(loop)
        else:
            head, tail = sch.split(loop, [None, tile])
            outer.append(head)
            inner.append(tail)
    reduced = list(loops[spatial:])
    sch.reorder(*outer, *reduced, *inner)
    par = None
    if outer:
        par = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        sch.parallel(par)
    if not inner:
        return par
    vector = inner[-1] if tiles[-1] > 1 else None
    if vector is not None:
        sch.vectorize(vector)
    for loop in inner[:-1] if vector is not None else inner:
        sch.unroll(loop)
    sch.decompose_reduction(block, reduced[0])
    return par


def _shared_by_some_operand(sch: Any, block: Any, spatial: int) -> set[int]:
    """Spatial loops (positions) that some operand does not depend on: a row tile over such a
    loop reuses that operand's vector load for every row (as a matmul's A row serves every
    column; a conv's input serves every output channel)."""
    from tvm.tirx.analysis import undefined_vars  # noqa: PLC0415

    node = sch.get(block)
    written = {w.source.name for w in node.writes}
    used = [
        {v.name for r in read.region for v in undefined_vars(r.min)}
        for read in node.reads
        if read.source.name not in written
    ]
    names = [it.var.name for it in node.iter_vars[:spatial]]
    return {k for k, name in enumerate(names) if any(name not in u for u in used)}


def _parallel_vectorized(sch: Any, loops: Any, micro: Micro) -> None:
    """Outer loops fused and parallel, the innermost split to a vector tile and vectorised."""
    extent = int(sch.get(loops[-1]).extent)
    tile = snap_tile(extent, 4 * micro.lanes)
    inner = loops[-1]
    outer = list(loops[:-1])
    if 1 < tile < extent:
        head, inner = sch.split(loops[-1], [None, tile])
        outer.append(head)
    if outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    if tile > 1:
        sch.vectorize(inner)
