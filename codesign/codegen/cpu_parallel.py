"""How the default CPU schedule spreads one kernel over worker threads: whether parallelism
pays for it, and how its outer loops are cut into chunks.

TVM runs a ``parallel`` loop by *static* partition: with ``p`` workers, task ``t`` runs the
contiguous iterations ``[t * ceil(E / p), (t + 1) * ceil(E / p))`` of the loop's ``E``
iterations, and the call returns when the slowest task does.  So

* a parallel kernel pays a fork-join (waking the workers, the closing barrier) and, since the
  threads work on data another core wrote last (the previous kernel's output, split
  differently), moves part of its footprint between the cores' caches, while it computes (the
  transfer costs time only when it is longer than the split work): parallelism pays only
  when the work saved exceeds that (`parallel_threads`, from the kernel's FLOPs and bytes);
* ``E`` should be a multiple of ``p`` (else one task runs ``ceil(E / p)`` chunks while
  another runs fewer), or large enough that the remainder is small (`chunk_imbalance`);
* a contraction's chunks are grouped so that each thread owns whole blocks of the broadcast
  operand's rows, sized to stay in its L2 (`row_blocks`): thread ``t`` then streams only its
  own rows of ``A`` while every panel of ``B`` passes by, instead of every thread streaming
  all of ``A`` once per panel.  Thread boundaries fall between row blocks, i.e. between whole
  output rows, so two threads never write one cache line of the output (no false sharing).

The costs are per core and deliberately coarse (the rule compares magnitudes: a kernel a few
microseconds long never pays for a fork-join, a millisecond GEMM always does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tvm.target import Target

# AVX-class cores retire two vector FMAs per cycle (2 flops per lane each)
FLOPS_PER_LANE_PER_CYCLE = 4
NOMINAL_CLOCK_HZ = 3.0e9  # only the order of magnitude matters to the rule


@dataclass(frozen=True, slots=True)
class CpuCosts:
    """Per-core costs that decide a kernel's parallelism.

    `threads` is the worker count the kernels will run on (1: every kernel serial).
    `fork_join_s` is one parallel kernel's launch and barrier: measured 2.6-3.4 µs for an empty
    region with two hot TVM workers on this host, and 2.0-3.5 µs as the bundled CNN's convs'
    two-thread time over half their serial time (pad and conv regions together; 2026-12-03,
    quiet host).  TVM's idle workers keep polling for far longer than a model's gap between
    two kernels, so a worker is not woken from sleep inside an inference.
    `handoff_bytes_per_s` is the rate at which a core pulls cache lines that another core holds
    (the inputs the previous kernel wrote, split another way): a coherence transfer per line,
    well below either core's own cache bandwidth; it overlaps the split work (the CNN back to
    back on the quiet host, 2026-12-03: 4.5 µs over its kernels' sum with four parallel convs,
    4.1 µs all serial; noisier in later runs).
    `min_gain` is the least fraction of the serial time that parallelism must save: a static
    partition stalls for a scheduler time slice (milliseconds) when another process holds a
    worker's core, which costs a microsecond kernel 100x, so a marginal gain is not worth that
    risk.  0.2: a kernel must run for at least ``fork_join_s / (0.5 - 0.2)`` (10 µs) on one
    core.  Measured on the quiet host (2026-12-03, every kernel of the bundled CNN built
    serial and forced parallel, medians of 100 runs): the four 3x3 stride-1 convs (20 µs)
    gain 33-40% (predicted 38%), the two 3x3 stride-2 convs (11 µs) 20-29% (predicted 26%),
    and the 1-5 µs kernels (the 3-channel stem conv, the 1x1 shortcuts) 0-10% or lose
    (predicted to lose).  On a loaded host any parallel kernel can stall (the CNN's last
    conv once took 4 ms); ``--threads 1`` builds every kernel serial.
    `l2_bytes` is one core's L2 (the row blocks of a contraction are sized to half of it).
    """

    threads: int
    core_flops_per_s: float
    core_bytes_per_s: float = 100e9
    fork_join_s: float = 3e-6
    handoff_bytes_per_s: float = 30e9
    min_gain: float = 0.2
    l2_bytes: int = 1 << 20


def costs_for(target: Target, threads: int) -> CpuCosts:
    """`CpuCosts` for `threads` workers on `target` (its vector width sets the FLOP rate)."""
    from tvm.target import codegen  # noqa: PLC0415

    with target:
        bits = int(codegen.llvm_get_vector_width(target))
    lanes = max(4, bits // 32)
    return CpuCosts(max(1, threads), lanes * FLOPS_PER_LANE_PER_CYCLE * NOMINAL_CLOCK_HZ)


def target_cores(target: Target) -> int:
    """The target's ``num-cores`` (1 when it does not say)."""
    cores = target.attrs.get("num-cores")
    return int(cores) if cores is not None else 1


@dataclass(frozen=True, slots=True)
class Work:
    """A kernel's arithmetic (`flops`: 2 per multiply-accumulate, 1 per other block
    iteration) and footprint (`bytes`: every parameter buffer once).  `handoff_bytes` is the
    part that moves between cores when the kernel is split: the activations it reads (another
    kernel wrote them, split another way) and the output it writes; constant weights, read by
    every call and written by none, stay shared in every core's cache and do not count.
    None: all of `bytes`."""

    flops: float
    bytes: float
    handoff_bytes: float | None = None


