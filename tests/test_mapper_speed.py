"""Mapper speed features: early stopping, parallel layers, real (not cache-hit) statistics."""

from __future__ import annotations

import json

import pytest

from codesign.cli.main import main
from codesign.errors import InputError
from codesign.hwmodels import load_arch
from codesign.mapper.problem import Problem
from codesign.mapper.search import Constraints, SearchOptions
from codesign.sim.mapping_search import analytical_mapper, search

TPU = "examples/hw/tpu_like.yaml"


def test_search_stops_once_the_best_has_not_improved_for_the_patience_window():
    arch = load_arch(TPU)
    problem = Problem.conv(1, 64, 64, 28, 28, 3, 3)
    patient = search(problem, arch, options=SearchOptions(max_evaluations=20_000))
    full = search(problem, arch, options=SearchOptions(max_evaluations=20_000,
                                                       patience_evaluations=None))  # fmt: skip
    assert full.evaluations == 20_000
    assert patient.evaluations < full.evaluations
    # the shorter search is not much worse (the window only cuts stalled phases; single layers
    # land within a few % either way, ResNet-18's total on tpu_like came out 0.8% lower)
    assert patient.cost.energy_pj <= 1.10 * full.cost.energy_pj


def test_search_options_refuse_non_positive_budgets():
    for bad in ({"max_evaluations": 0}, {"patience_evaluations": 0}, {"batch_size": -1},
                {"time_budget_s": float("nan")}, {"time_budget_s": 0.0}):  # fmt: skip
        with pytest.raises(InputError):
            SearchOptions(**bad)  # type: ignore[arg-type]


def test_parallel_prefetch_equals_the_sequential_search_and_counts_no_hits():
    import codesign
    from codesign.mapper.from_ir import problem_from_einsum

    arch = load_arch(TPU)
    cascade = codesign.load("examples/models/cnn.onnx")
    problems = [p for e in cascade.einsums if (p := problem_from_einsum(e, cascade)) is not None]
    assert len(problems) >= 2
    options, constraints = SearchOptions(max_evaluations=800), Constraints()
    sequential, parallel = analytical_mapper(), analytical_mapper()
    parallel.prefetch(problems, arch, constraints, options, workers=2)
    assert parallel.stats.searches >= 2
    for problem in problems:
        a = sequential.map(problem, arch, constraints, options)
        b = parallel.map(problem, arch, constraints, options)
        assert (a.mapping, a.cost.cycles, a.cost.energy_pj) == (
            b.mapping, b.cost.cycles, b.cost.energy_pj)
    assert parallel.stats.searches == sequential.stats.searches
    assert parallel.stats.cache_hits == sequential.stats.cache_hits


