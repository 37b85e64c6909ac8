"""Cost models for irregular kernels on a PIUMA-like fabric (`codesign.hwmodels.piuma`).

A kernel is a `Workload`: barrier-separated `Phase`s, each a batch of independent tasks (a
frontier vertex, a row of a matrix, a chunk of either).  Per task a phase holds counts, as
arrays: blocking 8-byte DRAM requests to the task's own core (`local`) and to other cores
(`remote`), posted memory-side atomics, scratchpad accesses, bulk bytes streamed by the DMA
engine, and instructions.  The task runs on a thread of its owner core (owner computes).

Two models price the same workload:

* `latency_tolerance` - Little's law per phase.  Throughput is the least of the issue rate, the
  latency-limited rate (threads in flight / latency) and the bandwidth-limited rate; as times:
  ``cycles = max(issue, latency, bandwidth, atomics, scratchpad, longest task) + barrier``.
  The largest term names the bound.
* `simulate` - discrete events (``heapq``) at task granularity: threads take tasks from their
  core's queue in order; a task's blocking requests make a latency chain, and it also queues at
  FIFO servers - its pipeline (issue), the DRAM channels (bytes / bandwidth), the memory-side
  atomic units and its core's scratchpad.  A task ends when its chain and all its server
  reservations are done; a phase ends when its last task and posted atomics drain.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from codesign.hwmodels.piuma import PiumaArch


class Bound(Enum):
    ISSUE = "issue"
    LATENCY = "latency"
    BANDWIDTH = "bandwidth"
    ATOMICS = "atomics"
    SCRATCHPAD = "scratchpad"
    IMBALANCE = "imbalance"  # one long task (a hub vertex, a long row) sets the time
    BARRIER = "barrier"


def _counts(values: np.ndarray | float, n: int) -> np.ndarray:
    out = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,))
    return np.ascontiguousarray(out)


@dataclass(frozen=True, eq=False)
class Phase:
    """One barrier-separated batch of tasks; every array has one entry per task."""

    name: str
    core: np.ndarray  # owner core of each task
    local: np.ndarray  # blocking DRAM requests served by the owner core's controller
    remote: np.ndarray  # blocking DRAM requests served by another core's controller
    atomics: np.ndarray  # posted memory-side atomics (read-modify-write at the controller)
    spad: np.ndarray  # scratchpad accesses (loads, stores and scratchpad atomics)
    dma_bytes: np.ndarray  # bulk bytes streamed by the DMA engine (bandwidth only)
    instructions: np.ndarray

    @staticmethod
    def of(
        name: str,
        core: np.ndarray,
        *,
        local: np.ndarray | float = 0,
        remote: np.ndarray | float = 0,
        atomics: np.ndarray | float = 0,
        spad: np.ndarray | float = 0,
        dma_bytes: np.ndarray | float = 0,
        instructions: np.ndarray | float = 0,
    ) -> Phase:
        core = np.asarray(core, dtype=np.int64)
        n = len(core)
        return Phase(
            name,
            core,
            _counts(local, n),
            _counts(remote, n),
            _counts(atomics, n),
            _counts(spad, n),
            _counts(dma_bytes, n),
            _counts(instructions, n),
        )

    def split(self, pieces: np.ndarray) -> Phase:
        """Each task divided evenly into ``pieces[t]`` tasks on the same core: for work that
        threads can share (independent pairs, or updates merged by atomics)."""
        pieces = np.maximum(np.asarray(pieces, dtype=np.int64), 1)
        idx = np.repeat(np.arange(self.tasks), pieces)
        share = 1.0 / pieces[idx]
        return Phase(
            self.name,
            self.core[idx],
            self.local[idx] * share,
            self.remote[idx] * share,
            self.atomics[idx] * share,
            self.spad[idx] * share,
            self.dma_bytes[idx] * share,
            self.instructions[idx] * share,
        )

    @property
    def tasks(self) -> int:
        return len(self.core)

    def dram_bytes(self, arch: PiumaArch) -> np.ndarray:
        """Bytes each task moves over the DRAM channels (an atomic reads and writes a word)."""
        words = self.local + self.remote + 2 * self.atomics
        return words * arch.access_bytes + self.dma_bytes

    def chain_cycles(self, arch: PiumaArch) -> np.ndarray:
        """Latency of each task's blocking requests, one after another (a thread blocks)."""
        return (
            self.local * arch.local_latency_cycles
            + self.remote * arch.remote_round_trip_cycles
            + self.spad * arch.scratchpad_latency_cycles
        )


