"""The mapper over a fused group's shared loop nest (issue 11, item 4): shared axes, outer
tilings whose intermediates fit the on-chip level, inner nests searched per member, the
choice against the block model, the report, and the issue's acceptance on the CNN and
ResNet-18/50."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from codesign.api import map_model
from codesign.cli.main import main
from codesign.frontends.onnx import load_onnx
from codesign.hwmodels.loader import load_arch
from codesign.ir import interpret, parse_cascade, verify
from codesign.ir.cascade import Cascade
from codesign.ir.inputs import sample_inputs
from codesign.mapper.fused_search import (
    OuterTiling,
    outer_tilings,
    search_member_nests,
    shared_axes,
)
from codesign.mapper.search import Constraints, Objective, SearchOptions
from codesign.mapper.search_types import objective_score as score
from codesign.passes import run_pipeline
from codesign.sim.cascade import CascadeResult
from codesign.sim.family_models import CostOptions, spatial_model
from codesign.sim.fused import BLOCK, FUSED_NEST, price_groups

CNN = "examples/models/cnn.onnx"
EYERISS = "examples/hw/eyeriss_like.yaml"
TPU = "examples/hw/tpu_like.yaml"
SEARCH = SearchOptions(max_evaluations=300, seed=0)

MLP = """cascade mlp {
  input x: f32[M=64,K=32]
  weight w1: f32[K=32,N=48]
  tensor h: f32[M=64,N=48]
  tensor a: f32[M=64,N=48]
  weight w2: f32[N=48,O=16]
  output y: f32[M=64,O=16]
  mm1: h[m,n] = sum[k:32] x[m,k] * w1[k,n]
  act: a[m,n] = relu(h[m,n])
  mm2: y[m,o] = sum[n:48] a[m,n] * w2[n,o]
}
"""


@pytest.fixture(scope="module")
def eyeriss():
    return load_arch(EYERISS)


@pytest.fixture(scope="module")
def mlp_chain() -> Cascade:
    """matmul -> relu -> matmul fused by `fuse` into one chain group on chip [h, a]."""
    cascade = run_pipeline(parse_cascade(MLP), "fuse{buffer_kib=64}", measure_error=False)[0]
    verify(cascade)
    assert cascade.groups[0].einsums == ("mm1", "act", "mm2")
    return cascade


@pytest.fixture(scope="module")
def cnn_fused() -> Cascade:
    return run_pipeline(load_onnx(CNN), "fuse-elementwise", measure_error=False)[0]


def _rows_and_nest(cascade: Cascade, arch, search: SearchOptions = SEARCH):
    """Each Einsum priced on its own (one fresh mapper), and the fused-nest search it offers."""
    model = spatial_model(CostOptions(search=search))
    rows = [model.evaluate(e, cascade, arch) for e in cascade.einsums]
    return rows, model.fused_nest_search(cascade, arch)


# -- shared axes and outer tilings -------------------------------------------------------------
def test_a_matmul_chain_shares_only_the_rank_the_consumer_does_not_reduce(mlp_chain):
    axes = shared_axes(mlp_chain, mlp_chain.groups[0])
    assert [(a.name, a.extent) for a in axes] == [("M", 64)]
    assert axes[0].variables == (("mm1", "m"), ("act", "m"), ("mm2", "m"))


def test_an_epilogue_group_shares_every_output_rank_and_a_conv_chain_only_the_batch(cnn_fused):
    epilogue = cnn_fused.groups[0]  # conv + bias + relu
    assert [a.name for a in shared_axes(cnn_fused, epilogue)] == ["B", "M", "P", "Q"]
    chain = run_pipeline(load_onnx(CNN), "fuse{buffer_kib=100}", measure_error=False)[0]
    group = next(g for g in chain.groups if "relu_1" in g.on_chip)
    # the second conv reads relu_1 through its 3x3 window and reduces its channels
    assert [(a.name, a.extent) for a in shared_axes(chain, group)] == [("B", 1)]


def test_outer_tilings_fit_the_level_and_rank_the_least_external_traffic_first(
    mlp_chain, eyeriss
):
    group = mlp_chain.groups[0]
    axes = shared_axes(mlp_chain, group)
    small = dataclasses.replace(eyeriss.levels[1], size_words=2000)
    arch = dataclasses.replace(eyeriss, levels=(eyeriss.levels[0], small, *eyeriss.levels[2:]))
    tilings, reason = outer_tilings(mlp_chain, group, axes, arch)
    assert tilings and not reason
    # h and a are 64x48 words each: only M/4 and finer fit 2,000 words
    assert all(t.tile_words <= 2000 and t.capacity_words == 2000 for t in tilings)
    assert tilings[0].factors == (("M", 4),) and tilings[0].tile_words == 2 * 16 * 48
    moved = [t.external_words for t in tilings]
    assert moved == sorted(moved)


def test_a_weight_is_re_read_from_dram_once_per_outer_tile(mlp_chain, eyeriss):
    group = mlp_chain.groups[0]
    axes = shared_axes(mlp_chain, group)
    model = spatial_model(CostOptions(search=SEARCH))
    reads = {}
    for blocks in (1, 4):
        factors = (("M", blocks),) if blocks > 1 else ()
        tiling = OuterTiling(1, factors, blocks, 0, 131072, 0.0)
        nests, why = search_member_nests(mlp_chain, group, axes, tiling, eyeriss, model.mapper,
                                         Constraints(), SEARCH)  # fmt: skip
        assert not why
        mm2 = next(n for n in nests if n.einsum == "mm2")
        assert mm2.problem.bound("m") == 64 // blocks
        dram = mm2.result.cost.levels[0]
        w2 = next(a for a in dram.tensors if a.tensor == "w2")
        assert not any(a.tensor == "a" for a in dram.tensors)  # the intermediate stays on chip
        reads[blocks] = w2.fills + w2.reads
    # every block reads all of w2 (48 x 16 words) at least once
    assert reads[1] >= 48 * 16 and 4 * reads[4] >= 4 * 48 * 16


# -- the choice against the block model --------------------------------------------------------
@pytest.fixture(scope="module")
def cnn_groups(cnn_fused, eyeriss):
    rows, nest = _rows_and_nest(cnn_fused, eyeriss)
    assert nest is not None
    _, block = price_groups(cnn_fused, rows, eyeriss)
    priced, fused = price_groups(cnn_fused, rows, eyeriss, nest)
    return block, fused, priced


def test_fused_nest_never_scores_worse_than_the_block_model_on_the_same_group(cnn_groups):
    block, fused, _ = cnn_groups
    objective = SEARCH.objective
    used = 0
    for b, f in zip(block, fused, strict=True):
        assert b.model == BLOCK and f.name == b.name
        assert score(f.cycles, f.energy_pj, objective) <= score(b.cycles, b.energy_pj, objective)
        if f.model == FUSED_NEST:
            used += 1
            assert f.nests and "<= block model" in f.reason
        else:
            assert f == dataclasses.replace(b, reason=f.reason) and "< fused nest" in f.reason
    # the search is not a no-op: it prices most of the CNN's groups, better than the blocks
    assert used >= len(fused) // 2
    assert sum(f.energy_pj for f in fused) < sum(b.energy_pj for b in block)


def test_fused_nest_intermediates_never_exceed_the_on_chip_level(cnn_groups, eyeriss):
    _, fused, priced = cnn_groups
    rows = {r.name: r for r in priced}
    for g in (g for g in fused if g.model == FUSED_NEST):
        level = eyeriss.level_index(g.on_chip_level)
        assert eyeriss.instances(level) == 1
        assert 0 < g.tile_words <= g.capacity_words == eyeriss.levels[level].size_words
        for name, _ in g.nests:
            cost = rows[name].cost
            assert cost.valid
            assert cost.levels[level].capacity_words_used <= g.capacity_words
            held = [a for a in cost.levels[level].tensors if a.tensor in g.on_chip]
            assert held and sum(a.tile_words for a in held) <= g.tile_words
            assert not {a.tensor for a in cost.levels[0].tensors} & set(g.on_chip)


def test_a_conv_to_conv_chain_is_mapped_as_one_nest_with_its_activations_in_the_buffer(eyeriss):
    chain = run_pipeline(load_onnx(CNN), "fuse{buffer_kib=100}", measure_error=False)[0]
    group = next(g for g in chain.groups if "relu_1" in g.on_chip)
    only = dataclasses.replace(chain, groups=(group,))
    rows, nest = _rows_and_nest(only, eyeriss)
    priced, (result,) = price_groups(only, rows, eyeriss, nest)
    assert result.model == FUSED_NEST and result.blocks == 1  # only the batch (1) is shared
    convs = [name for name, _ in result.nests]
    assert len(convs) == 2 and "node_Conv_141" in convs
    # relu_1, the whole 16x32x32 image between the convs, lives in the glb for the block
    assert result.on_chip_level == "shared_glb" and result.tile_words >= 16 * 32 * 32
    rows_by_name = {r.name: r for r in priced}
    consumer = rows_by_name["node_Conv_141"].cost
    assert not any(a.tensor == "relu_1" for a in consumer.levels[0].tensors)
    assert any(a.tensor == "relu_1" for a in consumer.levels[1].tensors)


def test_a_group_whose_intermediate_cannot_fit_falls_back_to_the_block_model_with_a_reason(
    eyeriss,
):
    # relu_1 (16x32x32 words) shares only the batch rank with the conv that reads it: with an
    # 8,192-word buffer no outer tiling can hold it
    chain = run_pipeline(load_onnx(CNN), "fuse{buffer_kib=100}", measure_error=False)[0]
    small = dataclasses.replace(eyeriss.levels[1], size_words=8192)
    arch = dataclasses.replace(eyeriss, levels=(eyeriss.levels[0], small, *eyeriss.levels[2:]))
    group = next(g for g in chain.groups if "relu_1" in g.on_chip)
    only = dataclasses.replace(chain, groups=(group,))
    rows, nest = _rows_and_nest(only, arch)
    _, (result,) = price_groups(only, rows, arch, nest)
    assert result.model == BLOCK
    assert result.reason.startswith("no fused nest: intermediates need")
    assert "shared_glb holds 8,192" in result.reason


def test_fixed_schedule_and_cycle_models_keep_the_block_model_and_say_so(tmp_path):
    out = tmp_path / "cycle.json"
    args = ["map", CNN, "--hw", TPU, "--model", "cycle", "-q", "--evaluations", "100",
            "--passes", "fuse-elementwise", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    groups = json.loads(out.read_text())["groups"]
    assert groups and all(g["model"] == "block" for g in groups)
    assert all("fixes its schedule" in g["reason"] for g in groups)


def test_fused_nest_search_is_deterministic_for_a_seed(mlp_chain, eyeriss):
    # on energy the chain's fused nest (h and a in the glb) beats the block model
    search = SearchOptions(max_evaluations=300, seed=0, objective=Objective.ENERGY)
    results = []
    for _ in range(2):
        rows, nest = _rows_and_nest(mlp_chain, eyeriss, search)
        results.append(price_groups(mlp_chain, rows, eyeriss, nest))
    assert results[0] == results[1]
    assert results[0][1][0].model == FUSED_NEST


def test_pricing_fused_groups_leaves_the_interpreter_result_unchanged(mlp_chain, eyeriss):
    unfused = parse_cascade(MLP)
    rng = np.random.default_rng(0)
    weights = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in unfused.weights}
    inputs = {**sample_inputs(unfused, 0), **weights}
    before = interpret(unfused, inputs)
    rows, nest = _rows_and_nest(mlp_chain, eyeriss)
    price_groups(mlp_chain, rows, eyeriss, nest)
    after = interpret(mlp_chain, inputs)
    assert set(before) == set(after)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_fused_groups_leave_the_per_einsum_mappings_of_the_members(cnn_groups):
    """Rows keep each member's own full-problem mapping (so `--mapping-out` files load back);
    the group carries the block mappings of its inner nests."""
    _, fused, priced = cnn_groups
    rows = {r.name: r for r in priced}
    for g in (g for g in fused if g.model == FUSED_NEST and g.blocks > 1):
        for name, mapping in g.nests:
            full = rows[name].mapping
            assert full is not None and full != mapping


# -- report ------------------------------------------------------------------------------------
def test_map_json_and_explain_carry_the_group_mapping(tmp_path, capsys):
    out = tmp_path / "map.json"
    args = ["map", CNN, "--hw", EYERISS, "-q", "--evaluations", "300",
            "--passes", "fuse-elementwise", "--explain", "--json", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    groups = json.loads(out.read_text())["groups"]
    nest = next(g for g in groups if g["model"] == "fused-nest" and g["blocks"] > 1)
    assert nest["on_chip_level"] == "shared_glb"
    assert nest["shared_loops"] and nest["shared_loops"][0]["outer_factor"] > 1
    assert 0 < nest["on_chip_tile_words"] <= nest["on_chip_capacity_words"]
    assert nest["inner_nests"][nest["einsums"][0]].startswith("DRAM[")
    assert nest["reuse_macs_per_backing_access"] > 0
    assert f"{nest['name']}: fused-nest; {nest['blocks']} blocks" in text
    assert f"  {nest['einsums'][0]}: DRAM[" in text


# -- acceptance of issue 11 --------------------------------------------------------------------
def _elementwise_cycle_share(result: CascadeResult) -> float:
    return sum(e.cost.cycles for e in result.einsums if e.kind.value != "mac") / result.cycles


def _elementwise_energy_share(result: CascadeResult) -> float:
    return sum(e.cost.energy_pj for e in result.einsums if e.kind.value != "mac") / result.energy_pj


def test_cnn_on_eyeriss_fused_nest_energy_below_unfused_and_elementwise_share_below_10_percent():
    cnn = load_onnx(CNN)
    unfused = map_model(cnn, EYERISS, search=SEARCH).result
    fused = map_model(cnn, EYERISS, passes="fuse-elementwise", search=SEARCH).result
    assert any(g.model == FUSED_NEST for g in fused.groups)
    # the repeated blocks' inner nests come from the layer cache
    assert fused.fused_nest_stats is not None and fused.fused_nest_stats.cache_hits > 0
    assert _elementwise_energy_share(fused) < 0.10 < _elementwise_energy_share(unfused)
    assert fused.energy_pj < 0.8 * unfused.energy_pj
    assert fused.macs == unfused.macs


@pytest.fixture(scope="module")
def resnet_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("resnets")


def _resnet(name: str, out: Path) -> Path:
    """ResNet-18/50 generated from examples/models (torch export, 5-10 s each)."""
    models = Path(__file__).resolve().parent.parent / "examples" / "models"
    if str(models) not in sys.path:
        sys.path.insert(0, str(models))
    from generate import generate

    return generate([name], out, quiet=True)[name]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_on_tpu_fused_elementwise_share_of_cycles_below_10_percent_and_fewer_cycles(
    resnet_dir, name
):
    cascade = load_onnx(_resnet(name, resnet_dir))
    search = SearchOptions(max_evaluations=300, seed=0)
    unfused = map_model(cascade, TPU, search=search).result
    fused = map_model(cascade, TPU, passes="fuse-elementwise", search=search).result
    assert _elementwise_cycle_share(unfused) > 0.15  # every bias/ReLU/add a DRAM round trip
    assert _elementwise_cycle_share(fused) < 0.10
    assert fused.cycles < unfused.cycles
    assert fused.macs == unfused.macs
    assert {g.model for g in fused.groups} <= {BLOCK, FUSED_NEST}
    assert any(g.model == FUSED_NEST for g in fused.groups)
    # the repeated blocks' inner nests come from the layer cache
    assert fused.fused_nest_stats is not None and fused.fused_nest_stats.cache_hits > 0


def test_groups_of_the_block_model_are_unchanged_without_a_search(cnn_fused, eyeriss):
    """`price_groups` without a fused-nest search is the block model of before (issue 11's
    first model): every group says so."""
    rows, _ = _rows_and_nest(cnn_fused, eyeriss)
    _, groups = price_groups(cnn_fused, rows, eyeriss)
    assert all(g.model == BLOCK and g.blocks == 1 and not g.nests for g in groups)
    assert all("fixes its schedule" in g.reason for g in groups)


# -- speed: workers, the layer cache, the statistics (issue 12) --------------------------------
TWIN = """cascade twin {
  input x: f32[M=64,K=48]
  weight w1: f32[K=48,N=48]
  tensor h1: f32[M=64,N=48]
  tensor a1: f32[M=64,N=48]
  weight w2: f32[N=48,O=48]
  tensor h2: f32[M=64,O=48]
  output y: f32[M=64,O=48]
  mm1: h1[m,n] = sum[k:48] x[m,k] * w1[k,n]
  act1: a1[m,n] = relu(h1[m,n])
  mm2: h2[m,n] = sum[k:48] a1[m,k] * w2[k,n]
  act2: y[m,n] = relu(h2[m,n])
}
"""


def test_fused_nest_searches_over_two_workers_equal_one_worker(mlp_chain, cnn_fused, monkeypatch):
    """`workers=2` hands every group's inner-nest searches to the mapper's processes at once
    (`prefetch_nests`); each search is seeded as alone, so every row and group is the same."""
    from codesign.mapper.memo import Mapper
    from codesign.sim.mapping_search import analytical_mapper

    handed: list[int] = []
    prefetch_each = Mapper.prefetch_each

    def spy(self, jobs, arch, options, workers):
        if any(c.bypass for _, c in jobs):  # the fused nests' sub-problems bypass DRAM
            handed.append(len(jobs))
        return prefetch_each(self, jobs, arch, options, workers)

    monkeypatch.setattr(Mapper, "prefetch_each", spy)
    energy = SearchOptions(max_evaluations=300, seed=0, objective=Objective.ENERGY)
    for cascade, hw, search in ((mlp_chain, EYERISS, energy), (cnn_fused, EYERISS, SEARCH)):
        one = map_model(cascade, hw, search=search, workers=1).result
        mapper = analytical_mapper()
        two = map_model(cascade, hw, search=search, workers=2, mapper=mapper).result
        assert one.einsums == two.einsums and one.groups == two.groups
        assert not mapper.prefetched  # every search handed over was used, none searched twice
        assert one.fused_nest_stats is not None and two.fused_nest_stats is not None
        assert one.fused_nest_stats.evaluations == two.fused_nest_stats.evaluations
    assert len(handed) == 2 and min(handed) >= 2  # one hand-over per cascade, with workers only
    assert one.groups[0].model in (BLOCK, FUSED_NEST)


def test_identical_blocks_reuse_their_fused_nest_searches_from_the_layer_cache(eyeriss):
    """Two identical matmul+ReLU blocks (as ResNet's repeated blocks): the second group's
    inner nests are the first's, served by the mapper's cache (tensor names do not count;
    loop variables do, so both layers spell them alike, as the ONNX importer does)."""
    cascade = run_pipeline(parse_cascade(TWIN), "fuse-elementwise", measure_error=False)[0]
    assert len(cascade.groups) == 2
    result = map_model(cascade, EYERISS, search=SEARCH).result
    stats = result.fused_nest_stats
    assert stats is not None and stats.searches >= 1
    assert stats.cache_hits == stats.searches  # every search of the second group is a hit
    first, second = result.groups
    assert (first.model, first.cycles, first.energy_pj) == (
        second.model, second.cycles, second.energy_pj)  # fmt: skip


def test_map_json_reports_the_fused_nest_searches_within_the_mapper_totals(tmp_path, capsys):
    source = tmp_path / "twin.ein"
    source.write_text(TWIN)
    argv = ["map", str(source), "--hw", EYERISS, "-q", "--evaluations", "300",
            "--passes", "fuse-elementwise", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    mapper = json.loads(capsys.readouterr().out)["mapper"]
    nest = mapper["fused_nest"]
    assert nest["searches"] >= 1 and nest["cache_hits"] >= 1 and nest["evaluations"] > 0
    for key in ("searches", "cache_hits", "evaluations"):
        assert nest[key] <= mapper[key]
    assert mapper["searches"] > nest["searches"]  # the per-Einsum searches come first


def test_progress_ticks_every_einsum_then_every_group(mlp_chain):
    """`map`'s bar counts the groups' shared-nest searches too, after the Einsums."""
    seen: list[str] = []
    map_model(mlp_chain, EYERISS, search=SEARCH, progress=seen.append)
    names = [e.name for e in mlp_chain.einsums]
    assert seen == names + [g.name for g in mlp_chain.groups]
