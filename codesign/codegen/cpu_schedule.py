"""The default CPU schedule of one kernel (PrimFunc), without tuning.

A kernel is one Einsum or one fused group (`codesign.codegen.groups`).  Its *main* block (the
contraction of a group, else its only block) is scheduled; element-wise blocks around it are
inlined, and the last epilogue (bias, activation, residual) is computed per output tile, right
after the tile's accumulation, so the tile is still in registers or L1; for a contraction it
is folded into the accumulator's write-back, so the tile goes from registers through the
epilogue straight to the output.

Contractions (a reduction with an operand that does not depend on some output variable, as a
matmul's ``A[m, k]`` does not depend on ``n``) get a register-blocked micro-kernel (its
variables and panels are chosen by `codesign.codegen.cpu_plan.contraction_plan`):

* the *vector* variable is the innermost output variable (contiguous in the output); its tile
  is two vector registers wide (`Micro.vector_tile`, from the target's vector width);
* the *row* variable is another output variable that some operand does not depend on
  (preferring the output's innermost one, so the tile's stores are contiguous); its tile
  (`Micro.row_tile`) is unrolled, so the accumulator tile is ``row x vector`` values held in
  registers (a ``local`` cache-write block), stored once after the whole reduction;
* an operand that depends on the vector variable but not as its innermost, contiguous
  dimension (a transposed weight ``W[n, k]``), or one larger than L1, is read in panels
  ``[v // tile, ..., v % tile]``, so the micro-kernel streams it contiguously.  A constant
  operand (a weight, named in `constants`) is *pre-packed*: the kernel's parameter takes the
  panel layout, and the runner packs the weight once when it allocates the buffers
  (`PREPACK_ATTR` on the PrimFunc records which parameter, see `codesign.codegen.runner`);
  any other operand is packed inside the kernel, once per call;
* the row tiles are grouped into row blocks whose broadcast-operand rows fit half of L2
  (`cpu_parallel.row_blocks`); all output tiles are fused into one loop, row block outermost,
  then the vector tile, so one packed panel stays in L2 while the block's row tiles pass
  over it, and the block's rows of the broadcast operand stay in L2 for every panel.

Parallelism (`cpu_parallel`): the fused outer loop of the main block is the kernel's parallel
loop, its iterations the chunks; the kernel runs on `CpuCosts.threads` workers only when the
cost rule says it pays (`parallel_threads`, from the kernel's FLOPs and bytes and the chunk
count), else every loop of it stays serial.  With several threads the row-block count is a
multiple of the thread count, so each worker owns whole blocks of output rows.

Everything else (element-wise kernels, reductions such as softmax or a mean) is tiled: the outer
output loops fused and parallel, the innermost output loop vectorised.  Tile sizes given in
`tiles` (per IR iteration variable, e.g. from the mapper) override the defaults; sizes are
snapped down to divisors of the extents, so there are no tail loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codesign.codegen.cpu_blocks import (
    Outer,
    inline_epilogue,
    micro_kernel,
    rows_first,
    tile_elementwise,
    tiled,
    vectorize_innermost,
)
from codesign.codegen.cpu_parallel import CpuCosts, kernel_work, parallel_threads
from codesign.codegen.cpu_plan import Micro, contraction_plan
from codesign.codegen.te_lower import PAD_SUFFIX, Stage

# PrimFunc attribute: JSON list of {"buffer", "dim", "tile"}, the parameters that take a weight
# in panel layout (`runner.pack_panels`), packed once by the runner instead of on every call
PREPACK_ATTR = "codesign.prepacked"


def schedule_stage(  # noqa: ANN201 - a tvm PrimFunc
    stage: Stage,
    tiles: Mapping[str, int],
    micro: Micro,
    constants: frozenset[str] = frozenset(),
    costs: CpuCosts | None = None,
):
    """The stage's PrimFunc scheduled for the CPU (see the module docstring); `constants` names
    the buffers whose values are fixed at build time (weights), which may be pre-packed.
    `costs` decide the parallelism (None: serial, one thread)."""
    costs = costs or CpuCosts(threads=1, core_flops_per_s=1.0)
    # a dry run finds the main block's chunk count; the cost rule then decides, and the real
    # run marks the outer loops parallel as it makes them (TVM allows it only before the
    # reduction is decomposed)
    chunks = _schedule(stage, tiles, micro, constants, costs, Outer(parallel=False))[1]
    threads = parallel_threads(kernel_work(stage.func, constants), costs, chunks)
    func, _ = _schedule(stage, tiles, micro, constants, costs, Outer(parallel=threads > 1))
    return func


def _schedule(  # noqa: ANN202 - (a tvm PrimFunc, the main block's chunk count)
    stage: Stage,
    tiles: Mapping[str, int],
    micro: Micro,
    constants: frozenset[str],
    costs: CpuCosts,
    par: Outer,
):
    import json  # noqa: PLC0415

    import tvm  # noqa: PLC0415

    sch = tvm.s_tir.Schedule(stage.func)
    main = sch.get_sblock(stage.block)
    epilogue = _inline_around(sch, stage.block, par)
    names = _loop_names(stage, len(sch.get_loops(main)))
    plan = contraction_plan(sch, main, names, tiles, micro, constants)
    prepacked: list[dict[str, Any]] = []
    if plan is not None:
        anchor = micro_kernel(sch, main, plan, costs, constants, prepacked, par)
    else:
        anchor = tiled(sch, main, names, tiles, micro, par)
    folded = epilogue is not None and plan is not None and inline_epilogue(sch, epilogue)
    if epilogue is not None and not folded and anchor is not None:
        sch.reverse_compute_at(epilogue, anchor)
        vectorize_innermost(sch, epilogue)
    elif epilogue is not None and not folded:
        tile_elementwise(sch, epilogue, par)
    chunks = par.main_chunks or par.chunks or 1
    func = sch.mod["main"].with_attr("global_symbol", stage.symbol)
    return (func.with_attr(PREPACK_ATTR, json.dumps(prepacked)) if prepacked else func), chunks


def _inline_around(sch: Any, main_name: str, par: Outer) -> Any | None:
    """Inline every block but the main one and the last one; returns the last block when it is
    not the main block (the epilogue to compute per tile), else None.

    A block that cannot be inlined (not element-wise) stays as its own loop nest.
    """
    blocks = [b for b in sch.get_child_blocks(sch.get_sblock("root"))]
    names = [sch.get(b).name_hint for b in blocks]
    for block, name in zip(blocks[:-1], names[:-1], strict=True):
        if name == main_name:
            continue
        if name.endswith(PAD_SUFFIX):  # inlining would bring the bounds test back
            if par.parallel:  # in bands of rows, as the conv reads them (`_band`)
                rows_first(sch, block)
            tile_elementwise(sch, block, par)
            continue
        try:
            sch.compute_inline(block)
        except Exception:  # noqa: BLE001 - TVM raises its own error types; keep the nest
            tile_elementwise(sch, block, par)
    return None if names[-1] == main_name else blocks[-1]


def _loop_names(stage: Stage, count: int) -> tuple[str, ...]:
    names = stage.loop_vars
    return names if len(names) == count else ("",) * count
