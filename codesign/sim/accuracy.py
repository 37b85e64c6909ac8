"""What a transformation (quantization) costs an LLM in accuracy: teacher-forced next-token
agreement and logit error of the transformed cascade against its reference, on a fixed prompt
set, every position of every prompt counting as one next-token prediction.

The prompt set is deterministic: `PROMPT_TEXTS` encoded by the model's tokenizer and cut to a
fixed length (or, without a tokenizer, seeded pseudo-random token ids).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from codesign.errors import InputError
from codesign.frontends.llm import llm_inputs
from codesign.frontends.llm_config import LLMConfig, Phase, Workload
from codesign.ir.cascade import Cascade
from codesign.ir.interpreter import interpret

__all__ = [
    "PROMPT_TEXTS", "LogitError", "logit_error", "prefill_logits", "prompt_token_ids",
]  # fmt: skip

# Eight short passages of different registers (narrative, science, code, dialogue, lists,
# numbers, instructions, history); each encodes to at least 40 SmolLM2 tokens.
PROMPT_TEXTS: tuple[str, ...] = (
    "Once upon a time, in a small village at the edge of a great forest, there lived an old "
    "woodcutter and his daughter. Every morning they walked together to the river, where the "
    "water was clear and cold, and every evening they told each other stories by the fire.",
    "Photosynthesis is the process by which green plants use sunlight to turn water and carbon "
    "dioxide into glucose and oxygen. It takes place mostly in the leaves, inside small "
    "structures called chloroplasts, which contain the pigment chlorophyll.",
    "def binary_search(items, target):\n    low, high = 0, len(items) - 1\n    while low <= high:"
    "\n        mid = (low + high) // 2\n        if items[mid] == target:\n            return mid\n"
    "        if items[mid] < target:\n            low = mid + 1\n",
    '"Are you coming to the meeting tomorrow?" asked Sarah.\n"I think so, but I might be a '
    'little late," replied Tom. "My train gets in at nine, and the office is a twenty minute '
    'walk from the station."',
    "To make a simple tomato sauce, you will need the following ingredients: two tablespoons of "
    "olive oil, one onion, three cloves of garlic, a can of crushed tomatoes, a pinch of salt, "
    "and a few leaves of fresh basil. First, heat the oil in a pan.",
    "The population of the city grew from 120,000 in 1950 to almost 2.5 million in 2020. Most of "
    "this growth happened between 1970 and 1990, when new factories attracted workers from the "
    "countryside and the average household size fell from 5.1 to 3.4 people.",
    "Dear customer, thank you for your order. Your package has been shipped and should arrive "
    "within three to five business days. If you have any questions about your order, please "
    "reply to this email or call our support team, which is available every day.",
    "The Roman Empire was one of the largest empires in the ancient world. At its height, it "
    "stretched from Britain in the north to Egypt in the south, and from Spain in the west to "
    "Mesopotamia in the east. Its capital, Rome, was home to about a million people.",
)


def prompt_token_ids(
    encode: Callable[[str], Sequence[int]] | None,
    vocab: int,
    prompts: int = 8,
    length: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """[prompts, length] int32 token ids: the first `length` ids of the first `prompts`
    `PROMPT_TEXTS` under `encode`, or seeded uniform ids below `vocab` when `encode` is None."""
    if not 0 < prompts <= len(PROMPT_TEXTS) or length <= 0:
        raise InputError(f"prompt set: 1..{len(PROMPT_TEXTS)} prompts of length > 0")
    if encode is None:
        rng = np.random.default_rng(seed)
        return rng.integers(0, vocab, size=(prompts, length)).astype(np.int32)
    rows = []
    for text in PROMPT_TEXTS[:prompts]:
        ids = list(encode(text))
        if len(ids) < length:
            raise InputError(f"prompt set: a prompt encodes to {len(ids)} < {length} tokens")
        rows.append(ids[:length])
    return np.asarray(rows, dtype=np.int32)


def prefill_logits(cascade: Cascade, config: LLMConfig, tokens: np.ndarray) -> np.ndarray:
    """Logits [batch, positions, vocab] of a prefill cascade (built with ``lm_head="all"`` for
    every position) on `tokens` [batch, seq], run by the reference interpreter."""
    tokens = np.asarray(tokens)
    workload = Workload(tokens.shape[0], tokens.shape[1], Phase.PREFILL)
    return np.asarray(interpret(cascade, llm_inputs(config, workload, tokens))["logits"])


@dataclass(frozen=True, slots=True)
class LogitError:
    """Agreement of candidate logits with reference logits over `positions` predictions.

    ``top1_agreement``: fraction of positions whose argmax token is the reference's.
    ``rel_l2``: ``||candidate - reference||_2 / ||reference||_2`` over all logits.
    ``max_abs``: largest absolute logit difference.
    ``mean_kl_nats``: mean over positions of KL(reference softmax || candidate softmax).
    """

    positions: int
    top1_agreement: float
    rel_l2: float
    max_abs: float
    mean_kl_nats: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def logit_error(reference: np.ndarray, candidate: np.ndarray) -> LogitError:
    """Compare two logit arrays of the same shape [..., vocab] (float64 arithmetic)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise InputError(f"logits: shapes {ref.shape} and {cand.shape} differ")
    ref2, cand2 = ref.reshape(-1, ref.shape[-1]), cand.reshape(-1, ref.shape[-1])
    diff = cand2 - ref2
    log_p, log_q = _log_softmax(ref2), _log_softmax(cand2)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)
    return LogitError(
        positions=ref2.shape[0],
        top1_agreement=float((ref2.argmax(-1) == cand2.argmax(-1)).mean()),
        rel_l2=float(np.linalg.norm(diff) / np.linalg.norm(ref2)),
        max_abs=float(np.abs(diff).max()),
        mean_kl_nats=float(kl.mean()),
    )
