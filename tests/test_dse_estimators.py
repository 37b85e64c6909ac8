"""The estimators against CACTI 7 (tests/validation/cacti.yaml) and the derived-table path."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from codesign.hwmodels.arch import Action
from codesign.hwmodels.estimators import (
    ComponentClass,
    ComponentQuery,
    estimate,
)
from codesign.hwmodels.loader import load_arch
from tests.validation import load_cases

CASES = load_cases("cacti")


def _sram(case: dict) -> dict[str, float]:
    inputs = case["inputs"]
    row = estimate(
        ComponentQuery(
            case["id"], ComponentClass.SRAM, float(inputs["technology_nm"]),
            capacity_bits=inputs["capacity_bytes"] * 8, width_bits=inputs["width_bits"],
        )
    )  # fmt: skip
    return {
        "read_pj": row.energy_pj(Action.READ) or 0.0,
        "write_pj": row.energy_pj(Action.WRITE) or 0.0,
        "area_um2": row.area_um2,
        "leak_mw": row.energy_pj(Action.LEAK) or 0.0,  # pJ/cycle at 1 GHz == mW
    }


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_sram_estimate_within_tolerance_of_cacti(case: dict) -> None:
    got = _sram(case)
    for key, expected in case["expected"].items():
        tolerance = case.get("tolerances", {}).get(key, case["tolerance"])
        assert got[key] == pytest.approx(expected, rel=tolerance), key


def _series() -> dict[int, list[dict]]:
    by_node: dict[int, list[dict]] = {}
    for case in CASES:
        by_node.setdefault(case["inputs"]["technology_nm"], []).append(case)
    return {k: sorted(v, key=lambda c: c["inputs"]["capacity_bytes"]) for k, v in by_node.items()}


@pytest.mark.parametrize("node", sorted(_series()))
def test_bigger_buffer_costs_more_energy_and_area_as_cacti_says(node: int) -> None:
    """Direction: every step up in capacity raises read energy and area in CACTI and in the
    estimate; magnitude: the 1 KiB -> 1 MiB growth matches CACTI's within 25 %."""
    series = _series()[node]
    for small, big in itertools.pairwise(series):
        for key in ("read_pj", "area_um2"):
            assert big["expected"][key] > small["expected"][key]  # CACTI's direction
            assert _sram(big)[key] > _sram(small)[key]
    first, last = series[0], series[-1]
    for key in ("read_pj", "write_pj", "area_um2"):
        cacti = last["expected"][key] / first["expected"][key]
        ours = _sram(last)[key] / _sram(first)[key]
        assert ours == pytest.approx(cacti, rel=0.25), key


def _card(tmp_path: Path, glb_bytes: int, **compute: int) -> Path:
    card = {
        "name": "est", "clock_ghz": 1.0, "technology_nm": 45, "dataflow": "ws",
        "levels": [
            {"name": "DRAM", "kind": "dram", "word_bits": 8, "block_words": 8},
            {"name": "glb", "kind": "sram", "size_bytes": glb_bytes, "word_bits": 8,
             "block_words": 8, "fanout": {"x": 4, "y": 2}},
            {"name": "rf", "kind": "regfile", "size_words": 16, "word_bits": 8},
        ],
        "compute": {"name": "mac", "mac_bits": 8, **compute},
    }  # fmt: skip
    path = tmp_path / f"est_{glb_bytes}.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


def test_card_without_energy_table_derives_it_and_buffer_size_moves_energy_and_area(
    tmp_path: Path,
) -> None:
    small, big = load_arch(_card(tmp_path, 16384)), load_arch(_card(tmp_path, 262144))
    assert big.levels[1].read_energy_pj > small.levels[1].read_energy_pj
    assert big.area_um2 > small.area_um2
    assert small.compute.count == 8  # derived from the fan-out, given nowhere


def test_pe_count_given_twice_must_agree(tmp_path: Path) -> None:
    from codesign.errors import InputError

    assert load_arch(_card(tmp_path, 16384, count=8)).compute.count == 8
    with pytest.raises(InputError, match="compute.count"):
        load_arch(_card(tmp_path, 16384, count=9))


def test_unknown_dram_kind_names_the_known_ones() -> None:
    from codesign.errors import InputError

    with pytest.raises(InputError, match="hbm2"):
        estimate(ComponentQuery("d", ComponentClass.DRAM, 45, dram_kind="ddr9"))


def test_wider_mac_costs_more_energy_and_area() -> None:
    rows = [estimate(ComponentQuery("m", ComponentClass.MAC, 45, width_bits=b)) for b in (4, 8, 16)]
    energies = [r.energy_pj(Action.MAC, None) or 0.0 for r in rows]
    assert energies == sorted(energies) and rows[0].area_um2 < rows[2].area_um2
    # Horowitz: 8-bit multiply + 16-bit add
    assert energies[1] == pytest.approx(0.2 + 0.03 * 2**0.87, rel=1e-9)


def test_map_json_reports_area_per_component_and_figures_of_merit(capsys) -> None:
    import json

    from codesign.cli.main import main

    root = Path(__file__).resolve().parents[1]
    argv = [
        "map",
        str(root / "examples/models/mlp.onnx"),
        "--hw",
        str(root / "examples/hw/eyeriss_like.yaml"),
        "--evaluations",
        "30",
        "--json",
        "-",
        "-q",
    ]
    assert main(argv) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    area = total["area_mm2"]
    # the Eyeriss-like ART: 217363 um^2 global buffer, 168 MACs of 191.82 um^2
    assert area["by_component"]["shared_glb"] == pytest.approx(0.21736338)
    assert area["by_component"]["mac"] == pytest.approx(168 * 191.82e-6)
    assert area["total"] == pytest.approx(sum(area["by_component"].values()))
    assert total["edp_js"] == pytest.approx(total["energy_pj"] * 1e-12 * total["latency_s"])
    assert total["perf_per_area_inf_per_s_mm2"] == pytest.approx(
        1 / total["latency_s"] / area["total"]
    )


def test_lut_unit_costs_more_with_a_bigger_table_and_dram_kinds_order_as_published() -> None:
    def lut_pj(index_bits: int) -> float:
        query = ComponentQuery("l", ComponentClass.LUT, 28, width_bits=8, index_bits=index_bits)
        return estimate(query).energy_pj(Action.MAC) or 0.0

    assert lut_pj(2) < lut_pj(3) < lut_pj(4)
    per_bit = {
        kind: (estimate(ComponentQuery("d", ComponentClass.DRAM, 28, width_bits=1, dram_kind=kind))
               .energy_pj(Action.READ))
        for kind in ("hbm2", "lpddr4", "gddr5", "ddr3")
    }  # fmt: skip
    assert per_bit == {"hbm2": 3.9, "lpddr4": 8.0, "gddr5": 14.0, "ddr3": 70.0}
