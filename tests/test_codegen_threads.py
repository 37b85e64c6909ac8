"""TVM worker threads: the count is an explicit option, applied per calling thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.cli.main import main  # noqa: E402
from codesign.codegen import runner  # noqa: E402
from codesign.codegen.tvm import compile_cascade, use_threads  # noqa: E402
from codesign.errors import InputError  # noqa: E402
from codesign.frontends.layers import gemm  # noqa: E402
from codesign.ir import DType  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


def _in_fresh_thread(fn: Callable[[], object]) -> object:
    """`fn()` in a new Python thread (TVM's worker pool is per calling thread, sized on first
    use, so a fresh thread has none yet); re-raises what it raised."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_configure_threads_starts_that_many_workers_beyond_tvms_halved_default():
    def grow() -> tuple[int, int]:
        before = _os_threads()
        got = runner.configure_threads(3)
        return got, _os_threads() - before

    got, spawned = _in_fresh_thread(grow)  # type: ignore[misc]
    assert got == 3
    assert spawned == 2  # the calling thread is worker 0


def test_compiled_gemm_on_two_threads_equals_numpy_and_one_thread():
    a = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((96, 128)).astype(np.float32)

    def run(threads: int) -> np.ndarray:
        compiled = compile_cascade(gemm(64, 128, 96, DType.F32), threads=threads)
        assert compiled.threads == threads
        return compiled.run({"A": a, "B": b})["Y"]

    two, one = _in_fresh_thread(lambda: run(2)), _in_fresh_thread(lambda: run(1))
    np.testing.assert_allclose(two, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(two, one)  # same tiles, same order per output element


def test_growing_a_pool_that_already_exists_is_an_input_error():
    def grow_late() -> None:
        use_threads(1)
        use_threads(2)

    with pytest.raises(InputError, match="threads 2: TVM's worker pool in this thread already"):
        _in_fresh_thread(grow_late)


def test_lowering_and_regrowing_within_the_pool_size_is_allowed():
    def shrink() -> int:
        use_threads(2)
        use_threads(1)
        return runner.configure_threads(2)  # back up to the pool's size

    assert _in_fresh_thread(shrink) == 2


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs sched_getaffinity")
def test_one_worker_does_not_pin_the_calling_thread_to_one_cpu():
    # TVM pins the caller to the CPUs it configures: after a 1-thread pool every later 2-thread
    # run (TVM's, onnxruntime's, torch's workers inherit the mask) would share one core
    def masks() -> tuple[set[int], set[int]]:
        before = os.sched_getaffinity(0)
        runner.configure_threads(1)
        return before, os.sched_getaffinity(0)

    before, after = _in_fresh_thread(masks)  # type: ignore[misc]
    assert after == before


def test_a_build_without_parallel_loops_runs_without_resizing_the_worker_pool():
    # resizing TVM's pool between timings slows the next parallel kernels (`use_threads`)
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    import tvm_ffi

    def both() -> tuple[bool, bool, int]:
        two = compile_cascade(gemm(256, 256, 256, DType.F32), threads=2)
        one = compile_cascade(gemm(256, 256, 256, DType.F32), threads=1)
        two.run({"A": a, "B": a})
        one.run({"A": a, "B": a})
        return two.parallel, one.parallel, int(tvm_ffi.get_global_func("runtime.NumThreads")())

    two_parallel, one_parallel, pool = _in_fresh_thread(both)  # type: ignore[misc]
    assert two_parallel and not one_parallel
    assert pool == 2


def test_core_scaling_is_measured_and_a_shared_core_reading_warns():
    from codesign.cli.codegen_cmd import _scaling_lines
    from codesign.codegen.compare import SHARED_CORES_SCALING, core_scaling

    scaling = _in_fresh_thread(lambda: core_scaling(2, rounds=1, repeat=2))
    assert isinstance(scaling, float) and 0 < scaling < 4
    assert _scaling_lines(None, 1) == []
    fine = _scaling_lines((1.9, 1.8), 2)
    assert len(fine) == 1 and "1.90x faster than 1 before the timings, 1.80x after" in fine[0]
    shared = _scaling_lines((1.9, SHARED_CORES_SCALING - 0.1), 2)
    assert len(shared) == 2 and "warning" in shared[1] and "--threads 1" in shared[1]


def test_zero_threads_is_an_input_error_and_the_cli_exits_2(capsys):
    with pytest.raises(InputError, match="threads 0: must be at least 1"):
        use_threads(0)
    code = main(["bench", str(MODELS / "mlp.onnx"), "--threads", "0", "--peers", ""])
    assert code == 2
    assert "--threads 0: must be at least 1" in capsys.readouterr().err


# -- weights pre-packed once (not on every call) ---------------------------------------------


def test_pack_panels_puts_element_i_of_dim_at_panel_i_div_tile_lane_i_mod_tile():
    array = np.arange(6 * 3 * 4, dtype=np.float32).reshape(6, 3, 4)
    packed = runner.pack_panels(array, dim=0, tile=2)
    assert packed.shape == (3, 3, 4, 2) and packed.flags.c_contiguous
    for i in range(6):
        np.testing.assert_array_equal(packed[i // 2, :, :, i % 2], array[i])
    packed = runner.pack_panels(array, dim=2, tile=4)
    assert packed.shape == (1, 6, 3, 4)
    np.testing.assert_array_equal(packed[0], array)


def test_transposed_weight_is_a_prepacked_parameter_packed_from_the_given_values():
    from codesign.frontends import load_model
    from codesign.ir import interpret
    from codesign.ir.inputs import sample_inputs

    cascade = load_model(str(MODELS / "mlp.onnx"))
    compiled = compile_cascade(cascade)
    buffers = {b["name"]: b for b in compiled.manifest()["buffers"]}
    packed = buffers["layers_0_weight@panels0x32"]
    assert packed["packed_from"] == {"buffer": "layers_0_weight", "dim": 0, "tile": 32}
    assert packed["shape"] == [256 // 32, 784, 32]
    script = compiled.scheduled["cs_node_linear"].script()
    assert "layers_0_weight_global" not in script  # no copy inside the kernel
    inputs = dict(sample_inputs(cascade, 0))
    weight = next(t for t in cascade.tensors if t.name == "layers_0_weight")
    inputs["layers_0_weight"] = np.random.default_rng(3).standard_normal(weight.shape)
    got, want = compiled.run(inputs), interpret(cascade, compiled.values(inputs))
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)


def test_narrow_or_strided_conv_vectorises_output_channels_over_a_prepacked_weight():
    from codesign.frontends import load_model
    from codesign.ir import interpret
    from codesign.ir.inputs import sample_inputs

    cascade = load_model(str(MODELS / "cnn.onnx"))
    compiled = compile_cascade(cascade)
    packed = {b["name"] for b in compiled.manifest()["buffers"] if "packed_from" in b}
    # 8-wide output rows (Conv_153) and a stride-2 conv (Conv_145): the channel is the vector
    assert "stages_2_0_conv2_0_weight@panels0x32" in packed
    assert "stages_1_0_conv1_0_weight@panels0x32" in packed
    # 32-wide unit-stride rows keep the row as the vector (no packed weight)
    assert not any(name.startswith("stages_0_0_conv1_0_weight") for name in packed)
    inputs = sample_inputs(cascade, 0)
    got, want = compiled.run(inputs), interpret(cascade, compiled.values(inputs))
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)


def test_the_cli_bench_defaults_are_bench_options_defaults():
    import argparse

    from codesign.cli.codegen_cmd import add_parser
    from codesign.codegen.compare import BenchOptions

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(), lambda p: p.add_argument("model"))
    args = parser.parse_args(["bench", "m.onnx"])
    assert (args.repeat, args.rounds) == (BenchOptions().repeat, BenchOptions().rounds)


@pytest.mark.parametrize(("threads", "serial"), [(2, True), (1, False)])
def test_bench_reports_progress_once_per_step_it_announces(threads, serial):
    from codesign.codegen.compare import BenchOptions, bench_model, bench_steps
    from codesign.frontends import load_model
    from codesign.hwmodels.host import measure_host

    cascade = load_model(str(MODELS / "mlp.onnx"))
    options = BenchOptions(peers=(), repeat=1, rounds=2, threads=threads, serial_baseline=serial)
    steps: list[str] = []

    def run() -> object:
        return bench_model(cascade, measure_host(repeats=1), options, steps.append)

    _in_fresh_thread(run)
    assert len(steps) == bench_steps(options) == (6 if threads == 2 else 3)
    assert steps[-1 if threads == 1 else -2] == "round 2 of 2"
