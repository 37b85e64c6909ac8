"""Serving scenarios and multi-device parallelism: TTFT/TPOT, footprint vs capacity, TP/PP."""

from __future__ import annotations

import dataclasses
import json
from functools import cache

import pytest

from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends.llm import PRESETS, build_llm
from codesign.frontends.llm_config import Phase, Workload
from codesign.hwmodels.gpu import Device, gpu_preset
from codesign.hwmodels.interconnect import Interconnect, custom_link, interconnect_preset
from codesign.ir.cascade import Cascade
from codesign.sim.parallel import (
    Parallelism,
    allgather_s,
    allreduce_s,
    decode_timing,
    prefill_timing,
    shard_config,
    stage_layers,
)
from codesign.sim.roofline import analyze
from codesign.sim.roofline_llm import llm_options
from codesign.sim.serving import PricedPass, Scenario, roofline_pass, serve
from tests.validation import load_cases

A100_80 = gpu_preset("a100-80g")
TP_CASES = load_cases("tensor_parallel")


def _pricer(device: Device, flash: bool = True):
    def price(cascade: Cascade, phase: str) -> PricedPass:
        options = llm_options(cascade, device, flash)
        return roofline_pass(cascade, analyze(cascade, device, options, phase))

    return price


@cache
def _serve(name: str, batch: int, prompt: int, gen: int, tp: int = 1, pp: int = 1,
           samples: int = 4, hw: str = "a100-80g"):  # fmt: skip
    device = gpu_preset(hw)
    return serve(PRESETS[name], Scenario(batch, prompt, gen, samples), device, _pricer(device),
                 Parallelism(tp, pp))  # fmt: skip


# -- single device --------------------------------------------------------------------------------
def test_ttft_is_the_full_model_prefill_roofline_plus_one_launch_per_kernel():
    report = _serve("llama-2-7b", 1, 256, 8)
    cascade = build_llm(PRESETS["llama-2-7b"], Workload(1, 256, Phase.PREFILL))
    full = analyze(cascade, A100_80, llm_options(cascade, A100_80, True), "prefill")
    launches = len(full.rows) * A100_80.kernel_launch_s
    assert report.ttft_s == pytest.approx(full.totals.time_s + launches, rel=1e-9)
    assert report.prefill.ops == full.totals.ops


def test_decode_steps_grow_with_the_cache_and_sampling_matches_pricing_every_step():
    exact = _serve("llama-2-7b", 4, 512, 40, samples=39)
    sampled = _serve("llama-2-7b", 4, 512, 40, samples=3)
    times = [d.time_s for d in exact.decode]
    assert [d.kv_len for d in exact.decode] == list(range(512, 551))
    assert times == sorted(times) and times[-1] > times[0]
    assert sampled.decode_s == pytest.approx(exact.decode_s, rel=1e-3)
    assert exact.tpot_s == pytest.approx(exact.decode_s / 39)
    assert exact.e2e_s == pytest.approx(exact.ttft_s + exact.decode_s)
    assert exact.tokens_per_s == pytest.approx(4 * 40 / exact.e2e_s)


def test_footprint_counts_weights_kv_cache_and_activations():
    c = PRESETS["llama-2-7b"]
    report = _serve("llama-2-7b", 8, 1000, 24)
    mem = report.memory
    assert mem.weights_bytes == 2 * 6_738_415_616
    assert mem.kv_cache_bytes == 8 * c.layers * 2 * c.kv_heads * c.head_dim * 1024 * 2
    assert 0 < mem.activation_bytes < mem.kv_cache_bytes
    assert mem.fits and not report.warnings
    assert report.max_batch is not None and report.max_batch > 8


def test_70b_on_one_80gb_gpu_warns_and_four_gpus_fit():
    one = _serve("llama-2-70b", 8, 1024, 4)
    assert one.memory.fits is False and one.max_batch == 0
    assert len(one.warnings) == 1 and "exceeds" in one.warnings[0]
    four = _serve("llama-2-70b", 8, 1024, 4, tp=4)
    assert four.memory.fits and not four.warnings
    assert four.memory.weights_bytes == pytest.approx(one.memory.weights_bytes / 4, rel=0.01)


def test_largest_batch_that_fits_is_the_boundary():
    report = _serve("llama-2-13b", 1, 4096, 4, hw="a100")
    assert report.max_batch is not None
    over = _serve("llama-2-13b", report.max_batch + 1, 4096, 4, hw="a100")
    assert over.memory.fits is False and over.warnings


def test_sliding_window_bounds_the_kv_footprint():
    long = _serve("mistral-7b", 1, 16000, 2, samples=1)
    c = PRESETS["mistral-7b"]
    assert long.memory.kv_cache_bytes == c.layers * 2 * c.kv_heads * c.head_dim * 4096 * 2


def test_moe_decode_step_reads_active_experts_only():
    mixtral = _serve("mixtral-8x7b", 1, 512, 2, samples=1)
    step = mixtral.decode[0]
    assert 25e9 < step.memory_bytes < 27e9  # 2 of 8 experts + attention, not 93 GB
    assert mixtral.memory.weights_bytes == pytest.approx(2 * 46_702_792_704, rel=1e-6)


