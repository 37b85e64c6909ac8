"""Cycle-level model of an R×C systolic array (ws / os / is) that reproduces SCALE-Sim v3.

GEMM convention (SCALE-Sim's): ``ofmap[M, N] = ifmap[M, K] @ filter[K, N]``.  A conv layer is
the im2col GEMM with M = ofmap pixels (Ho·Wo, batch 1), N = filters and K = Fh·Fw·C.

Mapping.  Each dataflow keeps one operand tile stationary in the array and streams the third
dimension through it; SCALE-Sim names the spatial extents Sr (along array rows), Sc (along array
columns) and the temporal extent T:

=====  ====================  ===  ===  ===
flow   stationary            Sr   Sc   T
=====  ====================  ===  ===  ===
ws     filter tile (K×N)     K    N    M
is     ifmap tile (K×M)      K    M    N
os     ofmap tile (M×N)      M    N    K
=====  ====================  ===  ===  ===

The problem is cut into ``ceil(Sr/R) · ceil(Sc/C)`` folds that run one after another.  A partial
fold (at the edge of a shape that does not divide the array) is padded: data still crosses all
R rows and C columns, so every fold takes the same number of cycles.

Per-fold schedule (cycle 0 = start of the fold; PE (i, j) is row i, column j; t in [0, T)):

* ws / is: cycles [0, R) shift the stationary tile in from the top edge, one array row per
  cycle.  Streamed vector t enters row i at cycle R + t + i (row skew) and moves one column per
  cycle, so PE (i, j) does its t-th MAC at ``R + t + i + j``.  The partial sum for (t, j) runs
  down column j through all R rows and is written to the ofmap SRAM when it leaves the bottom,
  at ``R + t + (R-1) + j``.  Last write: t = T-1, j = C-1, so a fold lasts ``2R + C + T - 2``
  cycles.
* os: operand pair k enters row i / column j at cycle k + i / k + j, so PE (i, j) does its k-th
  MAC at ``k + i + j``; its output is written as that last MAC completes (SCALE-Sim charges no
  separate drain).  A fold lasts ``T + R + C - 2`` cycles.

Folds do not overlap, so the schedule has ``folds · cycles_per_fold`` cycles.  SCALE-Sim's
COMPUTE_REPORT ``Total Cycles`` is the index of the cycle of the last ofmap write, i.e. that
count minus one (with zero stalls, which is what ``InterfaceBandwidth: CALC`` gives);
``compute_cycles`` reproduces that number exactly.  ``fold_busy_pes`` evaluates the schedule
cycle by cycle; ``simulate_gemm`` uses its closed form (checked against it in the tests).

SRAM traffic is what SCALE-Sim's demand matrices hold (one word per element per fold that
touches it): the stationary operand is read once in all, the streamed operand once per fold
across the other spatial dimension, and outputs are written once per fold along K (partial sums)
for ws / is, once in all for os.  (SCALE-Sim's DETAILED_ACCESS_REPORT adds R + C extra writes
per fold for os — a counter quirk, not a demand; ``sram_writes_ofmap`` leaves it out.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codesign.frontends.scalesim import ConvShape, GemmShape
from codesign.hwmodels.arch import Dataflow
from codesign.hwmodels.systolic_array import SystolicArray, check_positive_int

if TYPE_CHECKING:
    # the closed form (`simulate_gemm`, what a SCALE-Sim run prices) is plain integer
    # arithmetic; NumPy loads only for the per-cycle schedule and the vectorised sweep
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class FoldPlan:
    """How a GEMM is cut into folds on an array; extents in elements, times in cycles."""

    spatial_rows: int  # Sr: extent mapped along array rows
    spatial_cols: int  # Sc: extent mapped along array columns
    temporal: int  # T: extent streamed through the array per fold
    row_folds: int  # ceil(Sr / R)
    col_folds: int  # ceil(Sc / C)
    cycles_per_fold: int

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds


def plan_folds(shape: GemmShape, array: SystolicArray) -> FoldPlan:
    """Spatial/temporal extents, fold counts and per-fold cycles (see the module docstring)."""
    r, c = array.rows, array.cols
    if array.dataflow is Dataflow.WS:
        sr, sc, t = shape.k, shape.n, shape.m
    elif array.dataflow is Dataflow.IS:
        sr, sc, t = shape.k, shape.m, shape.n
    else:
        sr, sc, t = shape.m, shape.n, shape.k
    per_fold = t + r + c - 2 if array.dataflow is Dataflow.OS else 2 * r + c + t - 2
    return FoldPlan(sr, sc, t, math.ceil(sr / r), math.ceil(sc / c), per_fold)


def fold_busy_pes(
    array: SystolicArray, used_rows: int, used_cols: int, temporal: int
) -> npt.NDArray[np.int64]:
    """Busy-PE count for every cycle of one fold, from the explicit per-cycle schedule.

    ``used_rows`` × ``used_cols`` PEs hold real data (the rest of the R×C array is padding) and
    ``temporal`` vectors stream through.  Entry ``c`` is the number of MACs done in cycle ``c`` of
    the fold; the array's length is the fold's length in cycles.  Costs O((R + C) · T) time.
    """
    used_rows = check_positive_int("used_rows", used_rows)
    used_cols = check_positive_int("used_cols", used_cols)
    temporal = check_positive_int("temporal", temporal)
    if used_rows > array.rows or used_cols > array.cols:
        raise ValueError(
            f"used_rows×used_cols {used_rows}×{used_cols} exceeds the {array.rows}×{array.cols}"
            " array"
        )
    import numpy as np

    r, c = array.rows, array.cols
    if array.dataflow is Dataflow.OS:
        first_mac = 0  # MAC k of PE (i, j) at k + i + j
        last_event = (temporal - 1) + (r - 1) + (c - 1)  # write of the last output
    else:
        first_mac = r  # R cycles to shift the stationary tile in; MAC t of PE (i, j) at R+t+i+j
        last_event = r + (temporal - 1) + (r - 1) + (c - 1)  # psum leaves row R-1 of column C-1
    # PEs on anti-diagonal d = i + j, then spread each over the T cycles its MACs occupy.
    per_diagonal = np.convolve(np.ones(used_rows, np.int64), np.ones(used_cols, np.int64))
    per_offset = np.convolve(per_diagonal, np.ones(temporal, np.int64))
    busy = np.zeros(last_event + 1, np.int64)
    busy[first_mac : first_mac + per_offset.size] = per_offset
    return busy


@dataclass(frozen=True, slots=True)
class SystolicResult:
    """Cycle counts, utilizations (fractions in [0, 1]) and SRAM traffic (words) of one layer.

    ``compute_cycles`` is SCALE-Sim's ``Total Cycles`` (index of the last cycle, no stalls);
    ``schedule_cycles`` = ``compute_cycles + 1`` counts the cycles themselves.
    ``utilization`` = MACs / (R·C·max(compute_cycles, 1)) is SCALE-Sim's ``Overall Util %``/100.
    ``compute_utilization`` is its ``Compute Util %``/100: the mean over folds of
    used-PE MACs / (R·C·window), where SCALE-Sim's window is the fold for os and the fold plus
    C-1 cycles for ws / is.  ``mapping_efficiency`` is the mean fraction of PEs holding data.
    """

    compute_cycles: int
    schedule_cycles: int
    utilization: float
    compute_utilization: float
    mapping_efficiency: float
    macs: int
    folds: int
    row_folds: int
    col_folds: int
    cycles_per_fold: int
    sram_reads_ifmap: int
    sram_reads_filter: int
    sram_writes_ofmap: int


def simulate_gemm(m: int, n: int, k: int, array: SystolicArray) -> SystolicResult:
    """Simulate ``ofmap[m, n] = ifmap[m, k] @ filter[k, n]`` on ``array`` (closed form)."""
    if not isinstance(array, SystolicArray):
        raise ValueError(f"array must be a SystolicArray, got {array!r}")
    shape = GemmShape(m, n, k)
    plan = plan_folds(shape, array)
    c = array.cols
    schedule_cycles = plan.folds * plan.cycles_per_fold
    compute_cycles = schedule_cycles - 1
    # Sum over folds of used PEs is Sr·Sc: the used rows of all row folds add up to Sr.
    used_pe_folds = plan.spatial_rows * plan.spatial_cols
    window = plan.cycles_per_fold + (0 if array.dataflow is Dataflow.OS else c - 1)
    mk, kn, mn = shape.m * shape.k, shape.k * shape.n, shape.m * shape.n
    if array.dataflow is Dataflow.WS:
        reads_ifmap, reads_filter, writes = plan.col_folds * mk, kn, plan.row_folds * mn
    elif array.dataflow is Dataflow.IS:
        reads_ifmap, reads_filter, writes = mk, plan.col_folds * kn, plan.row_folds * mn
    else:
        reads_ifmap, reads_filter, writes = plan.col_folds * mk, plan.row_folds * kn, mn
    return SystolicResult(
        compute_cycles=compute_cycles,
        schedule_cycles=schedule_cycles,
        utilization=shape.macs / (array.num_pes * max(compute_cycles, 1)),
        compute_utilization=used_pe_folds * plan.temporal / (array.num_pes * window * plan.folds),
        mapping_efficiency=used_pe_folds / (array.num_pes * plan.folds),
        macs=shape.macs,
        folds=plan.folds,
        row_folds=plan.row_folds,
        col_folds=plan.col_folds,
        cycles_per_fold=plan.cycles_per_fold,
        sram_reads_ifmap=reads_ifmap,
        sram_reads_filter=reads_filter,
        sram_writes_ofmap=writes,
    )


def simulate_conv(layer: ConvShape, array: SystolicArray) -> SystolicResult:
    """Simulate a conv layer as SCALE-Sim does: its im2col GEMM (see ``ConvShape.to_gemm``)."""
    if not isinstance(layer, ConvShape):
        raise ValueError(f"layer must be a ConvShape, got {layer!r}")
    gemm = layer.to_gemm()
    return simulate_gemm(gemm.m, gemm.n, gemm.k, array)


def gemm_compute_cycles(
    m: npt.ArrayLike, n: npt.ArrayLike, k: npt.ArrayLike, array: SystolicArray
) -> npt.NDArray[np.int64]:
    """``simulate_gemm(...).compute_cycles`` for broadcastable arrays of shapes, vectorised.

    Meant for design-space sweeps over many layers; same closed form, int64 cycles.
    """
    import numpy as np

    ms, ns, ks = (np.asarray(x, dtype=np.int64) for x in (m, n, k))
    for name, values in (("m", ms), ("n", ns), ("k", ks)):
        if values.size and int(values.min()) <= 0:
            raise ValueError(f"{name} must hold positive ints")
    r, c = array.rows, array.cols
    if array.dataflow is Dataflow.WS:
        sr, sc, t = ks, ns, ms
    elif array.dataflow is Dataflow.IS:
        sr, sc, t = ks, ms, ns
    else:
        sr, sc, t = ms, ns, ks
    per_fold = t + r + c - 2 if array.dataflow is Dataflow.OS else 2 * r + c + t - 2
    folds = (-(-sr // r)) * (-(-sc // c))
    return np.asarray(folds * per_fold - 1, dtype=np.int64)
