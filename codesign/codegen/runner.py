"""Run a compiled cascade: the stage loop shared by `CompiledCascade.run` and the exported
runner script.

This file is copied verbatim as ``run.py`` beside an exported library, so it imports only
NumPy and TVM (never codesign).  Usage of the exported copy::

    python run.py [--device cpu|cuda] [--bench N]

It loads ``manifest.json`` (stage order and buffer shapes), the library (``lib.so``), the
inputs and weights in ``inputs.npz``, runs every stage in order and, when ``expected.npz``
(the reference interpreter's outputs) is present, compares the outputs (rtol 1e-4) and exits 1
on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

RTOL = 1e-4
ATOL = 1e-5
# TVM's ThreadGroup affinity mode kSpecifyThreadShareAllCore: every worker may run on any of
# the given CPUs (not pinned one per core, so a core taken by another process stalls no worker)
SHARE_ALL_CORES = -3


def configure_threads(threads: int) -> int:
    """Run TVM's parallel loops on `threads` worker threads in the calling Python thread, over
    the CPUs this process may use; returns the count TVM now uses.

    TVM keeps one worker pool per calling thread, sized when first used: from
    ``TVM_NUM_THREADS`` / ``OMP_NUM_THREADS``, else ``hardware_concurrency() / 2`` on x86 (it
    assumes two hyper-threads per core), i.e. ONE worker on a 2-vCPU VM.  The pool is created
    by the first thread-count query or setting, or by the first parallel kernel when the
    default is above one worker (with one, kernels run inline and create none).  Called before
    the pool exists, this sizes it; afterwards it can only lower the count, so the result may
    be smaller than asked.
    """
    import tvm  # noqa: F401, PLC0415 - registers the runtime functions
    import tvm_ffi  # noqa: PLC0415

    pinnable = hasattr(os, "sched_getaffinity")
    allowed = sorted(os.sched_getaffinity(0)) if pinnable else [0]
    # TVM sizes a new pool from the length of this list: one entry per thread
    cpus = [str(allowed[i % len(allowed)]) for i in range(threads)]
    tvm_ffi.get_global_func("runtime.config_threadpool")(SHARE_ALL_CORES, threads, cpus)
    if pinnable:
        # TVM also pins the calling thread to the listed CPUs: with one thread, to the first
        # CPU -- for good, and every thread created later (a later 2-worker pool's kernels,
        # onnxruntime's and torch's workers) inherits that mask.  Give it back its CPUs.
        os.sched_setaffinity(0, allowed)
    return int(tvm_ffi.get_global_func("runtime.NumThreads")())


def run_stages(
    module: Any, manifest: Mapping[str, Any], values: Mapping[str, np.ndarray], device: Any
) -> dict[str, np.ndarray]:
    """Run every stage of `manifest` on `module`; `values` holds inputs and weights by name.

    Returns the outputs (by name) as NumPy arrays.  `module` is a TVM module or executable and
    `device` a TVM device (typed loosely because this file may not import codesign).
    """
    tensors = allocate(manifest, values, device)
    for stage in manifest["stages"]:
        args = [tensors[name] for name in stage["inputs"]] + [tensors[stage["output"]]]
        module[stage["symbol"]](*args)
    return {name: tensors[name].numpy() for name in manifest["outputs"]}


def allocate(
    manifest: Mapping[str, Any], values: Mapping[str, np.ndarray], device: Any
) -> dict[str, Any]:
    """TVM tensors for every buffer: given values copied in, the rest uninitialised."""
    import tvm  # noqa: PLC0415

    tensors: dict[str, Any] = {}
    for buf in manifest["buffers"]:
        name, shape, dtype = buf["name"], tuple(buf["shape"]), buf["dtype"]
        packed = buf.get("packed_from")
        if packed is not None:  # a weight in panel layout, packed once here
            source = np.asarray(values[packed["buffer"]], dtype=dtype)
            array = pack_panels(source, int(packed["dim"]), int(packed["tile"]))
            tensors[name] = tvm.runtime.tensor(array, device)
        elif name in values:
            array = np.ascontiguousarray(np.asarray(values[name], dtype=dtype).reshape(shape))
            tensors[name] = tvm.runtime.tensor(array, device)
        else:
            tensors[name] = tvm.runtime.empty(shape, dtype, device)
    return tensors


def pack_panels(array: np.ndarray, dim: int, tile: int) -> np.ndarray:
    """`array` re-laid out in panels: dimension `dim` split into ``(n // tile, tile)``, the
    outer part first and the inner part last, i.e. ``out[i // tile, ..., i % tile] =
    array[..., i, ...]`` (the layout of `cpu_schedule`'s pre-packed weights)."""
    shape = array.shape
    split = array.reshape(*shape[:dim], shape[dim] // tile, tile, *shape[dim + 1 :])
    return np.ascontiguousarray(np.moveaxis(np.moveaxis(split, dim, 0), dim + 1, -1))


def time_stages(
    module: Any,
    manifest: Mapping[str, Any],
    values: Mapping[str, np.ndarray],
    device: Any,
    repeat: int,
    number: int = 1,
) -> dict[str, list[float]]:
    """Seconds per run of each stage (by symbol), `repeat` measurements of `number` runs each.

    Stages run once in order first so that every intermediate holds its real values.
    """
    tensors = allocate(manifest, values, device)
    times: dict[str, list[float]] = {}
    for stage in manifest["stages"]:
        args = [tensors[name] for name in stage["inputs"]] + [tensors[stage["output"]]]
        module[stage["symbol"]](*args)
        evaluator = module.time_evaluator(stage["symbol"], device, number=number, repeat=repeat)
        times[stage["symbol"]] = [float(t) for t in evaluator(*args).results]
    return times


def cuda_device() -> Any:
    """TVM's CUDA device 0, with what loading a CUDA build needs: the CUDA runtime sidecar
    library (a runtime-only TVM, ``TVM_USE_RUNTIME_LIB=1``, does not load it) and a CUDA
    source compiler.  A build keeps CUDA source, compiled for the GPU at hand when loaded: with
    nvcc on PATH to a fatbin for the device's arch, else by TVM's own callback (NVRTC through
    cuda-bindings).  Check ``.exist`` on the result."""
    import shutil  # noqa: PLC0415

    import tvm  # noqa: PLC0415
    import tvm_ffi  # noqa: PLC0415
    from tvm.base import _LOADED_LIBS  # noqa: PLC0415
    from tvm_ffi.libinfo import load_lib_ctypes  # noqa: PLC0415

    if "tvm_runtime_cuda" not in _LOADED_LIBS:
        lib_dir = Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
        try:
            _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
                package="tvm", target_name="tvm_runtime_cuda", extra_lib_paths=[lib_dir],
                mode="RTLD_LOCAL",
            )  # fmt: skip
        except OSError:  # no CUDA driver (libcuda.so.1): `.exist` is False
            pass
    device = tvm.cuda(0)
    if not device.exist:
        return device
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        import tvm.support.nvcc  # noqa: F401, PLC0415 - TVM's NVRTC callback (full install)

        return device
    arch = "sm_" + device.compute_version.replace(".", "")

    def compile_source(code: str) -> bytes:
        # our own nvcc call: TVM's helper needs the compiler library, absent when runtime-only
        with tempfile.TemporaryDirectory(prefix="cs_cuda_") as tmp:
            src, out = Path(tmp) / "kernels.cu", Path(tmp) / "kernels.fatbin"
            src.write_text(code)
            cmd = [nvcc, "--fatbin", "-O3", f"-arch={arch}", "-o", str(out), str(src)]
            subprocess.run(cmd, check=True, capture_output=True)
            return out.read_bytes()

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", compile_source, override=True)
    return device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an exported codesign cascade with TVM.")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--bench", type=int, default=0, help="time each kernel N times")
    parser.add_argument(
        "--threads", type=int, default=None, help="TVM worker threads (default: all allowed CPUs)"
    )
    args = parser.parse_args(argv)
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    threads = allowed if args.threads is None else args.threads
    if threads < 1:
        print(f"--threads {threads}: must be at least 1", file=sys.stderr)
        return 2

    import tvm  # noqa: PLC0415

    manifest = json.loads((args.dir / "manifest.json").read_text())
    kind = args.device or ("cuda" if manifest["target"] == "cuda" else "cpu")
    device = cuda_device() if kind == "cuda" else tvm.cpu(0)
    if not device.exist:
        print(f"no {kind} device on this machine", file=sys.stderr)
        return 2
    if kind == "cpu":
        print(f"TVM worker threads: {configure_threads(threads)}")
    module = tvm.runtime.load_module(str(args.dir / manifest["library"]))
    with np.load(args.dir / "inputs.npz") as data:
        values = {k: data[k] for k in data.files}
    outputs = run_stages(module, manifest, values, device)
    status = 0
    expected_path = args.dir / "expected.npz"
    for name, value in outputs.items():
        line = f"{name}: shape {value.shape} {value.dtype}"
        if expected_path.exists():
            with np.load(expected_path) as expected:
                ref = expected[name]
            ok = np.allclose(value, ref, rtol=RTOL, atol=ATOL, equal_nan=True)
            err = float(np.max(np.abs(value.astype(np.float64) - ref), initial=0.0))
            line += f"  max |err| {err:.3g}  {'ok' if ok else 'MISMATCH'}"
            status = status or (0 if ok else 1)
        print(line)
    if args.bench:
        for symbol, runs in time_stages(module, manifest, values, device, args.bench).items():
            print(f"{symbol}: median {np.median(runs) * 1e6:.1f} us")
    return status


if __name__ == "__main__":
    sys.exit(main())
