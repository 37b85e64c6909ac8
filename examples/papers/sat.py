"""Reproduce SAT's N:M sparse-training speedup (Fang et al., arXiv 2309.13015): 2:8 weights in
the forward and backward-data passes (BDWP) on an N:M array, 1.75x over dense training.

For each case of tests/validation/sat.yaml: the model's conv/linear layers become training
Einsums (forward, backward-data, weight-gradient, update; `codesign.frontends.training`), mapped
once on the dense array and priced dense and with 2:8 skipping (`codesign.sim.sparse_training`).
Prints per-pass time shares and speedups, then paper vs codesign.  The assumption behind the
figure is in docs/sparsity.md.  Run: ``python examples/papers/sat.py [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from codesign.frontends import load_model
from codesign.frontends.training import conv_layers
from codesign.hwmodels.loader import load_arch
from codesign.hwmodels.nm_array import nm_array
from codesign.mapper.search import SearchOptions
from codesign.sim.sparse_training import PASSES, TrainingComparison, compare_training

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "validation" / "sat.yaml"


def _model_path(relative: str) -> Path:
    """The case's model, exported first when it is one of the generated bundled models
    (examples/models/generate.py; needs torch) and a fresh checkout lacks it."""
    path = ROOT / relative
    if not path.exists() and path.parent == ROOT / "examples" / "models":
        import sys

        sys.path.insert(0, str(path.parent))
        from generate import generate  # examples/models/generate.py

        print(f"exporting {path.name} (examples/models/generate.py --only {path.stem})")
        generate([path.stem], path.parent, quiet=True)
    return path


def run_case(inputs: dict) -> TrainingComparison:
    """The dense-vs-N:M training comparison a validation case describes."""
    layers = conv_layers(load_model(str(_model_path(inputs["model"]))), batch=inputs["batch"])
    array = nm_array(load_arch(ROOT / inputs["hw"]), inputs["n"], inputs["m"])
    return compare_training(layers, array, SearchOptions(max_evaluations=inputs["max_evaluations"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    cases = yaml.safe_load(CASES.read_text())["cases"]
    out = {}
    for case in cases:
        result = run_case(case["inputs"])
        print(
            f"{case['id']}: {Path(case['inputs']['model']).name}, batch {case['inputs']['batch']}"
        )
        print(f"  {'pass':<7}{'dense share':>12}{'sparse share':>13}{'speedup':>9}")
        for name in PASSES:
            print(f"  {name:<7}{result.fraction(name):>12.1%}{result.fraction(name, True):>13.1%}"
                  f"{result.pass_speedup(name):>9.2f}")  # fmt: skip
        paper, tol = case["expected"]["speedup"], case["tolerance"]
        ok = abs(result.speedup / paper - 1) <= tol
        print(f"  training speedup: paper {paper:.2f}x, codesign {result.speedup:.2f}x "
              f"({'within' if ok else 'OUTSIDE'} {tol:.0%})")  # fmt: skip
        out[case["id"]] = {
            "paper": paper, "codesign": result.speedup,
            "shares": {p: result.fraction(p) for p in PASSES},
            "pass_speedups": {p: result.pass_speedup(p) for p in PASSES},
        }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
