"""Measure this machine's roofline: achievable FLOP/s and DRAM bandwidth, as a ``cpu`` Device.

    device = measure_host()                 # a few seconds; a frozen roofline Device
    text = host_yaml(measure(repeats=7))    # the same numbers as a ``family: cpu`` YAML

* compute: NumPy (BLAS) square matmul at fp32 and fp64 for a couple of sizes, best of
  ``repeats``; the roof is the best rate seen (a MAC = 2 FLOPs, as everywhere in codesign).
  BLAS runs with as many threads as it is given by default (all the cores);
* bandwidth: STREAM-style copy (2 x the array bytes move) and triad ``a = b + s*c`` (NumPy runs
  it as two passes, so 5 x the array bytes move: we count what moves) on float64 arrays far
  larger than the last-level cache; the DRAM roof is the best of the two.

The numbers are what this process could reach just now: on a loaded or shared machine they
vary from run to run (other tenants take cores and memory bandwidth), so a prediction checked
against them carries that noise.  Cache sizes come from Linux sysfs, the clock from
``/proc/cpuinfo`` (used only for bytes/clk levels); both are optional.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml

from codesign.hwmodels.gpu import Device, DeviceSpec, device_from_spec

DEFAULT_SIZES = (256, 1024)
DEFAULT_BANDWIDTH_ELEMENTS = 1 << 24  # 128 MiB per float64 array, 3 arrays
_SYSFS_CACHE = Path("/sys/devices/system/cpu/cpu0/cache")
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True, slots=True)
class HostMeasurement:
    """Best rates seen on this machine; ``*_flops_per_s`` are (matrix size n, FLOP/s) pairs."""

    name: str
    processor: str
    date: str
    numpy_version: str
    cores: int
    clock_ghz: float
    cache_kib: tuple[tuple[str, int], ...]  # ("L2", 1024), ("L3", 32768): per cpu0 instance
    matmul_fp32_flops_per_s: tuple[tuple[int, float], ...]
    matmul_fp64_flops_per_s: tuple[tuple[int, float], ...]
    copy_bytes_per_s: float
    triad_bytes_per_s: float
    bandwidth_array_bytes: int
    repeats: int

    @property
    def fp32_flops_per_s(self) -> float:
        return max(rate for _, rate in self.matmul_fp32_flops_per_s)

    @property
    def fp64_flops_per_s(self) -> float:
        return max(rate for _, rate in self.matmul_fp64_flops_per_s)

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return max(self.copy_bytes_per_s, self.triad_bytes_per_s)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` calls of `fn` in seconds, after one warm-up call."""
    fn()  # page faults, BLAS thread pool start-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_flops_per_s(
    dtype: str, sizes: tuple[int, ...], repeats: int
) -> tuple[tuple[int, float], ...]:
    """(n, FLOP/s) of an n x n x n NumPy matmul in `dtype` for each n in `sizes`."""
    rng = np.random.default_rng(0)
    rates = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        out = np.empty((n, n), dtype=dtype)
        seconds = best_seconds(partial(np.matmul, a, b, out=out), repeats)
        rates.append((n, 2 * n**3 / seconds))
    return tuple(rates)


def stream_bytes_per_s(elements: int, repeats: int) -> tuple[float, float]:
    """(copy, triad) bandwidth in bytes/s on float64 arrays of `elements` elements."""
    b = np.full(elements, 1.0, dtype=np.float64)
    c = np.full(elements, 2.0, dtype=np.float64)
    a = np.empty_like(b)
    nbytes = b.nbytes

    def triad() -> None:
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)

    copy = 2 * nbytes / best_seconds(lambda: np.copyto(a, b), repeats)
    return copy, 5 * nbytes / best_seconds(triad, repeats)


