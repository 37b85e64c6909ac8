"""Compile a Cascade to real kernels with Apache TVM (optional extra ``codesign[tvm]``).

    compiled = compile_cascade(cascade, target="llvm", schedule="default")
    outputs = compiled.run(inputs)            # == codesign.ir.interpret(cascade, inputs)
    times = benchmark(compiled, inputs)       # seconds per Einsum kernel
    compiled.export("out/")                   # lib.so + manifest.json + run.py + inputs.npz

Every Einsum is one PrimFunc (`codesign.codegen.te_lower`), all PrimFuncs are built into one
TVM module, and `run` calls them in cascade order on buffers it allocates, so each Einsum can
be timed alone and compared with a roofline prediction.  TVM is imported lazily; without it
every entry point raises `InputError`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codesign.atomic import staged, write_text
from codesign.codegen import runner
from codesign.codegen.groups import kernel_plan
from codesign.codegen.manifest import manifest
from codesign.codegen.schedules import SCHEDULES, ScheduleOptions, apply_schedule
from codesign.codegen.te_lower import LoweredCascade, lower_cascade
from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Role
from codesign.ir.inputs import sample_inputs
from codesign.ir.interpreter import interpret

if TYPE_CHECKING:
    from tvm.ir import IRModule
    from tvm.runtime import Executable
    from tvm.target import Target

TARGETS = ("llvm", "cuda")
LIBRARY_NAME = "lib.so"
# how TVMScript prints a parallel loop
PARALLEL_LOOP = "T.parallel("


@dataclass(frozen=True, slots=True)
class CompiledCascade:
    """A cascade built by TVM: one kernel (PrimFunc) per Einsum in `executable`; `scheduled`
    is the scheduled TensorIR module it was built from (for inspection)."""

    cascade: Cascade
    lowered: LoweredCascade
    scheduled: IRModule
    executable: Executable
    target: str  # "llvm" or "cuda"
    schedule: str
    cuda_arch: str
    threads: int | None = None  # TVM worker threads for run/benchmark; None: TVM's own count
    parallel: bool = True  # whether some kernel has a parallel loop (`has_parallel_loops`)

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.lowered.inputs

    @property
    def weight_names(self) -> tuple[str, ...]:
        return self.lowered.weights

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.lowered.outputs

    def manifest(self) -> dict[str, Any]:
        """JSON-ready description of stages and buffers, read by the runner."""
        return manifest(self.lowered, self.target, self.scheduled)

    def values(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Inputs plus weights (their `data` unless `inputs` overrides it), checked."""
        values: dict[str, np.ndarray] = {}
        for tensor in self.cascade.tensors:
            if tensor.role not in (Role.INPUT, Role.WEIGHT):
                continue
            value = inputs.get(tensor.name, tensor.data)
            if value is None:
                kind = "input" if tensor.role is Role.INPUT else "weight (no data)"
                raise InputError(f"no value given for {kind} {tensor.name}")
            value = np.asarray(value)
            if tuple(value.shape) != tensor.shape:
                raise InputError(
                    f"input {tensor.name}: shape {value.shape}, expected {tensor.shape}"
                )
            values[tensor.name] = value.astype(tensor.dtype.numpy, copy=False)
        return values

    def device(self):  # noqa: ANN201 - a tvm Device
        import tvm  # noqa: PLC0415

        if self.target == "cuda":
            device = runner.cuda_device()
            if not device.exist:
                raise InputError("no CUDA GPU on this machine: cannot run the cuda build")
            return device
        # a build without parallel loops runs on the calling thread whatever the pool's size:
        # leave the pool alone (resizing it has a cost, see `use_threads`)
        if self.threads is not None and self.parallel:
            use_threads(self.threads)
        return tvm.cpu(0)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for `inputs` (weights default to their data)."""
        return runner.run_stages(
            self.executable, self.manifest(), self.values(inputs), self.device()
        )

    def export(self, out_dir: str | Path, seed: int = 0) -> Path:
        """Write ``lib.so``, ``manifest.json``, ``run.py``, ``inputs.npz`` (seeded random
        inputs and the weights) and ``expected.npz`` (the interpreter's outputs); returns the
        directory.  ``python run.py`` there runs the library and checks it."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = self.values(sample_inputs(self.cascade, seed))
        # each file staged and renamed (codesign.atomic): a failure leaves no half-written file
        with staged(out / LIBRARY_NAME) as temporary:
            self.executable.export_library(str(temporary))
        info = self.manifest() | {"library": LIBRARY_NAME}
        write_text(out / "manifest.json", json.dumps(info, indent=1) + "\n")
        for name, arrays in (("inputs.npz", data), ("expected.npz", interpret(self.cascade, data))):
            with staged(out / name) as temporary:
                np.savez(temporary, allow_pickle=False, **arrays)
        with staged(out / "run.py") as temporary:
            shutil.copyfile(runner.__file__, temporary)
        return out


@dataclass(frozen=True, slots=True)
class KernelTime:
    """Measured time of one kernel; `einsum` is "" for a concat-assembly copy; `einsums` are
    all the Einsums the kernel computes (several for a fused group)."""

    symbol: str
    einsum: str
    output: str
    median_s: float
    runs_s: tuple[float, ...]
    einsums: tuple[str, ...] = ()


def host_target() -> Target:
    """LLVM for this host's CPU (its vector ISA: without ``mcpu`` LLVM emits baseline SSE2)
    with its core count (MetaSchedule sizes its search from it; the runtime's worker count
    is `use_threads`)."""
    import tvm  # noqa: PLC0415
    from tvm.target import codegen  # noqa: PLC0415

    spec = {"kind": "llvm", "mcpu": str(codegen.llvm_get_system_cpu()), "num-cores": allowed_cpus()}
    return tvm.target.Target(spec)


def allowed_cpus() -> int:
    """How many CPUs this process may run on (its affinity; cgroup quotas are not read)."""
    import os  # noqa: PLC0415

    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def has_parallel_loops(mod: IRModule) -> bool:
    """Whether some PrimFunc of `mod` has a ``parallel`` loop (a kernel TVM's worker pool
    runs; a module without one runs on the calling thread alone)."""
    # TVM 0.27's Python API exposes no TIR statement visitor: read the printed TensorIR
    return any(PARALLEL_LOOP in func.script() for _, func in mod.functions_items())


def use_threads(threads: int) -> None:
    """Run this thread's TVM kernels on `threads` workers (`runner.configure_threads`).

    Resizing the pool is not free: measured on the 2-vCPU host (2026-12-03), a 256^3 GEMM built
    for 2 threads ran 0.82-0.94x its one-thread build's speed when every timing alternated the
    pool between 1 and 2 workers, 1.75-1.87x when the pool kept 2 (the one-thread build has no
    parallel loop and runs on the calling thread either way; `CompiledCascade.device` then
    leaves the pool alone).

    TVM's own default on x86 is half the hardware threads (one on a 2-vCPU VM).  Its pool, one
    per calling thread, can only grow before it exists (see `runner.configure_threads`), so a
    count above an existing pool's size is an `InputError`.
    """
    if threads < 1:
        raise InputError(f"threads {threads}: must be at least 1")
    got = runner.configure_threads(threads)
    if got != threads:
        raise InputError(
            f"threads {threads}: TVM's worker pool in this thread already runs {got}; "
            "set the largest thread count first (or run in a fresh thread)"
        )


def _target(name: str, cuda_arch: str) -> Target:
    import tvm  # noqa: PLC0415

    if name == "llvm":
        return host_target()
    if name == "cuda":
        # 48 KiB: the static shared-memory limit of every arch since sm_50 (dlight asks)
        spec = {"kind": "cuda", "arch": cuda_arch, "max_shared_memory_per_block": 49152}
        return tvm.target.Target(spec, host="llvm")
    raise InputError(f"unknown TVM target {name!r} (known: {', '.join(TARGETS)})")


def compile_cascade(
    cascade: Cascade,
    target: str = "llvm",
    schedule: str = "default",
    out_dir: str | Path | None = None,
    options: ScheduleOptions | None = None,
    cuda_arch: str = "sm_80",
    groups: Sequence[Sequence[str]] | None = None,
    threads: int | None = None,
) -> CompiledCascade:
    """Lower, schedule and build `cascade` for `target` ("llvm" or "cuda").

    `schedule` is one of `SCHEDULES` (default, dlight, metaschedule).  `groups` lists the
    Einsums fused into one kernel each (names, see `codesign.codegen.groups`); None takes
    `kernel_plan`'s (the cascade's fused-group records, else `default_groups`), ``()``
    compiles one kernel per Einsum.  A "cuda" build holds
    the generated CUDA source (see `cuda_source`); it runs only where a GPU exists.  With
    `out_dir`, the build is also exported there (`CompiledCascade.export`).  `threads` is the
    number of TVM worker threads its CPU kernels run on (`use_threads` when they run, and
    here already for MetaSchedule, whose choice times kernels during the build); None keeps
    TVM's own count.
    """
    if target not in TARGETS:
        raise InputError(f"unknown TVM target {target!r} (known: {', '.join(TARGETS)})")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown TVM schedule {schedule!r} (known: {', '.join(SCHEDULES)})")
    if groups is None:
        groups = kernel_plan(cascade).groups
    if threads is not None and target == "llvm" and schedule == "metaschedule":
        use_threads(threads)  # its choice between tuned and default kernels times them here
    lowered = lower_cascade(cascade, groups)  # raises the install hint when TVM is missing
    import tvm  # noqa: PLC0415

    tvm_target = _target(target, cuda_arch)
    mod = tvm.IRModule({s.symbol: s.func for s in lowered.stages})
    options = options or ScheduleOptions()
    if threads is not None and options.threads is None:  # schedule for the count it runs on
        options = replace(options, threads=threads)
    mod = apply_schedule(schedule, mod, lowered, tvm_target, options)
    executable = tvm.compile(mod, target=tvm_target)
    if target == "cuda" and "cuda" not in [m.kind for m in executable.mod.imports]:
        raise InputError(f"cascade {cascade.name}: the cuda build holds no CUDA kernels")
    compiled = CompiledCascade(
        cascade, lowered, mod, executable, target, schedule, cuda_arch, threads,
        has_parallel_loops(mod),
    )  # fmt: skip
    if out_dir is not None:
        compiled.export(out_dir)
    return compiled


def benchmark(
    compiled: CompiledCascade, inputs: Mapping[str, np.ndarray], repeat: int = 10, number: int = 1
) -> tuple[KernelTime, ...]:
    """Time each kernel alone with TVM's time_evaluator (`repeat` measurements, each the mean
    of `number` runs), on the real intermediate values of `inputs`."""
    times = runner.time_stages(
        compiled.executable.mod,
        compiled.manifest(),
        compiled.values(inputs),
        compiled.device(),
        repeat=repeat,
        number=number,
    )
    return tuple(
        KernelTime(s.symbol, s.einsum, s.output, float(np.median(runs)), tuple(runs), s.einsums)
        for s in compiled.lowered.stages
        for runs in [times[s.symbol]]
    )


def cuda_source(compiled: CompiledCascade) -> str:
    """The CUDA C++ source of a "cuda" build (one ``__global__`` kernel per launch)."""
    if compiled.target != "cuda":
        raise InputError(
            f"cascade {compiled.cascade.name} was built for {compiled.target}, not cuda"
        )
    for module in compiled.executable.mod.imports:
        if module.kind == "cuda":
            return str(module.inspect_source())
    raise InputError(f"cascade {compiled.cascade.name}: the cuda build holds no CUDA module")


def nvcc_compile(
    source: str, arch: str = "sm_80", fmt: str = "cubin", out_dir: str | Path | None = None
) -> Path:
    """Compile CUDA `source` with nvcc to a cubin (or ptx); returns the written file.

    Raises InputError when nvcc is missing or rejects the source (its stderr in the message).
    """
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise InputError("nvcc not found on PATH: cannot compile the CUDA source")
    if fmt not in ("cubin", "ptx"):
        raise InputError(f"unknown nvcc output format {fmt!r} (known: cubin, ptx)")
    directory = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="cs_cu_"))
    directory.mkdir(parents=True, exist_ok=True)
    src = directory / "kernels.cu"
    src.write_text(source)
    out = directory / f"kernels.{fmt}"
    cmd = [nvcc, f"-arch={arch}", f"--{fmt}", "-O3", "-o", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
        raise InputError(f"nvcc failed on {src}: {first}")
    return out