def test_map_json_reports_real_evaluations_apart_from_cache_hits(capsys):
    argv = ["map", "examples/models/cnn.onnx", "--hw", TPU, "-q", "--evaluations", "600",
            "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    stats = doc["mapper"]
    layers = [e for e in doc["einsums"] if e["kind"] == "mac"]
    assert stats["searches"] + stats["cache_hits"] == len(layers)
    assert stats["evaluations"] <= sum(e["mapper_evaluations"] for e in layers)
    assert stats["evaluations_per_s"] > 0


def test_map_model_with_two_workers_gives_the_results_of_one(monkeypatch):
    import codesign
    from codesign.mapper.search import Mapper

    searched: list[int] = []
    prefetch = Mapper.prefetch

    def spy(self, problems, arch, constraints, options, workers):  # type: ignore[no-untyped-def]
        searched.append(workers)
        return prefetch(self, problems, arch, constraints, options, workers)

    monkeypatch.setattr(Mapper, "prefetch", spy)
    cascade = codesign.load("examples/models/cnn.onnx")
    search = SearchOptions(max_evaluations=800)
    one = codesign.map_model(cascade, TPU, search=search, workers=1)
    two = codesign.map_model(cascade, TPU, search=search, workers=2)
    assert searched == [2]  # workers=1 searches layer by layer; workers=2 prefetches once
    assert [(e.name, e.mapping, e.cost) for e in one.result.einsums] == [
        (e.name, e.mapping, e.cost) for e in two.result.einsums]  # fmt: skip
    assert (one.cycles, one.energy_pj) == (two.cycles, two.energy_pj)


def test_map_jobs_flag_gives_the_results_of_one_job_and_refuses_zero(capsys):
    def run(jobs: str) -> dict:
        argv = ["map", "examples/models/cnn.onnx", "--hw", TPU, "-q", "--evaluations", "600",
                "--jobs", jobs, "--json", "-"]  # fmt: skip
        assert main(argv) == 0
        doc = json.loads(capsys.readouterr().out)
        doc.pop("mapper")  # wall time and evaluations/s differ between runs
        return doc

    assert run("1") == run("2")
    assert main(["map", "examples/models/cnn.onnx", "--hw", TPU, "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


# What a cycle-model SCALE-Sim run must not import (issue 12: the whole process must beat
# SCALE-Sim's, and NumPy alone costs 70-110 ms of start-up): the cycle model is closed-form
# integer arithmetic and nothing is searched.
_NOT_ON_THE_CFG_PATH = ("numpy", "codesign.sim.analytical", "codesign.mapper.search",
                        "codesign.mapper.mapspace", "onnx", "networkx")  # fmt: skip


def _map_in_a_fresh_process(model: str) -> str:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = root / "tests" / "data" / "scalesim"
    code = (
        "import sys\n"
        "from codesign.cli.main import main\n"
        f"assert main(['map', {str(data / 'gemm.csv')!r}, '--hw', "
        f"{str(data / 'ws_32x32.cfg')!r}, '--model', {model!r}, '-q', '--json', '-']) == 0\n"
        f"print('LOADED', sorted(m for m in {_NOT_ON_THE_CFG_PATH!r} if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": ""}, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_cycle_model_cfg_map_imports_neither_numpy_nor_the_search() -> None:
    assert "LOADED []" in _map_in_a_fresh_process("cycle")


def test_an_analytical_cfg_map_in_the_same_setup_does_load_numpy_and_the_search() -> None:
    # the check above can fail: the same process, asked to search, loads what it must not
    loaded = _map_in_a_fresh_process("analytical")
    for module in ("numpy", "codesign.sim.analytical", "codesign.mapper.search"):
        assert f"'{module}'" in loaded, loaded


def test_the_mapper_search_keeps_its_public_import_path() -> None:
    from codesign.mapper import memo, search_types
    from codesign.mapper.search import Constraints, Mapper, Objective, SearchOptions, search

    assert Mapper is memo.Mapper and Constraints is search_types.Constraints
    assert SearchOptions is search_types.SearchOptions and Objective is search_types.Objective
    assert callable(search)


def test_short_axis_folds_and_scans_equal_numpys_reductions_bit_for_bit() -> None:
    # the analytical model and the mapspace check replace NumPy's reduce/accumulate over the
    # short level/dim/tensor axes with these chains; their results must not move by one bit
    import numpy as np

    from codesign.mapper.short_axes import fold, running

    rng = np.random.default_rng(7)
    whole = rng.integers(1, 5, size=(33, 4, 7, 3)).astype(np.float64)  # products < 2**53
    ints = rng.integers(-5, 9, size=(33, 4, 7))
    flags = rng.random((33, 4, 3)) < 0.5
    for axis in (1, 2, -1, (1, 2)):
        assert np.array_equal(fold(np.multiply, whole, axis), np.prod(whole, axis=axis))
        assert np.array_equal(fold(np.maximum, whole, axis), np.max(whole, axis=axis))
    assert np.array_equal(fold(np.maximum, ints, 2), ints.max(axis=2))
    assert np.array_equal(fold(np.logical_or, flags, 1), flags.any(axis=1))
    assert np.array_equal(fold(np.logical_and, flags, (1, 2)), flags.all(axis=(1, 2)))
    assert np.array_equal(fold(np.maximum, ints[:, :, :0], 2, empty=-1), np.full((33, 4), -1))
    assert np.array_equal(running(np.multiply, whole), np.cumprod(whole, axis=1))
    assert np.array_equal(running(np.maximum, ints), np.maximum.accumulate(ints, axis=1))
    reverse = np.cumprod(whole[:, ::-1], axis=1)[:, ::-1]
    assert np.array_equal(running(np.multiply, whole, reverse=True), reverse)
    # a fold over one element is a copy, never a view the caller could write through
    one = whole[:, :1]
    folded = fold(np.multiply, one, 1)
    folded[...] = 0
    assert one.min() >= 1
    with pytest.raises(ValueError):
        fold(np.maximum, ints[:, :, :0], 2)
