"""Every hardware family answers `codesign roofline`: tensor-core GPUs, bit-serial arrays, PIUMA.

The roofs are derived from each card's own fields (docs/roofline.md, "Other families"); these
tests recompute them by hand from the cards and run the LLM decode roofline on every preset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from codesign.cli.main import main
from codesign.cli.roofline_cmd import roofline_hardware
from codesign.hwmodels.gpu import Precision, Unit
from codesign.hwmodels.presets import preset_names, preset_path
from codesign.hwmodels.registry import Command, load_hardware_card
from codesign.ir.dtypes import DType

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "examples" / "hw"
LUT_TABLE = ROOT / "tests" / "validation" / "lut_tensor_core.yaml"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def _cards() -> list[str]:
    """One preset name per bundled card (aliases name the same files)."""
    by_path: dict[Path, str] = {}
    for name in preset_names():
        path = preset_path(name)
        assert path is not None
        by_path.setdefault(path, path.stem)
    return sorted(by_path.values())


def _takes_roofline(card: str) -> bool:
    entry = load_hardware_card(card).family
    assert Command.ROOFLINE in entry.commands, f"{card}: {entry.name} has no roofline"
    return True


# Cards whose decode projections are NOT bound by a memory level, and why (each is checked).
_DRAM_WITHOUT_ROOF = {"eyeriss_like", "simba_like"}  # Timeloop exercise cards: DRAM unlimited
_ISSUE_BOUND = {"piuma"}  # 48 scalar instr/cycle vs 128 GB/s: ridge 0.375 op/B < GEMV's 1 op/B


@pytest.mark.parametrize("card", _cards())
def test_llm_decode_roofline_runs_on_every_preset_and_is_memory_bound(card, tmp_path) -> None:
    assert _takes_roofline(card)
    out = tmp_path / "r.json"
    argv = ["roofline", "--llm", "llama-2-7b", "--phase", "decode", "--hw", card, "--json",
            str(out)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    device = roofline_hardware(card).device
    levels = {lv.name for lv in device.levels}
    bounds = {r["label"]: r["bound"] for r in doc["rows"] if r["label"] in PROJECTIONS}
    assert set(bounds) == set(PROJECTIONS) and doc["totals"]["decode"]["time_ms"] > 0
    if card in _DRAM_WITHOUT_ROOF:
        assert device.dram.bandwidth_bytes_per_s is None
        assert "DRAM" not in bounds.values()
    elif card in _ISSUE_BOUND:
        assert set(bounds.values()) == {"compute"}
    else:
        assert set(bounds.values()) <= levels, bounds  # a memory level binds every projection


# -- tensor-core GPUs ---------------------------------------------------------------------------
def _table1(case_id: str) -> tuple[float, float]:
    cases = yaml.safe_load(LUT_TABLE.read_text())["cases"]
    case = next(c for c in cases if c["id"] == case_id)
    return case["expected"]["value"], case["tolerance"]


def test_lut_tensor_core_peak_is_units_times_tile_over_weight_bits_and_matches_table1() -> None:
    hardware = roofline_hardware(str(HW / "lut_tc.yaml"), "2")
    # A100-LUT-8X: 2 ops x M2 N64 K4 x 32 units/SM x 108 SMs / 2-bit weights x 1.41 GHz
    by_hand = 2 * (2 * 64 * 4) * 32 * 108 / 2 * 1.41e9
    peak = hardware.device.peak_ops_per_s(Precision.INT8, Unit.TENSOR)
    assert peak == pytest.approx(by_hand)
    expected_tops, tolerance = _table1("lut8x_peak")
    assert peak / 1e12 == pytest.approx(expected_tops, rel=tolerance)
    assert hardware.device.dram.bandwidth_bytes_per_s == pytest.approx(2039e9)  # host a100_80g


def test_lut_card_defaults_to_its_widest_weights_and_its_activation_width() -> None:
    hardware = roofline_hardware("lut_tc")
    assert (hardware.weight_dtype, hardware.activation_dtype) == (DType.I4, DType.I8)
    peak = hardware.device.peak_ops_per_s(Precision.INT8, Unit.TENSOR)
    assert peak == pytest.approx(2 * (2 * 64 * 4) * 32 * 108 / 4 * 1.41e9)


def test_weights_the_lut_cannot_run_fall_back_to_the_host_tensor_cores() -> None:
    wide = roofline_hardware("lut_tc", "8").device  # 8-bit weights > max_weight_bits 4
    assert wide.peak_ops_per_s(Precision.INT8, Unit.TENSOR) == pytest.approx(624e12)
    assert wide.peak_ops_per_s(Precision.FP16, Unit.TENSOR) == pytest.approx(312e12)


def test_mma_card_is_its_host_gpu_and_matches_table1() -> None:
    device = roofline_hardware(str(HW / "a100_fp16.yaml")).device
    expected_tops, tolerance = _table1("fp16_tc_peak")
    peak = device.peak_ops_per_s(Precision.FP16, Unit.TENSOR)
    assert peak == pytest.approx(312e12)
    assert peak / 1e12 == pytest.approx(expected_tops, rel=tolerance)
    assert device.name == "A100-FP16-TC" and device.dram.capacity_bytes == 80 * 2**30


def test_narrower_lut_weights_shorten_decode(capsys) -> None:
    times = {}
    for wbits in ("4", "2"):
        argv = ["roofline", "--llm", "llama-2-7b", "--phase", "decode", "--hw", "lut_tc",
                "--wbits", wbits, "--json", "-"]  # fmt: skip
        assert main(argv) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["hw"] == f"A100-LUT-8X (LUT W{wbits}A8)"
        times[wbits] = doc["totals"]["decode"]["time_ms"]
    assert times["2"] < times["4"]


# -- bit-serial arrays --------------------------------------------------------------------------
def test_bitserial_peak_is_pes_times_lanes_over_the_serial_latency() -> None:
    card = yaml.safe_load((HW / "bitmod_gen.yaml").read_text())
    rows, cols, dp = card["array"]["rows"], card["array"]["cols"], card["array"]["dp"]
    per_cycle = card["pe"]["weight_bits_per_cycle"]
    clock_hz = card["clock_ghz"] * 1e9
    latency = math.ceil(math.floor(card["precision"]["weight_bits"]) / per_cycle)  # 3 bits: 2
    hardware = roofline_hardware("bitmod_gen")
    device = hardware.device
    assert device.peak_ops_per_s(Precision.FP16, Unit.TENSOR) == pytest.approx(
        2 * rows * cols * dp * clock_hz / latency
    )  # 4.096 TOP/s
    assert device.peak_ops_per_s(Precision.FP16, Unit.VECTOR) == pytest.approx(
        card["vector"]["lanes"] * clock_hz
    )
    assert device.dram.bandwidth_bytes_per_s == pytest.approx(
        card["dram"]["bits_per_cycle"] / 8 * clock_hz
    )  # 32 GB/s
    buffers = {lv.name: lv.capacity_bytes for lv in device.levels[1:]}
    assert buffers == {"input_buffer": card["buffers"]["input_kib"] * 1024,
                       "weight_buffer": card["buffers"]["weight_kib"] * 1024}  # fmt: skip
    assert (hardware.weight_dtype, hardware.activation_dtype) == (DType.I4, DType.F16)
    # --wbits 8: four 2-bit steps per tile, half the 3-bit peak
    slow = roofline_hardware("bitmod_gen", "8").device
    assert slow.peak_ops_per_s(Precision.FP16, Unit.TENSOR) == pytest.approx(
        2 * rows * cols * dp * clock_hz / 4
    )


def test_bit_parallel_and_activation_serial_peaks() -> None:
    fp16 = roofline_hardware("fp16_gen")
    assert fp16.device.peak_ops_per_s(Precision.FP16, Unit.TENSOR) == pytest.approx(2 * 768 * 1e9)
    assert (fp16.weight_dtype, fp16.activation_dtype) == (DType.F16, DType.F16)
    stripes = roofline_hardware("stripes_like")  # 8-bit activations, 1 bit per cycle
    card = yaml.safe_load((HW / "stripes_like.yaml").read_text())
    pes = card["array"]["rows"] * card["array"]["cols"] * card["array"]["dp"]
    peak = stripes.device.peak_ops_per_s(Precision.INT32, Unit.TENSOR)
    assert peak == pytest.approx(2 * pes * card["clock_ghz"] * 1e9 / 8)
    assert (stripes.weight_dtype, stripes.activation_dtype) == (DType.I16, DType.I8)


def test_bitserial_flash_attention_tiles_in_its_input_buffer(capsys) -> None:
    argv = ["roofline", "--llm", "llama-2-7b", "--phase", "prefill", "--seq", "128", "--hw",
            "bitmod_gen", "--flash-attention", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["prefill"]["time_ms"] > 0


# -- PIUMA --------------------------------------------------------------------------------------
def test_piuma_peak_is_the_fabric_issue_rate_and_dram_is_per_core_channels() -> None:
    card = yaml.safe_load((HW / "piuma.yaml").read_text())
    cores, clock_hz = card["cores"], card["clock_ghz"] * 1e9
    issue = cores * (card["mtp"]["per_core"] * card["mtp"]["issue_per_cycle"]
                     + card["stp"]["per_core"] * card["stp"]["issue_per_cycle"])  # fmt: skip
    device = roofline_hardware("piuma").device
    assert device.tensor_peaks == ()  # no matrix unit: MACs run on the pipelines
    assert device.compute_unit(Precision.FP16, matrix=True)[1] == pytest.approx(issue * clock_hz)
    assert issue * clock_hz == pytest.approx(48e9)
    assert device.dram.bandwidth_bytes_per_s == pytest.approx(
        cores * card["memory"]["bandwidth_gbps_per_core"] * 1e9
    )  # 128 GB/s
    spad = device.level("SPAD")
    assert spad.capacity_bytes_per_sm == card["memory"]["scratchpad_kib_per_core"] * 1024
    assert spad.bandwidth_bytes_per_s == pytest.approx(
        issue * card["memory"]["access_bytes"] * clock_hz
    )


def test_every_builtin_family_takes_roofline() -> None:
    for card in ("lut_tc", "a100_fp16", "bitmod_gen", "piuma"):
        assert load_hardware_card(card, Command.ROOFLINE).family.roofline is not None


# -- attention arrays (FuseMax / FLAT) ----------------------------------------------------------
@pytest.mark.parametrize("card", ["fusemax", "flat"])
def test_attention_array_roofs_are_its_arrays_and_dram(card) -> None:
    spec = yaml.safe_load((HW / f"{card}.yaml").read_text())
    clock_hz = spec["clock_mhz"] * 1e6
    hardware = roofline_hardware(card)
    device = hardware.device
    pes_2d = spec["array_2d"]["pes"]
    # MACs on the 2D array: 2 ops x 65536 PEs x 940 MHz = 123.2 TOP/s
    matrix = device.peak_ops_per_s(Precision.FP16, Unit.TENSOR)
    assert matrix == pytest.approx(2 * pes_2d * clock_hz)
    # other ops where the card binds the per-key work: FuseMax's 2D array, FLAT's 1D array
    vector_pes = pes_2d if spec["exp_on_2d"] else spec["array_1d"]["pes"]
    vector = device.peak_ops_per_s(Precision.FP16, Unit.VECTOR)
    assert vector == pytest.approx(vector_pes * clock_hz)
    assert device.dram.bandwidth_bytes_per_s == pytest.approx(spec["dram"]["bandwidth_gbps"] * 1e9)
    assert (hardware.weight_dtype, hardware.activation_dtype) == (DType.F16, DType.F16)


def test_fused_attention_on_flat_is_bound_by_its_1d_array_where_fusemax_is_not(capsys) -> None:
    rows = {}
    for card in ("fusemax", "flat"):
        argv = ["roofline", "--llm", "llama-2-7b", "--phase", "prefill", "--seq", "4096",
                "--flash-attention", "--hw", card, "--json", "-"]  # fmt: skip
        assert main(argv) == 0
        doc = json.loads(capsys.readouterr().out)
        rows[card] = next(r for r in doc["rows"] if r["label"] == "fused_attention")
    # FLAT's softmax runs on 256 PEs: the fused kernel is compute-bound there (the FuseMax
    # paper's point), while FuseMax's 2D array leaves it bound by memory
    assert rows["flat"]["bound"] == "compute" and rows["fusemax"]["bound"] != "compute"
    assert rows["flat"]["time_ms"] > 3 * rows["fusemax"]["time_ms"]
