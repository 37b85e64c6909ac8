"""The analytical model against the Timeloop exercise golden outputs (VALIDATION.md section 2)."""

from __future__ import annotations

import pytest

from codesign.hwmodels import load_arch
from codesign.mapper.mapping import load_mapping
from codesign.mapper.problem import Problem
from codesign.sim.analytical import AnalyticalModel
from codesign.sim.cost import CostModel
from tests.validation import load_cases

CASES = [c for c in load_cases("timeloop") if "arch" in c["inputs"]]  # hand-written cards


def _evaluate(case: dict):
    inputs = case["inputs"]
    problem = Problem.conv(**inputs["layer"])
    arch = load_arch(inputs["arch"])
    mapping = load_mapping(inputs["mapping"], problem, arch)
    model: CostModel = AnalyticalModel()
    return model.evaluate(problem, mapping, arch)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_exercise_mapping_matches_timeloop_cycles_and_energy(case: dict) -> None:
    cost = _evaluate(case)
    expected, tol = case["expected"], case["tolerance"]
    assert cost.valid, cost.reason
    assert tol["cycles"] == 0 and cost.cycles == expected["cycles"]  # cycles exact
    assert cost.energy_pj / 1e6 == pytest.approx(expected["energy_uj"], rel=tol["energy"])
    assert cost.utilization == pytest.approx(expected["utilization"], rel=1e-9)
    assert cost.utilized_pes == expected["utilized_pes"]
    assert cost.bound == "compute"


def test_eyeriss_energy_breakdown_per_level_matches_timeloop() -> None:
    case = next(c for c in CASES if c["id"] == "eyeriss_like")
    breakdown = _evaluate(case).energy_per_mac_fj()
    for level, fj in case["expected"]["fj_per_mac"].items():
        assert breakdown[level] == pytest.approx(fj, rel=case["tolerance"]["energy"]), level
    total = sum(breakdown.values())
    tol = case["tolerance"]["energy"]
    assert total == pytest.approx(case["expected"]["fj_per_mac_total"], rel=tol)


def test_spatial_multicast_and_reduction_counted_once_at_parent() -> None:
    cost = _evaluate(next(c for c in CASES if c["id"] == "eyeriss_like"))
    glb = next(level for level in cost.levels if level.name == "shared_glb")
    outputs = next(t for t in glb.tensors if t.tensor == "Outputs")
    # 126 PEs drain 28,672 partial sums each; the 3x3 (C, S) column reduces them spatially.
    assert outputs.updates == pytest.approx(401408)
    dram = next(level for level in cost.levels if level.name == "DRAM")
    weights = next(t for t in dram.tensors if t.tensor == "Weights")
    # Weights are multicast along the 14 Q columns: 1,536 fills x 9 distinct rows.
    assert weights.reads == pytest.approx(13824)


def test_over_capacity_mapping_is_invalid() -> None:
    problem = Problem.gemm(64, 64, 64)
    arch = load_arch("examples/hw/eyeriss_like.yaml")
    from codesign.mapper.mapping import LevelMapping, Loop, Mapping, default_keep

    levels = [LevelMapping(lv.name, keep=default_keep(problem, arch, i))
              for i, lv in enumerate(arch.levels)]
    levels[4] = LevelMapping("psum_spad", (Loop("m", 64), Loop("n", 64), Loop("k", 64)),
                             keep=levels[4].keep)
    cost = AnalyticalModel().evaluate(problem, Mapping("gemm", tuple(levels)), arch)
    assert not cost.valid and "psum_spad" in cost.reason
