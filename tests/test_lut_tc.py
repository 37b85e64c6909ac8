"""LUT Tensor Core: YAML errors, table size, bit-serial LMMA throughput, precompute fusion,
area/power fit, and the design-card command (LUT vs FP16 baseline prints a speedup)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from codesign.api import map_model
from codesign.errors import InputError
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Workload
from codesign.hwmodels.lut_tc import SynthesisPoint, fit_unit_cost, load_tensor_core
from codesign.hwmodels.registry import load_hardware
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.sim.lut_tc import precompute_cost, table_bits_per_activation

HW = Path("examples/hw")


def _edit(tmp_path: Path, old: str, new: str) -> Path:
    text = (HW / "lut_tc.yaml").read_text()
    assert old in text
    path = tmp_path / "lut.yaml"
    path.write_text(
        text.replace(old, new).replace(
            "gpu/a100_80g.yaml", str((HW / "gpu" / "a100_80g.yaml").resolve())
        )
    )
    return path


def test_both_design_card_files_load_through_load_hardware() -> None:
    lut, fp16 = load_hardware(HW / "lut_tc.yaml"), load_hardware(HW / "a100_fp16.yaml")
    assert lut.family == fp16.family == "tensor_core"
    assert lut.sm_count == fp16.sm_count == 108


def test_unknown_field_is_a_one_line_error(tmp_path: Path) -> None:
    path = _edit(tmp_path, "  table_bits: 8", "  table_bits: 8\n  table_size: 8")
    with pytest.raises(InputError) as err:
        load_tensor_core(path)
    assert "\n" not in str(err.value) and "tensor_core.table_size" in str(err.value)


@pytest.mark.parametrize("field", ["max_weight_bits: 0", "max_weight_bits: 9", "table_bits: 0"])
def test_bad_bits_are_rejected(tmp_path: Path, field: str) -> None:
    key = field.split(":")[0]
    default = {"max_weight_bits": "max_weight_bits: 4", "table_bits": "table_bits: 8"}[key]
    with pytest.raises(InputError, match=key):
        load_tensor_core(_edit(tmp_path, default, field))


def test_missing_host_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "lut.yaml"
    path.write_text((HW / "lut_tc.yaml").read_text().replace("gpu/a100_80g.yaml", "gpu/nope.yaml"))
    with pytest.raises(InputError, match="host"):
        load_tensor_core(path)


def test_a_copied_card_finds_its_host_in_the_preset_library(tmp_path: Path) -> None:
    path = tmp_path / "lut.yaml"
    path.write_text((HW / "lut_tc.yaml").read_text())
    assert load_tensor_core(path).host == load_tensor_core(HW / "lut_tc.yaml").host


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_symmetrized_table_has_2_to_k_minus_1_entries(k: int) -> None:
    gpu = load_tensor_core(HW / "lut_tc.yaml")
    sym = dataclasses.replace(gpu, tile_k=k)
    assert sym.table_entries == 2 ** (k - 1)
    assert dataclasses.replace(sym, symmetrize=False).table_entries == 2**k


def test_symmetrization_halves_table_storage_per_activation() -> None:
    gpu = load_tensor_core(HW / "lut_tc.yaml")
    full = dataclasses.replace(gpu, symmetrize=False)
    assert table_bits_per_activation(full) == 2 * table_bits_per_activation(gpu)


def test_one_lmma_takes_weight_bits_cycles() -> None:
    gpu = load_tensor_core(HW / "lut_tc.yaml")
    w1 = gpu.lut_macs_per_cycle(1)
    assert [gpu.lut_macs_per_cycle(w) * w for w in (1, 2, 3, 4)] == [w1] * 4
    assert w1 == 2 * 64 * 4 * 32 * 108  # M2N64K4, 32 units per SM, 108 SMs


def test_fused_precompute_moves_no_dram_bytes_and_is_cheaper() -> None:
    gpu = load_tensor_core(HW / "lut_tc.yaml")
    fused = precompute_cost(gpu, 1024 * 3200, 8)
    unfused = precompute_cost(dataclasses.replace(gpu, precompute_fused=False), 1024 * 3200, 8)
    assert fused.dram_bytes == 0 and unfused.dram_bytes > 0
    assert fused.seconds < unfused.seconds and fused.ops == unfused.ops


def test_area_fit_through_two_points_is_exact_and_one_point_goes_through_origin() -> None:
    a = SynthesisPoint(units_per_sm=16, area_mm2_per_sm=0.187, tops_per_w=33.32, peak_tops=1248)
    b = SynthesisPoint(units_per_sm=32, area_mm2_per_sm=0.373, tops_per_w=33.65, peak_tops=2496)
    two = fit_unit_cost((a, b))
    assert two.area_mm2_per_sm(32) == pytest.approx(0.373)
    assert two.power_w(16) == pytest.approx(1248 / 33.32)
    one = fit_unit_cost((a,))
    assert one.fixed_area_mm2 == 0 and one.area_mm2_per_sm(32) == pytest.approx(0.374)


def _int2(cascade: Cascade) -> Cascade:
    tensors = tuple(
        dataclasses.replace(t, dtype=DType.I2)
        if t.role is Role.WEIGHT and t.name.startswith("L") and len(t.shape) == 2
        else t
        for t in cascade.tensors
    )
    return Cascade(cascade.name, tensors, cascade.einsums)


def test_low_bit_weights_run_faster_on_lut_than_fp16_weights() -> None:
    cascade = build_llm(LLMConfig("tiny", 2, 512, 1024, 8, 8, 1000), Workload(256, 1))
    gpu = load_tensor_core(HW / "lut_tc.yaml")
    fp16_weights = map_model(cascade, gpu).cycles
    int2_weights = map_model(_int2(cascade), gpu).cycles
    on_mma = map_model(_int2(cascade), load_tensor_core(HW / "a100_fp16.yaml")).cycles
    assert int2_weights < fp16_weights and int2_weights < on_mma


def test_design_card_command_prints_a_speedup() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "codesign.cli.main", "map", "examples/models/mlp.onnx",
         "--hw", "examples/hw/lut_tc.yaml", "--baseline", "examples/hw/a100_fp16.yaml", "-q"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "speedup over A100-FP16-TC" in out.stdout
