"""Measure this machine's roofline (achievable FLOP/s and DRAM bandwidth) into ``host_cpu.yaml``.

    python benchmarks/measure_host_cpu.py [-o host_cpu.yaml] [--quick]

A thin script over ``codesign.hwmodels.host`` (vectorised fp32/fp64/fp16/int8 micro-kernels,
NumPy matmul FLOP/s, STREAM-style copy/triad bandwidth, a vectorised read per cache level; see
its docstring for why the BLAS rates alone misled: fp64 once above fp32), plus a check of the
roofline's prediction against a measurement for one memory-bound and one compute-bound kernel.
The YAML is ``family: cpu`` in the schema of ``codesign/hwmodels/gpu.py`` (``--hw
host_cpu.yaml``).  Results vary on a loaded machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codesign.hwmodels.gpu import Device, load_gpu
from codesign.hwmodels.host import best_seconds, host_yaml, measure


def check_predictions(device: Device, repeats: int) -> list[tuple[str, float, float]]:
    """(kernel, predicted s, measured s) for a memory-bound add and a compute-bound GEMM."""
    from codesign.frontends.layers import gemm
    from codesign.ir.builder import CascadeBuilder
    from codesign.ir.dtypes import DType
    from codesign.ir.expr import BinaryOp
    from codesign.sim.roofline import analyze

    n = 1 << 24
    builder = CascadeBuilder("vadd")
    x = builder.tensor("x", (n,), DType.F32)
    y = builder.tensor("y", (n,), DType.F32)
    builder.binary("z", x, y, BinaryOp.ADD)
    vadd = analyze(builder.build(), device).totals.time_s
    a, b = np.ones(n, np.float32), np.ones(n, np.float32)
    out = np.empty_like(a)
    measured_add = best_seconds(lambda: np.add(a, b, out=out), repeats)

    m = 1024
    gemm_pred = analyze(gemm(m, m, m, DType.F32), device).totals.time_s
    ga = np.ones((m, m), np.float32)
    gout = np.empty_like(ga)
    measured_gemm = best_seconds(lambda: np.matmul(ga, ga, out=gout), repeats)
    return [("add 16M f32", vadd, measured_add), ("gemm 1024 f32", gemm_pred, measured_gemm)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="host_cpu.yaml")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    sizes = (256, 1024) if args.quick else (256, 512, 1024, 2048)
    m = measure(repeats, sizes, bandwidth_elements=(1 << 24) if args.quick else (1 << 26))
    print(f"micro-kernels: {m.kernels or 'none'}")
    for precision, rate in m.vector_ops_per_s:
        print(f"vector {precision:5s} {rate / 1e9:8.1f} Gop/s (all cores)")
    for level, rate in m.cache_read_bytes_per_s:
        print(f"read {level:3s} {rate / 1e9:8.1f} GB/s (all cores)")
    fp64 = dict(m.matmul_fp64_flops_per_s)
    for n, rate in m.matmul_fp32_flops_per_s:
        print(f"numpy matmul {n:5d}: fp32 {rate / 1e9:8.1f} GFLOP/s, fp64 {fp64[n] / 1e9:8.1f} "
              "GFLOP/s (BLAS, all threads)")  # fmt: skip
    fp32, fp64_roof = m.fp32_flops_per_s / 1e9, m.fp64_flops_per_s / 1e9
    print(f"roofs: fp32 {fp32:.1f}, fp64 {fp64_roof:.1f} GFLOP/s")
    mib = m.bandwidth_array_bytes >> 20
    for name, value in (("copy", m.copy_bytes_per_s), ("triad", m.triad_bytes_per_s)):
        print(f"{name:6s} bandwidth: {value / 1e9:6.1f} GB/s ({mib} MiB arrays)")
    out = Path(args.out)
    out.write_text(host_yaml(m))
    print(f"wrote {out}")
    for name, predicted, measured in check_predictions(load_gpu(out), repeats):
        print(
            f"{name}: predicted {predicted * 1e3:.3f} ms, measured {measured * 1e3:.3f} ms, "
            f"measured/predicted {measured / predicted:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
