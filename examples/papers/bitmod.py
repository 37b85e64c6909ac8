"""Reproduce BitMoD (HPCA 2025) Fig. 7/8: speedup and energy of BitMoD vs FP16, ANT and OliVe.

Six LLMs (built by `codesign.frontends.llm`) x two tasks at context 256: *discriminative* is the
prefill of 256 tokens (LM head on every position); *generative* is that prefill plus 20 decode
steps.  As in the BitMoD artifact, the prefill runs on each design's discriminative configuration
(``examples/hw/*_disc.yaml``) and the decode steps on its generative one (``*_gen.yaml``, with
the per-model ANT/OliVe weight widths of VALIDATION.md section 4).  Decode step ``i`` attends
over ``256 + i`` cached tokens; its cost is affine in the cache length (weights dominate, the
attention part grows linearly), so the 20 steps are priced exactly from the first and the last
(``--exact-decode`` prices all 20).

Prints, per published number (tests/validation/bitmod.yaml), the paper value, codesign's value
and the relative error; ``--json PATH`` writes the same rows.  Run:
``python examples/papers/bitmod.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import Phase, Workload, preset
from codesign.hwmodels.bitserial import BitSerialArray, load_bitserial
from codesign.mapper.cascade import CascadeMapper

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


@dataclass(frozen=True, slots=True)
class Run:
    """Cycles and energy of one model on one design for one task."""

    cycles: float
    energy_pj: float


def design(name: str, task: str, model_index: int) -> BitSerialArray:
    """The preset of `name` for `task` (``disc``/``gen``), with the model's weight width."""
    hw = load_bitserial(HW_DIR / f"{name}_{task}.yaml")
    if task == "gen" and name in GEN_WEIGHT_BITS:
        hw = dataclasses.replace(hw, weight_bits=GEN_WEIGHT_BITS[name][model_index])
    return hw


def _decode_kv_lengths(exact: bool) -> tuple[tuple[int, float], ...]:
    """(cache length, weight) pairs whose weighted costs sum to the 20 decode steps."""
    if exact:
        return tuple((CONTEXT + i, 1.0) for i in range(DECODE_STEPS))
    return ((CONTEXT, DECODE_STEPS / 2), (CONTEXT + DECODE_STEPS - 1, DECODE_STEPS / 2))


def run_model(model: str, exact_decode: bool = False) -> dict[str, dict[str, Run]]:
    """``{task: {design: Run}}`` for one model."""
    config = preset(model)
    index = MODELS.index(model)
    mapper = CascadeMapper()
    prefill = build_llm(config, Workload(1, CONTEXT), lm_head="all")
    decodes = [
        (build_llm(config, Workload(1, CONTEXT, Phase.DECODE, kv_len)), weight)
        for kv_len, weight in _decode_kv_lengths(exact_decode)
    ]
    out: dict[str, dict[str, Run]] = {"disc": {}, "gen": {}}
    for name in DESIGNS:
        first = mapper.map(prefill, design(name, "disc", index))
        out["disc"][name] = Run(first.cycles, first.energy_pj)
        gen_hw = design(name, "gen", index)
        cycles, energy = first.cycles, first.energy_pj
        for cascade, weight in decodes:
            step = mapper.map(cascade, gen_hw)
            cycles += weight * step.cycles
            energy += weight * step.energy_pj
        out["gen"][name] = Run(cycles, energy)
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


def rows(exact_decode: bool = False) -> list[dict]:
    """One row per validation case: id, paper value, codesign value, relative error."""
    runs = {m: run_model(m, exact_decode) for m in MODELS}
    values = metrics(runs)
    cases = yaml.safe_load(CASES.read_text())["cases"]
    out = []
    for case in cases:
        paper = float(case["expected"]["value"])
        ours = values[_key(case["inputs"])]
        out.append({
            "id": case["id"], "paper": paper, "codesign": ours,
            "rel_error": (ours - paper) / paper, "tolerance": case["tolerance"],
        })  # fmt: skip
    out.extend(
        {"id": f"{m}/{task}/{name}/cycles", "paper": None, "codesign": runs[m][task][name].cycles,
         "rel_error": None, "tolerance": None}
        for m in MODELS for task in TASKS for name in DESIGNS
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    parser.add_argument("--exact-decode", action="store_true", help="price all 20 decode steps")
    args = parser.parse_args(argv)
    table = rows(args.exact_decode)
    print(f"{'case':34} {'paper':>8} {'codesign':>9} {'error':>8}")
    for row in table:
        if row["paper"] is None:
            continue
        ok = abs(row["rel_error"]) <= row["tolerance"]
        print(
            f"{row['id']:34} {row['paper']:8.3f} {row['codesign']:9.3f} "
            f"{row['rel_error']:+8.2%} {'ok' if ok else 'OUT of tolerance'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
