"""`flash-attention`: one fused group per attention, found by structure; `roofline
--flash-attention` is the same pipeline (the pass appended to --passes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codesign.cli.main import main
from codesign.hwmodels.gpu import gpu_preset
from codesign.ir import interpret, parse_cascade, print_cascade, verify
from codesign.ir.inputs import sample_inputs
from codesign.passes import run_pipeline
from codesign.passes.flash_attention import find_attentions
from codesign.sim.roofline_llm import attention_options
from tests.ir_cases import transformer_cascade
from tests.test_roofline import _attention

A100 = gpu_preset("a100")


def test_each_attention_becomes_one_group_with_scores_on_chip():
    cascade = _attention()
    fused, _ = run_pipeline(cascade, "flash-attention")
    verify(fused)
    (attention,) = find_attentions(cascade)
    (group,) = fused.groups
    assert group.einsums == attention.einsums
    assert {"qk_matmul", "softmax_max", "softmax_div", "sv_matmul"} <= set(group.einsums)
    assert "qk_scale" in group.on_chip  # the scaled scores never reach the backing store
    assert attention.kv == ("k_t", "v_t") and attention.head_dim == 64
    assert parse_cascade(print_cascade(fused)) == fused


def test_the_pass_keeps_the_interpreters_result_bit_for_bit():
    cascade = transformer_cascade(np.random.default_rng(0))
    fused, _ = run_pipeline(cascade, "flash-attention")
    assert fused.groups
    inputs = sample_inputs(cascade, 0)
    (want,), (got,) = interpret(cascade, inputs).values(), interpret(fused, inputs).values()
    assert np.array_equal(want, got)


def test_an_overlapping_group_joins_the_attention_group():
    cascade = _attention()
    softmax_only, _ = run_pipeline(cascade, "fuse{contractions=false}")
    (softmax_group,) = [g for g in softmax_only.groups if "softmax_max" in g.einsums]
    fused, _ = run_pipeline(softmax_only, "flash-attention")
    verify(fused)
    merged = [g for g in fused.groups if "softmax_max" in g.einsums]
    assert len(merged) == 1 and merged[0].name == softmax_group.name
    assert {"qk_matmul", "sv_matmul"} <= set(merged[0].einsums)


def test_roofline_prices_the_pass_groups_as_flash_attention():
    cascade = _attention()
    fused, _ = run_pipeline(cascade, "flash-attention")
    from codesign.sim.roofline_fused import ir_kernel_groups

    (kernel,) = ir_kernel_groups(fused, A100, {})
    assert kernel.label == "fused_attention" and dict(kernel.reread) == {"k_t": 4, "v_t": 4}
    assert (attention_options(cascade, A100).groups[0].einsums) == kernel.einsums


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_the_flag_is_the_pipeline_alias(tmp_path, phase):
    docs = []
    common = ["roofline", "--llm", "llama-2-7b", "--hw", "a100", "--seq", "256", "--phase", phase]
    for extra in (["--flash-attention"], ["--passes", "flash-attention"]):
        out = tmp_path / f"{len(docs)}.json"
        assert main([*common, *extra, "--json", str(out)]) == 0
        docs.append(json.loads(out.read_text()))
    assert docs[0] == docs[1]
    plain = tmp_path / "plain.json"
    assert main([*common, "--json", str(plain)]) == 0
    unfused = json.loads(plain.read_text())["totals"][phase]
    flash = docs[0]["totals"][phase]
    assert flash["ops"] == unfused["ops"]
    if phase == "prefill":  # the 32 x 256 x 256 scores per layer stay on chip
        assert flash["memory_bytes"] < unfused["memory_bytes"]


def test_flag_and_passes_compose(tmp_path):
    common = ["roofline", "--llm", "llama-2-7b", "--hw", "a100", "--seq", "256"]
    docs = []
    for extra in (["--passes", "fuse{contractions=false}", "--flash-attention"],
                  ["--passes", "fuse{contractions=false},flash-attention"]):  # fmt: skip
        out = tmp_path / f"{len(docs)}.json"
        assert main([*common, *extra, "--json", str(out)]) == 0
        docs.append(json.loads(out.read_text()))
    assert docs[0] == docs[1]
