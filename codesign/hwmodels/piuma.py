"""PIUMA-like graph fabric (Intel PIUMA, Aananthakrishnan et al., arXiv 2010.06277).

``family: piuma`` YAML, validated once into a frozen `PiumaArch`.  The fabric is a set of cores,
each with multi-threaded pipelines (MTPs: in-order, round-robin over their threads, one
instruction per cycle, a thread blocks on its outstanding memory request) and single-threaded
pipelines (STPs), a scratchpad (SPAD), small non-coherent caches, and offload engines (DMA,
memory-side atomics).  Memory is one global address space interleaved over the cores' memory
controllers at 8-byte granularity: a request to the issuing core's own controller pays the local
latency, one to another core's pays the remote latency plus network hops both ways.

Units are in the field names: cycles at ``clock_ghz``, bytes, GB/s (1e9 bytes per second).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from codesign.hwmodels.yamlio import input_error, load_validated

FAMILY = "piuma"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


# -- schema (validation only) -------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineSpec(_Strict):
    per_core: NonNegativeInt
    threads: PositiveInt = 1
    issue_per_cycle: PositiveFloat = 1.0  # instructions per cycle per pipeline


class MemorySpec(_Strict):
    access_bytes: PositiveInt = 8  # DRAM access granularity
    bandwidth_gbps_per_core: PositiveFloat
    local_latency_cycles: PositiveFloat
    remote_latency_cycles: PositiveFloat  # at the far controller, before network hops
    scratchpad_kib_per_core: PositiveFloat
    scratchpad_latency_cycles: PositiveFloat
    cache_kib_per_pipeline: NonNegativeFloat = 0.0  # non-coherent data cache


class NetworkSpec(_Strict):
    average_hops: NonNegativeFloat
    hop_latency_cycles: NonNegativeFloat
    barrier_cycles: NonNegativeFloat = 0.0  # collective-engine barrier across all cores


class OffloadSpec(_Strict):
    atomics_per_cycle_per_core: PositiveFloat  # memory-side atomic units (DRAM atomics)
    atomic_latency_cycles: PositiveFloat  # read-modify-write at the memory side
    scratchpad_atomics_per_cycle_per_core: PositiveFloat
    dma_bytes_per_cycle_per_core: PositiveFloat


class PiumaSpec(_Strict):
    family: Literal["piuma"]
    name: str
    clock_ghz: PositiveFloat
    cores: PositiveInt
    mtp: PipelineSpec
    stp: PipelineSpec
    memory: MemorySpec
    network: NetworkSpec
    offload: OffloadSpec
    sources: dict[str, str] = Field(default_factory=dict)  # field path -> where the number is from


# -- frozen model -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PiumaArch:
    """A PIUMA-like fabric.  All latencies in cycles, bandwidths in bytes per cycle (whole chip
    unless the name says ``_per_core``)."""

    name: str
    clock_ghz: float
    cores: int
    mtp_per_core: int
    threads_per_mtp: int
    mtp_issue_per_cycle: float
    stp_per_core: int
    stp_issue_per_cycle: float
    access_bytes: int
    dram_bytes_per_cycle_per_core: float
    local_latency_cycles: float
    remote_latency_cycles: float  # far controller only; see `remote_round_trip_cycles`
    scratchpad_bytes_per_core: int
    scratchpad_latency_cycles: float
    cache_bytes_per_pipeline: int
    average_hops: float
    hop_latency_cycles: float
    barrier_cycles: float
    atomics_per_cycle_per_core: float
    atomic_latency_cycles: float
    spad_atomics_per_cycle_per_core: float
    dma_bytes_per_cycle_per_core: float
    source_path: str = ""

    @property
    def threads_per_core(self) -> int:
        """Hardware threads that can hold a memory request in flight (MTP threads + STPs)."""
        return self.mtp_per_core * self.threads_per_mtp + self.stp_per_core

    @property
    def threads(self) -> int:
        return self.cores * self.threads_per_core

    @property
    def issue_per_cycle(self) -> float:
        """Instructions per cycle of the whole fabric."""
        per_core = self.mtp_per_core * self.mtp_issue_per_cycle
        per_core += self.stp_per_core * self.stp_issue_per_cycle
        return self.cores * per_core

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.cores * self.dram_bytes_per_cycle_per_core

    @property
    def dram_bandwidth_gbps(self) -> float:
        return self.dram_bytes_per_cycle * self.clock_ghz

    @property
    def atomics_per_cycle(self) -> float:
        return self.cores * self.atomics_per_cycle_per_core

    @property
    def remote_round_trip_cycles(self) -> float:
        """Latency of a request to another core's memory: far controller plus hops both ways."""
        return self.remote_latency_cycles + 2 * self.average_hops * self.hop_latency_cycles

    @property
    def remote_fraction_uniform(self) -> float:
        """Share of uniformly spread addresses that live on another core's controller."""
        return (self.cores - 1) / self.cores

    def cycles_to_seconds(self, cycles: float) -> float:
        return cycles / (self.clock_ghz * 1e9)

    def with_threads_per_mtp(self, threads: int) -> PiumaArch:
        """The same fabric with a different number of threads per MTP (for sweeps)."""
        return replace(self, threads_per_mtp=threads)


