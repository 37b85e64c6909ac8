"""Serving scenarios: a batch of prompts prefilled, then N tokens generated against a growing
KV cache, on one device or on tensor x pipeline parallel devices.

Definitions (docs/llm.md "Serving"):

* A scenario is ``batch`` sequences of ``prompt_tokens`` each, generating ``generated_tokens``.
  The prefill produces the first token, so ``generated_tokens - 1`` decode steps follow, step
  ``i`` attending over a cache of ``prompt_tokens + i`` keys (capped by a sliding window).
* time to first token (TTFT) = the prefill pass; time per output token (TPOT) = the mean decode
  step; end-to-end = TTFT + (generated - 1) x TPOT; tokens/s = batch x generated / end-to-end.
* A decode step's roofline time is piecewise linear in the cache length (each kernel's time is
  the max of a compute and a memory term, both linear in it), so ``decode_samples`` steps are
  priced exactly (evenly spaced, first and last included) and the others interpolated between
  them; ``decode_samples >= generated - 1`` prices every step.
* Every layer costs the same, so a pass is priced on a one-layer cascade: the layer's kernels
  times the stage's layers, plus the embedding (first stage) and final norm / LM head (last).
* Each priced kernel also costs the device's ``kernel_launch_s`` (the card's
  ``kernel_launch_us``): a fixed cost per launch that does not shrink with tensor parallelism
  (every device launches every kernel of its shard), the same on every device.
* Memory per device: the stage's weights (the largest stage), its KV cache at the final length
  (``batch x layers x 2 x kv_heads x head_dim x min(prompt + generated, window)`` at the KV
  type), and the largest kernel's activations in the prefill (what must be live at once).
  Above the device's DRAM capacity the report warns and names the largest batch that fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codesign.errors import InputError
from codesign.frontends.llm import build_llm, cached_keys, layer_of
from codesign.frontends.llm_config import LLMConfig, Phase, Workload
from codesign.hwmodels.gpu import Device
from codesign.hwmodels.interconnect import Interconnect
from codesign.ir.cascade import Cascade
from codesign.ir.stats import cascade_stats
from codesign.sim.cascade import CascadeResult
from codesign.sim.parallel import (
    Parallelism,
    decode_timing,
    prefill_timing,
    send_s,
    shard_config,
    stage_layers,
    tensor_comm,
)
from codesign.sim.roofline import PhaseReport


@dataclass(frozen=True, slots=True)
class KernelCost:
    """One priced kernel of a pass: its first Einsum names its layer (and pipeline stage)."""

    einsum: str
    time_s: float
    ops: int
    memory_bytes: int  # at DRAM
    activation_bytes: int  # of the bytes moved, those of activations (not weights, not KV)
    energy_pj: float | None = None  # None: the pricing has no energy model (roofline)


@dataclass(frozen=True, slots=True)
class PricedPass:
    """One phase's cascade as priced (e.g. retyped) and its kernels' costs."""

    cascade: Cascade
    kernels: tuple[KernelCost, ...]


PricePass = Callable[[Cascade, str], PricedPass]
"""Prices one phase's cascade on one device: the roofline (`roofline_pass`) or a mapping
search (`mapped_pass`)."""


def roofline_pass(cascade: Cascade, report: PhaseReport) -> PricedPass:
    return PricedPass(
        cascade,
        tuple(
            KernelCost(r.einsums[0], r.time_s, r.ops, r.memory_bytes, r.activation_bytes)
            for r in report.rows
        ),
    )


def mapped_pass(cascade: Cascade, result: CascadeResult) -> PricedPass:
    """Kernels of a mapped cascade: time and energy from the mapper's costs, ops and
    compulsory DRAM bytes from the IR statistics."""
    stats = {s.name: s for s in cascade_stats(cascade).einsums}
    weights = {t.name for t in cascade.weights}
    hz = result.clock_ghz * 1e9
    kernels = []
    for e in result.einsums:
        s = stats[e.name]
        act = sum(n for t, n in s.tensor_bytes if t not in weights)
        kernels.append(
            KernelCost(e.name, e.cost.cycles / hz, s.flops, s.total_bytes, act, e.cost.energy_pj)
        )
    return PricedPass(cascade, tuple(kernels))

_FIRST_STAGE = ("embed", "pos_embed", "type_embed")  # kernels/weights on the first stage


@dataclass(frozen=True, slots=True)
class Scenario:
    batch: int
    prompt_tokens: int
    generated_tokens: int
    decode_samples: int = 4

    def __post_init__(self) -> None:
        if min(self.batch, self.prompt_tokens, self.generated_tokens, self.decode_samples) < 1:
            raise InputError(
                f"serving: batch {self.batch}, prompt {self.prompt_tokens}, generated "
                f"{self.generated_tokens} and decode samples {self.decode_samples} must be >= 1"
            )

    @property
    def decode_steps(self) -> int:
        return self.generated_tokens - 1


@dataclass(frozen=True, slots=True)
class PassCost:
    """One pass (the prefill, or one decode step) of the whole batch over all devices."""

    phase: str
    kv_len: int  # cache length the pass reads (0 for prefill)
    time_s: float
    compute_s: float  # the slowest stage's kernels, one microbatch
    comm_s: float  # tensor-parallel collectives of the slowest stage, one microbatch
    bubble_fraction: float
    ops: int  # all devices, the whole batch
    memory_bytes: int  # DRAM traffic, all devices, the whole batch
    energy_pj: float | None = None  # all devices, the whole batch (mapped pricing only)


@dataclass(frozen=True, slots=True)
class MemoryFootprint:
    """Bytes one device holds (the stage with the most layers)."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    capacity_bytes: int | None

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool | None:
        return None if self.capacity_bytes is None else self.total_bytes <= self.capacity_bytes