def cache_kib(root: Path = _SYSFS_CACHE) -> tuple[tuple[str, int], ...]:
    """Data/unified cache sizes of cpu0 from sysfs, e.g. (("L1", 32), ("L2", 1024), ...)."""
    caches: dict[str, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = (index / "level").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction" or not size.endswith("K"):
            continue
        caches[f"L{level}"] = int(size[:-1])
    return tuple(sorted(caches.items()))


def clock_ghz(cpuinfo: Path = _CPUINFO) -> float:
    """The first ``cpu MHz`` of /proc/cpuinfo in GHz (1.0 when unknown)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                return round(float(line.split(":")[1]) / 1000, 3)
    except (OSError, ValueError, IndexError):
        pass
    return 1.0


def measure(
    repeats: int = 3,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    bandwidth_elements: int = DEFAULT_BANDWIDTH_ELEMENTS,
) -> HostMeasurement:
    """Run the micro-benchmarks (about 2 s with the defaults on a 2-core VM)."""
    copy, triad = stream_bytes_per_s(bandwidth_elements, repeats)
    return HostMeasurement(
        name=f"{platform.node() or 'host'}-cpu",
        processor=platform.processor() or platform.machine(),
        date=time.strftime("%Y-%m-%d"),
        numpy_version=np.__version__,
        cores=os.cpu_count() or 1,
        clock_ghz=clock_ghz(),
        cache_kib=cache_kib(),
        matmul_fp32_flops_per_s=matmul_flops_per_s("float32", sizes, repeats),
        matmul_fp64_flops_per_s=matmul_flops_per_s("float64", sizes, repeats),
        copy_bytes_per_s=copy,
        triad_bytes_per_s=triad,
        bandwidth_array_bytes=bandwidth_elements * 8,
        repeats=repeats,
    )


def host_yaml(m: HostMeasurement) -> str:
    """`m` as a ``family: cpu`` YAML (``codesign roofline --hw host_cpu.yaml``)."""
    caches = dict(m.cache_kib)
    dram_gbps = m.bandwidth_bytes_per_s / 1e9
    levels = [f"  - {{name: DRAM, kind: dram, bandwidth_gbps: {dram_gbps:.2f}}}"]
    for name in ("L3", "L2"):
        if name in caches:
            per_core = str(name == "L2").lower()  # L2 per core, L3 shared
            levels.append(
                f"  - {{name: {name}, kind: cache, per_sm: {per_core}, "
                f"capacity_kib: {caches[name]}}}"
            )
    sizes = [n for n, _ in m.matmul_fp32_flops_per_s]
    details = {
        "vector_tops": f"best numpy matmul over n in {sizes}, {m.repeats} repeats",
        "memory": f"best of STREAM-style copy/triad on {m.bandwidth_array_bytes >> 20} MiB "
        "float64 arrays; cache sizes from sysfs",
        "cores": "os.cpu_count()",
    }
    lines = [
        "# Measured by codesign.hwmodels.host (a MAC = 2 FLOPs); varies on a loaded machine.",
        "family: cpu",
        f"name: {m.name}",
        f'source: "measured {m.date}, numpy {m.numpy_version}, {m.processor}"',
        f"cores: {m.cores}",
        f"clock_ghz: {m.clock_ghz}   # /proc/cpuinfo (only used for bytes/clk levels)",
        f"vector_tops: {{fp32: {m.fp32_flops_per_s / 1e12:.5f}, "
        f"fp64: {m.fp64_flops_per_s / 1e12:.5f}}}",
        "memory:",
        *levels,
        "efficiency: {compute: 1.0, memory: 1.0}   # the roofs are already measured",
        "sources:",
        *(f'  {k}: "{v}"' for k, v in details.items()),
    ]
    return "\n".join(lines) + "\n"


def host_device(m: HostMeasurement) -> Device:
    """The roofline Device of `m`: exactly what loading ``host_yaml(m)`` gives."""
    return device_from_spec(DeviceSpec.model_validate(yaml.safe_load(host_yaml(m))), "measured")


def measure_host(repeats: int = 3, sizes: tuple[int, ...] = DEFAULT_SIZES) -> Device:
    """Measure this machine now (a few seconds) and return its ``cpu`` roofline Device."""
    return host_device(measure(repeats, sizes))
