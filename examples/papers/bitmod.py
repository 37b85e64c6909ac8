"""Reproduce BitMoD (HPCA 2025) Fig. 7/8: speedup and energy of BitMoD vs FP16, ANT and OliVe.

Six LLMs (built by `codesign.frontends.llm`) x two tasks at context 256: *discriminative* is the
prefill of 256 tokens (LM head on every position); *generative* is that prefill plus 20 decode
steps.  As in the BitMoD artifact, the prefill runs on each design's discriminative configuration
(``examples/hw/*_disc.yaml``) and the decode steps on its generative one (``*_gen.yaml``, with
the per-model ANT/OliVe weight widths of VALIDATION.md section 4).  Decode step ``i`` attends
over ``256 + i`` cached tokens; its cost is affine in the cache length (weights dominate, the
attention part grows linearly), so the 20 steps are priced exactly from the first and the last
(``--exact-decode`` prices all 20).

Attention accounting (``--attention``, docs/papers.md "BitMoD"): the two attention matmuls of
every decoder layer are priced either

* ``artifact`` (default): as the BitMoD artifact (``bitmod_sim``) prices them, which is how the
  published numbers were made: Einsums of the artifact's layer shapes (`artifact_attention`;
  prefill QK^T is ``heads`` times the real MACs and re-reads K once per head) at the design's
  *weight* latency (`AttentionLatency.WEIGHT`), in place of the builder's ``qk_matmul`` and
  ``sv_matmul`` Einsums; or
* ``einsum``: the real Einsums of the LLM builder at the 16-bit operands' latency.

Everything else is the same cascade, mapped once, in both modes.  Prints, per published number
(tests/validation/bitmod.yaml), the paper value, codesign's value and the relative error;
``--json PATH`` writes the same rows (einsum-mode ids end in ``_einsum``).  Run:
``python examples/papers/bitmod.py [--attention artifact|einsum|both] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from codesign.api import map_model
from codesign.frontends.llm import build_llm, label_of
from codesign.frontends.llm_config import LLMConfig, Phase, Workload, preset
from codesign.hwmodels.bitserial import BitSerialArray, load_bitserial
from codesign.ir.builder import CascadeBuilder, var_access
from codesign.ir.cascade import Cascade, Role
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.index import Affine
from codesign.mapper.from_ir import problem_from_einsum
from codesign.sim.bitserial import AttentionLatency, BitSerialModel
from codesign.sim.cascade import CascadeResult

ROOT = Path(__file__).resolve().parents[2]
HW_DIR = ROOT / "examples" / "hw"
CASES = ROOT / "tests" / "validation" / "bitmod.yaml"

MODELS = ("opt-1.3b", "phi-2", "yi-6b", "llama-2-7b", "llama-2-13b", "llama-3-8b")
DESIGNS = ("fp16", "ant", "olive", "bitmod")
TASKS = ("disc", "gen")
CONTEXT = 256
DECODE_STEPS = 20
# Generative weight widths per model (order of MODELS), VALIDATION.md section 4 / artifact.
GEN_WEIGHT_BITS = {
    "ant": (5.0, 5.0, 5.25, 5.0, 5.0, 4.5),
    "olive": (3.875, 4.0, 4.25, 3.75, 3.75, 3.5),
}


# The builder's labels of the two attention matmuls, replaced in artifact mode.
ATTENTION_LABELS = frozenset({"qk_matmul", "sv_matmul"})


class Attention(enum.Enum):
    """How the attention matmuls are accounted (module docstring)."""

    ARTIFACT = "artifact"
    EINSUM = "einsum"

    @property
    def id_suffix(self) -> str:
        """Appended to row ids: the published cases keep their ids in artifact mode."""
        return "" if self is Attention.ARTIFACT else f"_{self.value}"


@dataclass(frozen=True, slots=True)
class Run:
    """Cycles and energy of one model on one design for one task."""

    cycles: float
    energy_pj: float

    def __add__(self, other: Run) -> Run:
        return Run(self.cycles + other.cycles, self.energy_pj + other.energy_pj)

    def scaled(self, factor: float) -> Run:
        return Run(factor * self.cycles, factor * self.energy_pj)


def design(name: str, task: str, model_index: int) -> BitSerialArray:
    """The preset of `name` for `task` (``disc``/``gen``), with the model's weight width."""
    hw = load_bitserial(HW_DIR / f"{name}_{task}.yaml")
    if task == "gen" and name in GEN_WEIGHT_BITS:
        hw = dataclasses.replace(hw, weight_bits=GEN_WEIGHT_BITS[name][model_index])
    return hw