# -- parallelism ----------------------------------------------------------------------------------
def test_ring_collectives_follow_the_alpha_beta_formulas():
    link = Interconnect("l", 100e9, 2e-6)
    assert allreduce_s(1e9, 1, link) == 0.0
    assert allreduce_s(1e9, 4, link) == pytest.approx(2 * 3 / 4 * 1e9 / 100e9 + 6 * 2e-6)
    assert allgather_s(8e9, 8, link) == pytest.approx(7 / 8 * 8e9 / 100e9 + 7 * 2e-6)


def test_pipeline_bubble_shrinks_with_microbatches():
    stages = (1.0, 1.0, 1.0, 1.0)
    one = prefill_timing(stages, 0.0, 1)
    many = prefill_timing(stages, 0.0, 16)
    assert one.time_s == 4.0 and one.bubble_fraction == pytest.approx(0.75)
    assert many.time_s == 19.0 and many.bubble_fraction == pytest.approx(3 / 19)
    assert decode_timing(stages, 0.0, 4).bubble_fraction == pytest.approx(0.0)
    assert decode_timing(stages, 0.0, 1).time_s == 4.0


def test_tensor_shards_split_heads_width_and_vocab():
    c = PRESETS["llama-2-70b"]
    s = shard_config(c, 8)
    assert (s.heads, s.kv_heads, s.intermediate, s.head_dim) == (8, 1, 3584, 128)
    assert shard_config(c, 16).kv_heads == 1  # fewer K/V heads than devices: replicated
    assert stage_layers(80, 3) == (27, 27, 26)
    with pytest.raises(InputError, match="heads 12 does not divide"):
        shard_config(PRESETS["gpt2"], 5)
    with pytest.raises(InputError, match="pipeline"):
        stage_layers(12, 13)


def test_tensor_parallel_conserves_work_and_adds_collectives():
    one = _serve("llama-2-70b", 4, 512, 4)
    four = _serve("llama-2-70b", 4, 512, 4, tp=4)
    assert four.prefill.ops == pytest.approx(one.prefill.ops, rel=0.01)
    assert four.decode[0].comm_s > 0 and one.decode[0].comm_s == 0
    assert four.tpot_s < one.tpot_s / 2  # weights split four ways, collectives on top
    link = A100_80.interconnect
    assert link is not None and link.name == "nvlink3"
    # 80 layers x 2 all-reduces of the 4 x 8192 fp16 hidden state, plus embedding and logits
    per = allreduce_s(4 * 8192 * 2, 4, link)
    assert four.decode[0].comm_s == pytest.approx(
        161 * per + allgather_s(4 * 32000 * 2, 4, link), rel=1e-6
    )


def test_pipeline_stages_add_bubbles_to_a_single_sequence():
    one = _serve("llama-2-70b", 1, 256, 3)
    pp4 = _serve("llama-2-70b", 1, 256, 3, pp=4)
    assert pp4.prefill.bubble_fraction == pytest.approx(0.75, abs=0.01)
    assert pp4.ttft_s > one.ttft_s  # same work, plus three stage-to-stage sends
    assert pp4.memory.weights_bytes < one.memory.weights_bytes / 3


def test_interconnect_presets_and_custom_links():
    assert interconnect_preset("NVLink-4").bandwidth_bytes_per_s == 450e9
    assert custom_link(100, 0.5).latency_s == pytest.approx(0.5e-6)
    with pytest.raises(InputError, match="known"):
        interconnect_preset("infiniband")
    with pytest.raises(InputError):
        custom_link(0, 1)


def test_parallelism_needs_a_link_on_a_card_without_one():
    l40 = gpu_preset("l40")
    assert l40.interconnect is None
    with pytest.raises(InputError, match="interconnect"):
        serve(PRESETS["gpt2"], Scenario(1, 64, 2), l40, _pricer(l40), Parallelism(tensor=2))


# -- validation: tensor-parallel latency vs the NeMo measurements ---------------------------------
def _tp_predicted_ms(case) -> float:
    i = case["inputs"]
    return _serve(i["llm"], i["batch"], 128, 20, tp=i["tp"]).e2e_s * 1e3


@pytest.mark.parametrize("case", TP_CASES, ids=[c["id"] for c in TP_CASES])
def test_tensor_parallel_latency_and_speedup_match_the_measurement(case):
    predicted_ms = _tp_predicted_ms(case)
    measured_ms = case["expected"]["latency_ms"]
    assert predicted_ms == pytest.approx(case["predicted_ms"], rel=0.01)  # the table is current
    assert predicted_ms == pytest.approx(measured_ms, rel=case["tolerance"])
    assert case["check"] == "predicted_le_measured"
    assert predicted_ms <= measured_ms
    batch = case["inputs"]["batch"]
    (one,) = (c for c in TP_CASES if c["inputs"]["tp"] == 1 and c["inputs"]["batch"] == batch)
    predicted_speedup = _tp_predicted_ms(one) / predicted_ms
    measured_speedup = one["expected"]["latency_ms"] / measured_ms
    assert predicted_speedup == pytest.approx(measured_speedup, rel=case["speedup_tolerance"])


