"""Timeloop exercise designs through `codesign map --timeloop-*` against Timeloop's own outputs.

Every case of tests/validation/timeloop.yaml with ``inputs.timeloop`` (the exercise's arch,
mapping, problem and Accelergy ERT under tests/data/timeloop/<id>/) is imported and evaluated
through the CLI; prints cycles and fJ/MAC next to Timeloop's Summary Stats (docs/timeloop.md).

    python benchmarks/timeloop_exercises.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.cli.main import main  # noqa: E402
from tests.validation import load_cases  # noqa: E402


def evaluate(folder: Path) -> dict:
    argv = ["map", "--json", "-", "-q"]
    for flag, name in (("arch", "arch.yaml"), ("map", "map.yaml"),
                       ("problem", "problem.yaml"), ("ert", "ERT.yaml")):  # fmt: skip
        argv += [f"--timeloop-{flag}", str(folder / name)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if main(argv) != 0:
            raise SystemExit(f"{folder}: codesign map failed")
    return json.loads(out.getvalue())["total"]


def main_table() -> int:
    print(f"{'design':30s} {'cycles TL':>10s} {'codesign':>10s} {'fJ/MAC TL':>11s} "
          f"{'codesign':>11s} {'error':>9s}")  # fmt: skip
    worst = 0.0
    for case in load_cases("timeloop"):
        if "timeloop" not in case["inputs"]:
            continue
        total = evaluate(ROOT / case["inputs"]["timeloop"])
        expected = case["expected"]
        fj = total["energy_pj"] / expected["computes"] * 1000
        error = fj / expected["fj_per_compute"] - 1
        worst = max(worst, abs(error))
        print(f"{case['id']:30s} {expected['cycles']:>10,d} {total['cycles']:>10,.0f} "
              f"{expected['fj_per_compute']:>11.2f} {fj:>11.2f} {error:>+9.3%}")  # fmt: skip
    print(f"largest energy error: {worst:.3%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_table())
