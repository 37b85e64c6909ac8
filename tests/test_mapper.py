"""The mapper: valid results (property test), determinism, constraints, beats the exercises."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.errors import InputError
from codesign.hwmodels import load_arch
from codesign.hwmodels.arch import Dataflow
from codesign.mapper.mapping import load_mapping, mapping_errors
from codesign.mapper.problem import Problem
from codesign.mapper.search import Constraints, Objective, SearchOptions
from codesign.sim.analytical import AnalyticalModel
from codesign.sim.mapping_search import analytical_mapper, search

HW = Path("examples/hw")
CONV = Problem.conv(1, 3, 32, 112, 112, 3, 3, stride=2)
FAST = SearchOptions(max_evaluations=3000, seed=0, batch_size=1000)


def _assert_valid(problem: Problem, arch, result) -> None:
    mapping = result.mapping
    assert mapping_errors(mapping, problem, arch) == []
    cost = AnalyticalModel().evaluate(problem, mapping, arch)
    assert cost.valid, cost.reason
    for level, hw in zip(cost.levels, arch.levels, strict=True):
        if hw.size_words is not None:
            assert level.capacity_words_used <= hw.size_words
    for dim, bound in problem.dims:
        factors = [
            loop.bound
            for lv in mapping.levels
            for loop in lv.temporal + lv.spatial_x + lv.spatial_y
            if loop.dim == dim
        ]
        total = math.prod(factors)
        outer = factors[0] if factors else 1
        assert total >= bound and (total // outer) * (outer - 1) < bound


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(1, 96),
    n=st.integers(1, 96),
    k=st.integers(1, 96),
    preset=st.sampled_from(["eyeriss_like", "simple_ws", "tpu_like"]),
    seed=st.integers(0, 3),
)
def test_every_returned_mapping_is_valid(m: int, n: int, k: int, preset: str, seed: int) -> None:
    problem = Problem.gemm(m, n, k)
    arch = load_arch(HW / f"{preset}.yaml")
    options = SearchOptions(max_evaluations=600, seed=seed, batch_size=300, exhaustive_limit=600)
    constraints = Constraints(ignore_arch_dataflow=True)
    _assert_valid(problem, arch, search(problem, arch, constraints, options))


def test_search_is_deterministic_for_a_seed() -> None:
    arch = load_arch(HW / "simple_os.yaml")
    first = search(CONV, arch, options=FAST)
    second = search(CONV, arch, options=FAST)
    assert first.mapping == second.mapping and first.cost == second.cost


@pytest.mark.parametrize("design", ["eyeriss_like", "simba_like", "simple_ws", "simple_os"])
def test_mapper_matches_or_beats_the_exercise_mapping(design: str) -> None:
    arch = load_arch(HW / f"{design}.yaml")
    exercise = load_mapping(f"tests/data/mappings/{design}_timeloop.yaml", CONV, arch)
    reference = AnalyticalModel().evaluate(CONV, exercise, arch)
    found = search(CONV, arch, options=SearchOptions(max_evaluations=20000, seed=1))
    assert found.cost.edp <= reference.edp
    _assert_valid(CONV, arch, found)


def test_small_space_is_searched_exhaustively() -> None:
    arch = load_arch(HW / "tpu_like.yaml")
    result = search(Problem.gemm(2, 2, 1), arch, options=SearchOptions(objective=Objective.LATENCY))
    assert result.exhaustive and result.cost.valid


def test_memo_cache_maps_identical_layers_once() -> None:
    arch = load_arch(HW / "simple_ws.yaml")
    mapper = analytical_mapper()
    a = mapper.map(Problem.gemm(32, 32, 32, name="a"), arch, options=FAST)
    b = mapper.map(Problem.gemm(32, 32, 32, name="b"), arch, options=FAST)
    assert len(mapper.cache) == 1 and a.cost == b.cost and b.mapping.problem == "b"


def test_constraints_are_respected() -> None:
    arch = load_arch(HW / "simple_ws.yaml")
    constraints = Constraints(
        fixed_orders=(("shared_glb", ("m", "c", "p")),),
        max_factors=(("DRAM", "p", 4),),
        bypass=(("shared_glb", "Weights"),),
    )
    result = search(CONV, arch, constraints, FAST)
    glb = result.mapping.levels[1]
    assert "Weights" not in glb.keep
    dims = [loop.dim for loop in glb.temporal]
    listed = [d for d in dims if d in ("m", "c", "p")]
    assert listed == [d for d in ("m", "c", "p") if d in dims]
    assert dims[len(dims) - len(listed) :] == listed
    assert all(loop.bound <= 4 for loop in result.mapping.levels[0].temporal if loop.dim == "p")


@pytest.mark.parametrize(
    ("constraints", "needle"),
    [
        (Constraints(bypass=tuple((lv, "Inputs") for lv in ("DRAM", "shared_glb", "pe_spad",
                                                            "input_activation_reg"))),
         "kept at no level"),
        (Constraints(fixed_orders=(("nowhere", ("p",)),)), "unknown level"),
        (Constraints(min_utilization=1.5), "min_utilization"),
        (Constraints(min_utilization=0.99), "no valid mapping"),
    ],
    ids=["bypassed-everywhere", "unknown-level", "utilization-range", "unreachable"],
)
def test_infeasible_constraints_are_rejected(constraints: Constraints, needle: str) -> None:
    arch = load_arch(HW / "simple_ws.yaml")
    with pytest.raises(InputError, match=needle):
        search(CONV, arch, constraints, SearchOptions(max_evaluations=1000, seed=0))


def test_level_too_small_for_the_kept_tensors_is_rejected(tmp_path: Path) -> None:
    arch = load_arch(HW / "eyeriss_like.yaml")
    with pytest.raises(InputError, match="too small for any mapping"):
        levels = list(arch.levels)
        levels[4] = replace(levels[4], size_words=0)
        search(CONV, replace(arch, levels=tuple(levels)), Constraints(keep_fixed=True), FAST)


def test_caps_that_cannot_cover_a_dim_are_rejected() -> None:
    arch = load_arch(HW / "simple_ws.yaml")
    caps = tuple((level.name, "m", 1) for level in arch.levels)
    with pytest.raises(InputError, match="cannot be covered"):
        search(Problem.gemm(1000, 4, 4), arch, Constraints(max_factors=caps), FAST)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c=st.integers(1, 48),
    k=st.integers(1, 48),
    p=st.integers(1, 30),
    q=st.integers(1, 30),
    r=st.integers(1, 5),
    stride=st.integers(1, 2),
    preset=st.sampled_from(["eyeriss_like", "simba_like", "tpu_like", "tpu_v1_like"]),
    seed=st.integers(0, 3),
)
def test_every_returned_conv_mapping_is_valid_under_the_arch_dataflow(
    c: int, k: int, p: int, q: int, r: int, stride: int, preset: str, seed: int
) -> None:
    problem = Problem.conv(1, c, k, p, q, r, r, stride=stride)
    arch = load_arch(HW / f"{preset}.yaml")
    options = SearchOptions(max_evaluations=1000, seed=seed, batch_size=500, exhaustive_limit=500)
    _assert_valid(problem, arch, search(problem, arch, options=options))


def test_arch_dataflow_hint_does_not_block_a_gemv_but_an_explicit_one_is_rejected() -> None:
    arch = load_arch(HW / "tpu_like.yaml")  # ws hint; a GEMV's weights see every looped dim
    gemv = Problem.gemm(1, 1000, 512)
    _assert_valid(gemv, arch, search(gemv, arch, options=FAST))
    with pytest.raises(InputError, match="dataflow"):
        search(gemv, arch, Constraints(dataflow=Dataflow.WS), FAST)


def test_memo_cache_hits_the_same_shape_with_other_tensor_names() -> None:
    arch = load_arch(HW / "simple_ws.yaml")
    mapper = analytical_mapper()
    first = Problem.gemm(32, 32, 32, name="a")
    renamed = replace(
        first,
        name="b",
        tensors=tuple(replace(t, name=f"{t.name}_b") for t in first.tensors),
    )
    a = mapper.map(first, arch, options=FAST)
    b = mapper.map(renamed, arch, options=FAST)
    assert len(mapper.cache) == 1 and a.cost.edp == b.cost.edp
    assert all(t.endswith("_b") for level in b.mapping.levels for t in level.keep)
    assert AnalyticalModel().evaluate(renamed, b.mapping, arch) == b.cost


def test_a_budget_too_small_for_random_sampling_still_returns_a_valid_mapping() -> None:
    # 100 random tilings of this GEMM on simple_ws are all invalid (its 1-word registers and
    # weight-stationary hint); the outermost tilings, tried once, always fit
    problem, arch = Problem.gemm(512, 512, 64), load_arch(HW / "simple_ws.yaml")
    options = SearchOptions(max_evaluations=100, seed=0, batch_size=100)
    result = search(problem, arch, options=options)
    _assert_valid(problem, arch, result)
    assert result.valid_evaluations > 0
