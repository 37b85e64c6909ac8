"""GPU/CPU roofline devices: presets, name lookup, YAML errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.errors import InputError
from codesign.hwmodels.gpu import (
    Precision,
    Unit,
    gpu_preset,
    gpu_preset_names,
    load_device,
    load_gpu,
)

PRESETS = ("a100_40g", "a100_80g", "h100_sxm", "h100_pcie", "rtx3090", "l40")
SOURCED_FIELDS = {"sm_count", "clock_ghz", "tensor_tops", "vector_tops", "memory"}

GOOD = """\
family: gpu
name: toy
sm_count: 4
clock_ghz: 1.0
tensor_tops: {fp16: 100}
vector_tops: {fp32: 10}
memory:
  - {name: DRAM, kind: dram, capacity_gib: 1, bandwidth_gbps: 1000}
  - {name: SMEM, kind: smem, per_sm: true, capacity_kib: 64, bandwidth_bytes_per_clk: 128}
"""


def test_every_bundled_preset_loads_and_cites_a_source_for_each_number():
    assert set(PRESETS) <= set(gpu_preset_names())
    for name in gpu_preset_names():
        device = gpu_preset(name)
        assert device.family == "gpu"
        assert SOURCED_FIELDS <= {key for key, _ in device.sources}, name
        assert device.dram.bandwidth_bytes_per_s and device.dram.capacity_bytes


def test_a100_preset_matches_llm_viewer_roofs():
    a100 = gpu_preset("a100")
    assert a100.dram.bandwidth_bytes_per_s == pytest.approx(1555e9)
    assert a100.peak_ops_per_s(Precision.FP16, Unit.TENSOR) == pytest.approx(312e12)
    assert a100.peak_ops_per_s(Precision.INT8, Unit.TENSOR) == pytest.approx(624e12)
    assert gpu_preset("A100-80G").dram.bandwidth_bytes_per_s == pytest.approx(2039e9)


def test_short_names_and_file_stems_resolve_to_the_same_device():
    assert gpu_preset("h100").name == gpu_preset("H100-SXM").name == "H100-SXM5-80GB"
    assert gpu_preset("a100_fp16").name == gpu_preset("a100_40g").name


def test_newer_gpus_have_higher_roofs():
    a100, h100 = gpu_preset("a100"), gpu_preset("h100")
    fp16 = Precision.FP16, Unit.TENSOR
    assert h100.peak_ops_per_s(*fp16) > a100.peak_ops_per_s(*fp16)
    assert h100.dram.bandwidth_bytes_per_s > a100.dram.bandwidth_bytes_per_s  # type: ignore[operator]


def test_unknown_gpu_name_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown GPU 'v100'.*a100_40g.*rtx3090"):
        gpu_preset("v100")


def test_per_sm_levels_scale_with_the_sm_count(tmp_path: Path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD)
    device = load_gpu(path)
    smem = device.level("SMEM")
    assert smem.capacity_bytes == 4 * 64 * 1024
    assert smem.bandwidth_bytes_per_s == pytest.approx(4 * 128 * 1e9)
    assert [lv.name for lv in device.roofs] == ["DRAM", "SMEM"]


def test_efficiency_scales_the_roofs(tmp_path: Path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD + "efficiency: {compute: 0.5, memory: 0.8}\n")
    device = load_gpu(path)
    assert device.peak_ops_per_s(Precision.FP16, Unit.TENSOR) == pytest.approx(50e12)
    assert device.dram.bandwidth_bytes_per_s == pytest.approx(800e9)


def test_matrix_work_without_a_tensor_roof_falls_back_to_the_vector_units(tmp_path: Path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD)
    device = load_gpu(path)
    assert device.compute_unit(Precision.FP16, matrix=True) == (Unit.TENSOR, 100e12)
    assert device.compute_unit(Precision.INT8, matrix=True) == (Unit.VECTOR, 10e12)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("sm_count: 4", "sm_count: 4\nwarp_size: 32"), r"toy.yaml:\d+: warp_size: Extra inputs"),
        (("fp16: 100", "fp17: 100"), r"toy.yaml:5: tensor_tops.fp17"),
        (("bandwidth_gbps: 1000", "bandwidth_gbps: -1"), r"toy.yaml:8: memory\[0\].bandwidth_gbps"),
        (("kind: dram", "kind: sram"), r"toy.yaml:\d+: memory\[0\].kind"),
        (("family: gpu", "family: tpu"), r"toy.yaml:1: family"),
        (("sm_count: 4\n", ""), r"toy.yaml:1: <root>: Value error, a gpu needs sm_count"),
        (
            ("clock_ghz: 1.0", "clock_ghz: 1.0\nkernel_launch_us: -1"),
            r"toy.yaml:\d+: kernel_launch",
        ),
        (
            (
                "clock_ghz: 1.0",
                "clock_ghz: 1.0\ninterconnect: {name: x, bandwidth_gbps: 9, collectives: m}",
            ),
            r"toy.yaml:\d+: interconnect.collectives",
        ),
    ],
)
def test_bad_yaml_is_one_line_error_naming_file_line_and_field(tmp_path, edit, message):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(InputError, match=message) as info:
        load_gpu(path)
    assert "\n" not in str(info.value)


def test_hw_argument_takes_a_path_or_a_preset_name(tmp_path: Path):
    path = tmp_path / "toy.yaml"
    path.write_text(GOOD)
    assert load_device(str(path)).name == "toy"
    assert load_device("l40").name == "L40"
    with pytest.raises(InputError, match="no such hardware file"):
        load_device(str(tmp_path / "missing.yaml"))