@dataclass(frozen=True, eq=False)
class Workload:
    name: str
    phases: tuple[Phase, ...]


@dataclass(frozen=True, slots=True)
class Traffic:
    """What a workload moves and does, summed over phases."""

    tasks: int
    phases: int
    local_requests: float
    remote_requests: float
    atomics: float
    scratchpad_accesses: float
    dma_bytes: float
    dram_bytes: float
    instructions: float

    def as_dict(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


def traffic(workload: Workload, arch: PiumaArch) -> Traffic:
    ph = workload.phases
    return Traffic(
        tasks=sum(p.tasks for p in ph),
        phases=len(ph),
        local_requests=float(sum(p.local.sum() for p in ph)),
        remote_requests=float(sum(p.remote.sum() for p in ph)),
        atomics=float(sum(p.atomics.sum() for p in ph)),
        scratchpad_accesses=float(sum(p.spad.sum() for p in ph)),
        dma_bytes=float(sum(p.dma_bytes.sum() for p in ph)),
        dram_bytes=float(sum(p.dram_bytes(arch).sum() for p in ph)),
        instructions=float(sum(p.instructions.sum() for p in ph)),
    )


@dataclass(frozen=True, slots=True)
class PhaseCost:
    name: str
    cycles: float
    bound: Bound
    terms: dict[Bound, float] = field(default_factory=dict)  # cycles per limiter


@dataclass(frozen=True, slots=True)
class PiumaCost:
    """Result of pricing a workload: cycles at the arch clock, seconds, the dominant bound."""

    model: str  # "little" or "event"
    cycles: float
    seconds: float
    bound: Bound
    phases: tuple[PhaseCost, ...]
    traffic: Traffic

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "cycles": self.cycles,
            "seconds": self.seconds,
            "bound": self.bound.value,
            "phases": len(self.phases),
            "traffic": self.traffic.as_dict(),
        }


def _dominant(phases: list[PhaseCost]) -> Bound:
    """The bound of the phases that account for most of the time."""
    weight: dict[Bound, float] = {}
    for p in phases:
        weight[p.bound] = weight.get(p.bound, 0.0) + p.cycles
    return max(weight, key=weight.__getitem__) if weight else Bound.LATENCY


def _server_terms(phase: Phase, arch: PiumaArch) -> dict[Bound, float]:
    """Cycles each shared resource needs for the phase at full rate."""
    spad_rate = arch.spad_atomics_per_cycle_per_core
    per_core_spad = np.bincount(phase.core, weights=phase.spad, minlength=arch.cores)
    return {
        Bound.ISSUE: float(phase.instructions.sum()) / arch.issue_per_cycle,
        Bound.BANDWIDTH: float(phase.dram_bytes(arch).sum()) / arch.dram_bytes_per_cycle,
        Bound.ATOMICS: float(phase.atomics.sum()) / arch.atomics_per_cycle,
        Bound.SCRATCHPAD: float(per_core_spad.max(initial=0.0)) / spad_rate,
    }


def latency_tolerance(workload: Workload, arch: PiumaArch) -> PiumaCost:
    """Little's law per phase: issue-, latency-, bandwidth-, atomic- or imbalance-bound."""
    costs: list[PhaseCost] = []
    for phase in workload.phases:
        if phase.tasks == 0:
            continue
        terms = _server_terms(phase, arch)
        chain = phase.chain_cycles(arch)
        # Threads in flight per core are capped by the tasks that core owns.
        per_core_tasks = np.bincount(phase.core, minlength=arch.cores)
        per_core_chain = np.bincount(phase.core, weights=chain, minlength=arch.cores)
        in_flight = np.minimum(per_core_tasks, arch.threads_per_core)
        busy = in_flight > 0
        terms[Bound.LATENCY] = float((per_core_chain[busy] / in_flight[busy]).max())
        terms[Bound.IMBALANCE] = float(chain.max())
        terms[Bound.BARRIER] = arch.barrier_cycles
        limiter = max((b for b in terms if b is not Bound.BARRIER), key=terms.__getitem__)
        cycles = terms[limiter] + arch.barrier_cycles
        costs.append(PhaseCost(phase.name, cycles, limiter, terms))
    total = sum(c.cycles for c in costs)
    return PiumaCost(
        "little",
        total,
        arch.cycles_to_seconds(total),
        _dominant(costs),
        tuple(costs),
        traffic(workload, arch),
    )


