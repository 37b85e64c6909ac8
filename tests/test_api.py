"""`codesign.map_model`: the one entry point the CLI, examples and paper scripts share; the
card's sparse support and the IR-precision rule are options of the cost model, not of the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import codesign
from codesign.api import PassOptions, map_model
from codesign.cli.main import main
from codesign.hwmodels.registry import load_hardware
from codesign.hwmodels.sparse_support import DENSE_ARRAY, SparseAction
from codesign.mapper.search import SearchOptions
from codesign.passes import parse_pipeline, run_pipeline
from codesign.sim.cost import EinsumKind
from codesign.sim.sparse_cost import SparseAnalyticalModel

ROOT = Path(__file__).resolve().parents[1]
CNN = str(ROOT / "examples" / "models" / "cnn.onnx")
SAT = str(ROOT / "examples" / "hw" / "sat_like.yaml")
PRUNE = "prune-nm{n=2,m=8}"
SEARCH = SearchOptions(max_evaluations=1000)


@pytest.fixture(scope="module")
def cnn():
    return codesign.load(CNN)


def test_the_sat_card_declares_2_of_8_skipping() -> None:
    arch = load_hardware(SAT)
    assert arch.sparse.compute is SparseAction.SKIPPING and arch.sparse.nm == (2, 8)


def test_cli_map_shows_the_nm_skipping_speedup_the_api_shows(cnn, capsys) -> None:
    def cli(*extra: str) -> dict:
        argv = ["map", CNN, "--hw", SAT, "--evaluations", "1000", "--json", "-", "-q", *extra]
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out)

    dense, sparse = cli(), cli("--passes", PRUNE)
    api = map_model(cnn, SAT, passes=PRUNE, search=SEARCH)
    assert sparse["total"]["cycles"] == pytest.approx(api.cycles)
    assert dense["total"]["cycles"] == pytest.approx(map_model(cnn, SAT, search=SEARCH).cycles)
    # the Sparseloop-style model, spelled out by hand, gives the same skipping
    pruned, _ = run_pipeline(cnn, parse_pipeline(PRUNE))
    arch = load_hardware(SAT)
    by_hand = map_model(
        pruned, dataclasses.replace(arch, sparse=DENSE_ARRAY), search=SEARCH,
        pricing=SparseAnalyticalModel.for_cascade(pruned, arch.sparse),
    )  # fmt: skip
    assert api.cycles == pytest.approx(by_hand.cycles)
    assert dense["total"]["cycles"] / sparse["total"]["cycles"] > 1.5


def test_sparse_support_is_off_with_the_option(cnn) -> None:
    pruned = map_model(cnn, SAT, passes=PRUNE, search=SEARCH, sparse=False)
    dense = map_model(cnn, SAT, search=SEARCH)
    assert pruned.cycles == pytest.approx(dense.cycles)


def test_a_dense_card_ignores_the_irs_densities(cnn) -> None:
    ws = str(ROOT / "examples" / "hw" / "simple_ws.yaml")
    pruned = map_model(cnn, ws, passes=PRUNE, search=SEARCH)
    assert pruned.cycles == pytest.approx(map_model(cnn, ws, search=SEARCH).cycles)


def test_ir_precision_overrides_a_bitserial_cards_pinned_weight_bits(cnn) -> None:
    quant = "quantize{bits=8}"
    pinned = map_model(cnn, "bitmod_gen", passes=quant, ir_precision=False)
    from_ir = map_model(cnn, "bitmod_gen", passes=quant)  # on: the pipeline re-typed weights
    assert from_ir.cycles != pinned.cycles
    assert from_ir.notes and "weight_bits" in from_ir.notes[0]
    assert not pinned.notes


def test_map_model_reports_passes_and_kinds(cnn) -> None:
    report = map_model(cnn, "eyeriss_like", passes="quantize{bits=8}", search=SEARCH,
                       pass_options=PassOptions(measure_error=True))  # fmt: skip
    assert report.pass_reports and report.error_measured
    assert report.pass_reports[0].error is not None
    kinds = {e.kind for e in report.result.einsums}
    assert EinsumKind.MAC in kinds
    assert report.result.area_mm2 is not None and report.result.area_mm2 > 0


def test_map_model_is_deterministic_for_a_seed(cnn) -> None:
    first = map_model(cnn, "simple_ws", seed=3, search=SearchOptions(max_evaluations=500, seed=3))
    again = map_model(cnn, "simple_ws", seed=3, search=SearchOptions(max_evaluations=500, seed=3))
    assert first.result == again.result


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PassOptions().measure_error = True  # type: ignore[misc]


@pytest.mark.parametrize("card", ["eyeriss_like", "bitmod_gen", "lut_tc"])
def test_result_area_is_the_total_of_the_breakdown_map_prints(card: str) -> None:
    """One area figure per card: the family model's total equals the estimators' breakdown."""
    from codesign.hwmodels.estimators import area_breakdown_mm2
    from codesign.sim.report import figures_of_merit

    report = map_model(codesign.load(CNN), card, search=SearchOptions(max_evaluations=200))
    breakdown = area_breakdown_mm2(report.hw, report.family.name)
    assert report.result.area_mm2 == pytest.approx(sum(breakdown.values()))
    merit = figures_of_merit(report.result, breakdown)
    assert merit["area_mm2"]["total"] == pytest.approx(report.result.area_mm2)