def _check(path: Path, spec: PiumaSpec) -> None:
    if spec.mtp.per_core + spec.stp.per_core == 0:
        raise input_error(path, ("mtp", "per_core"), "a core needs at least one pipeline")
    if spec.stp.threads != 1:
        raise input_error(path, ("stp", "threads"), "a single-threaded pipeline has 1 thread")
    if spec.memory.remote_latency_cycles < spec.memory.local_latency_cycles:
        raise input_error(
            path, ("memory", "remote_latency_cycles"), "must be at least local_latency_cycles"
        )


def load_piuma(path: str | Path) -> PiumaArch:
    """Validate a ``family: piuma`` YAML into a `PiumaArch` (one-line InputError on failure)."""
    path = Path(path)
    return piuma_from_spec(load_validated(path, PiumaSpec), path)


def piuma_from_spec(spec: PiumaSpec, path: Path) -> PiumaArch:
    """The `PiumaArch` of a validated card at ``path``."""
    _check(path, spec)
    mem, net, off = spec.memory, spec.network, spec.offload
    return PiumaArch(
        name=spec.name,
        clock_ghz=spec.clock_ghz,
        cores=spec.cores,
        mtp_per_core=spec.mtp.per_core,
        threads_per_mtp=spec.mtp.threads,
        mtp_issue_per_cycle=spec.mtp.issue_per_cycle,
        stp_per_core=spec.stp.per_core,
        stp_issue_per_cycle=spec.stp.issue_per_cycle,
        access_bytes=mem.access_bytes,
        # GB/s over Gcycles/s is bytes per cycle.
        dram_bytes_per_cycle_per_core=mem.bandwidth_gbps_per_core / spec.clock_ghz,
        local_latency_cycles=mem.local_latency_cycles,
        remote_latency_cycles=mem.remote_latency_cycles,
        scratchpad_bytes_per_core=int(mem.scratchpad_kib_per_core * 1024),
        scratchpad_latency_cycles=mem.scratchpad_latency_cycles,
        cache_bytes_per_pipeline=int(mem.cache_kib_per_pipeline * 1024),
        average_hops=net.average_hops,
        hop_latency_cycles=net.hop_latency_cycles,
        barrier_cycles=net.barrier_cycles,
        atomics_per_cycle_per_core=off.atomics_per_cycle_per_core,
        atomic_latency_cycles=off.atomic_latency_cycles,
        spad_atomics_per_cycle_per_core=off.scratchpad_atomics_per_cycle_per_core,
        dma_bytes_per_cycle_per_core=off.dma_bytes_per_cycle_per_core,
        source_path=str(path),
    )
