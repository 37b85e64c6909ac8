"""Transformer configurations and workloads for the LLM workload builder (`codesign.frontends.llm`).

The presets are Hugging Face ``config.json`` files bundled with the package
(``frontends/llm_configs``, sources in docs/llm.md), read by `codesign.frontends.hf_config`;
`param_count` reproduces the published parameter counts, which the tests check.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

from codesign.errors import InputError
from codesign.ir.dtypes import DType


class Phase(Enum):
    PREFILL = "prefill"
    DECODE = "decode"


class Activation(Enum):
    SILU = "silu"
    GELU = "gelu"  # exact (erf) form, BERT
    GELU_TANH = "gelu_tanh"  # "gelu_new" of GPT-2 / Phi-2
    RELU = "relu"


class Norm(Enum):
    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"


class Positions(Enum):
    ROTARY = "rotary"  # RoPE, Hugging Face rotate-half convention
    LEARNED = "learned"  # absolute position-embedding table added to the token embeddings


class Block(Enum):
    """How a layer wires its norms and residuals."""

    PRE_NORM = "pre_norm"  # x += attn(norm1(x)); x += mlp(norm2(x))    (Llama, GPT-2, OPT)
    POST_NORM = "post_norm"  # x = norm1(x + attn(x)); x = norm2(x + mlp(x))  (BERT)
    PARALLEL = "parallel"  # x += attn(norm(x)) + mlp(norm(x))             (Phi-2, GPT-J)
    PARALLEL_TWO_NORMS = "parallel_two_norms"  # x += attn(n1(x)) + mlp(n2(x))  (Falcon-40B)


@dataclass(frozen=True, slots=True)
class LLMConfig:
    """A transformer's architecture.  Linear weights are stored ``[in_features, out_features]``
    (the transpose of PyTorch's ``nn.Linear.weight``)."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int = 0  # 0: hidden // heads
    gated_mlp: bool = True  # SwiGLU-style gate/up/down; else fc1/act/fc2
    activation: Activation = Activation.SILU
    norm: Norm = Norm.RMSNORM
    norm_eps: float = 1e-5
    tied_embeddings: bool = False
    positions: Positions = Positions.ROTARY
    rope_theta: float = 10000.0
    rotary_dim: int = 0  # 0: the whole head_dim; Phi-2 rotates only the first 32 of 80
    max_position: int = 4096
    position_offset: int = 0  # OPT's learned table starts at row 2
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    block: Block = Block.PRE_NORM
    causal: bool = True  # decoder-only; False for encoders (BERT), which have no decode phase
    type_vocab: int = 0  # BERT token-type embeddings (all tokens of type 0)
    embed_norm: bool = False  # BERT normalises the summed embeddings
    final_norm: bool = True
    dtype: DType = DType.F16
    sliding_window: int = 0  # 0: full attention; else each token attends to the last N keys
    experts: int = 0  # routed experts per MoE layer (0: dense MLP of width `intermediate`)
    experts_per_token: int = 0  # top-k
    shared_intermediate: int = 0  # width of the always-active shared expert (0: none)
    shared_expert_gate: bool = False  # Qwen2-MoE: sigmoid(x . w) scales the shared expert

    def __post_init__(self) -> None:
        sizes = ("layers", "hidden", "intermediate", "heads", "kv_heads", "vocab", "max_position")
        for field_name in sizes:
            if getattr(self, field_name) <= 0:
                raise InputError(f"LLM config {self.name}: {field_name} must be positive")
        if self.heads % self.kv_heads:
            raise InputError(
                f"LLM config {self.name}: heads {self.heads} not a multiple of "
                f"kv_heads {self.kv_heads}"
            )
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise InputError(
                    f"LLM config {self.name}: hidden {self.hidden} not divisible by heads"
                )
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if self.rotary_dim == 0:
            object.__setattr__(self, "rotary_dim", self.head_dim)
        if self.rotary_dim % 2 or self.rotary_dim > self.head_dim:
            raise InputError(
                f"LLM config {self.name}: rotary_dim {self.rotary_dim} must be even and "
                f"at most head_dim {self.head_dim}"
            )
        if self.experts and not 0 < self.experts_per_token <= self.experts:
            raise InputError(
                f"LLM config {self.name}: experts_per_token {self.experts_per_token} must be "
                f"in 1..experts {self.experts}"
            )
        if self.sliding_window < 0:
            raise InputError(f"LLM config {self.name}: sliding_window must be >= 0")

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 for multi-head attention)."""
        return self.heads // self.kv_heads

    def replace(self, **changes: object) -> LLMConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Workload:
    """One forward pass.  PREFILL processes ``seq_len`` tokens; DECODE processes one new token
    per sequence against a KV cache holding ``kv_len`` earlier tokens (default ``seq_len``), so
    the new token attends to ``kv_len + 1`` keys (docs/llm.md)."""

    batch: int
    seq_len: int
    phase: Phase = Phase.PREFILL
    kv_len: int | None = None

    def __post_init__(self) -> None:
        if self.batch <= 0 or self.seq_len <= 0:
            raise InputError(f"workload: batch {self.batch} and seq {self.seq_len} must be > 0")
        if self.kv_len is None:
            object.__setattr__(self, "kv_len", self.seq_len)
        elif self.phase is Phase.PREFILL and self.kv_len != self.seq_len:
            raise InputError("workload: kv_len applies to decode only (prefill has no cache)")
        elif self.kv_len <= 0:
            raise InputError(f"workload: kv_len {self.kv_len} must be > 0")

    @property
    def cache_len(self) -> int:
        """Tokens already in the KV cache (0 for prefill)."""
        assert self.kv_len is not None
        return self.kv_len if self.phase is Phase.DECODE else 0

    @property
    def new_tokens(self) -> int:
        """Tokens processed per sequence by this pass."""
        return 1 if self.phase is Phase.DECODE else self.seq_len

    @property
    def keys(self) -> int:
        """Keys each query attends over (cache plus new tokens)."""
        return self.cache_len + self.new_tokens


def _mlp_params(c: LLMConfig, width: int) -> int:
    mlp = (3 if c.gated_mlp else 2) * c.hidden * width
    if c.mlp_bias:
        mlp += (2 if c.gated_mlp else 1) * width + c.hidden
    return mlp


def expected_active_experts(config: LLMConfig, tokens: int) -> float:
    """Distinct experts a MoE layer reads for `tokens` tokens routed independently and
    uniformly, each to `experts_per_token` distinct experts: ``E (1 - (1 - k/E)^T)``.

    An expert stays unread only if none of the T tokens picks it (each token misses it with
    probability ``1 - k/E``).  Real routers are not uniform (load-balancing losses push them
    towards it), so this is the balanced-routing expectation.  A dense model reads its one MLP.
    """
    if not config.is_moe:
        return 1.0
    e, k = config.experts, config.experts_per_token
    return e * (1.0 - (1.0 - k / e) ** tokens)


def active_experts(config: LLMConfig, tokens: int) -> int:
    """`expected_active_experts` rounded to whole experts, within [k, min(E, T k)]: the
    experts whose weights the builder's MoE layer reads."""
    if not config.is_moe:
        return 1
    k = config.experts_per_token
    high = min(config.experts, tokens * k)
    return max(min(round(expected_active_experts(config, tokens)), high), min(k, high))


