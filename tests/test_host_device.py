"""Host CPU measurement as a roofline Device, and spatial arrays seen as roofline Devices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends import load_model
from codesign.hwmodels.gpu import LevelKind, Precision, Unit, load_gpu
from codesign.hwmodels.host import HostMeasurement, host_device, host_yaml, measure
from codesign.hwmodels.registry import Command, load_hardware, load_hardware_card
from codesign.hwmodels.spatial_device import array_dtype, device_from_arch
from codesign.ir.dtypes import DType
from codesign.sim.roofline_spatial import keeps_bytes_override

ROOT = Path(__file__).resolve().parents[1]
EYERISS = ROOT / "examples" / "hw" / "eyeriss_like.yaml"
CNN = str(ROOT / "examples" / "models" / "cnn.onnx")

FIXED = HostMeasurement(
    name="test-cpu", processor="x86_64", date="2025-01-01", numpy_version="2", cores=4,
    clock_ghz=3.0, cache_kib=(("L1", 32), ("L2", 1024), ("L3", 16384)),
    matmul_fp32_flops_per_s=((256, 4e10), (1024, 6e10)),
    matmul_fp64_flops_per_s=((256, 2e10), (1024, 3e10)),
    copy_bytes_per_s=1.2e10, triad_bytes_per_s=1.5e10, bandwidth_array_bytes=1 << 27, repeats=3,
)  # fmt: skip


# -- host ---------------------------------------------------------------------------------------
def test_host_device_roofs_are_the_best_measured_rates():
    device = host_device(FIXED)
    assert device.family == "cpu" and device.compute_units == 4
    assert device.peak_ops_per_s(Precision.FP32, Unit.VECTOR) == pytest.approx(6e10)
    assert device.peak_ops_per_s(Precision.FP64, Unit.VECTOR) == pytest.approx(3e10)
    assert device.dram.bandwidth_bytes_per_s == pytest.approx(1.5e10)  # triad beat copy
    assert device.level("L2").capacity_bytes == 4 * 1024 * 1024  # per core x cores
    assert device.level("L3").capacity_bytes == 16384 * 1024


def test_host_yaml_loads_into_the_same_device(tmp_path):
    path = tmp_path / "host_cpu.yaml"
    path.write_text(host_yaml(FIXED))
    loaded = load_gpu(path)
    assert loaded.vector_peaks == host_device(FIXED).vector_peaks
    assert loaded.levels == host_device(FIXED).levels


def test_measure_returns_positive_finite_rates_for_tiny_problems():
    m = measure(repeats=1, sizes=(32, 64), bandwidth_elements=1 << 14)
    rates = [r for _, r in (*m.matmul_fp32_flops_per_s, *m.matmul_fp64_flops_per_s)]
    rates += [m.copy_bytes_per_s, m.triad_bytes_per_s]
    assert [n for n, _ in m.matmul_fp32_flops_per_s] == [32, 64]
    assert all(math.isfinite(r) and r > 0 for r in rates)
    assert m.cores >= 1 and m.bandwidth_array_bytes == 8 << 14


# -- spatial arrays -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eyeriss():
    return load_hardware(EYERISS)


def test_eyeriss_peak_is_two_ops_per_pe_per_cycle_at_int8(eyeriss):
    device = device_from_arch(eyeriss)
    # 14 x 12 = 168 PEs at 1 GHz, 8-bit MACs
    assert device.peak_ops_per_s(Precision.INT8, Unit.TENSOR) == pytest.approx(2 * 168 * 1e9)
    assert device.peak_ops_per_s(Precision.INT8, Unit.VECTOR) == pytest.approx(168 * 1e9)
    assert array_dtype(eyeriss) is DType.I8


def test_eyeriss_level_bandwidths_and_capacities_equal_hand_computation(eyeriss):
    device = device_from_arch(eyeriss)
    by_name = {lv.name: lv for lv in device.levels}
    assert [lv.name for lv in device.levels][0] == "DRAM"
    assert by_name["DRAM"].bandwidth_bytes_per_s is None  # unlimited: no roof
    assert by_name["DRAM"].kind is LevelKind.DRAM
    # glb: 16 words/cycle x 1 B x 1 GHz, one instance; 131072 x 1 B
    assert by_name["shared_glb"].bandwidth_bytes_per_s == pytest.approx(16e9)
    assert by_name["shared_glb"].capacity_bytes == 131072
    # spads: 2 words/cycle x word bytes x 1 GHz x 168 PEs
    assert by_name["ifmap_spad"].bandwidth_bytes_per_s == pytest.approx(2 * 1 * 1e9 * 168)
    assert by_name["weights_spad"].bandwidth_bytes_per_s == pytest.approx(2 * 1 * 1e9 * 168)
    assert by_name["psum_spad"].bandwidth_bytes_per_s == pytest.approx(2 * 2 * 1e9 * 168)
    assert by_name["ifmap_spad"].capacity_bytes == 24 * 168
    assert by_name["weights_spad"].capacity_bytes == 384 * 168
    assert by_name["psum_spad"].capacity_bytes == 16 * 2 * 168
    assert [lv.name for lv in device.roofs] == ["shared_glb", "ifmap_spad", "weights_spad",
                                                 "psum_spad"]  # fmt: skip


def test_levels_see_only_the_bytes_of_tensors_they_keep(eyeriss):
    cascade = load_model(CNN)
    conv = next(e for e in cascade.einsums if e.op == "Conv")
    override = dict(keeps_bytes_override(cascade, eyeriss))[conv.name]
    levels = dict(override)
    weight = next(t for t in conv.input_tensors if cascade.tensor(t).role.value == "weight")
    weight_bytes = cascade.tensor(weight).size_bytes
    assert levels["weights_spad"] == weight_bytes
    # the glb bypasses weights: it sees the inputs and outputs only, the psum spad the output
    out_bytes = cascade.tensor(conv.output.tensor).size_bytes
    assert levels["psum_spad"] == out_bytes
    assert levels["shared_glb"] == levels["ifmap_spad"] + out_bytes


def test_roofline_cli_plots_the_cnn_on_eyeriss(tmp_path, capsys):
    plot, report = tmp_path / "cnn.png", tmp_path / "cnn.json"
    argv = ["roofline", CNN, "--hw", str(EYERISS), "--per-einsum", "--plot", str(plot),
            "--json", str(report)]  # fmt: skip
    assert main(argv) == 0
    assert plot.stat().st_size > 10_000
    rows = json.loads(report.read_text())["rows"]
    assert {r["precision"] for r in rows} == {"int8"}  # typed to the array's MAC width
    convs = [r for r in rows if r["label"] == "Conv" and r["name"].endswith(("_137", "_139"))]
    assert convs and all(r["bound"] == "compute" for r in convs)
    assert any(r["bound"] == "shared_glb" for r in rows if r["label"] == "Relu")


def test_a_family_a_command_does_not_take_is_a_one_line_error(capsys):
    with pytest.raises(InputError, match="cannot be used by `graph`.*taken by: map, roofline"):
        load_hardware_card(str(ROOT / "examples" / "hw" / "ant_disc.yaml"), Command.GRAPH)
    code = main(["graph", "bfs", "--hw", str(ROOT / "examples" / "hw" / "ant_disc.yaml"),
                 "--graph", "rmat:scale=6"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
