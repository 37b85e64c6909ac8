"""`codesign compile` and `codesign bench`: files written, runner output, bench structure, errors.

Timings are never asserted: bench is checked for its structure (a ratio per Einsum).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codesign.cli.main import main
from codesign.frontends import load_model
from codesign.hwmodels.host import HostMeasurement, host_yaml
from codesign.ir.interpreter import interpret

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "examples" / "models" / "mlp.onnx")
HAS_TVM = importlib.util.find_spec("tvm") is not None
needs_tvm = pytest.mark.skipif(
    not HAS_TVM, reason="apache-tvm not installed (pip install codesign[tvm])"
)


def _host_yaml(path: Path) -> Path:
    """A fixed cpu roofline (no measuring in tests): 50 GFLOP/s fp32, 10 GB/s DRAM."""
    m = HostMeasurement(
        name="test-cpu", processor="x86_64", date="2025-01-01", numpy_version="2",
        cores=2, clock_ghz=2.0, cache_kib=(("L2", 512), ("L3", 32768)),
        matmul_fp32_flops_per_s=((256, 5e10),), matmul_fp64_flops_per_s=((256, 2.5e10),),
        copy_bytes_per_s=8e9, triad_bytes_per_s=1e10, bandwidth_array_bytes=1 << 27, repeats=1,
    )  # fmt: skip
    path.write_text(host_yaml(m))
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory) -> Path:
    if not HAS_TVM:
        pytest.skip("apache-tvm not installed (pip install codesign[tvm])")
    out = tmp_path_factory.mktemp("mlp_llvm")
    assert main(["compile", MLP, "--target", "llvm", "-o", str(out)]) == 0
    return out


@needs_tvm
def test_compile_writes_library_manifest_runner_and_data(compiled_dir):
    for name in ("lib.so", "manifest.json", "run.py", "inputs.npz", "expected.npz"):
        assert (compiled_dir / name).stat().st_size > 0, name
    manifest = json.loads((compiled_dir / "manifest.json").read_text())
    assert manifest["target"] == "llvm" and manifest["outputs"] == ["logits"]


@needs_tvm
def test_exported_runner_reproduces_the_interpreter_on_the_mlp(compiled_dir):
    # expected.npz must be the interpreter's output on the exported inputs ...
    inputs = dict(np.load(compiled_dir / "inputs.npz"))
    want = interpret(load_model(MLP), inputs)["logits"]
    np.testing.assert_allclose(np.load(compiled_dir / "expected.npz")["logits"], want, rtol=1e-6)
    # ... and run.py (the library alone, no codesign) must reproduce it, or exit 1
    proc = subprocess.run(
        [sys.executable, "run.py"], cwd=compiled_dir, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "logits" in proc.stdout and "ok" in proc.stdout


@needs_tvm
def test_compile_prints_what_it_wrote(compiled_dir, tmp_path, capsys):
    code, out, _ = _run(["compile", MLP, "--target", "llvm", "-o", str(tmp_path)], capsys)
    assert code == 0
    assert all(name in out for name in ("lib.so", "run.py", "manifest.json"))


@needs_tvm
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH (CUDA toolkit)")
def test_compile_cuda_writes_source_and_runs_nvcc(tmp_path, capsys):
    code, out, err = _run(["compile", MLP, "--target", "cuda", "-o", str(tmp_path)], capsys)
    assert code == 0, err
    assert "__global__" in (tmp_path / "kernels.cu").read_text()
    assert (tmp_path / "kernels.cubin").stat().st_size > 0
    assert "nvcc" in out


@needs_tvm
def test_bench_reports_a_ratio_per_fused_kernel_and_the_peers(tmp_path, capsys):
    hw = _host_yaml(tmp_path / "host_cpu.yaml")
    report, png = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["bench", MLP, "--hw", str(hw), "--repeat", "2", "--rounds", "1", "--json",
            str(report), "--plot", str(png)]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    data = json.loads(report.read_text())
    einsums = [e.name for e in load_model(MLP).einsums if not e.is_view]
    covered = sorted(e for k in data["kernels"] for e in k["einsums"])
    assert covered == sorted(einsums)  # every Einsum in exactly one kernel
    assert len(data["kernels"]) == 3  # linear + bias (+ relu) fused: one kernel per layer
    for row in data["kernels"]:
        assert row["measured_s"]["tvm"] > 0 and row["predicted_s"] > 0
        assert row["ratio"]["tvm"] == pytest.approx(row["measured_s"]["tvm"] / row["predicted_s"])
        assert row["bound"] in ("compute", "DRAM")
        assert row["symbol"].removeprefix("cs_") in out
    ratios = sorted(k["ratio"]["tvm"] for k in data["kernels"])
    assert data["median_ratio"]["tvm"] == pytest.approx(float(np.median(ratios)))
    assert data["model_s"]["onnxruntime"] > 0 and data["model_s"]["torch"] > 0
    assert "median measured/predicted" in out and "from " + str(hw) in out
    if len(os.sched_getaffinity(0)) > 1:  # bench runs on every CPU: it probes their scaling
        assert len(data["core_scaling"]) == 2 and all(x > 0 for x in data["core_scaling"])
        assert "cores: " in out and "GEMM" in out
    assert png.stat().st_size > 0


def test_compile_without_tvm_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tvm", None)  # import tvm raises ImportError
    code, _, err = _run(["compile", MLP, "--target", "llvm", "-o", str(tmp_path)], capsys)
    assert code == 2
    assert "apache-tvm" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compile", MLP, "--target", "vulkan", "-o", "{tmp}"], "unknown TVM target 'vulkan'"),
        (["compile", MLP, "--schedule", "ansor", "-o", "{tmp}"], "unknown TVM schedule 'ansor'"),
        (["bench", MLP, "--target", "cuda", "--hw", "{hw}"], "--target 'cuda'"),
        (["bench", MLP, "--hw", "a100"], "is a gpu device"),
        (["bench", MLP, "--hw", "{tmp}/missing.yaml"], "no such hardware file"),
        (["bench", MLP, "--hw", str(ROOT / "examples/hw/eyeriss_like.yaml")], "eyeriss_like"),
    ],
)
def test_bad_codegen_inputs_exit_2_with_one_line(argv, message, tmp_path, capsys):
    hw = _host_yaml(tmp_path / "host_cpu.yaml")
    argv = [a.format(tmp=tmp_path, hw=hw) for a in argv]
    if argv[0] == "compile" and not HAS_TVM:
        pytest.skip("without apache-tvm every compile fails on the missing package first")
    code, _, err = _run(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
