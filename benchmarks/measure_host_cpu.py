"""Measure this machine's roofline (achievable FLOP/s and DRAM bandwidth) into ``host_cpu.yaml``.

    python benchmarks/measure_host_cpu.py [-o host_cpu.yaml] [--quick]

* compute: NumPy (BLAS) matmul, fp32 and fp64, square sizes 256..2048, best of several repeats;
  the roof is the best rate seen (a MAC = 2 FLOPs, as everywhere in codesign);
* bandwidth: STREAM-style copy (2 x bytes) and triad ``a = b + s*c`` (3 x bytes; NumPy runs it as
  two passes, so 5 x bytes actually move: we count what moves) on arrays far larger than the
  last-level cache; the roof is the best of the two;
* then checks the roofline's prediction against a measurement for one memory-bound and one
  compute-bound kernel and prints the ratios.

The YAML is ``family: cpu`` in the schema of ``codesign/hwmodels/gpu.py`` (``--hw host_cpu.yaml``).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up (page faults, BLAS thread pool)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_flops_per_s(dtype: str, sizes: tuple[int, ...], repeats: int) -> dict[int, float]:
    rng = np.random.default_rng(0)
    rates = {}
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        out = np.empty((n, n), dtype=dtype)
        seconds = _best_seconds(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), repeats)
        rates[n] = 2 * n**3 / seconds
    return rates


def bandwidth_bytes_per_s(elements: int, repeats: int) -> dict[str, float]:
    b = np.full(elements, 1.0, dtype=np.float64)
    c = np.full(elements, 2.0, dtype=np.float64)
    a = np.empty_like(b)
    nbytes = b.nbytes

    def triad() -> None:
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)

    return {
        "copy": 2 * nbytes / _best_seconds(lambda: np.copyto(a, b), repeats),
        "triad": 5 * nbytes / _best_seconds(triad, repeats),
    }


def _cache_kib() -> dict[str, int]:
    """Data/unified cache sizes of cpu0 from sysfs (Linux), e.g. {'L2': 1024, 'L3': 32768}."""
    caches: dict[str, int] = {}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
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
    return caches


def _clock_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("cpu mhz"):
                return round(float(line.split(":")[1]) / 1000, 3)
    except (OSError, ValueError):
        pass
    return 1.0


def host_yaml(fp32: float, fp64: float, bandwidth: float, details: dict[str, str]) -> str:
    cores = os.cpu_count() or 1
    caches = _cache_kib()
    levels = [f"  - {{name: DRAM, kind: dram, bandwidth_gbps: {bandwidth / 1e9:.2f}}}"]
    for name in ("L3", "L2"):
        if name in caches:
            per_core = name == "L2"
            levels.append(
                f"  - {{name: {name}, kind: cache, per_sm: {str(per_core).lower()}, "
                f"capacity_kib: {caches[name]}}}"
            )
    lines = [
        "# Measured by benchmarks/measure_host_cpu.py; a MAC = 2 FLOPs.",
        "family: cpu",
        f"name: {platform.node() or 'host'}-cpu",
        f'source: "measured {time.strftime("%Y-%m-%d")}, numpy {np.__version__}, '
        f'{platform.processor() or platform.machine()}"',
        f"cores: {cores}",
        f"clock_ghz: {_clock_ghz()}   # /proc/cpuinfo (only used for bytes/clk levels)",
        f"vector_tops: {{fp32: {fp32 / 1e12:.5f}, fp64: {fp64 / 1e12:.5f}}}",
        "memory:",
        *levels,
        "efficiency: {compute: 1.0, memory: 1.0}   # the roofs are already measured",
        "sources:",
        *(f'  {k}: "{v}"' for k, v in details.items()),
    ]
    return "\n".join(lines) + "\n"


def check_predictions(yaml_path: Path, repeats: int) -> list[tuple[str, float, float]]:
    """(kernel, predicted s, measured s) for a memory-bound add and a compute-bound GEMM."""
    from codesign.frontends.layers import gemm
    from codesign.hwmodels.gpu import load_gpu
    from codesign.ir.builder import CascadeBuilder
    from codesign.ir.dtypes import DType
    from codesign.ir.expr import BinaryOp
    from codesign.sim.roofline import analyze

    device = load_gpu(yaml_path)
    n = 1 << 24
    builder = CascadeBuilder("vadd")
    x = builder.tensor("x", (n,), DType.F32)
    y = builder.tensor("y", (n,), DType.F32)
    builder.binary("z", x, y, BinaryOp.ADD)
    vadd = analyze(builder.build(), device).totals.time_s
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    out = np.empty_like(a)
    measured_add = _best_seconds(lambda: np.add(a, b, out=out), repeats)

    m = 1024
    gemm_pred = analyze(gemm(m, m, m, DType.F32), device).totals.time_s
    ga = np.ones((m, m), np.float32)
    gout = np.empty_like(ga)
    measured_gemm = _best_seconds(lambda: np.matmul(ga, ga, out=gout), repeats)
    return [("add 16M f32", vadd, measured_add), ("gemm 1024 f32", gemm_pred, measured_gemm)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="host_cpu.yaml")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    sizes = (256, 1024) if args.quick else (256, 512, 1024, 2048)
    fp32 = matmul_flops_per_s("float32", sizes, repeats)
    fp64 = matmul_flops_per_s("float64", sizes, repeats)
    elements = (1 << 25) if args.quick else (1 << 26)  # 256 MiB / 512 MiB per array
    bw = bandwidth_bytes_per_s(elements, repeats)
    for n in sizes:
        print(
            f"matmul {n:5d}: fp32 {fp32[n] / 1e9:8.1f} GFLOP/s, fp64 {fp64[n] / 1e9:8.1f} GFLOP/s"
        )
    for name, value in bw.items():
        print(f"{name:6s} bandwidth: {value / 1e9:6.1f} GB/s ({elements * 8 >> 20} MiB arrays)")
    details = {
        "vector_tops": f"best numpy matmul over n in {list(sizes)}, {repeats} repeats",
        "memory": f"best of STREAM-style copy/triad on {elements * 8 >> 20} MiB float64 arrays; "
        "cache sizes from sysfs",
        "cores": "os.cpu_count()",
    }
    out = Path(args.out)
    out.write_text(host_yaml(max(fp32.values()), max(fp64.values()), max(bw.values()), details))
    print(f"wrote {out}")
    for name, predicted, measured in check_predictions(out, repeats):
        print(
            f"{name}: predicted {predicted * 1e3:.3f} ms, measured {measured * 1e3:.3f} ms, "
            f"measured/predicted {measured / predicted:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