def artifact_attention(config: LLMConfig, workload: Workload) -> Cascade:
    """One decoder layer's QK^T and SV with the BitMoD artifact's layer shapes.

    The artifact (``bitmod_sim/pe_array.py``) prices each matmul as a linear layer: a weight of
    ``cout`` rows by ``cin``, ``tokens`` output rows, and an input of ``tokens`` rows by its
    ``input_dim`` width.  With ``hidden = heads x head_dim``, ``kv = kv_heads x head_dim``,
    ``rep = heads / kv_heads`` and ``ctx`` keys attended, (cin, cout, tokens) and the Einsum
    built here are:

    * QK^T prefill (hidden, ctx, heads x ctx): ``S[h,t,s] = sum[r,e] Kh[h,t,e] * Q[s, r*kv+e]``
    * QK^T decode (hidden, 1, heads): ``S[h] = sum[r,e] Kh[h,e] * Q[r*kv+e]``
    * SV prefill (ctx, heads x ctx, ctx): ``O[m,h,s] = sum[t] V[m,t] * P[h,s,t]``
    * SV decode (ctx, heads, 1): ``O[h] = sum[t] V[t] * P[h,t]``

    The query / probabilities play the weight (N = cout, reduced K = cin) and the keys /
    values the input (M = tokens), as in the artifact.  QK^T's input is ``tokens`` key rows of
    ``kv`` elements (``Kh``: K re-read once per head, broadcast over the ``rep`` column groups
    of the query), so its MACs, tiles and all three footprints are the artifact's; prefill is
    ``heads`` times the real MACs.  SV's input is ``tokens x cin`` elements where the artifact
    counts ``tokens x kv`` (its ``input_dim``, which no loop nest of its MACs reads); in a
    replica of the artifact that moves the normalized energies by < 1% (docs/papers.md).
    """
    heads, ctx = config.heads, workload.keys
    kv = config.kv_heads * config.head_dim
    # loop dims, and "c": the query's hidden columns, indexed r * kv + e
    size = {"h": heads, "t": ctx, "s": ctx, "m": ctx, "r": heads // config.kv_heads, "e": kv,
            "c": heads * config.head_dim}  # fmt: skip
    prefill = workload.phase is Phase.PREFILL
    rows = ("s",) if prefill else ()  # query rows (QK^T's cout, SV's extra weight rows)
    qk_tokens = ("h", "t") if prefill else ("h",)
    sv_tokens = ("m",) if prefill else ()
    b = CascadeBuilder(f"{config.name}_artifact_attention_{workload.phase.value}")

    def tensor(name: str, dims: tuple[str, ...], role: Role = Role.INPUT) -> str:
        shape = tuple(size[d] for d in dims)
        return b.tensor(name, shape, config.dtype, role, ranks=tuple(d.upper() for d in dims))

    def mac(name: str, out: Access, lhs: Access, rhs: Access, reduced: tuple[str, ...]) -> None:
        dims = {var for a in (out, lhs, rhs) for i in a.indices for var in i.variables}
        extents = {d: size[d] for d in size if d in dims}
        b.einsum(name, out, Binary(BinaryOp.MUL, lhs, rhs), extents, ReduceOp.SUM, reduced,
                 op="Attention")  # fmt: skip

    query = Access(
        tensor("Q", (*rows, "c")),
        tuple(Affine.var(d) for d in rows) + (Affine.of({"r": kv, "e": 1}),),
    )
    keys = var_access(tensor("Kh", (*qk_tokens, "e")), (*qk_tokens, "e"))
    scores = var_access(tensor("S", qk_tokens + rows, Role.OUTPUT), qk_tokens + rows)
    mac("qk_matmul", scores, keys, query, ("r", "e"))
    values = var_access(tensor("V", (*sv_tokens, "t")), (*sv_tokens, "t"))
    probs = var_access(tensor("P", ("h", *rows, "t")), ("h", *rows, "t"))
    out = var_access(tensor("O", (*sv_tokens, "h", *rows), Role.OUTPUT), (*sv_tokens, "h", *rows))
    mac("sv_matmul", out, values, probs, ("t",))
    return b.build()


def _price_artifact_attention(cascade: Cascade, hw: BitSerialArray) -> Run:
    """Cost of `artifact_attention`'s Einsums at the design's weight latency (the artifact's)."""
    model = BitSerialModel(AttentionLatency.WEIGHT)
    total = Run(0.0, 0.0)
    for einsum in cascade.einsums:
        cost = model.evaluate_einsum(einsum, problem_from_einsum(einsum, cascade), cascade, hw)
        total = total + Run(cost.cycles, cost.energy_pj)
    return total


def price(
    result: CascadeResult, config: LLMConfig, workload: Workload, hw: BitSerialArray
) -> dict[Attention, Run]:
    """One mapped LLM cascade under both attention accountings."""
    whole = Run(result.cycles, result.energy_pj)
    real = Run(0.0, 0.0)
    for e in result.einsums:
        if label_of(e.name) in ATTENTION_LABELS:
            real = real + Run(e.cost.cycles, e.cost.energy_pj)
    artifact = _price_artifact_attention(artifact_attention(config, workload), hw)
    rest = Run(whole.cycles - real.cycles, whole.energy_pj - real.energy_pj)
    return {Attention.EINSUM: whole, Attention.ARTIFACT: rest + artifact.scaled(config.layers)}