def serial_s(work: Work, costs: CpuCosts) -> float:
    """Seconds on one core: bound by its FLOP rate or its cache bandwidth."""
    return max(work.flops / costs.core_flops_per_s, work.bytes / costs.core_bytes_per_s)


def chunk_imbalance(chunks: int, threads: int) -> float:
    """Extra time of the slowest of `threads` static tasks sharing `chunks` equal chunks, over
    a perfect split, as a fraction (0: the chunks divide evenly; fewer chunks than threads
    leave threads idle)."""
    if chunks <= 0 or threads <= 1:
        return 0.0
    return math.ceil(chunks / threads) * threads / chunks - 1.0


def parallel_s(work: Work, costs: CpuCosts, threads: int, chunks: int) -> float:
    """Seconds on `threads` cores over `chunks` equal parallel chunks: the serial time split
    as the static partition splits it, or the time to move the footprint between cores when
    that is longer (the cores pull the lines while they compute: the transfer overlaps the
    split work), plus one fork-join."""
    if threads <= 1:
        return serial_s(work, costs)
    split = serial_s(work, costs) / threads * (1.0 + chunk_imbalance(chunks, threads))
    moved = work.bytes if work.handoff_bytes is None else work.handoff_bytes
    return max(split, moved / costs.handoff_bytes_per_s) + costs.fork_join_s


def parallel_threads(work: Work, costs: CpuCosts, chunks: int) -> int:
    """`costs.threads` when running the kernel's `chunks` parallel chunks on them saves at
    least `costs.min_gain` of the serial time, else 1 (the kernel stays serial)."""
    if costs.threads <= 1 or chunks <= 1:
        return 1
    one = serial_s(work, costs)
    if parallel_s(work, costs, costs.threads, chunks) <= (1.0 - costs.min_gain) * one:
        return costs.threads
    return 1


def row_blocks(row_tiles: int, row_tile_bytes: int, threads: int, l2_bytes: int) -> int:
    """How many blocks the row tiles of a contraction are grouped into (a divisor of
    `row_tiles`).

    A block's broadcast-operand rows (`row_tile_bytes` per row tile) should fit half of L2, so
    they stay there while every vector panel passes; with several threads the block count is
    also a multiple of `threads` when some divisor allows it, so each thread owns whole blocks.
    The fewest blocks meeting both; failing the L2 bound, the largest divisor that meets the
    thread multiple (the smallest blocks); failing that, the fewest meeting L2.
    """
    if row_tiles <= 1:
        return 1
    budget = max(1, l2_bytes // 2)
    divisors = [d for d in range(1, row_tiles + 1) if row_tiles % d == 0]
    fits = [d for d in divisors if (row_tiles // d) * row_tile_bytes <= budget] or [row_tiles]
    if threads <= 1:
        return fits[0]
    both = [d for d in fits if d % threads == 0]
    if both:
        return both[0]
    multiples = [d for d in divisors if d % threads == 0]
    return multiples[-1] if multiples else fits[0]


def kernel_work(func: Any, constants: frozenset[str] = frozenset()) -> Work:
    """`Work` of an unscheduled TE PrimFunc: its blocks' iteration counts, and the sizes of the
    buffers its blocks read or write that it does not allocate itself (its parameters); the
    `constants` (weights) among them are not handed off between cores."""
    import tvm  # noqa: PLC0415

    sch = tvm.s_tir.Schedule(func)
    root = sch.get_sblock("root")
    local = {str(buf.name) for buf in sch.get(root).alloc_buffers}
    stmts = [sch.get(block) for block in sch.get_child_blocks(root)]
    flops = sum(_block_flops(stmt) for stmt in stmts)
    return _work(flops, _footprint(stmts, local), constants)


def block_work(stmt: Any, constants: frozenset[str] = frozenset()) -> Work:
    """`Work` of one block of a kernel (an ``SBlock`` of a TE PrimFunc), as if it were a kernel
    of its own: its iterations, and every buffer it reads or writes (internal intermediates
    too: another block of the kernel wrote them, maybe split another way); the `constants`
    are not handed off between cores."""
    return _work(_block_flops(stmt), _footprint([stmt], frozenset()), constants)


def _block_flops(stmt: Any) -> float:
    """2 per point of a reduction block (a multiply-accumulate), 1 per point of any other."""
    count = 1.0
    for it in stmt.iter_vars:
        count *= int(it.dom.extent)
    reduces = any(int(it.iter_type) != 0 for it in stmt.iter_vars)
    return count * (2.0 if reduces else 1.0)


def _footprint(stmts: Any, skip: frozenset[str] | set[str]) -> dict[str, float]:
    """Bytes of every whole buffer the blocks read or write, by name, but those in `skip`."""
    from codesign.codegen.cpu_plan import region_bytes  # noqa: PLC0415

    return {
        str(region.source.name): float(region_bytes(region))
        for stmt in stmts
        for region in (*stmt.reads, *stmt.writes)
        if str(region.source.name) not in skip
    }


def _work(flops: float, footprint: dict[str, float], constants: frozenset[str]) -> Work:
    handoff = sum(size for name, size in footprint.items() if name not in constants)
    return Work(flops, sum(footprint.values()), handoff)
