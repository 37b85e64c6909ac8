"""Hugging Face ``config.json`` -> `LLMConfig`: the LLM families users bring.

One parser per ``model_type`` (`FAMILIES`), each reading the fields its family's
``configuration_*.py`` in transformers defines, with that file's defaults.  Fields that change
the architecture in a way the LLM builder does not model are refused on one line naming the
field (``config.json: field 'alibi' = true: ALiBi positions are not supported``); fields that
do not change the cost of a forward pass (dropout, initializer range, token ids, RoPE scaling
factors, ``torch_dtype``: the workload's types are chosen with ``--wbits/--abits``) are not
read.  docs/llm.md lists what each family maps to.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from codesign.errors import InputError
from codesign.frontends.llm_config import Activation, Block, LLMConfig, Norm, Positions

CONFIG_NAME = "config.json"

_ACTIVATIONS = {
    "silu": Activation.SILU, "swish": Activation.SILU, "gelu": Activation.GELU,
    "gelu_new": Activation.GELU_TANH, "gelu_pytorch_tanh": Activation.GELU_TANH,
    "gelu_fast": Activation.GELU_TANH, "relu": Activation.RELU,
}  # fmt: skip

_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Fields:
    """A config.json object and where it came from; typed reads name the field on error."""

    values: Mapping[str, object]
    source: str

    def error(self, key: str, message: str) -> InputError:
        value = json.dumps(self.values.get(key))
        return InputError(f"{self.source}: field {key!r} = {value}: {message}")

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def int_(self, key: str, default: object = _MISSING) -> int:
        value = self.values.get(key)
        if value is None:
            if default is _MISSING:
                raise InputError(f"{self.source}: missing field {key!r}")
            assert isinstance(default, int)
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(key, "expected a positive integer")
        return value

    def float_(self, key: str, default: float) -> float:
        value = self.values.get(key)
        if value is None:
            return default
        if (
            isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0
        ):  # json reads NaN and Infinity; neither is a size or a constant
            raise self.error(key, "expected a positive finite number")
        return float(value)

    def bool_(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "expected true or false")
        return value

    def activation(self, key: str, default: str) -> Activation:
        value = self.values.get(key, default)
        if value is None:
            value = default
        if not isinstance(value, str) or value not in _ACTIVATIONS:
            raise self.error(key, f"unsupported activation (known: {', '.join(_ACTIVATIONS)})")
        return _ACTIVATIONS[value]

    def refuse(self, key: str, bad: Callable[[object], bool], why: str) -> None:
        """InputError when field `key` is present and `bad(value)`."""
        if key in self.values and bad(self.values[key]):
            raise self.error(key, why)


def _truthy(value: object) -> bool:
    return bool(value)


# -- families -------------------------------------------------------------------------------------
def _llama_like(f: _Fields, name: str, **family: object) -> LLMConfig:
    """Llama and its descendants: RMSNorm, gated MLP, RoPE, optional GQA."""
    hidden, heads = f.int_("hidden_size"), f.int_("num_attention_heads")
    head_dim = f.int_("head_dim", 0) if f.has("head_dim") else 0
    rotary = 0
    if f.has("partial_rotary_factor"):
        dim = head_dim or hidden // heads
        rotary = int(dim * f.float_("partial_rotary_factor", 1.0))
    f.refuse("pretraining_tp", lambda v: v not in (None, 1), "only pretraining_tp 1 is modelled")
    attention_bias = f.bool_("attention_bias", False)
    fields: dict[str, object] = dict(
        layers=f.int_("num_hidden_layers"), hidden=hidden, intermediate=f.int_("intermediate_size"),
        heads=heads, kv_heads=f.int_("num_key_value_heads", heads), vocab=f.int_("vocab_size"),
        head_dim=head_dim, gated_mlp=True, activation=f.activation("hidden_act", "silu"),
        norm=Norm.RMSNORM, norm_eps=f.float_("rms_norm_eps", 1e-6),
        tied_embeddings=f.bool_("tie_word_embeddings", False), positions=Positions.ROTARY,
        rope_theta=f.float_("rope_theta", 10000.0), rotary_dim=rotary,
        max_position=f.int_("max_position_embeddings", 2048), qkv_bias=attention_bias,
        out_bias=attention_bias, mlp_bias=f.bool_("mlp_bias", False),
        sliding_window=f.int_("sliding_window", 0),
    )  # fmt: skip
    fields.update(family)
    return LLMConfig(name=name, **fields)  # type: ignore[arg-type]


def _llama(f: _Fields, name: str) -> LLMConfig:
    return _llama_like(f, name, sliding_window=0)


def _mistral(f: _Fields, name: str) -> LLMConfig:
    return _llama_like(f, name)


def _qwen2_window(f: _Fields) -> int:
    """Qwen2 uses its window only with ``use_sliding_window``, and then only on the layers from
    ``max_window_layers`` on; a model mixing both kinds of layer is not modelled."""
    if not f.bool_("use_sliding_window", False):
        return 0
    layers = f.int_("num_hidden_layers")
    if f.int_("max_window_layers", layers) < layers:
        raise f.error("max_window_layers", "mixed full and sliding-window layers not supported")
    return 0


def _qwen2(f: _Fields, name: str) -> LLMConfig:
    return _llama_like(f, name, qkv_bias=True, out_bias=False, sliding_window=_qwen2_window(f))


def _phi3(f: _Fields, name: str) -> LLMConfig:
    return _llama_like(f, name, norm_eps=f.float_("rms_norm_eps", 1e-5))


def _mixtral(f: _Fields, name: str) -> LLMConfig:
    return _llama_like(
        f, name, norm_eps=f.float_("rms_norm_eps", 1e-5), experts=f.int_("num_local_experts"),
        experts_per_token=f.int_("num_experts_per_tok"),
    )  # fmt: skip


def _qwen2_moe(f: _Fields, name: str) -> LLMConfig:
    f.refuse("decoder_sparse_step", lambda v: v != 1, "only every layer sparse (1) is modelled")
    f.refuse("mlp_only_layers", _truthy, "dense layers inside a MoE model are not modelled")
    shared = f.int_("shared_expert_intermediate_size", 0) if f.has(
        "shared_expert_intermediate_size") else 0  # fmt: skip
    return _llama_like(
        f, name, qkv_bias=True, out_bias=False, sliding_window=_qwen2_window(f),
        intermediate=f.int_("moe_intermediate_size"), experts=f.int_("num_experts"),
        experts_per_token=f.int_("num_experts_per_tok"), shared_intermediate=shared,
        shared_expert_gate=shared > 0,
    )  # fmt: skip


def _gemma(f: _Fields, name: str) -> LLMConfig:
    # Gemma computes GeGLU with the tanh GELU whatever hidden_act says (transformers#29402)
    act = f.activation("hidden_activation", "gelu_pytorch_tanh")
    return _llama_like(
        f, name, activation=act, tied_embeddings=f.bool_("tie_word_embeddings", True),
        max_position=f.int_("max_position_embeddings", 8192), sliding_window=0,
    )  # fmt: skip


def _phi(f: _Fields, name: str) -> LLMConfig:
    f.refuse("qk_layernorm", _truthy, "Q/K LayerNorm is not modelled")
    hidden, heads = f.int_("hidden_size"), f.int_("num_attention_heads")
    return LLMConfig(
        name=name, layers=f.int_("num_hidden_layers"), hidden=hidden,
        intermediate=f.int_("intermediate_size"), heads=heads,
        kv_heads=f.int_("num_key_value_heads", heads), vocab=f.int_("vocab_size"),
        gated_mlp=False, activation=f.activation("hidden_act", "gelu_new"),
        norm=Norm.LAYERNORM, norm_eps=f.float_("layer_norm_eps", 1e-5),
        tied_embeddings=f.bool_("tie_word_embeddings", False),
        rope_theta=f.float_("rope_theta", 10000.0),
        rotary_dim=int(hidden // heads * f.float_("partial_rotary_factor", 0.5)),
        max_position=f.int_("max_position_embeddings", 2048), qkv_bias=True, out_bias=True,
        mlp_bias=True, lm_head_bias=True, block=Block.PARALLEL,
    )  # fmt: skip


def _gpt2(f: _Fields, name: str) -> LLMConfig:
    hidden = f.int_("n_embd", 768)
    return LLMConfig(
        name=name, layers=f.int_("n_layer", 12), hidden=hidden,
        intermediate=f.int_("n_inner", 4 * hidden), heads=f.int_("n_head", 12),
        kv_heads=f.int_("n_head", 12), vocab=f.int_("vocab_size", 50257), gated_mlp=False,
        activation=f.activation("activation_function", "gelu_new"), norm=Norm.LAYERNORM,
        norm_eps=f.float_("layer_norm_epsilon", 1e-5),
        tied_embeddings=f.bool_("tie_word_embeddings", True), positions=Positions.LEARNED,
        max_position=f.int_("n_positions", 1024), qkv_bias=True, out_bias=True, mlp_bias=True,
    )  # fmt: skip


def _opt(f: _Fields, name: str) -> LLMConfig:
    f.refuse("do_layer_norm_before", lambda v: v is False, "post-norm OPT (350m) is not modelled")
    f.refuse("_remove_final_layer_norm", _truthy, "OPT without its final LayerNorm")
    hidden = f.int_("hidden_size")
    f.refuse(
        "word_embed_proj_dim", lambda v: v not in (None, hidden),
        "an embedding projection (word_embed_proj_dim != hidden_size) is not modelled",
    )  # fmt: skip
    bias = f.bool_("enable_bias", True)
    heads = f.int_("num_attention_heads")
    return LLMConfig(
        name=name, layers=f.int_("num_hidden_layers"), hidden=hidden,
        intermediate=f.int_("ffn_dim"), heads=heads, kv_heads=heads, vocab=f.int_("vocab_size"),
        gated_mlp=False, activation=f.activation("activation_function", "relu"),
        norm=Norm.LAYERNORM, tied_embeddings=f.bool_("tie_word_embeddings", True),
        positions=Positions.LEARNED, max_position=f.int_("max_position_embeddings", 2048),
        position_offset=2, qkv_bias=bias, out_bias=bias, mlp_bias=bias,
    )  # fmt: skip


def _falcon(f: _Fields, name: str) -> LLMConfig:
    f.refuse("alibi", _truthy, "ALiBi positions are not supported")
    f.refuse("apply_residual_connection_post_layernorm", _truthy,
             "residuals taken after the LayerNorm are not modelled")  # fmt: skip
    hidden, heads = f.int_("hidden_size", 4544), f.int_("num_attention_heads", 71)
    new_arch = f.bool_("new_decoder_architecture", False)
    if new_arch:
        kv_heads = f.int_("num_kv_heads", heads)
        block = Block.PARALLEL if f.int_("num_ln_in_parallel_attn", 2) == 1 else (
            Block.PARALLEL_TWO_NORMS)  # fmt: skip
    else:
        kv_heads = 1 if f.bool_("multi_query", True) else heads
        block = Block.PARALLEL if f.bool_("parallel_attn", True) else Block.PRE_NORM
    bias = f.bool_("bias", False)
    return LLMConfig(
        name=name, layers=f.int_("num_hidden_layers", 32), hidden=hidden,
        intermediate=f.int_("ffn_hidden_size", 4 * hidden), heads=heads, kv_heads=kv_heads,
        vocab=f.int_("vocab_size", 65024), gated_mlp=False,
        activation=f.activation("activation", "gelu"), norm=Norm.LAYERNORM,
        norm_eps=f.float_("layer_norm_epsilon", 1e-5),
        tied_embeddings=f.bool_("tie_word_embeddings", True),
        rope_theta=f.float_("rope_theta", 10000.0),
        max_position=f.int_("max_position_embeddings", 2048), qkv_bias=bias, out_bias=bias,
        mlp_bias=bias, block=block,
    )  # fmt: skip


def _bert(f: _Fields, name: str) -> LLMConfig:
    f.refuse("position_embedding_type", lambda v: v not in (None, "absolute"),
             "only absolute position embeddings are modelled")  # fmt: skip
    heads = f.int_("num_attention_heads")
    return LLMConfig(
        name=name, layers=f.int_("num_hidden_layers"), hidden=f.int_("hidden_size"),
        intermediate=f.int_("intermediate_size"), heads=heads, kv_heads=heads,
        vocab=f.int_("vocab_size"), gated_mlp=False, activation=f.activation("hidden_act", "gelu"),
        norm=Norm.LAYERNORM, norm_eps=f.float_("layer_norm_eps", 1e-12),
        positions=Positions.LEARNED, max_position=f.int_("max_position_embeddings", 512),
        qkv_bias=True, out_bias=True, mlp_bias=True, block=Block.POST_NORM, causal=False,
        type_vocab=f.int_("type_vocab_size", 2), embed_norm=True, final_norm=False,
    )  # fmt: skip


# model_type -> parser.  Falcon's first checkpoints call themselves RefinedWeb*.
FAMILIES: dict[str, Callable[[_Fields, str], LLMConfig]] = {
    "llama": _llama, "mistral": _mistral, "qwen2": _qwen2, "phi3": _phi3, "mixtral": _mixtral,
    "qwen2_moe": _qwen2_moe, "gemma": _gemma, "phi": _phi, "gpt2": _gpt2, "opt": _opt,
    "falcon": _falcon, "RefinedWeb": _falcon, "RefinedWebModel": _falcon, "bert": _bert,
}  # fmt: skip


def config_from_dict(values: Mapping[str, object], name: str, source: str = "") -> LLMConfig:
    """An `LLMConfig` named `name` from a parsed config.json object."""
    f = _Fields(values, source or name)
    model_type = values.get("model_type")
    if not isinstance(model_type, str):
        raise f.error("model_type", "expected the architecture's model_type string")
    parser = FAMILIES.get(model_type)
    if parser is None:
        raise f.error("model_type", f"unsupported architecture (known: {', '.join(FAMILIES)})")
    try:
        return parser(f, name)
    except InputError as err:
        message = str(err)
        if not message.startswith(f.source):
            message = f"{f.source}: {message}"
        raise InputError(message) from None


def config_path(spec: str | Path) -> Path | None:
    """The config.json `spec` names (the file, or a directory holding one), else None."""
    path = Path(spec)
    if path.is_dir():
        return path / CONFIG_NAME
    if path.suffix == ".json" or path.is_file():
        return path
    return None


def load_hf_config(spec: str | Path, name: str | None = None) -> LLMConfig:
    """Read a Hugging Face config.json (or a model directory holding one).

    The config is named `name`, else after ``_name_or_path``'s last part, else after the
    directory (or the file's stem when it is not called config.json), lower-cased.
    """
    path = config_path(spec)
    if path is None or not path.is_file():
        where = f"no {CONFIG_NAME} in this directory" if Path(spec).is_dir() else "no such file"
        raise InputError(f"{spec}: {where}")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: unreadable ({err})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a JSON object")
    if name is None:
        given = values.get("_name_or_path")
        if isinstance(given, str) and given.strip("/"):
            name = given.strip("/").split("/")[-1]
        else:
            name = path.parent.name if path.name == CONFIG_NAME else path.stem
        name = name.lower() or "model"
    return config_from_dict(values, name, str(path))
