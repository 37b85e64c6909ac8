"""Measure this machine's roofline: achievable FLOP/s and bandwidths, as a ``cpu`` Device.

    device = measure_host()                 # a few seconds; a frozen roofline Device
    text = host_yaml(measure(repeats=7))    # the same numbers as a ``family: cpu`` YAML

* compute: vectorised micro-kernels (``host_kernels.c``, compiled here with ``cc -O2
  -march=native``): register-resident FMA chains at fp32 and fp64, fp16 (native AVX512-FP16, or
  F16C conversion + fp32 FMA where that is what the ISA offers), int8 (VNNI ``vpdpbusd``, or
  AVX2 ``vpmaddubsw``); one core each, best of ``repeats``, times the cores.  So the roof is
  what the cores reach when they are not shared.  NumPy (BLAS) square matmuls are measured too
  and the fp32/fp64 roofs are the best of both.  Why not BLAS alone: a multi-threaded BLAS on a
  shared 2-core VM collapses when another tenant holds a core (a 2-thread sgemm of n=256 fell
  from 120 to 0.7 GFLOP/s here), so whichever precision ran in a quiet moment "won" -- which is
  how fp64 (53 GFLOP/s) once came out above fp32 (33); and this OpenBLAS takes the Zen 5 host
  for Haswell (AVX2 kernels), half its AVX-512 fp32 rate.  A MAC = 2 operations everywhere;
* bandwidth: STREAM-style copy (2 x the array bytes move) and triad ``a = b + s*c`` (NumPy runs
  it as two passes, so 5 x the array bytes move: we count what moves) on float64 arrays far
  larger than the last-level cache; the DRAM roof is the best of the two.  Per cache level, a
  vectorised read of a buffer half the level's size (one core; x cores for per-core levels and
  for L3, which every core reads at once).

The numbers are what this process could reach just now: on a loaded or shared machine they
vary from run to run (other tenants take cores and memory bandwidth), so a prediction checked
against them carries that noise.  Cache sizes come from Linux sysfs, the clock from
``/proc/cpuinfo`` (used only for bytes/clk levels); both are optional.
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import subprocess
import tempfile
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
    # from the vectorised micro-kernels, all cores (empty when no C compiler was found):
    vector_ops_per_s: tuple[tuple[str, float], ...] = ()  # (precision name, ops/s)
    cache_read_bytes_per_s: tuple[tuple[str, float], ...] = ()  # (cache level, bytes/s)
    kernels: str = ""  # how the micro-kernels were built (compiler, vector width)

    @property
    def fp32_flops_per_s(self) -> float:
        vector = dict(self.vector_ops_per_s).get("fp32", 0.0)
        return max(vector, *(rate for _, rate in self.matmul_fp32_flops_per_s))

    @property
    def fp64_flops_per_s(self) -> float:
        vector = dict(self.vector_ops_per_s).get("fp64", 0.0)
        return max(vector, *(rate for _, rate in self.matmul_fp64_flops_per_s))

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
    cores = _cores()
    caches = cache_kib()
    vector, reads, kernels = micro_kernel_rates(cores, caches, repeats)
    return HostMeasurement(
        name=f"{platform.node() or 'host'}-cpu",
        processor=platform.processor() or platform.machine(),
        date=time.strftime("%Y-%m-%d"),
        numpy_version=np.__version__,
        cores=cores,
        clock_ghz=clock_ghz(),
        cache_kib=caches,
        matmul_fp32_flops_per_s=matmul_flops_per_s("float32", sizes, repeats),
        matmul_fp64_flops_per_s=matmul_flops_per_s("float64", sizes, repeats),
        copy_bytes_per_s=copy,
        triad_bytes_per_s=triad,
        bandwidth_array_bytes=bandwidth_elements * 8,
        repeats=repeats,
        vector_ops_per_s=vector,
        cache_read_bytes_per_s=reads,
        kernels=kernels,
    )


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_KERNELS_C = Path(__file__).with_name("host_kernels.c")
# (precision name, C function); each returns the operations it did
_COMPUTE_KERNELS = (("fp32", "cs_fma_f32"), ("fp64", "cs_fma_f64"), ("fp16", "cs_fma_f16"),
                    ("int8", "cs_mac_i8"))  # fmt: skip
_COMPUTE_ITERS = 400_000  # about 1 ms per call at ~100 Gop/s


def micro_kernel_rates(
    cores: int, caches: tuple[tuple[str, int], ...], repeats: int
) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...], str]:
    """(precision, ops/s) and (cache level, read bytes/s) for all `cores`, and how the kernels
    were built; empty when no C compiler is on PATH (the roofs then come from NumPy)."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return (), (), "no C compiler on PATH: NumPy rates only"
    with tempfile.TemporaryDirectory(prefix="codesign_host_") as tmp:
        lib_path = Path(tmp) / "host_kernels.so"
        cmd = [compiler, "-O2", "-march=native", "-shared", "-fPIC", "-o", str(lib_path),
               str(_KERNELS_C)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return (), (), f"{Path(compiler).name} failed on host_kernels.c: NumPy rates only"
        lib = ctypes.CDLL(str(lib_path))
        lib.cs_vector_bytes.restype = ctypes.c_int
        vector_bits = 8 * lib.cs_vector_bytes()
        compute = []
        for precision, name in _COMPUTE_KERNELS:
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_long]
            rate = _best_rate(partial(fn, _COMPUTE_ITERS), repeats)
            if rate > 0:
                compute.append((precision, rate * cores))
        reads = []
        lib.cs_read.restype = ctypes.c_double
        lib.cs_read.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
        for level, kib in caches:
            nbytes = max(4096, (kib * 1024 // 2) // 4096 * 4096)  # half the level
            buf = np.ones(nbytes // 4, dtype=np.float32)
            passes = max(1, (64 << 20) // nbytes)  # about 64 MiB read per call
            rate = _best_rate(partial(lib.cs_read, buf.ctypes.data, nbytes, passes), repeats)
            reads.append((level, rate * cores))
        del lib
    how = f"{Path(compiler).name} -O2 -march=native, {vector_bits}-bit vectors, x{cores} cores"
    return tuple(compute), tuple(reads), how


def _best_rate(fn: Callable[[], float], repeats: int) -> float:
    """Best work/second of `repeats` calls of `fn` (which returns the work it did)."""
    fn()
    best = 0.0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        work = fn()
        seconds = time.perf_counter() - t0
        best = max(best, work / seconds if seconds > 0 else 0.0)
    return best


def host_yaml(m: HostMeasurement) -> str:
    """`m` as a ``family: cpu`` YAML (``codesign roofline --hw host_cpu.yaml``)."""
    caches = dict(m.cache_kib)
    reads = dict(m.cache_read_bytes_per_s)
    dram_gbps = m.bandwidth_bytes_per_s / 1e9
    levels = [f"  - {{name: DRAM, kind: dram, bandwidth_gbps: {dram_gbps:.2f}}}"]
    for name in ("L3", "L2", "L1"):
        if name not in caches or (name == "L1" and name not in reads):
            continue
        per_core = name != "L3"  # L1/L2 per core, L3 shared
        level = f"  - {{name: {name}, kind: cache, per_sm: {str(per_core).lower()}, " + (
            f"capacity_kib: {caches[name]}"
        )
        if name in reads and per_core:  # a per-core level takes bytes/clk per core
            per_clk = reads[name] / m.cores / (m.clock_ghz * 1e9)
            level += f", bandwidth_bytes_per_clk: {per_clk:.2f}"
        elif name in reads:
            level += f", bandwidth_gbps: {reads[name] / 1e9:.2f}"
        levels.append(level + "}")
    sizes = [n for n, _ in m.matmul_fp32_flops_per_s]
    vector = dict(m.vector_ops_per_s)
    tops = {"fp32": m.fp32_flops_per_s, "fp64": m.fp64_flops_per_s}
    tops |= {p: vector[p] for p in ("fp16", "int8") if p in vector}
    kernels = f"vectorised micro-kernels ({m.kernels}) and " if vector else ""
    details = {
        "vector_tops": f"best of {kernels}numpy matmul over n in {sizes}, {m.repeats} repeats",
        "memory": f"best of STREAM-style copy/triad on {m.bandwidth_array_bytes >> 20} MiB "
        "float64 arrays; cache sizes from sysfs; cache bandwidths from a vectorised read of "
        "half each level, x cores",
        "cores": "CPUs this process may run on (sched_getaffinity)",
    }
    lines = [
        "# Measured by codesign.hwmodels.host (a MAC = 2 FLOPs); varies on a loaded machine.",
        "family: cpu",
        f"name: {m.name}",
        f'source: "measured {m.date}, numpy {m.numpy_version}, {m.processor}"',
        f"cores: {m.cores}",
        f"clock_ghz: {m.clock_ghz}   # /proc/cpuinfo (only used for bytes/clk levels)",
        "vector_tops: {" + ", ".join(f"{p}: {v / 1e12:.5f}" for p, v in tops.items()) + "}",
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
