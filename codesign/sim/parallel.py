"""Tensor and pipeline parallelism of a transformer over N devices joined by a link.

Tensor parallelism (Megatron-LM, Shoeybi et al. 2019, Sec. 3) splits every layer across
``tensor`` devices: Q/K/V and gate/up projections by output columns (whole heads), the output
and down projections by input rows, so each device holds ``1/tensor`` of the heads, the MLP
width, each expert's width and the vocabulary (LM head and embedding by vocabulary rows).  Each
layer then all-reduces its hidden state twice (after attention, after the MLP; once for a
parallel block, whose two branches add before the reduction), the embedding once, and the
logits are all-gathered.  K/V heads fewer than devices are replicated (one per device).

Pipeline parallelism splits the layers into ``pipeline`` consecutive stages (the first stages
take one more layer when they do not divide) and sends each microbatch's hidden state from stage
to stage.  With ``m`` microbatches (GPipe, Huang et al. 2019) a pass takes the first
microbatch's trip through every stage plus ``m - 1`` times the slowest stage; the idle share
of the devices is the pipeline bubble.

Collectives are ring algorithms over the link (per device, one direction, ``Interconnect``):
an all-reduce of ``S`` bytes over ``N`` devices takes ``2 (N-1)`` steps and moves
``2 (N-1)/N S`` bytes per device, an all-gather ending with ``S`` bytes ``N-1`` steps and
``(N-1)/N S`` (Thakur et al. 2005; NCCL's "bus bandwidth" convention, nccl-tests
doc/PERFORMANCE.md).  Each of the link's protocols (``Interconnect.protocols``) prices that as
``base + steps x step_latency + bytes / (bandwidth x share)``; the cheapest is taken, as NCCL
does (``ncclTopoGetAlgoTime``).  Communication is not
overlapped with compute: a conservative bound for decode, where each all-reduce waits on the
layer before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from codesign.errors import InputError
from codesign.frontends.llm_config import Block, LLMConfig
from codesign.hwmodels.interconnect import Interconnect


@dataclass(frozen=True, slots=True)
class Parallelism:
    """``tensor`` x ``pipeline`` devices; ``microbatches`` 0 means ``min(pipeline, batch)``."""

    tensor: int = 1
    pipeline: int = 1
    microbatches: int = 0

    def __post_init__(self) -> None:
        if self.tensor < 1 or self.pipeline < 1 or self.microbatches < 0:
            raise InputError(
                f"parallelism: tensor {self.tensor} and pipeline {self.pipeline} must be >= 1, "
                f"microbatches {self.microbatches} >= 0"
            )

    @property
    def devices(self) -> int:
        return self.tensor * self.pipeline

    def microbatches_for(self, batch: int) -> int:
        m = self.microbatches or min(self.pipeline, batch)
        if m > batch:
            raise InputError(f"parallelism: {m} microbatches exceed the batch of {batch}")
        return m


def _split(config: LLMConfig, field_name: str, value: int, tp: int) -> int:
    if value % tp:
        raise InputError(
            f"{config.name}: {field_name} {value} does not divide over {tp} tensor-parallel devices"
        )
    return value // tp


def shard_config(config: LLMConfig, tensor: int) -> LLMConfig:
    """The part of `config` one of `tensor` tensor-parallel devices computes."""
    if tensor == 1:
        return config
    c = config
    heads = _split(c, "heads", c.heads, tensor)
    if c.kv_heads % tensor and tensor % c.kv_heads:
        raise InputError(
            f"{c.name}: kv_heads {c.kv_heads} neither divides nor is divided by {tensor} devices"
        )
    kv_heads = max(c.kv_heads // tensor, 1)
    return c.replace(
        name=f"{c.name}/tp{tensor}", heads=heads, kv_heads=kv_heads, head_dim=c.head_dim,
        rotary_dim=c.rotary_dim, intermediate=_split(c, "intermediate", c.intermediate, tensor),
        shared_intermediate=_split(c, "shared_intermediate", c.shared_intermediate, tensor),
        vocab=math.ceil(c.vocab / tensor),
    )  # fmt: skip


def stage_layers(layers: int, pipeline: int) -> tuple[int, ...]:
    """Layers per pipeline stage, the first ``layers % pipeline`` stages one more."""
    if pipeline > layers:
        raise InputError(f"pipeline: {pipeline} stages exceed the model's {layers} layers")
    base, extra = divmod(layers, pipeline)
    return tuple(base + (1 if s < extra else 0) for s in range(pipeline))


def allreduce_s(size_bytes: float, devices: int, link: Interconnect) -> float:
    """Ring all-reduce of `size_bytes` (each device's buffer) over `devices`."""
    if devices == 1:
        return 0.0
    steps = 2 * (devices - 1)
    moved = steps / devices * size_bytes
    bw = link.bandwidth_bytes_per_s
    return min(
        p.base_s + steps * p.step_s + moved / (bw * p.allreduce_bandwidth_share)
        for p in link.protocols
    )


def allgather_s(total_bytes: float, devices: int, link: Interconnect) -> float:
    """Ring all-gather ending with `total_bytes` on every device."""
    if devices == 1:
        return 0.0
    steps = devices - 1
    moved = steps / devices * total_bytes
    bw = link.bandwidth_bytes_per_s
    return min(
        p.base_s + steps * p.step_s + moved / (bw * p.allgather_bandwidth_share)
        for p in link.protocols
    )


def send_s(size_bytes: float, link: Interconnect) -> float:
    """One point-to-point transfer (pipeline stage to stage)."""
    return size_bytes / link.bandwidth_bytes_per_s + link.latency_s


@dataclass(frozen=True, slots=True)
class TensorComm:
    """Tensor-parallel communication of one pass of one microbatch, per device."""

    per_layer_s: float
    embed_s: float
    lm_head_s: float
    per_layer_bytes: float
    embed_bytes: float
    lm_head_bytes: float


def tensor_comm(
    config: LLMConfig, tokens: int, logit_rows: int, act_bytes: float, tensor: int,
    link: Interconnect | None,
) -> TensorComm:  # fmt: skip
    """All-reduces of the hidden state (`tokens` rows of ``hidden`` at `act_bytes` each) per
    layer and after the embedding, all-gather of `logit_rows` rows of logits."""
    if tensor == 1:
        return TensorComm(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if link is None:
        raise InputError("tensor parallelism needs an interconnect (card field or --interconnect)")
    hidden_bytes = tokens * config.hidden * act_bytes
    parallel = config.block in (Block.PARALLEL, Block.PARALLEL_TWO_NORMS)
    per_layer = (1 if parallel else 2) * allreduce_s(hidden_bytes, tensor, link)
    logits = logit_rows * config.vocab * act_bytes
    return TensorComm(
        per_layer_s=per_layer,
        embed_s=allreduce_s(hidden_bytes, tensor, link),
        lm_head_s=allgather_s(logits, tensor, link) if logit_rows else 0.0,
        per_layer_bytes=(1 if parallel else 2) * hidden_bytes,
        embed_bytes=hidden_bytes,
        lm_head_bytes=logits,
    )


@dataclass(frozen=True, slots=True)
class PipelineTiming:
    """One pass of the whole batch through the stages."""

    time_s: float
    bubble_fraction: float  # idle share of device-time


def prefill_timing(stage_s: tuple[float, ...], send: float, microbatches: int) -> PipelineTiming:
    """The first microbatch through every stage, then ``m - 1`` slowest-stage intervals."""
    hops = len(stage_s) - 1
    bottleneck = max(stage_s) + (send if hops else 0.0)
    time_s = sum(stage_s) + hops * send + (microbatches - 1) * bottleneck
    return PipelineTiming(time_s, _bubble(stage_s, microbatches, time_s))


def decode_timing(stage_s: tuple[float, ...], send: float, microbatches: int) -> PipelineTiming:
    """One decode step of every microbatch in steady state: a microbatch's next token needs
    its previous one back at the first stage (a full cycle), and a stage serves the
    microbatches one at a time."""
    hops = len(stage_s) - 1
    cycle = sum(stage_s) + (hops + 1) * send if hops else sum(stage_s)
    bottleneck = max(stage_s) + (send if hops else 0.0)
    time_s = max(cycle, microbatches * bottleneck)
    return PipelineTiming(time_s, _bubble(stage_s, microbatches, time_s))


def _bubble(stage_s: tuple[float, ...], microbatches: int, time_s: float) -> float:
    if time_s <= 0:
        return 0.0
    busy = microbatches * sum(stage_s)
    return max(0.0, 1.0 - busy / (len(stage_s) * time_s))
