"""Reproduce FuseMax vs FLAT (Nayak et al., MICRO 2024, Section 6 / Figs. 9-12).

BERT-base, TrXL, T5 and XLM encoders at batch 64 and sequence lengths 1K..1M, on the presets
examples/hw/flat.yaml and examples/hw/fusemax.yaml, for the paper's ladder of designs
(`codesign.sim.fusemax.Design`: unfused, FLAT, +cascade, +architecture, FuseMax).  Attention is
priced from its Einsum cascade: the 3-pass cascade the frontends produce, or the 1-pass cascade
the ``attention-1pass`` pass makes of it; end to end adds the layer's projections and FFN.

The headline is the arithmetic mean over the (model, sequence) pairs of FuseMax vs FLAT:
speedup = FLAT cycles / FuseMax cycles, energy ratio = FuseMax energy / FLAT energy.  Prints the
published numbers (tests/validation/fusemax.yaml) against codesign's; ``--json PATH`` writes
``{"attention": {...}, "end_to_end": {...}, "points": [...]}``.  Run:
``python examples/papers/fusemax.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from statistics import mean

import yaml

from codesign.hwmodels.fusemax import AttentionArray, load_attention_array
from codesign.sim.fusemax import (
    Cost,
    Design,
    Transformer,
    combine,
    evaluate_attention,
    evaluate_linear,
)

ROOT = Path(__file__).resolve().parents[2]
HW_DIR = ROOT / "examples" / "hw"
CASES = ROOT / "tests" / "validation" / "fusemax.yaml"

BATCH = 64
# Encoder shapes (d_model, heads, head dim, FFN width) as in the FuseMax artifact's model table
# (data/pregenerated/flat_validation.csv) and the models' published configurations.
MODELS = (
    Transformer("BERT", 768, 12, 64, 64, 3072, BATCH),
    Transformer("TrXL", 1024, 16, 64, 64, 4096, BATCH),
    Transformer("T5", 512, 8, 64, 64, 2048, BATCH),
    Transformer("XLM", 2048, 16, 128, 128, 8192, BATCH),
)
SEQS = (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20)
HARDWARE = {
    Design.UNFUSED: "flat.yaml", Design.FLAT: "flat.yaml", Design.CASCADE: "flat.yaml",
    Design.ARCHITECTURE: "fusemax.yaml", Design.FUSEMAX: "fusemax.yaml",
}  # fmt: skip


def _seq_label(seq: int) -> str:
    return f"{seq >> 20}M" if seq >= 1 << 20 else f"{seq >> 10}K"


def points(models: tuple[Transformer, ...] = MODELS, seqs: tuple[int, ...] = SEQS) -> list[dict]:
    """Every (model, seq, design, scope) point: cycles, energy (pJ), array utilizations."""
    hw: dict[str, AttentionArray] = {
        name: load_attention_array(HW_DIR / name) for name in set(HARDWARE.values())
    }
    rows: list[dict] = []
    for model in models:
        for seq in seqs:
            for design in Design:
                arch = hw[HARDWARE[design]]
                attention = evaluate_attention(design, model, seq, arch)
                whole = combine(attention, evaluate_linear(model, seq, arch))
                for scope, cost in (("attention", attention), ("end_to_end", whole)):
                    rows.append(_row(model, seq, design, scope, cost, arch.clock_mhz))
    return rows


def _row(
    model: Transformer, seq: int, design: Design, scope: str, cost: Cost, clock_mhz: float
) -> dict:
    return {
        "model": model.name, "seq": _seq_label(seq), "design": design.value, "scope": scope,
        "cycles": cost.cycles, "seconds": cost.cycles / (clock_mhz * 1e6),
        "energy_pj": cost.energy_pj, "dram_bytes": cost.dram_bytes,
        "utilization_2d": cost.utilization_2d, "utilization_1d": cost.utilization_1d,
    }  # fmt: skip


def headline(rows: list[dict], scope: str, baseline: str = "flat") -> dict[str, float]:
    """Mean over (model, seq) of FuseMax vs `baseline`: speedup and energy ratio."""
    by = {(r["model"], r["seq"], r["design"]): r for r in rows if r["scope"] == scope}
    pairs = sorted({(m, s) for m, s, _ in by})
    speedups = [by[(m, s, baseline)]["cycles"] / by[(m, s, "fusemax")]["cycles"] for m, s in pairs]
    energy = [by[(m, s, "fusemax")]["energy_pj"] / by[(m, s, baseline)]["energy_pj"]
              for m, s in pairs]  # fmt: skip
    util = [by[(m, s, "fusemax")]["utilization_2d"] for m, s in pairs]
    return {
        "speedup": mean(speedups),
        "energy_ratio": mean(energy),
        "fusemax_utilization_2d_min": min(util),
        "fusemax_utilization_2d_max": max(util),
    }


def report(rows: list[dict]) -> dict:
    return {
        "attention": headline(rows, "attention"),
        "end_to_end": headline(rows, "end_to_end"),
        "points": rows,
    }


def case_value(doc: dict, case: dict) -> float:
    """codesign's value for one validation case (tests/validation/fusemax.yaml)."""
    inputs = case["inputs"]
    if "model" in inputs:  # one point: seconds or a utilization
        (row,) = (
            r
            for r in doc["points"]
            if (r["model"], r["seq"], r["design"], r["scope"])
            == (inputs["model"], inputs["seq"], inputs["design"], inputs["scope"])
        )
        return row[inputs["metric"]]
    if inputs["metric"] == "utilization_2d_min":
        return doc[inputs["scope"]]["fusemax_utilization_2d_min"]
    return doc[inputs["scope"]][inputs["metric"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    doc = report(points())
    cases = yaml.safe_load(CASES.read_text())["cases"]
    print(f"{'case':34} {'paper':>8} {'codesign':>9} {'rel err':>8}")
    for case in cases:
        value, expected = case_value(doc, case), case["expected"]["value"]
        print(f"{case['id']:34} {expected:8.3f} {value:9.3f} {value / expected - 1:+8.1%}")
    if args.json:
        path = Path(args.json)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=1)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
