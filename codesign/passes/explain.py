"""``--explain``: the plan (one line per decision, with its reason) of every pass in a pipeline
that has a planner: `fuse`, `fuse-elementwise`, `lut-precompute`.

Planners are looked up by pass name (rule 9); a pass without one contributes a single line
saying so.  The pipeline is replayed pass by pass, so each plan sees the cascade its pass saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from codesign.ir.cascade import Cascade
from codesign.ir.groups import carry_groups
from codesign.passes.fuse import plan_fuse
from codesign.passes.fuse_elementwise import plan_fuse_elementwise
from codesign.passes.lut_precompute import plan_lut_precompute
from codesign.passes.pipeline import PassContext, Pipeline, lookup_pass

Planner = Callable[[Cascade, Any], tuple[str, ...]]

PLANNERS: dict[str, Planner] = {
    "fuse": lambda c, o: tuple(d.line() for d in plan_fuse(c, o)[1]),
    "fuse-elementwise": lambda c, o: tuple(d.line() for d in plan_fuse_elementwise(c, o)[1]),
    "lut-precompute": lambda c, o: plan_lut_precompute(c, o)[1].lines(),
}


def explain_pipeline(cascade: Cascade, pipeline: Pipeline, seed: int = 0) -> str:
    """Every pass's plan as text, in pipeline order."""
    context = PassContext(None, seed)
    lines: list[str] = []
    for item in pipeline.passes:
        planner = PLANNERS.get(item.name)
        if planner is None:
            lines.append(f"{item}: no plan (the pass has no planner)")
        else:
            lines.append(f"{item}:")
            lines += [f"  {line}" for line in planner(cascade, item.options)]
        cascade = carry_groups(cascade, lookup_pass(item.name).run(cascade, item.options, context))
    return "\n".join(lines) + "\n"
