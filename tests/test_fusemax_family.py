"""`family: attention_array` in the hardware registry: any cascade priced per Einsum on the
FuseMax / FLAT 2D + 1D arrays (`codesign.sim.attention_array`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from codesign import map_model
from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends import load_model
from codesign.frontends.llm import Workload, build_llm
from codesign.frontends.llm_config import preset
from codesign.hwmodels.fusemax import AttentionArray, Op
from codesign.hwmodels.registry import Command, family, load_hardware_card
from codesign.ir.cascade import Cascade
from codesign.passes import run_pipeline
from codesign.sim.attention_array import AttentionArrayModel, binding, key_rank
from codesign.sim.cost import EinsumKind
from codesign.sim.family_models import CostOptions
from codesign.sim.fusemax import Design, Transformer, attention_cascade, evaluate_attention

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT / "examples" / "models" / "cnn.onnx"
CARDS = ("fusemax", "flat")


def _card(name: str) -> AttentionArray:
    hw = load_hardware_card(name, Command.MAP).hw
    assert isinstance(hw, AttentionArray)
    return hw


def _llm_1pass(tile: int) -> Cascade:
    """One SmolLM2-135M layer, prefill 256 tokens, with FuseMax's 1-pass attention."""
    cascade = build_llm(preset("smollm2-135m"), Workload(1, 256), layers=1)
    out, _ = run_pipeline(cascade, f"attention-1pass{{tile={tile}}}")
    return out


@pytest.mark.parametrize("card", CARDS)
def test_attention_cards_load_by_preset_name_as_the_attention_array_family(card):
    loaded = load_hardware_card(card, Command.MAP)
    assert loaded.family is family("attention_array")
    assert load_hardware_card(card, Command.ROOFLINE).family is family("attention_array")
    with pytest.raises(InputError, match="taken by: map, roofline"):
        load_hardware_card(card, Command.DSE)


@pytest.mark.parametrize("card", CARDS)
def test_the_cnn_maps_on_attention_arrays_with_finite_positive_cost(card, capsys):
    assert main(["map", str(CNN), "--hw", card, "--json", "-", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report["total"]["cycles"] < math.inf
    assert 0 < report["total"]["energy_pj"] < math.inf
    priced = [e for e in report["einsums"] if e["kind"] != "view"]
    assert all(e["cycles"] > 0 and e["energy_pj"] > 0 for e in priced)
    assert math.isclose(sum(report["total"]["energy_by_level_pj"].values()),
                        report["total"]["energy_pj"], rel_tol=1e-9)  # fmt: skip


def test_a_cnn_has_no_key_rank_so_only_its_contractions_use_the_2d_array():
    cnn = load_model(str(CNN))
    assert key_rank(cnn) is None  # its M is the output channels: no softmax reduces it
    bound = binding(cnn, _card("fusemax"))
    assert bound and all(p.on_2d == (Op.MAC in dict(p.ops)) for p in bound.values())


@pytest.mark.parametrize("card", CARDS)
def test_per_einsum_sum_on_fusemax_s_3pass_cascade_equals_the_unfused_design(card):
    hw = _card(card)
    model = Transformer("BERT", 768, 12, 64, 64, 3072, 2)
    cascade = attention_cascade(model, 1024)
    assert key_rank(cascade) == "M"
    results = [AttentionArrayModel().evaluate(e, cascade, hw) for e in cascade.einsums]
    unfused = evaluate_attention(Design.UNFUSED, model, 1024, hw)
    assert math.isclose(sum(r.cost.cycles for r in results), unfused.cycles, rel_tol=1e-12)
    assert math.isclose(sum(r.cost.energy_pj for r in results), unfused.energy_pj, rel_tol=1e-12)


def test_projections_bind_to_the_2d_array_and_per_key_softmax_only_on_fusemax():
    cascade = _llm_1pass(64)
    assert key_rank(cascade) == "T"
    on_fusemax, on_flat = binding(cascade, _card("fusemax")), binding(cascade, _card("flat"))
    for name in ("L0_q_proj", "L0_gate_proj", "L0_qk_matmul", "L0_softmax_slnv"):
        assert on_fusemax[name].on_2d and on_flat[name].on_2d
    for name in ("L0_softmax_sln", "L0_softmax_lm", "L0_softmax_sld"):  # per key
        assert on_fusemax[name].on_2d and not on_flat[name].on_2d
    for name in ("L0_softmax_prm", "L0_softmax_rm_step", "L0_attn_norm_norm"):  # per row
        assert not on_fusemax[name].on_2d and not on_flat[name].on_2d


def test_fusemax_is_no_slower_than_flat_on_per_key_work_of_the_1pass_llm_attention():
    cascade = _llm_1pass(64)
    fusemax, flat = _card("fusemax"), _card("flat")
    model = AttentionArrayModel()
    per_key = [n for n, p in binding(cascade, fusemax).items()
               if p.on_2d and not binding(cascade, flat)[n].on_2d]  # fmt: skip
    assert len(per_key) >= 4
    for einsum in cascade.einsums:
        fm = model.evaluate(einsum, cascade, fusemax).cost
        fl = model.evaluate(einsum, cascade, flat).cost
        if einsum.name in per_key:
            assert fm.cycles <= fl.cycles and fm.compute_cycles < fl.compute_cycles / 10
        if einsum.name == "L0_softmax_prm":
            # per-row exp on FuseMax's 1D PEs: 7 cycles per exp against FLAT's pipelined chain
            # (the paper overlaps it with the 2D array; one kernel per Einsum cannot)
            assert fm.compute_cycles > fl.compute_cycles
    busy = {hw.name: sum(model.evaluate(e, cascade, hw).cost.compute_cycles
                         for e in cascade.einsums) for hw in (fusemax, flat)}  # fmt: skip
    assert busy["FuseMax"] < busy["FLAT"]


def test_views_are_free_and_kinds_follow_the_operations():
    cascade = _llm_1pass(256)
    report = map_model(cascade, "fusemax")
    kinds = {e.name: e for e in report.result.einsums}
    views = [e for e in kinds.values() if e.kind is EinsumKind.VIEW]
    assert views and all(e.cost.cycles == 0 and e.cost.energy_pj == 0 for e in views)
    assert kinds["L0_q_proj"].kind is EinsumKind.MAC
    assert kinds["L0_softmax_sln"].kind is EinsumKind.VECTOR
    assert any("own kernel" in note for note in report.notes)


def test_attention_arrays_refuse_the_spatial_cycle_model():
    with pytest.raises(InputError, match="attention_array hardware is priced by its own model"):
        family("attention_array").model(CostOptions(model="cycle"))