@dataclass(frozen=True, slots=True)
class ServingReport:
    model: str
    device: str
    scenario: Scenario
    parallelism: Parallelism
    interconnect: str | None
    microbatches: int
    prefill: PassCost
    decode: tuple[PassCost, ...]  # the priced steps
    decode_s: float  # all decode steps
    decode_energy_pj: float | None  # all decode steps (mapped pricing only)
    memory: MemoryFootprint
    max_batch: int | None  # largest batch whose footprint fits (None: capacity unknown)
    warnings: tuple[str, ...]

    @property
    def ttft_s(self) -> float:
        return self.prefill.time_s

    @property
    def tpot_s(self) -> float:
        steps = self.scenario.decode_steps
        return self.decode_s / steps if steps else 0.0

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + self.decode_s

    @property
    def tokens_per_s(self) -> float:
        return self.scenario.batch * self.scenario.generated_tokens / self.e2e_s

    @property
    def energy_per_token_pj(self) -> float | None:
        """Energy of the whole scenario per generated token (mapped pricing only)."""
        if self.prefill.energy_pj is None or self.decode_energy_pj is None:
            return None
        total = self.prefill.energy_pj + self.decode_energy_pj
        return total / (self.scenario.batch * self.scenario.generated_tokens)

    @property
    def decode_tokens_per_s(self) -> float:
        return self.scenario.batch / self.tpot_s if self.tpot_s else 0.0


@dataclass(frozen=True, slots=True)
class _Split:
    """A one-layer pass's kernels: the layer's, and the rest by pipeline stage."""

    layer_s: float
    first_s: float
    last_s: float
    layer_ops: int
    other_ops: int
    layer_bytes: int
    other_bytes: int
    layer_pj: float | None
    other_pj: float | None


