"""Bit-serial PE arrays: YAML errors, cycle formula, weight-width properties, map_model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from codesign.api import map_model
from codesign.errors import InputError
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Workload
from codesign.hwmodels.bitserial import PeMode, load_bitserial
from codesign.hwmodels.registry import load_hardware
from codesign.mapper.problem import Problem
from codesign.sim.bitserial import BitSerialModel, refetch_counts
from codesign.sim.cost import EinsumKind

HW = Path("examples/hw")
PRESETS = (
    sorted(HW.glob("*_gen.yaml")) + sorted(HW.glob("*_disc.yaml")) + [HW / "stripes_like.yaml"]
)


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_bitserial_preset_loads_through_load_hardware(path: Path) -> None:
    hw = load_hardware(path)
    assert hw.family == "bitserial" and hw.pe_count > 0


def _edit(tmp_path: Path, old: str, new: str) -> Path:
    text = (HW / "bitmod_gen.yaml").read_text()
    assert old in text
    path = tmp_path / "hw.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_unknown_field_is_a_one_line_error_naming_file_line_and_field(tmp_path: Path) -> None:
    path = _edit(tmp_path, "dp: 4}", "dp: 4, lanes: 8}")
    with pytest.raises(InputError) as err:
        load_bitserial(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "array.lanes" in message


@pytest.mark.parametrize("bits", ["0", "40", "four"])
def test_bad_weight_bits_are_rejected(tmp_path: Path, bits: str) -> None:
    path = _edit(tmp_path, "weight_bits: 3.0625", f"weight_bits: {bits}")
    with pytest.raises(InputError, match=r"precision\.weight_bits"):
        load_bitserial(path)


def test_bit_parallel_pe_with_several_lanes_is_rejected(tmp_path: Path) -> None:
    path = _edit(tmp_path, "mode: weight_serial", "mode: bit_parallel")
    with pytest.raises(InputError, match="dp must be 1"):
        load_bitserial(path)


def test_cycles_follow_the_validation_formula() -> None:
    hw = load_bitserial(HW / "bitmod_disc.yaml")  # 32 x 32, dp 4, 4.0625 bits -> latency 2
    cost = BitSerialModel().evaluate(Problem.gemm(m=100, n=70, k=30, bits=16), None, hw)
    assert cost.compute_cycles == 8 * 3 * 4 * 2  # ceil(30/4) ceil(70/32) ceil(100/32) * 2


@pytest.mark.parametrize("bits", [8.0, 6.0, 4.0625, 3.0625, 2.0])
def test_fewer_weight_bits_never_cost_more_cycles_on_bit_serial(bits: float) -> None:
    hw = load_bitserial(HW / "bitmod_gen.yaml")
    problem = Problem.gemm(m=256, n=512, k=512, bits=16)
    wide = BitSerialModel().evaluate(problem, None, dataclasses.replace(hw, weight_bits=bits))
    narrow = BitSerialModel().evaluate(problem, None, dataclasses.replace(hw, weight_bits=bits - 1))
    assert narrow.compute_cycles <= wide.compute_cycles
    assert hw.latency_cycles(bits, 16) > hw.latency_cycles(bits - 2, 16)


def test_weight_bits_never_change_compute_cycles_on_bit_parallel() -> None:
    hw = load_bitserial(HW / "ant_disc.yaml")
    assert hw.mode is PeMode.BIT_PARALLEL
    problem = Problem.gemm(m=256, n=512, k=512, bits=16)
    cycles = {
        BitSerialModel()
        .evaluate(problem, None, dataclasses.replace(hw, weight_bits=b))
        .compute_cycles
        for b in (2.0, 4.0, 8.0, 16.0)
    }
    assert len(cycles) == 1


def test_activation_serial_latency_scales_with_activation_bits() -> None:
    hw = load_bitserial(HW / "stripes_like.yaml")
    assert [hw.latency_cycles(16, a) for a in (4, 8, 16)] == [4, 8, 16]


def test_refetch_rereads_the_cheaper_operand_only_when_both_overflow() -> None:
    kib = 8 * 1024
    assert refetch_counts(100 * kib, 600 * kib, 512 * kib, 512 * kib) == (1, 1)
    # weights 2 MiB, inputs 1 MiB: re-reading weights twice (5 MiB) beats inputs 4x (6 MiB)
    assert refetch_counts(2048 * kib, 1024 * kib, 512 * kib, 512 * kib) == (2, 1)
    # weights 1 MiB, inputs 4 MiB: inputs twice (9 MiB) beats weights 8x (12 MiB)
    assert refetch_counts(1024 * kib, 4096 * kib, 512 * kib, 512 * kib) == (1, 2)


def test_attention_runs_both_operands_at_attention_bits() -> None:
    config = LLMConfig("tiny", 1, 64, 128, 4, 4, 100)
    cascade = build_llm(config, Workload(1, 16))
    hw = load_bitserial(HW / "bitmod_gen.yaml")
    result = map_model(cascade, hw).result
    kinds = {e.name: e.kind for e in result.einsums}
    assert kinds["L0_q_proj"] is EinsumKind.MAC and kinds["L0_qk_matmul"] is EinsumKind.MAC
    assert kinds["L0_softmax_exp"] is EinsumKind.VECTOR
    qk = next(e for e in result.einsums if e.name == "L0_qk_matmul")
    # batch 4 heads x ceil(16/4) x ceil(16/64) x ceil(16/16), latency ceil(16/2) = 8
    assert qk.cost.compute_cycles == 4 * 4 * 1 * 1 * 8
    assert result.cycles > 0 and result.energy_pj > 0
