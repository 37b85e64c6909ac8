"""A model built unfused and fused, each run back to back as an inference runs it (every kernel
once per inference, on the previous kernel's output), alternated in rounds.

    nice -n 10 python benchmarks/bench_fused_back_to_back.py [--model examples/models/cnn.onnx]
        [--passes none fuse "fuse{buffer_kib=2048}"] [--threads 2] [--rounds 3]

``codesign bench`` times each kernel alone (`codesign.codegen.tvm.benchmark`), its inputs hot in
cache from the previous repetition, and sums the medians; a fused kernel instead streams its
whole chain on every call.  This script times the chain as a whole, so both builds pay the same
cache traffic (the Python call per kernel, about a microsecond, counts too).  Median of
`--samples` samples of `--batch` inferences each, after a warm-up.  Timings, never test
assertions; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from codesign.codegen import runner
    from codesign.codegen.tvm import compile_cascade, use_threads
    from codesign.frontends import load_model
    from codesign.ir.inputs import sample_inputs
    from codesign.passes import parse_pipeline, run_pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "examples" / "models" / "cnn.onnx"))
    parser.add_argument("--passes", nargs="+", default=["none", "fuse", "fuse{buffer_kib=2048}"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()

    use_threads(args.threads)
    model = load_model(args.model)
    builds = {}
    for passes in args.passes:
        cascade = model if passes == "none" else run_pipeline(model, parse_pipeline(passes))[0]
        compiled = compile_cascade(cascade, threads=args.threads)
        manifest = compiled.manifest()
        values = compiled.values(sample_inputs(cascade, seed=0))
        tensors = runner.allocate(manifest, values, compiled.device())
        builds[passes] = [
            (
                compiled.executable.mod[stage["symbol"]],
                [tensors[n] for n in stage["inputs"]] + [tensors[stage["output"]]],
            )
            for stage in manifest["stages"]
        ]
    print(f"load average before: {os.getloadavg()[0]:.2f}; threads {args.threads}")
    for round_ in range(1, args.rounds + 1):
        for passes, calls in builds.items():
            print(
                f"round {round_} {passes:24s} kernels {len(calls):3d} "
                f"back to back {_median_s(calls, args.samples, args.batch) * 1e6:8.1f} µs"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _median_s(calls: list, samples: int, batch: int) -> float:
    def inference() -> None:
        for func, func_args in calls:
            func(*func_args)

    for _ in range(batch):  # warm-up
        inference()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(batch):
            inference()
        times.append((time.perf_counter() - start) / batch)
    return float(np.median(times))


if __name__ == "__main__":
    main()
