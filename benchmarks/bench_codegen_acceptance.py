"""Issue-15 acceptance on this host, every ratio measured in one run: CPU GEMMs and the bundled
models, TVM (default schedule and tuned) vs the host roofline and onnxruntime.

    nice -n 10 python benchmarks/bench_codegen_acceptance.py [--sizes 512 1024 2048]
        [--models cnn mlp] [--tune 16] [--tuning-dir DIR] [--hw host_cpu.yaml] [--threads N]
        [--json out.json]

* GEMM n^3 (fp32, ``A[m,k] @ B[k,n]``): TVM untuned, TVM tuned (MetaSchedule, ``--tune``
  trials, then per kernel the faster of tuned and default), and onnxruntime ``MatMul`` on the
  same inputs, interleaved (`--rounds` rounds; each contender's time is the median of all its
  runs).  Roofline: ``codesign.sim.roofline.analyze`` on the host device.
* Bundled models: ``codesign bench`` (`codesign.codegen.compare.bench_model`): per kernel
  measured/predicted, whole model vs onnxruntime and torch eager.
* Checks printed at the end: tuned within 2x of the roofline and within 1.5x of onnxruntime,
  untuned within 4x of the roofline (GEMMs and the CNN); bench median measured/predicted <= 2
  after tuning (bundled models); numerics equal the interpreter (rtol 1e-4).

Timings, never test assertions: on a shared machine they move from run to run; the load
average before and after is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from codesign.codegen.compare import TUNED, UNTUNED, BenchOptions, bench_model, result_dict
from codesign.codegen.schedules import ScheduleOptions
from codesign.codegen.tvm import benchmark, compile_cascade
from codesign.frontends import load_model
from codesign.frontends.layers import gemm
from codesign.hwmodels.gpu import Device, load_device
from codesign.hwmodels.host import measure_host
from codesign.ir.dtypes import DType
from codesign.ir.inputs import sample_inputs
from codesign.ir.interpreter import interpret
from codesign.sim.roofline import analyze

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 1e-5


def _ort_matmul(n: int, b: np.ndarray, threads: int):  # noqa: ANN202 - an onnxruntime session
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"])],
        f"gemm{n}",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    return ort.InferenceSession(
        model.SerializeToString(), session_options, providers=["CPUExecutionProvider"]
    )


def bench_gemm(n: int, device: Device, args: argparse.Namespace) -> dict[str, object]:
    cascade = gemm(n, n, n, DType.F32)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    builds = {UNTUNED: compile_cascade(cascade, "llvm", "default", threads=args.threads)}
    if args.tune > 0:
        work = Path(args.tuning_dir) / f"gemm{n}"
        options = ScheduleOptions(trials=args.tune, work_dir=work)
        builds[TUNED] = compile_cascade(
            cascade, "llvm", "metaschedule", options=options, threads=args.threads
        )
    ref = a.astype(np.float64) @ b.astype(np.float64)
    errors = {
        v: float(np.max(np.abs(c.run({"A": a, "B": b})["Y"] - ref))) for v, c in builds.items()
    }
    session = _ort_matmul(n, b, args.threads)
    runs: dict[str, list[float]] = {v: [] for v in builds} | {"onnxruntime": []}
    repeat = max(2, args.repeat if n < 2048 else args.repeat // 2)
    for _ in range(args.rounds):
        for v, c in builds.items():
            runs[v].extend(benchmark(c, {"A": a, "B": b}, repeat=repeat)[0].runs_s)
        session.run(None, {"A": a})
        for _ in range(repeat):
            t0 = time.perf_counter()
            session.run(None, {"A": a})
            runs["onnxruntime"].append(time.perf_counter() - t0)
    medians = {k: statistics.median(r) for k, r in runs.items()}
    predicted = analyze(cascade, device).totals.time_s
    scale = float(np.max(np.abs(ref)))
    return {
        "name": f"gemm {n}^3",
        "predicted_s": predicted,
        "median_s": medians,
        "max_abs_error": errors,
        "numerics_ok": all(e <= ATOL + RTOL * scale for e in errors.values()),
    }


def bench_bundled(name: str, device: Device, args: argparse.Namespace) -> dict[str, object]:
    path = ROOT / "examples" / "models" / f"{name}.onnx"
    cascade = load_model(str(path))
    options = BenchOptions(
        model_path=path, tune_trials=args.tune, tuning_dir=Path(args.tuning_dir) / name,
        repeat=args.repeat, rounds=args.rounds, threads=args.threads,
    )  # fmt: skip
    result = bench_model(cascade, device, options)
    inputs = sample_inputs(cascade, 0)
    ok = True
    for schedule, opts in (("default", None), ("metaschedule", ScheduleOptions(
            trials=args.tune, work_dir=Path(args.tuning_dir) / name))):  # fmt: skip
        if schedule == "metaschedule" and args.tune <= 0:
            continue
        compiled = compile_cascade(cascade, "llvm", schedule, options=opts, threads=args.threads)
        got, want = compiled.run(inputs), interpret(cascade, compiled.values(inputs))
        ok = ok and all(np.allclose(got[k], want[k], rtol=RTOL, atol=ATOL) for k in want)
    data = result_dict(result)
    model_s = dict(result.model_s)
    return {
        "name": name,
        "predicted_s": result.predicted_total_s,
        "median_s": {k: v for k, v in model_s.items() if v is not None},
        "median_ratio": data["median_ratio"],
        "numerics_ok": ok,
        "kernels": data["kernels"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048])
    parser.add_argument("--models", nargs="*", default=["cnn", "mlp"])
    parser.add_argument("--tune", type=int, default=16, help="MetaSchedule trials per build")
    parser.add_argument("--tuning-dir", default=None, help="tuning databases (reused)")
    parser.add_argument("--hw", help="family: cpu YAML (default: measure this host now)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="worker threads of TVM and onnxruntime (default: this process's "
                        "CPUs)")  # fmt: skip
    parser.add_argument("--json", help="write all figures here")
    args = parser.parse_args()
    args.tuning_dir = args.tuning_dir or str(Path(tempfile.gettempdir()) / "codesign_tuning")
    load_before = os.getloadavg()
    device = load_device(args.hw) if args.hw else measure_host()
    peaks = ", ".join(f"{p.value} {v / 1e9:.0f}" for p, v in device.vector_peaks)
    dram_gbps = (device.dram.bandwidth_bytes_per_s or 0.0) / 1e9
    print(f"host roofline: {peaks} GFLOP/s, DRAM {dram_gbps:.1f} GB/s")
    rows = [bench_gemm(n, device, args) for n in args.sizes]
    rows += [bench_bundled(name, device, args) for name in args.models]
    load_after = os.getloadavg()
    tuned = TUNED if args.tune > 0 else UNTUNED
    print(f"\n{'case':12s} {'roofline':>10s} {'tvm':>10s} {'tuned':>10s} {'ort':>10s} "
          f"{'tuned/roof':>10s} {'tuned/ort':>9s} {'tvm/roof':>9s} {'bench med':>9s} "
          "numerics")  # fmt: skip
    for r in rows:
        m, pred = r["median_s"], r["predicted_s"]
        med = r.get("median_ratio", {}).get(tuned) if "median_ratio" in r else None
        print(
            f"{r['name']:12s} {pred * 1e6:10.1f} {m[UNTUNED] * 1e6:10.1f} "
            f"{m[tuned] * 1e6:10.1f} {m['onnxruntime'] * 1e6:10.1f} {m[tuned] / pred:10.2f} "
            f"{m[tuned] / m['onnxruntime']:9.2f} {m[UNTUNED] / pred:9.2f} "
            f"{'-' if med is None else f'{med:.2f}':>9s} {'ok' if r['numerics_ok'] else 'FAIL'}"
        )
    print("(times in µs; tvm = default schedule, tuned = MetaSchedule "
          f"{args.tune} trials + best of tuned/default; load average before "
          f"{load_before[0]:.1f}, after {load_after[0]:.1f} on {os.cpu_count()} CPUs; "
          f"{args.threads} threads)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "load": [load_before, load_after]},
                                              indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