def _simulate_phase(phase: Phase, arch: PiumaArch) -> PhaseCost:
    chain = phase.chain_cycles(arch)
    dram_cycles = phase.dram_bytes(arch) / arch.dram_bytes_per_cycle
    atomic_cycles = phase.atomics / arch.atomics_per_cycle
    spad_cycles = phase.spad / arch.spad_atomics_per_cycle_per_core
    # Threads of core c: MTP threads first (pipeline k holds threads_per_mtp of them), then STPs.
    tpm, mtps = arch.threads_per_mtp, arch.mtp_per_core
    pipes_per_core = mtps + arch.stp_per_core
    issue_rate = [arch.mtp_issue_per_cycle] * mtps + [arch.stp_issue_per_cycle] * arch.stp_per_core
    issue_cycles = [phase.instructions / rate for rate in issue_rate]

    order = np.argsort(phase.core, kind="stable")
    starts = np.searchsorted(phase.core[order], np.arange(arch.cores + 1))
    queue = [order[starts[c] : starts[c + 1]].tolist() for c in range(arch.cores)]
    head = [0] * arch.cores
    pipe_free = [0.0] * (arch.cores * pipes_per_core)
    spad_free = [0.0] * arch.cores
    dram_free = atomic_free = end = 0.0
    chain_l, dram_l, atom_l, spad_l = (
        chain.tolist(), dram_cycles.tolist(), atomic_cycles.tolist(), spad_cycles.tolist()
    )  # fmt: skip
    issue_l = [x.tolist() for x in issue_cycles]

    # (time the thread is free, core, pipeline slot); only cores with work get threads.
    events: list[tuple[float, int, int]] = []
    for c in range(arch.cores):
        if not queue[c]:
            continue
        for t in range(min(arch.threads_per_core, len(queue[c]))):
            slot = t // tpm if t < mtps * tpm else mtps + (t - mtps * tpm)
            events.append((0.0, c, slot))
    heapq.heapify(events)
    while events:
        now, c, slot = heapq.heappop(events)
        if head[c] >= len(queue[c]):
            continue
        task = queue[c][head[c]]
        head[c] += 1
        p = c * pipes_per_core + slot
        pipe_free[p] = max(now, pipe_free[p]) + issue_l[slot][task]
        dram_free = max(now, dram_free) + dram_l[task]
        spad_free[c] = max(now, spad_free[c]) + spad_l[task]
        atomic_free = max(now, atomic_free) + atom_l[task]  # posted: the thread does not wait
        done = max(now + chain_l[task], pipe_free[p], dram_free, spad_free[c])
        end = max(end, done)
        heapq.heappush(events, (done, c, slot))
    end = max(end, atomic_free)
    terms = _server_terms(phase, arch)
    terms[Bound.IMBALANCE] = float(chain.max(initial=0.0))
    # The phase is bound by a server that was busy most of the time, else by latency.
    busiest = max(terms, key=terms.__getitem__)
    bound = busiest if end > 0 and terms[busiest] >= 0.8 * end else Bound.LATENCY
    terms[Bound.LATENCY] = end
    return PhaseCost(phase.name, end + arch.barrier_cycles, bound, terms)


def simulate(workload: Workload, arch: PiumaArch) -> PiumaCost:
    """Discrete-event simulation of `workload` on `arch` (see the module docstring)."""
    costs = [_simulate_phase(p, arch) for p in workload.phases if p.tasks]
    total = sum(c.cycles for c in costs)
    return PiumaCost(
        "event",
        total,
        arch.cycles_to_seconds(total),
        _dominant(costs),
        tuple(costs),
        traffic(workload, arch),
    )


COST_MODELS = {"little": latency_tolerance, "event": simulate}