def test_nccl_all_reduce_takes_the_low_latency_protocol_for_small_messages():
    link = A100_80.interconnect
    assert link is not None and link.collectives == "nccl-nvlink"
    # 8 KB over 8 GPUs: LL, 6.6 us + 14 steps x 0.6 us + 2*7/8*8 KB at a quarter of 300 GB/s
    assert allreduce_s(8192, 8, link) == pytest.approx(
        6.6e-6 + 14 * 0.6e-6 + 2 * 7 / 8 * 8192 / 75e9, rel=1e-9
    )
    # 256 MB: Simple, the full link bandwidth (bus bandwidth 300 GB/s)
    big = 256 * 2**20
    assert allreduce_s(big, 8, link) == pytest.approx(
        8.4e-6 + 14 * 3.4e-6 + 2 * 7 / 8 * big / 300e9, rel=1e-9
    )
    # growing from 4 to 8 GPUs costs 8 more steps of 0.6 us, not 8 ring steps of microseconds
    assert allreduce_s(8192, 8, link) - allreduce_s(8192, 4, link) < 6e-6
    ring = custom_link(300, 5)
    assert ring.collectives == "ring"
    assert allreduce_s(8192, 8, ring) == pytest.approx(14 * 5e-6 + 2 * 7 / 8 * 8192 / 300e9)


def test_kernel_launch_cost_is_added_per_kernel_and_does_not_shrink_with_tp():
    assert A100_80.kernel_launch_s == pytest.approx(5e-6)
    free = dataclasses.replace(A100_80, kernel_launch_s=0.0)
    for tp in (1, 4):
        with_launch = _serve("llama-2-7b", 1, 128, 4, tp=tp).decode[0].time_s
        without = serve(PRESETS["llama-2-7b"], Scenario(1, 128, 4), free, _pricer(free),
                        Parallelism(tp)).decode[0].time_s  # fmt: skip
        # 32 layers x 25 kernels + 6 (final norm, LM head), whatever the shard
        assert with_launch - without == pytest.approx((32 * 25 + 6) * 5e-6, rel=1e-6)


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_serving_json_has_the_documented_keys(capsys):
    argv = ["roofline", "--llm", "llama-2-70b", "--hw", "a100", "--batch", "2", "--seq",
            "128", "--generate", "3", "--tp", "2", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert {"ttft_s", "tpot_s", "e2e_s", "tokens_per_s", "prefill", "decode", "memory",
            "parallelism", "warnings"} <= set(doc)  # fmt: skip
    assert doc["parallelism"] == {"tensor": 2, "pipeline": 1, "microbatches": 1, "devices": 2,
                                  "interconnect": "nvlink3"}  # fmt: skip
    assert doc["memory"]["fits"] is False and doc["warnings"]
    assert "exceeds" in out.err  # the warning also reaches stderr when JSON owns stdout


def test_cli_serving_on_spatial_chiplets_with_a_custom_link(capsys):
    argv = ["roofline", "--llm", "gpt2", "--hw", "examples/hw/tpu_like.yaml", "--seq", "64",
            "--generate", "2", "--tp", "2", "--pp", "2", "--link-gbps", "50",
            "--link-latency-us", "0.5", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["parallelism"]["interconnect"] == "custom"
    assert doc["decode"][0]["comm_s"] > 0


def test_cli_serving_errors_exit_2(capsys):
    base = ["roofline", "--llm", "gpt2", "--hw", "a100"]
    for extra, words in (
        (["--tp", "2"], "--generate"),
        (["--generate", "2", "--phase", "decode"], "--phase"),
        (["--generate", "2", "--tp", "5"], "divide"),
        (["--generate", "2", "--interconnect", "nvlink3", "--link-gbps", "9"], "not both"),
    ):
        assert main(base + extra) == 2
        assert words in capsys.readouterr().err
    assert main(["roofline", "--llm", "bert-base", "--hw", "a100", "--generate", "4"]) == 2
    assert "encoder" in capsys.readouterr().err


def test_map_prices_a_serving_scenario_with_mapped_kernels_and_energy(capsys):
    argv = ["map", "--llm", "gpt2", "--hw", "examples/hw/simba_like.yaml", "--seq", "16",
            "--generate", "4", "--evaluations", "30", "--decode-samples", "2",
            "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ttft_s"] > 0 and doc["tpot_s"] > 0 and doc["energy_per_token_pj"] > 0
    assert doc["prefill"]["energy_pj"] > doc["decode"][0]["energy_pj"] > 0
    # the same scenario over two chips joined by a custom link adds collectives
    assert main([*argv, "--tp", "2", "--link-gbps", "25"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert two["decode"][0]["comm_s"] > 0 and two["parallelism"]["devices"] == 2