def tokens_per_expert(config: LLMConfig, tokens: int) -> float:
    """Expected tokens each active expert processes: ``T k / active experts``."""
    if not config.is_moe:
        return float(tokens)
    return tokens * config.experts_per_token / expected_active_experts(config, tokens)


def active_param_count(config: LLMConfig, tokens: int = 1) -> int:
    """Parameters a forward pass over `tokens` tokens reads (MoE: only the active experts;
    the embedding table counts whole, as `param_count` does)."""
    total = param_count(config)
    if not config.is_moe:
        return total
    unread = config.experts - active_experts(config, tokens)
    return total - config.layers * unread * _mlp_params(config, config.intermediate)


def param_count(config: LLMConfig, layers: int | None = None) -> int:
    """Parameters of the model (no pooler, no MLM head), counting a tied LM head once."""
    c = config
    n_layers = c.layers if layers is None else layers
    q_out, kv_out = c.heads * c.head_dim, c.kv_heads * c.head_dim
    attn = c.hidden * q_out + 2 * c.hidden * kv_out + q_out * c.hidden
    if c.qkv_bias:
        attn += q_out + 2 * kv_out
    if c.out_bias:
        attn += c.hidden
    mlp = _mlp_params(c, c.intermediate) * max(c.experts, 1)
    if c.is_moe:
        mlp += c.hidden * c.experts  # router
        mlp += _mlp_params(c, c.shared_intermediate) if c.shared_intermediate else 0
        mlp += c.hidden if c.shared_expert_gate else 0
    norm = c.hidden * (2 if c.norm is Norm.LAYERNORM else 1)
    norms_per_layer = 1 if c.block is Block.PARALLEL else 2
    total = n_layers * (attn + mlp + norms_per_layer * norm)
    total += c.vocab * c.hidden
    if c.positions is Positions.LEARNED:
        total += (c.max_position + c.position_offset) * c.hidden
    total += c.type_vocab * c.hidden
    total += norm * (int(c.embed_norm) + int(c.final_norm))
    if not c.tied_embeddings and c.causal:
        total += c.vocab * c.hidden + (c.vocab if c.lm_head_bias else 0)
    return total


def preset(name: str) -> LLMConfig:
    """The bundled preset called `name` (`codesign.frontends.llm_presets.preset`)."""
    from codesign.frontends.llm_presets import preset as bundled

    return bundled(name)