def _decode_kv_lengths(exact: bool) -> tuple[tuple[int, float], ...]:
    """(cache length, weight) pairs whose weighted costs sum to the 20 decode steps."""
    if exact:
        return tuple((CONTEXT + i, 1.0) for i in range(DECODE_STEPS))
    return ((CONTEXT, DECODE_STEPS / 2), (CONTEXT + DECODE_STEPS - 1, DECODE_STEPS / 2))


def run_model(model: str, exact_decode: bool = False) -> dict[Attention, dict[str, dict[str, Run]]]:
    """``{attention: {task: {design: Run}}}`` for one model; each cascade is mapped once."""
    config = preset(model)
    index = MODELS.index(model)
    prefill = Workload(1, CONTEXT)
    prefill_cascade = build_llm(config, prefill, lm_head="all")
    decodes = [
        (Workload(1, CONTEXT, Phase.DECODE, kv_len), weight)
        for kv_len, weight in _decode_kv_lengths(exact_decode)
    ]
    decode_cascades = [build_llm(config, workload) for workload, _ in decodes]
    out: dict[Attention, dict[str, dict[str, Run]]] = {
        a: {"disc": {}, "gen": {}} for a in Attention
    }
    for name in DESIGNS:
        disc_hw, gen_hw = design(name, "disc", index), design(name, "gen", index)
        first = price(map_model(prefill_cascade, disc_hw).result, config, prefill, disc_hw)
        gen = dict(first)
        for (workload, weight), cascade in zip(decodes, decode_cascades, strict=True):
            step = price(map_model(cascade, gen_hw).result, config, workload, gen_hw)
            gen = {a: gen[a] + step[a].scaled(weight) for a in Attention}
        for a in Attention:
            out[a]["disc"][name], out[a]["gen"][name] = first[a], gen[a]
    return out


def metrics(runs: dict[str, dict[str, dict[str, Run]]]) -> dict[str, float]:
    """The published aggregates: per-task means over the models, headline means over both."""
    models = list(runs)
    values: dict[str, float] = {}

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    for task in TASKS:
        for name in DESIGNS[1:]:
            values[f"speedup_over_fp16/{name}/{task}"] = mean(
                [runs[m][task]["fp16"].cycles / runs[m][task][name].cycles for m in models]
            )
            values[f"energy_over_fp16/{name}/{task}"] = mean(
                [runs[m][task][name].energy_pj / runs[m][task]["fp16"].energy_pj for m in models]
            )
    for name in ("ant", "olive"):
        values[f"speedup_vs/{name}"] = mean(
            [
                runs[m][task][name].cycles / runs[m][task]["bitmod"].cycles
                for m in models
                for task in TASKS
            ]
        )
    return values


def _key(inputs: dict) -> str:
    if inputs["metric"] == "speedup_vs":
        return f"speedup_vs/{inputs['design']}"
    return f"{inputs['metric']}/{inputs['design']}/{inputs['task']}"


def rows(exact_decode: bool = False, modes: tuple[Attention, ...] = tuple(Attention)) -> list[dict]:
    """One row per validation case and attention mode: id (``_einsum`` appended in einsum
    mode), paper value, codesign value, relative error; then per-model cycles."""
    runs = {m: run_model(m, exact_decode) for m in MODELS}
    cases = yaml.safe_load(CASES.read_text())["cases"]
    out = []
    for mode in modes:
        values = metrics({m: runs[m][mode] for m in MODELS})
        for case in cases:
            paper = float(case["expected"]["value"])
            ours = values[_key(case["inputs"])]
            out.append({
                "id": case["id"] + mode.id_suffix, "attention": mode.value, "paper": paper,
                "codesign": ours, "rel_error": (ours - paper) / paper,
                "tolerance": case["tolerance"],
            })  # fmt: skip
    for mode in modes:
        out.extend(
            {"id": f"{m}/{task}/{name}/cycles{mode.id_suffix}", "attention": mode.value,
             "paper": None, "codesign": runs[m][mode][task][name].cycles, "rel_error": None,
             "tolerance": None}
            for m in MODELS for task in TASKS for name in DESIGNS
        )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    parser.add_argument("--exact-decode", action="store_true", help="price all 20 decode steps")
    parser.add_argument(
        "--attention",
        choices=[a.value for a in Attention] + ["both"],
        default=Attention.ARTIFACT.value,
        help="attention accounting: the BitMoD artifact's (default; how the published numbers "
        "were made), the real Einsums', or both",
    )
    args = parser.parse_args(argv)
    modes = tuple(Attention) if args.attention == "both" else (Attention(args.attention),)
    table = rows(args.exact_decode, modes)
    print(f"{'case':40} {'paper':>8} {'codesign':>9} {'error':>8}")
    for row in table:
        if row["paper"] is None:
            continue
        ok = abs(row["rel_error"]) <= row["tolerance"]
        print(
            f"{row['id']:40} {row['paper']:8.3f} {row['codesign']:9.3f} "
            f"{row['rel_error']:+8.2%} {'ok' if ok else 'OUT of tolerance'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
