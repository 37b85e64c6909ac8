"""Hardware YAML: presets load; bad files fail with one-line errors naming file, line, field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from codesign.errors import InputError
from codesign.hwmodels import Dataflow, energy_scale, load_arch, load_energy_table

HW = Path("examples/hw")
# spatial-array presets; files with a top-level ``family:`` (bitserial, tensor_core) load
# through load_hardware and are tested in tests/test_bitserial.py and tests/test_lut_tc.py
PRESETS = sorted(p for p in HW.glob("*.yaml") if not re.search(r"^family:", p.read_text(), re.M))

GOOD = """\
name: tiny
clock_ghz: 1.0
technology_nm: 45
energy_table: {ert}
dataflow: ws
levels:
  - {name: DRAM, kind: dram, word_bits: 16, block_words: 4}
  - name: glb
    component: shared_glb
    kind: sram
    size_words: 4096
    word_bits: 16
    read_bandwidth_words_per_cycle: 16
    fanout: {x: 4, y: 4}
  - {name: pe_spad, component: register, kind: regfile, size_words: 16, word_bits: 16}
compute: {name: mac, mac_bits: 8, count: 16}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "arch.yaml"
    ert = (HW / "ert" / "simple_45nm.yaml").resolve()
    path.write_text(text.replace("{ert}", str(ert)))
    return path


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_loads_into_a_frozen_arch(path: Path) -> None:
    arch = load_arch(path)
    assert arch.levels[0].kind.value == "dram"
    fanout = 1
    for level in arch.levels:
        fanout *= level.fanout
    assert fanout == arch.compute.count
    with pytest.raises(AttributeError):
        arch.name = "x"  # type: ignore[misc]


def test_preset_array_shapes() -> None:
    assert load_arch(HW / "eyeriss_like.yaml").compute.count == 14 * 12
    assert load_arch(HW / "tpu_like.yaml").compute.count == 32 * 32
    assert load_arch(HW / "tpu_v1_like.yaml").compute.count == 128 * 128
    assert load_arch(HW / "simba_like.yaml").compute.count == 256
    assert load_arch(HW / "simple_ws.yaml").dataflow is Dataflow.WS


def test_good_yaml_loads(tmp_path: Path) -> None:
    arch = load_arch(_write(tmp_path, GOOD))
    assert arch.levels[1].read_energy_pj == pytest.approx(32.377775)


@pytest.mark.parametrize(
    ("old", "new", "field", "line"),
    [
        ("    word_bits: 16\n    read", "    word_bits: 16\n    colour: red\n    read",
         "levels[1].colour", 13),
        ("size_words: 4096", "size_words: -4", "levels[1].size_words", 11),
        ("read_bandwidth_words_per_cycle: 16", "read_bandwidth_words_per_cycle: 0",
         "levels[1].read_bandwidth_words_per_cycle", 13),
        ("  - {name: DRAM, kind: dram, word_bits: 16, block_words: 4}\n", "",
         "levels[0].kind", 9),
        ("compute: {name: mac, mac_bits: 8, count: 16}\n", "", "compute", None),
        ("size_words: 16, word_bits", "size_words: 0, word_bits", "levels[2].size_words", 15),
        ("name: pe_spad, component: register, kind: regfile, size_words: 16",
         "name: pe_spad, component: register, kind: regfile, size_words: 16, keeps: [inputs,"
         " weights, outputs], fanout: {x: 1}, banks: 1, block_words: 1, size_bytes: 1",
         "levels[2]", 15),
    ],
    ids=["unknown-field", "negative-size", "zero-bandwidth", "missing-dram-level",
         "missing-compute", "zero-size", "size-twice"],
)
def test_bad_yaml_gives_one_line_error_with_file_and_field(
    tmp_path: Path, old: str, new: str, field: str, line: int | None
) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(InputError) as error:
        load_arch(path)
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and field in message
    if line is not None:
        assert f"{path}:{line}:" in message


def test_level_too_small_for_any_mapping_is_rejected(tmp_path: Path) -> None:
    text = GOOD.replace(
        "component: register, kind: regfile, size_words: 16",
        "component: register, kind: regfile, size_words: 2",
    )
    with pytest.raises(InputError, match=r"levels\[2\]\.size_words.*too small for any mapping"):
        load_arch(_write(tmp_path, text))


def test_unknown_energy_component_names_the_level(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("component: register", "component: nosuch"))
    with pytest.raises(InputError, match=r"levels\[2\]\.component"):
        load_arch(path)


def test_energy_scales_down_with_technology_and_dram_does_not() -> None:
    assert energy_scale(45, 7) < energy_scale(45, 16) < 1.0 < energy_scale(45, 65)
    table = load_energy_table(HW / "ert" / "simple_45nm.yaml", target_nm=16)
    glb = table.component("shared_glb")
    dram = table.component("DRAM")
    assert glb is not None and dram is not None
    assert glb.actions[0].energy_pj == pytest.approx(32.377775 * energy_scale(45, 16))
    assert dram.actions[0].energy_pj == 512.0
    assert "scaled 45->16 nm" in glb.source
