"""Fusion (issue 11): fused groups in the IR (printed, parsed, verified, carried by passes, never
changing the interpreter's result), the `fuse-elementwise` and `fuse` passes with their plans,
and group pricing in `map` for every cost model (one block per group, intermediates on chip)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from codesign.api import map_model
from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends.onnx import load_onnx
from codesign.ir import interpret, parse_cascade, print_cascade, verify
from codesign.ir.groups import FusedGroup, GroupKind
from codesign.ir.inputs import sample_inputs
from codesign.ir.verify import VerifyError
from codesign.mapper.search import SearchOptions
from codesign.passes import run_pipeline
from codesign.passes.fuse import FuseOptions, plan_fuse, shared_tile_bytes
from codesign.passes.fuse_elementwise import FuseElementwiseOptions, plan_fuse_elementwise
from codesign.sim.cascade import CascadeResult
from tests.ir_cases import conv_cascade, transformer_cascade
from tests.validation import load_cases

CNN = "examples/models/cnn.onnx"
EYERISS = "examples/hw/eyeriss_like.yaml"


@pytest.fixture(scope="module")
def cnn():
    return load_onnx(CNN)


@pytest.fixture(scope="module")
def cnn_fused(cnn):
    return run_pipeline(cnn, "fuse-elementwise", measure_error=False)[0]


def _map(cascade, hw: str, evaluations: int = 300) -> CascadeResult:
    search = SearchOptions(max_evaluations=evaluations, seed=0)
    return map_model(cascade, hw, search=search).result


# -- IR record ---------------------------------------------------------------------------------
def test_fused_groups_print_and_parse_back_equal(cnn_fused):
    text = print_cascade(cnn_fused)
    assert "group g0 (epilogue) [node_Conv_137, node_Conv_137_bias, node_relu]" in text
    back = parse_cascade(text)
    assert back == cnn_fused and back.groups == cnn_fused.groups
    assert print_cascade(back) == text


def test_parser_rejects_unknown_group_kind_in_one_line(cnn_fused):
    text = print_cascade(cnn_fused).replace("(epilogue)", "(bogus)", 1)
    with pytest.raises(InputError, match=r"line \d+: unknown group kind 'bogus'"):
        parse_cascade(text)


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (FusedGroup("g", GroupKind.CHAIN, ("nope",)), "no Einsum nope"),
        (FusedGroup("g", GroupKind.CHAIN, ("node_relu", "node_Conv_137")), "cascade order"),
        # relu is read by node_Conv_139 and node_add, outside the group
        (FusedGroup("g", GroupKind.EPILOGUE, ("node_Conv_137", "node_Conv_137_bias", "node_relu"),
                    ("relu",)), "on_chip relu is not an intermediate|used outside"),
        # node_Conv_139.. lie between node_relu and node_add
        (FusedGroup("g", GroupKind.CHAIN, ("node_relu", "node_add")), "not convex"),
    ],
)  # fmt: skip
def test_verifier_rejects_broken_groups(cnn, group, message):
    with pytest.raises(VerifyError, match=message):
        verify(dataclasses.replace(cnn, groups=(group,)))


def test_an_einsum_belongs_to_one_group_only(cnn):
    a = FusedGroup("a", GroupKind.CHAIN, ("node_Conv_137", "node_Conv_137_bias"))
    b = FusedGroup("b", GroupKind.CHAIN, ("node_Conv_137_bias", "node_relu"))
    with pytest.raises(VerifyError, match="already in group a"):
        verify(dataclasses.replace(cnn, groups=(a, b)))


@pytest.mark.parametrize(
    "pipeline", ["fuse-elementwise", "fuse", "fuse{buffer_kib=1}", "canonicalize,fuse-elementwise"]
)
@pytest.mark.parametrize("case", ["cnn", "conv", "transformer"])
def test_fusion_passes_leave_the_interpreter_result_bit_equal(cnn, pipeline, case):
    rng = np.random.default_rng(0)
    cascade = {"cnn": cnn, "conv": conv_cascade(rng), "transformer": transformer_cascade(rng)}[case]
    fused, _ = run_pipeline(cascade, pipeline, measure_error=False)
    verify(fused)
    inputs = sample_inputs(cascade, 0)
    before, after = interpret(cascade, inputs), interpret(fused, inputs)
    assert set(before) == set(after)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_groups_survive_later_passes_that_rebuild_the_cascade(cnn):
    fused, _ = run_pipeline(cnn, "fuse-elementwise,quantize{bits=8},canonicalize{chains=false}",
                            measure_error=False)  # fmt: skip
    assert len(fused.groups) == 10
    verify(fused)
    # a later chain fold removes members: groups keep what remains, or go when one is left
    folded, _ = run_pipeline(cnn, "fuse-elementwise,canonicalize", measure_error=False)
    verify(folded)
    assert all(len(g.einsums) > 1 for g in folded.groups) and len(folded.groups) < 10


def test_canonicalize_folds_elementwise_chains_exactly(cnn):
    folded, _ = run_pipeline(cnn, "canonicalize", measure_error=False)
    kept, _ = run_pipeline(cnn, "canonicalize{chains=false}", measure_error=False)
    assert len(folded.einsums) == 19 and len(kept.einsums) == 31
    relu_2 = folded.einsum("node_relu_2")
    assert {a.tensor for a in relu_2.inputs} == {
        "node_Conv_141_nobias",
        "stages_0_0_conv2_0_weight_bias",
        "relu",
    }
    inputs = sample_inputs(cnn, 0)
    np.testing.assert_array_equal(interpret(cnn, inputs)["logits"],
                                  interpret(folded, inputs)["logits"])  # fmt: skip
    fused, _ = run_pipeline(cnn, "canonicalize,fuse-elementwise", measure_error=False)
    assert all(len(g.einsums) == 2 for g in fused.groups if g.einsums[0] != "node_Conv_143")


# -- passes ------------------------------------------------------------------------------------
def test_fuse_elementwise_folds_bias_activation_and_residual_into_the_conv(cnn):
    fused, decisions = plan_fuse_elementwise(cnn, FuseElementwiseOptions())
    by_first = {g.einsums[0]: g for g in fused.groups}
    block = by_first["node_Conv_141"]
    assert block.einsums == ("node_Conv_141", "node_Conv_141_bias", "node_add", "node_relu_2")
    assert block.on_chip == ("node_Conv_141_nobias", "getitem_6", "add")
    reasons = {d.tensor: d.reason for d in decisions if not d.fused}
    assert reasons["relu"] == "read by 2 Einsums"
    assert reasons["relu_6"] == "node_mean is not elementwise"
    assert reasons["logits"] == "output of the cascade is stored"
    # the add of two branches joins the later contraction; the shortcut keeps its bias only
    assert by_first["node_Conv_143"].einsums == ("node_Conv_143", "node_Conv_143_bias")
    assert "node_add_1" in by_first["node_Conv_147"].einsums
    # the reshape in front of the classifier is its prologue
    assert by_first["node_view"].einsums == ("node_view", "node_linear", "node_linear_bias")


def test_fuse_elementwise_respects_max_epilogue_and_prologue_switch(cnn):
    fused, _ = plan_fuse_elementwise(cnn, FuseElementwiseOptions(prologue=False, max_epilogue=1))
    assert all(len(g.einsums) == 2 for g in fused.groups)
    assert not any(g.einsums[0] == "node_view" for g in fused.groups)


def test_shared_nest_tile_of_a_conv_input_is_one_image_and_of_an_epilogue_one_element(cnn):
    # relu_1 [1,16,32,32] f32 is read by a conv that reduces its channels: the shared nest is
    # the batch rank only, so the whole 64 KiB image is the tile
    assert shared_tile_bytes(cnn, "relu_1") == (16 * 32 * 32 * 4, ("D0",))
    assert shared_tile_bytes(cnn, "getitem_6")[0] == 4


def test_fuse_keeps_a_tile_on_chip_only_when_the_buffer_holds_it(cnn):
    small, plan_small = plan_fuse(cnn, FuseOptions(buffer_kib=32))
    large, plan_large = plan_fuse(cnn, FuseOptions(buffer_kib=100))
    small_reason = next(d for d in plan_small if d.tensor == "relu_1")
    assert not small_reason.fused and "> buffer 32,768 B" in small_reason.reason
    assert next(d for d in plan_large if d.tensor == "relu_1").fused
    assert len(large.groups) < len(small.groups)
    for cascade in (small, large):
        verify(cascade)
    grouped = [g for g in large.groups if "relu_1" in g.on_chip]
    assert grouped and grouped[0].kind is GroupKind.CHAIN


def test_fuse_options_are_validated():
    with pytest.raises(InputError, match="buffer_kib"):
        run_pipeline(load_onnx(CNN), "fuse{buffer_kib=0}", measure_error=False)


# -- pricing -----------------------------------------------------------------------------------
def _elementwise_share(result: CascadeResult) -> float:
    vector = sum(e.cost.energy_pj for e in result.einsums if e.kind.value != "mac")
    return vector / result.energy_pj


@pytest.fixture(scope="module")
def eyeriss_pair(cnn, cnn_fused):
    return _map(cnn, EYERISS), _map(cnn_fused, EYERISS)


def test_cnn_on_eyeriss_fused_elementwise_share_below_10_percent_and_energy_lower(eyeriss_pair):
    unfused, fused = eyeriss_pair
    assert _elementwise_share(unfused) > 0.2  # every ReLU/bias/add a DRAM round trip
    assert _elementwise_share(fused) < 0.10
    assert fused.energy_pj < 0.8 * unfused.energy_pj
    assert fused.cycles <= unfused.cycles
    assert fused.macs == unfused.macs


def test_group_energy_is_the_sum_of_its_members_and_totals_add_up(eyeriss_pair):
    _, fused = eyeriss_pair
    rows = {e.name: e for e in fused.einsums}
    for g in fused.groups:
        members = [rows[n] for n in g.einsums]
        assert g.energy_pj == pytest.approx(sum(m.cost.energy_pj for m in members))
        assert g.cycles >= max(m.cost.cycles for m in members)
        assert g.cycles <= sum(m.cost.cycles for m in members) + 1e-9
        assert g.saved_energy_pj > 0
        # no member touches an on-chip intermediate in the backing store any more
        for m in members:
            if m.cost.levels:
                assert not {a.tensor for a in m.cost.levels[0].tensors} & set(g.on_chip)
    assert fused.energy_pj == pytest.approx(sum(e.cost.energy_pj for e in fused.einsums))


@pytest.mark.parametrize(
    ("hw", "model"),
    [
        ("examples/hw/tpu_like.yaml", "cycle"),
        ("examples/hw/lut_tc.yaml", "analytical"),
        ("examples/hw/stripes_like.yaml", "analytical"),
        ("examples/hw/sat_like.yaml", "analytical"),
    ],
)
def test_every_cost_model_prices_fused_groups_cheaper_and_reports_them(tmp_path, hw, model):
    docs = {}
    for passes in ("none", "fuse-elementwise"):
        out = tmp_path / f"{passes}.json"
        args = ["map", CNN, "--hw", hw, "--model", model, "-q", "--evaluations", "200",
                "--json", str(out)]  # fmt: skip
        if passes != "none":
            args += ["--passes", passes]
        assert main(args) == 0
        docs[passes] = json.loads(out.read_text())
    unfused, fused = docs["none"], docs["fuse-elementwise"]
    assert unfused["groups"] == [] and len(fused["groups"]) == 10
    assert fused["total"]["energy_pj"] < unfused["total"]["energy_pj"]
    assert fused["total"]["cycles"] <= unfused["total"]["cycles"]
    assert all(g["on_chip_level"] != "DRAM" for g in fused["groups"])


def test_map_prints_groups_and_explains_the_plan(capsys):
    args = ["map", CNN, "--hw", EYERISS, "-q", "--evaluations", "100",
            "--passes", "fuse{buffer_kib=100}", "--explain"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "relu_1: fused (shared nest [D0]" in out
    assert "relu -> node_Conv_139 via relu: kept apart" in out
    assert "fused groups (one kernel each)" in out
    assert "reuse: MACs per backing-store access" in out


# -- roofline ----------------------------------------------------------------------------------
LLM_VIEWER_FUSED = [c for c in load_cases("llm_viewer") if "passes" in c["inputs"]]


@pytest.mark.parametrize("case", LLM_VIEWER_FUSED, ids=[c["id"] for c in LLM_VIEWER_FUSED])
def test_fused_llm_roofline_agrees_with_llm_viewer(tmp_path, case):
    inputs = case["inputs"]
    out = tmp_path / "roofline.json"
    args = ["roofline", "--llm", inputs["llm"], "--hw", inputs["hw"], "--batch",
            str(inputs["batch"]), "--seq", str(inputs["seq"]), "--phase", inputs["phase"],
            "--passes", inputs["passes"], "--json", str(out)]  # fmt: skip
    if inputs["flash_attention"]:
        args.append("--flash-attention")
    assert main(args) == 0
    totals = json.loads(out.read_text())["totals"][inputs["phase"]]
    for key, expected in case["expected"].items():
        assert totals[key] == pytest.approx(expected, rel=case["tolerance"]), key


def test_roofline_prices_one_kernel_per_fused_group_and_unfused_stays_unchanged(tmp_path):
    docs = {}
    for name, extra in (("none", []), ("fused", ["--passes", "fuse-elementwise"])):
        out = tmp_path / f"{name}.json"
        assert main(["roofline", CNN, "--hw", "a100", "--per-einsum", "--json", str(out),
                     *extra]) == 0  # fmt: skip
        docs[name] = json.loads(out.read_text())
    unfused, fused = (list(d["totals"].values())[0] for d in (docs["none"], docs["fused"]))
    assert fused["ops"] == unfused["ops"]
    assert fused["memory_bytes"] < 0.6 * unfused["memory_bytes"]
    assert len(docs["fused"]["rows"]) < len(docs["none"]["rows"])


def test_passes_none_gives_the_unfused_result(tmp_path):
    docs = []
    for extra in ([], ["--passes", "none"]):
        out = tmp_path / f"{len(extra)}.json"
        args = ["map", CNN, "--hw", EYERISS, "-q", "--evaluations", "50", "--json", str(out)]
        assert main([*args, *extra]) == 0
        docs.append(json.loads(out.read_text()))
    assert docs[0]["total"] == docs[1]["total"] and docs[1]["groups"] == []


def test_elementwise_einsums_are_priced_at_the_array_word_like_contractions(tmp_path, capsys):
    from codesign.sim.vector import array_words

    cnn = load_onnx(CNN)
    # f32 on a 16-bit word: one word per element, as the MAC nest counts it
    assert array_words(cnn, "relu", 4 * 16384, 16) == 16384
    # narrower storage (a pipeline's int4 codes) packs: 16 codes per 64-bit word
    quantized, _ = run_pipeline(cnn, "quantize{bits=4}", measure_error=False)
    weight = next(t for t in quantized.weights if t.dtype.bits == 4)
    assert array_words(quantized, weight.name, weight.size_bytes, 64) == weight.size / 16
    out = tmp_path / "map.json"
    assert main(["map", CNN, "--hw", EYERISS, "-q", "--evaluations", "50",
                 "--json", str(out)]) == 0  # fmt: skip
    assert "one word per element" in json.loads(out.read_text())["notes"][0]