def _split(kernels: tuple[KernelCost, ...], launch_s: float) -> _Split:
    """`launch_s`: the fixed cost of launching one kernel, added to each kernel's time."""
    layer_s = first_s = last_s = 0.0
    layer_ops = other_ops = layer_bytes = other_bytes = 0
    layer_pj = other_pj = 0.0
    for k in kernels:
        if layer_of(k.einsum) is not None:
            layer_s += k.time_s + launch_s
            layer_ops += k.ops
            layer_bytes += k.memory_bytes
            layer_pj += k.energy_pj or 0.0
            continue
        other_ops += k.ops
        other_bytes += k.memory_bytes
        other_pj += k.energy_pj or 0.0
        if k.einsum.startswith(_FIRST_STAGE):
            first_s += k.time_s + launch_s
        else:
            last_s += k.time_s + launch_s
    priced = all(k.energy_pj is not None for k in kernels)
    return _Split(
        layer_s, first_s, last_s, layer_ops, other_ops, layer_bytes, other_bytes,
        layer_pj if priced else None, other_pj if priced else None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Plan:
    config: LLMConfig
    shard: LLMConfig
    parallelism: Parallelism
    microbatches: int
    micro_batch: int
    stages: tuple[int, ...]
    link: Interconnect | None
    kernel_launch_s: float  # the device's fixed cost per kernel


def _price_pass(
    plan: _Plan, workload: Workload, price: PricePass
) -> tuple[PassCost, PricedPass]:
    phase = workload.phase.value
    priced = price(build_llm(plan.shard, workload, layers=1), phase)
    cascade = priced.cascade
    split = _split(priced.kernels, plan.kernel_launch_s)
    layer_s, first_s, last_s = split.layer_s, split.first_s, split.last_s
    act_bytes = _activation_type_bytes(cascade)
    tokens = workload.batch * workload.new_tokens
    logit_rows = workload.batch if plan.config.causal else 0
    comm = tensor_comm(
        plan.config, tokens, logit_rows, act_bytes, plan.parallelism.tensor, plan.link
    )
    stage_s = []
    comm_s = []
    last = len(plan.stages) - 1
    for s, n_layers in enumerate(plan.stages):
        c = n_layers * comm.per_layer_s
        t = n_layers * layer_s
        if s == 0:
            t += first_s
            c += comm.embed_s
        if s == last:
            t += last_s
            c += comm.lm_head_s
        stage_s.append(t + c)
        comm_s.append(c)
    send = 0.0
    if len(plan.stages) > 1:
        if plan.link is None:
            raise InputError("pipeline parallelism needs an interconnect (--interconnect)")
        send = send_s(tokens * plan.config.hidden * act_bytes, plan.link)
    timing = (prefill_timing if workload.phase is Phase.PREFILL else decode_timing)(
        tuple(stage_s), send, plan.microbatches
    )
    slowest = max(range(len(stage_s)), key=lambda s: stage_s[s])
    tp = plan.parallelism.tensor
    layers, m = plan.config.layers, plan.microbatches
    energy = None
    if split.layer_pj is not None and split.other_pj is not None:
        energy = m * tp * (layers * split.layer_pj + split.other_pj)
    return (
        PassCost(
            phase=phase, kv_len=cached_keys(plan.config, workload), time_s=timing.time_s,
            compute_s=stage_s[slowest] - comm_s[slowest], comm_s=comm_s[slowest],
            bubble_fraction=timing.bubble_fraction,
            ops=m * tp * (layers * split.layer_ops + split.other_ops),
            memory_bytes=m * tp * (layers * split.layer_bytes + split.other_bytes),
            energy_pj=energy,
        ),  # fmt: skip
        priced,
    )


def _activation_type_bytes(cascade: Cascade) -> float:
    """Bytes per element of the hidden state (the embedding output's type)."""
    return cascade.tensor("embed_out").dtype.bits / 8 if cascade.has_tensor("embed_out") else 2.0


def _memory(
    plan: _Plan, scenario: Scenario, prefill: PricedPass, capacity: int | None
) -> tuple[MemoryFootprint, int | None]:
    """Per-device footprint of the largest stage and the largest batch that fits."""
    cascade = prefill.cascade
    layer_w = first_w = last_w = 0
    for t in cascade.weights:
        if layer_of(t.name) is not None:
            layer_w += t.size_bytes
        elif t.name.startswith(_FIRST_STAGE):
            first_w += t.size_bytes
        else:
            last_w += t.size_bytes
    if plan.config.tied_embeddings and len(plan.stages) > 1:
        last_w += cascade.tensor("embed").size_bytes  # the last stage keeps its own LM head copy
    kv_type_bytes = cascade.tensor("L0_k").dtype.bits / 8 if cascade.has_tensor("L0_k") else 0
    length = scenario.prompt_tokens + scenario.generated_tokens
    if plan.config.sliding_window:
        length = min(length, plan.config.sliding_window)
    kv_per_seq_layer = 2 * plan.shard.kv_heads * plan.shard.head_dim * length * kv_type_bytes
    activation = max((k.activation_bytes for k in prefill.kernels), default=0)
    act_per_seq = activation / plan.micro_batch
    worst: MemoryFootprint | None = None
    last = len(plan.stages) - 1
    for s, n_layers in enumerate(plan.stages):
        weights = n_layers * layer_w + (first_w if s == 0 else 0) + (last_w if s == last else 0)
        kv = math.ceil(scenario.batch * n_layers * kv_per_seq_layer)
        m = MemoryFootprint(weights, kv, activation, capacity)
        if worst is None or m.total_bytes > worst.total_bytes:
            worst = m
    assert worst is not None
    if capacity is None:
        return worst, None
    per_seq = max(plan.stages) * kv_per_seq_layer + act_per_seq
    room = capacity - worst.weights_bytes
    max_batch = max(0, int(room // per_seq)) if per_seq else None
    return worst, max_batch


def _fmt_gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def serve(
    config: LLMConfig, scenario: Scenario, device: Device, price: PricePass,
    parallelism: Parallelism | None = None, link: Interconnect | None = None,
) -> ServingReport:  # fmt: skip
    """Price `scenario` of `config` on `parallelism` copies of `device` (default one) joined by
    `link` (default the card's)."""
    parallelism = parallelism or Parallelism()
    if scenario.decode_steps and not config.causal:
        raise InputError(f"{config.name} is an encoder: it generates no tokens (--generate 1)")
    link = link or device.interconnect
    m = parallelism.microbatches_for(scenario.batch)
    plan = _Plan(
        config, shard_config(config, parallelism.tensor), parallelism, m,
        math.ceil(scenario.batch / m), stage_layers(config.layers, parallelism.pipeline), link,
        device.kernel_launch_s,
    )  # fmt: skip
    prefill, prefill_priced = _price_pass(
        plan, Workload(plan.micro_batch, scenario.prompt_tokens, Phase.PREFILL), price
    )
    steps = scenario.decode_steps
    decode: list[PassCost] = []
    decode_s = 0.0
    decode_pj: float | None = None if prefill.energy_pj is None else 0.0
    if steps:
        first = scenario.prompt_tokens
        samples = np.unique(
            np.round(np.linspace(first, first + steps - 1, min(scenario.decode_samples, steps)))
        ).astype(int)
        for kv in samples:
            w = Workload(plan.micro_batch, scenario.prompt_tokens, Phase.DECODE, int(kv))
            decode.append(_price_pass(plan, w, price)[0])
        every = np.arange(first, first + steps)
        times = [d.time_s for d in decode]
        decode_s = float(np.interp(every, samples, times).sum())
        energies = [d.energy_pj for d in decode if d.energy_pj is not None]
        if decode_pj is not None and len(energies) == len(decode):
            decode_pj = float(np.interp(every, samples, energies).sum())
    capacity = device.dram.capacity_bytes
    memory, max_batch = _memory(plan, scenario, prefill_priced, capacity)
    warnings = []
    if memory.fits is False:
        assert capacity is not None
        fit = (
            f"the largest batch that fits is {max_batch}"
            if max_batch
            else "the weights alone leave no room for one sequence"
        )
        warnings.append(
            f"footprint {_fmt_gb(memory.total_bytes)} per device exceeds {device.name}'s "
            f"{_fmt_gb(capacity)} (weights {_fmt_gb(memory.weights_bytes)}, KV cache "
            f"{_fmt_gb(memory.kv_cache_bytes)}, activations {_fmt_gb(memory.activation_bytes)}); "
            f"{fit}"
        )
    return ServingReport(
        model=config.name, device=device.name, scenario=scenario, parallelism=parallelism,
        interconnect=None if link is None else link.name, microbatches=m, prefill=prefill,
        decode=tuple(decode), decode_s=decode_s, decode_energy_pj=decode_pj, memory=memory,
        max_batch=max_batch, warnings=tuple(warnings),
    )  # fmt: skip


def serving_dict(report: ServingReport) -> dict[str, object]:
    """The JSON form (documented keys, seconds and bytes)."""
    mem = report.memory

    def pass_dict(p: PassCost) -> dict[str, object]:
        return {
            "phase": p.phase, "kv_len": p.kv_len, "time_s": p.time_s, "compute_s": p.compute_s,
            "comm_s": p.comm_s, "bubble_fraction": p.bubble_fraction, "ops": p.ops,
            "memory_bytes": p.memory_bytes, "energy_pj": p.energy_pj,
        }  # fmt: skip

    s = report.scenario
    return {
        "model": report.model, "hw": report.device,
        "scenario": {"batch": s.batch, "prompt_tokens": s.prompt_tokens,
                     "generated_tokens": s.generated_tokens, "decode_samples": s.decode_samples},
        "parallelism": {"tensor": report.parallelism.tensor,
                        "pipeline": report.parallelism.pipeline,
                        "microbatches": report.microbatches,
                        "devices": report.parallelism.devices,
                        "interconnect": report.interconnect},
        "ttft_s": report.ttft_s, "tpot_s": report.tpot_s, "e2e_s": report.e2e_s,
        "tokens_per_s": report.tokens_per_s, "decode_tokens_per_s": report.decode_tokens_per_s,
        "energy_per_token_pj": report.energy_per_token_pj,
        "prefill": pass_dict(report.prefill), "decode": [pass_dict(p) for p in report.decode],
        "memory": {"weights_bytes": mem.weights_bytes, "kv_cache_bytes": mem.kv_cache_bytes,
                   "activation_bytes": mem.activation_bytes, "total_bytes": mem.total_bytes,
                   "capacity_bytes": mem.capacity_bytes, "fits": mem.fits,
                   "max_batch": report.max_batch},
        "warnings": list(report.warnings),
    }  # fmt: skip
