"""Mappings: YAML round-trip, validation errors, imperfect-factor coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.errors import InputError
from codesign.hwmodels import load_arch
from codesign.mapper.mapping import load_mapping, mapping_errors
from codesign.mapper.problem import Problem

CONV = Problem.conv(1, 3, 32, 112, 112, 3, 3, stride=2)
ARCH = Path("examples/hw/eyeriss_like.yaml")
MAPPING = Path("tests/data/mappings/eyeriss_like_timeloop.yaml")


def test_mapping_round_trips_through_yaml(tmp_path: Path) -> None:
    arch = load_arch(ARCH)
    mapping = load_mapping(MAPPING, CONV, arch)
    out = tmp_path / "m.yaml"
    out.write_text(mapping.to_yaml())
    assert load_mapping(out, CONV, arch) == mapping


def test_conv_input_footprint_uses_sliding_window() -> None:
    assert CONV.tensor_size(CONV.tensor("Inputs")) == 3 * 225 * 225


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("[[p, 8], [q, 2], [m, 4]]", "[[p, 8], [q, 2], [m, 4]], colour: 1", "levels[0].colour"),
        ("[[p, 8], [q, 2], [m, 4]]", "[[p, 8], [q, 2], [m, 2]]", "dim m"),
        ("spatial_x: [[q, 14]]", "spatial_x: [[q, 28]]", "fan-out"),
        ("[[p, 8], [q, 2], [m, 4]]", "[[p, 8], [q, 2], [m, 4], [z, 2]]", "unknown dim"),
    ],
    ids=["unknown-field", "under-coverage", "fan-out", "unknown-dim"],
)
def test_bad_mapping_gives_one_line_error(tmp_path: Path, old: str, new: str, needle: str) -> None:
    text = MAPPING.read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new))
    with pytest.raises(InputError) as error:
        load_mapping(path, CONV, load_arch(ARCH))
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert needle in str(error.value)


def test_imperfect_factor_pads_less_than_one_outer_iteration(tmp_path: Path) -> None:
    arch = load_arch(ARCH)
    text = MAPPING.read_text()
    # P = 112 = 8 * 14; 9 * 13 = 117 covers it with a partial last DRAM iteration.
    ok = tmp_path / "ok.yaml"
    ok.write_text(text.replace("[[p, 8],", "[[p, 9],").replace("[[p, 14],", "[[p, 13],"))
    assert mapping_errors(load_mapping(ok, CONV, arch), CONV, arch) == []
    # 16 * 14 = 224 pads a whole extra outer iteration: rejected.
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("[[p, 8],", "[[p, 16],"))
    with pytest.raises(InputError, match="dim p"):
        load_mapping(bad, CONV, arch)
