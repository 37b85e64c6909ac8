"""Transformer configurations and workloads for the LLM workload builder (`codesign.frontends.llm`).

Every preset number comes from the model's published Hugging Face ``config.json`` (sources in
docs/llm.md); `param_count` reproduces the published parameter counts, which the tests check.
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
    mlp = (3 if c.gated_mlp else 2) * c.hidden * c.intermediate
    if c.mlp_bias:
        mlp += (2 if c.gated_mlp else 1) * c.intermediate + c.hidden
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


_LLAMA = dict(gated_mlp=True, activation=Activation.SILU, norm=Norm.RMSNORM)
_LEARNED_LN = dict(
    gated_mlp=False, norm=Norm.LAYERNORM, positions=Positions.LEARNED, tied_embeddings=True,
    qkv_bias=True, out_bias=True, mlp_bias=True,
)  # fmt: skip

# Sources: each model's config.json on the Hugging Face hub (links in docs/llm.md).
PRESETS: dict[str, LLMConfig] = {
    c.name: c
    for c in (
        LLMConfig("llama-2-7b", 32, 4096, 11008, 32, 32, 32000, **_LLAMA),  # type: ignore[arg-type]
        LLMConfig("llama-2-13b", 40, 5120, 13824, 40, 40, 32000, **_LLAMA),  # type: ignore[arg-type]
        LLMConfig("llama-2-70b", 80, 8192, 28672, 64, 8, 32000, **_LLAMA),  # type: ignore[arg-type]
        LLMConfig(
            "llama-3-8b", 32, 4096, 14336, 32, 8, 128256, rope_theta=500000.0,
            max_position=8192, **_LLAMA,  # type: ignore[arg-type]
        ),
        LLMConfig(
            "yi-6b", 32, 4096, 11008, 32, 4, 64000, rope_theta=5000000.0, **_LLAMA,  # type: ignore[arg-type]
        ),
        LLMConfig(
            "smollm2-135m", 30, 576, 1536, 9, 3, 49152, rope_theta=100000.0, max_position=8192,
            tied_embeddings=True, **_LLAMA,  # type: ignore[arg-type]
        ),
        LLMConfig(
            "opt-1.3b", 24, 2048, 8192, 32, 32, 50272, activation=Activation.RELU,
            max_position=2048, position_offset=2, **_LEARNED_LN,  # type: ignore[arg-type]
        ),
        LLMConfig(
            "gpt2", 12, 768, 3072, 12, 12, 50257, activation=Activation.GELU_TANH,
            max_position=1024, **_LEARNED_LN,  # type: ignore[arg-type]
        ),
        LLMConfig(
            "phi-2", 32, 2560, 10240, 32, 32, 51200, gated_mlp=False,
            activation=Activation.GELU_TANH, norm=Norm.LAYERNORM, rotary_dim=32,
            max_position=2048, qkv_bias=True, out_bias=True, mlp_bias=True, lm_head_bias=True,
            block=Block.PARALLEL,
        ),
        LLMConfig(
            "bert-base", 12, 768, 3072, 12, 12, 30522, activation=Activation.GELU,
            norm_eps=1e-12, max_position=512, block=Block.POST_NORM, causal=False,
            type_vocab=2, embed_norm=True, final_norm=False,
            **{**_LEARNED_LN, "tied_embeddings": False},  # type: ignore[arg-type]
        ),
    )
}  # fmt: skip


def preset(name: str) -> LLMConfig:
    """The preset called `name` (case-insensitive); InputError lists the known names."""
    key = name.strip().lower()
    if key not in PRESETS:
        raise InputError(f"unknown LLM preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[key]
