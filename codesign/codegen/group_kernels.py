"""Schedules of multi-stage kernels: fused groups with several reductions, and recurrences.

`codesign.codegen.cpu_schedule` schedules a kernel built around ONE contraction (a register-
blocked micro-kernel plus its epilogue).  A fused group such as matmul -> softmax -> matmul or
conv -> conv (`fuse{...}`, `flash-attention`) has several reduction blocks, and a recurrence
(`codesign.codegen.te_recurrence`) is a hand-written loop inside one opaque block; both are
scheduled here, block by block:

* element-wise blocks are inlined into element-wise consumers (not into a reduction, which
  would recompute them at every reduced point; a block the recurrence loop reads is *pinned*:
  that loop's block declares no reads, so inlining would drop the buffer it reads);
* on the CPU each remaining block gets the schedule `cpu_schedule` gives the same block as a
  kernel of its own (`codesign.codegen.cpu_blocks`): a contraction the register-blocked
  micro-kernel of `cpu_plan.contraction_plan` (a weight that only this block reads is
  pre-packed, `PREPACK_ATTR`; a parallel conv is split in bands of output rows), another
  reduction the tiled nest (vectorised partial sums) when it vectorises, else a ``row x
  vector`` register tile; padded copies and element-wise blocks the vectorised nest.  An
  element-wise block reading a micro-kernel's output is folded into its accumulator's
  write-back when TVM allows it (one intermediate read), else computed per tile of that
  reduction (``reverse_compute_at``, when every producer is under its loop), else its own
  nest.  A block TVM refuses a schedule for falls back to the next (the register tile last),
  tried on a copy of the schedule, so the build never fails.  Each parallel block is one
  fork-join, so the cost rule (`cpu_parallel.parallel_threads`) decides per block, from the
  block's own work; a padded copy is parallel when a conv reading it is.  Outputs of inner
  members are internal allocations of the one PrimFunc, never arguments.  A kernel with a
  recurrence keeps the simpler schedule: every compute block parallel, a reduction with the
  register tile (the recurrence loop is parallel over its rows already);
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

from codesign.codegen.cpu_blocks import (
    Outer,
    inline_epilogue,
    micro_kernel,
    rows_first,
    tile_elementwise,
    tiled,
    vectorize_innermost,
)
from codesign.codegen.cpu_parallel import CpuCosts, block_work, parallel_threads
from codesign.codegen.cpu_plan import Micro, Plan, contraction_plan, snap_tile
from codesign.codegen.cpu_schedule import PREPACK_ATTR
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

        from codesign.codegen.cpu_parallel import costs_for, target_cores  # noqa: PLC0415
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
        weights = frozenset(lowered.weights)
        for stage in multi:
            if gpu:
                funcs[stage.symbol] = schedule_multi_stage_gpu(stage)
                continue
            costs = costs_for(target, options.threads or target_cores(target))
            funcs[stage.symbol] = schedule_multi_stage_cpu(stage, micro_for(target), weights, costs)
        return tvm.IRModule({s.symbol: funcs[s.symbol] for s in lowered.stages})

    return apply


def schedule_multi_stage_cpu(
    stage: Stage,
    micro: Micro,
    constants: frozenset[str] = frozenset(),
    costs: CpuCosts | None = None,
) -> PrimFunc:
    """Inline element-wise blocks; then each remaining block as `cpu_schedule` schedules a
    kernel's blocks, parallel when the cost rule says it pays for that block (see the module
    docstring).  `constants` names the weights (a weight that only one contraction of the
    kernel reads may be pre-packed); `costs` decide the parallelism (None: serial)."""
    import json  # noqa: PLC0415

    import tvm  # noqa: PLC0415

    costs = costs or CpuCosts(threads=1, core_flops_per_s=1.0)
    if stage.recurrences:
        return _recurrence_cpu(stage, micro)
    sch = tvm.s_tir.Schedule(stage.func)
    blocks = _remaining_blocks(sch, stage)
    own = _read_by_one_block(sch, blocks, constants)
    steps: dict[str, list[Step]] = {}  # block name -> its schedules, best first
    plans: dict[str, Plan] = {}
    for block in blocks:
        node = sch.get(block)
        loops = sch.get_loops(block)
        if not loops or len(loops) != len(node.iter_vars):
            continue  # an opaque block
        name = str(node.name_hint)
        if _element_wise(node):
            steps[name] = [_elementwise_step(block, name.endswith(PAD_SUFFIX))]
            continue
        plan = contraction_plan(sch, block, ("",) * len(loops), {}, micro, own)
        if plan is not None:
            plans[name] = plan
        steps[name] = _reduction_steps(block, plan, micro, costs, own)
    parallel = _parallel_blocks(sch, blocks, steps, constants, costs)
    prepacked: list[dict[str, Any]] = []
    accumulated: set[str] = set()  # outputs of micro-kernels (their write-back takes epilogues)
    anchors: dict[str, Any] = {}  # reduction's output buffer -> its fused outer loop
    for k, block in enumerate(blocks):
        node = sch.get(block)
        name = str(node.name_hint)
        if name not in steps:
            continue
        output = str(node.writes[0].source.name)
        if _element_wise(node):
            reads = {str(r.source.name) for r in node.reads}
            epilogue = not name.endswith(PAD_SUFFIX) and bool(reads & accumulated)
            if epilogue and inline_epilogue(sch, block):
                continue  # folded into a micro-kernel's accumulator write-back
            if (epilogue or k == len(blocks) - 1) and _epilogue_at(sch, block, anchors):
                continue  # computed per tile of the (last) reduction it reads
        tried = _first(sch, steps[name], Outer(parallel[name]))
        if tried is None and parallel[name]:
            tried = _first(sch, steps[name], Outer(parallel=False))
        if tried is None:
            continue  # no schedule TVM accepts: the block keeps its plain loop nest
        sch, packed, anchor, chosen, _ = tried
        prepacked += packed
        if anchor is not None and not _element_wise(node):
            anchors[output] = anchor
        if name in plans and chosen == 0:
            accumulated.add(output)
    func = sch.mod["main"].with_attr("global_symbol", stage.symbol)
    return func.with_attr(PREPACK_ATTR, json.dumps(prepacked)) if prepacked else func


def _parallel_blocks(
    sch: Any,
    blocks: list[Any],
    steps: dict[str, list[Step]],
    constants: frozenset[str],
    costs: CpuCosts,
) -> dict[str, bool]:
    """Per block (by name): whether its outer loop is parallel.  Each parallel block is one
    fork-join, so the cost rule (`parallel_threads`) decides per block, from the block's own
    work and the chunk count of its first accepted schedule (a serial trial); a padded copy is
    parallel when a conv reading it is (it is then split in the conv's bands of rows, so each
    thread reads the rows it padded)."""
    parallel: dict[str, bool] = {}
    for block in blocks:
        name = str(sch.get(block).name_hint)
        if name not in steps or costs.threads <= 1:
            parallel[name] = False
            continue
        serial = _first(sch, steps[name], Outer(parallel=False))
        outer = serial[4] if serial is not None else None
        chunks = (outer.main_chunks or outer.chunks or 1) if outer is not None else 1
        work = block_work(sch.get(block), constants)
        parallel[name] = serial is not None and parallel_threads(work, costs, chunks) > 1
    for block in blocks:
        name = str(sch.get(block).name_hint)
        if name.endswith(PAD_SUFFIX) and name in steps:
            readers = [str(sch.get(c).name_hint) for c in sch.get_consumers(block)]
            parallel[name] = any(parallel.get(r, False) for r in readers)
    return parallel


# One way to schedule a block: (schedule, its outer loops, pre-packed weights) -> its fused loop
Step = Callable[[Any, Outer, list[dict[str, Any]]], Any]


def _elementwise_step(block: Any, padded: bool) -> Step:
    """An element-wise block or padded copy as `cpu_schedule` tiles it (a padded copy split
    in bands of rows when parallel, as the conv that reads it is)."""

    def step(sch: Any, par: Outer, packed: list[dict[str, Any]]) -> Any:
        if padded and par.parallel:
            rows_first(sch, block)
        tile_elementwise(sch, block, par)

    return step


def _reduction_steps(
    block: Any, plan: Plan | None, micro: Micro, costs: CpuCosts, constants: frozenset[str]
) -> list[Step]:
    """The schedules to try for a reduction block, best first: the micro-kernel of a
    contraction (as `cpu_schedule`'s), else the tiled nest of another reduction (a mean,
    a softmax's sum, as `cpu_schedule`'s) when it vectorises; the generic register tile last
    (it unrolls independent rows, which beats one sequential chain per output: a softmax's
    max, whose reducer TVM's ``rfactor`` does not recognise)."""

    def micro_step(sch: Any, par: Outer, packed: list[dict[str, Any]]) -> Any:
        assert plan is not None
        return micro_kernel(sch, block, plan, costs, constants, packed, par)

    def tiled_step(sch: Any, par: Outer, packed: list[dict[str, Any]]) -> Any:
        fused = tiled(sch, block, ("",) * len(sch.get_loops(block)), {}, micro, par)
        if not _vectorized(sch, block):  # a sequential chain: the register tile does better
            raise ValueError("no vector loop")
        return fused

    def generic_step(sch: Any, par: Outer, packed: list[dict[str, Any]]) -> Any:
        return _reduction_tiled(sch, block, par, micro)

    return [micro_step if plan is not None else tiled_step, generic_step]


def _vectorized(sch: Any, block: Any) -> bool:
    """Whether the loop nest around `block` has a vectorised loop."""
    return "T.vectorized(" in sch.get(sch.get_loops(block)[0]).script()


def _first(
    sch: Any, steps: list[Step], par: Outer
) -> tuple[Any, list[dict[str, Any]], Any, int, Outer] | None:
    """The first of `steps` applied to a copy of the schedule that TVM accepts (a block that
    cannot take a schedule falls back to a simpler one, and the build never fails): (the
    schedule, pre-packed weights, the step's result, its index, its outer loops)."""
    for index, step in enumerate(steps):
        trial, trial_par = sch.copy(), par.copy()
        packed: list[dict[str, Any]] = []
        try:
            result = step(trial, trial_par, packed)
        except Exception:  # noqa: BLE001, S112 - TVM raises its own error types: the next step
            continue
        return trial, packed, result, index, trial_par
    return None


def _read_by_one_block(sch: Any, blocks: list[Any], constants: frozenset[str]) -> frozenset[str]:
    """The `constants` that exactly one block reads (pre-packing changes the parameter's
    layout for every block that reads it)."""
    readers: dict[str, int] = {}
    for block in blocks:
        for name in {str(r.source.name) for r in sch.get(block).reads}:
            readers[name] = readers.get(name, 0) + 1
    return frozenset(n for n in constants if readers.get(n) == 1)


def _recurrence_cpu(stage: Stage, micro: Micro) -> PrimFunc:
    """A kernel with a recurrence: every compute block parallel over its fused spatial loops
    (the recurrence loop is parallel by construction), a reduction with a register tile."""
    import tvm  # noqa: PLC0415

    sch = tvm.s_tir.Schedule(stage.func)
    blocks = _remaining_blocks(sch, stage)
    anchors: dict[str, Any] = {}  # reduction's output buffer -> its parallel loop
    par = Outer(parallel=True)
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
            anchor = _reduction_tiled(sch, block, par, micro)
            if anchor is not None:
                anchors[str(sch.get(block).writes[0].source.name)] = anchor
    return sch.mod["main"].with_attr("global_symbol", stage.symbol)


def _epilogue_at(sch: Any, block: Any, anchors: dict[str, Any]) -> bool:
    """Compute an element-wise block per tile of the last reduction it reads (under that
    reduction's outer loop, vectorised), while the tile is in cache; `anchors` maps the
    reductions' output buffers to their outer loops, in program order.  False when that is
    not possible (then it gets its own loop nest)."""
    reads = {str(r.source.name) for r in sch.get(block).reads}
    anchor = next((anchors[n] for n in reversed(anchors) if n in reads), None)
    if anchor is None:
        return False
    try:
        sch.reverse_compute_at(block, anchor)
    except Exception:  # noqa: BLE001 - TVM's own error types: keep the separate nest
        return False
    vectorize_innermost(sch, block)  # where TVM allows it
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


def _reduction_tiled(sch: Any, block: Any, par: Outer, micro: Micro) -> Any:
    """A register tile of ``row x vector`` outputs inside the reduction loops: the innermost
    spatial loop split to a vector tile (vectorised), the longest other spatial loop to a row
    tile (unrolled); the rest of the spatial loops outside, fused (added to `par`).  The
    initialisation is split off so the update vectorises.  Returns the fused loop (None when
    every spatial loop is inside the tile, or the block has no spatial loop)."""
    loops = sch.get_loops(block)
    spatial = _leading_spatial(sch.get(block).iter_vars)
    if not spatial or len(loops) != len(sch.get(block).iter_vars):
        return None
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
    fused = None
    if outer:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        par.add(sch, fused, main=True)
    if not inner:
        return fused
    vector = inner[-1] if tiles[-1] > 1 else None
    if vector is not None:
        sch.vectorize(vector)
    for loop in inner[:-1] if vector is not None else inner:
        sch.unroll(loop)
    sch.decompose_reduction(block, reduced[0])
    return fused


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
