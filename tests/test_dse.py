"""codesign dse: Pareto fronts, the SQLite store (resume after a kill), executors, the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.cli.main import main
from codesign.dse.pareto import dominates, pareto_indices
from codesign.dse.space import load_space
from codesign.dse.store import Store, point_key
from codesign.dse.sweep import SweepOptions, front, run_sweep

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "examples/hw/systolic_estimated.yaml"
MLP = ROOT / "examples/models/mlp.onnx"


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_pareto_front_is_non_dominated_complete_and_monotone(points: list) -> None:
    front_ = [points[i] for i in pareto_indices(points)]
    for p in front_:  # nothing dominates a front point
        assert not any(dominates(q, p) for q in points)
    for q in points:  # every point off the front is dominated by, or equal to, a front point
        assert q in front_ or any(dominates(p, q) or p == q for p in front_)
    xs, ys = [p[0] for p in front_], [p[1] for p in front_]
    assert all(a < b for a, b in zip(xs, xs[1:], strict=False))  # sorted, distinct in x
    assert all(a > b for a, b in zip(ys, ys[1:], strict=False))  # monotone: y falls as x grows


def _space(tmp_path: Path, **extra) -> Path:
    doc = {
        "name": "t",
        "hardware": str(CARD),
        "axes": [
            {
                "name": "array",
                "paths": ["levels.1.fanout.x", "levels.1.fanout.y"],
                "values": [4, 8],
            },
            {
                "name": "glb",
                "paths": ["levels.1.size_bytes"],
                "log_range": {"start": 65536, "stop": 262144, "base": 4},
            },
        ],
        "workloads": [{"name": "mlp", "model": str(MLP)}],
        "objectives": ["latency", "energy", "area"],
        "mapper": {"evaluations": 30},
    }
    doc.update(extra)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_linked_axis_sets_both_paths_and_buffer_size_moves_area(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path))
    assert len(space.grid()) == 4
    with Store(tmp_path / "r.sqlite") as store:
        rows = run_sweep(space, store, SweepOptions("inline"))
    by = {(dict(r.values)["array"], dict(r.values)["glb"]): r for r in rows}
    assert all(r.error is None for r in rows)
    assert by[(8, 65536)].metrics["latency_s"] < by[(4, 65536)].metrics["latency_s"]
    assert by[(4, 262144)].metrics["area_mm2"] > by[(4, 65536)].metrics["area_mm2"]
    fronts = front(rows, space.objectives, space.constraints)
    assert fronts["mlp"] and set(r.key for r in fronts["mlp"]) <= {r.key for r in rows}


def test_resumed_sweep_recomputes_nothing(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path))
    db = tmp_path / "r.sqlite"
    with Store(db) as store:
        run_sweep(space, store, SweepOptions("inline"))
    with Store(db) as store:
        calls: list[tuple[int, int]] = []
        rows = run_sweep(space, store, SweepOptions("inline"), lambda d, t: calls.append((d, t)))
    assert calls == [(4, 4)] and len(rows) == 4


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_sweep_killed_midway_resumes_with_every_point_exactly_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    space_path = _space(
        tmp_path,
        axes=[
            {
                "name": "array",
                "paths": ["levels.1.fanout.x", "levels.1.fanout.y"],
                "values": [2, 3, 4, 5, 6, 7, 8, 9],
            }
        ],
    )
    db = tmp_path / "r.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "codesign.cli.main",
        "dse",
        str(space_path),
        "--db",
        str(db),
        "--out",
        str(tmp_path / "o"),
        "--workers",
        "1",
        "--executor",
        "inline",
        "-q",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if db.exists():
            try:
                done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM points").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    space = load_space(space_path)
    with Store(db) as store:
        before = len(store.keys())
        assert 0 < before < 8, "the kill did not land mid-sweep"
        run_sweep(space, store, SweepOptions("inline"))
        keys = [k for (k,) in store._db.execute("SELECT key FROM points")]
    assert sorted(keys) == sorted(point_key(space, p) for p in space.grid())
    assert len(keys) == len(set(keys)) == 8


def _metrics(rows) -> dict:
    return {r.key: r.metrics for r in rows}


def test_process_pool_gives_the_inline_results(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path))
    with Store(tmp_path / "a.sqlite") as a, Store(tmp_path / "b.sqlite") as b:
        inline = run_sweep(space, a, SweepOptions("inline"))
        pooled = run_sweep(space, b, SweepOptions("pool", workers=2))
    assert _metrics(inline) == _metrics(pooled)


def test_ray_gives_the_process_pool_results(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (the distributed extra)")
    space = load_space(_space(tmp_path))
    try:
        with Store(tmp_path / "a.sqlite") as a, Store(tmp_path / "b.sqlite") as b:
            pooled = run_sweep(space, a, SweepOptions("pool", workers=2))
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            rayed = run_sweep(space, b, SweepOptions("ray", workers=2))
    finally:
        ray.shutdown()
    assert _metrics(pooled) == _metrics(rayed)


def test_random_and_optuna_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    for strategy in (
        {"kind": "random", "samples": 3, "seed": 1},
        {"kind": "optuna", "samples": 3, "seed": 1, "batch": 2},
    ):
        pytest.importorskip("optuna") if strategy["kind"] == "optuna" else None
        space = load_space(_space(tmp_path, strategy=strategy))
        runs = []
        for name in ("a", "b"):
            with Store(tmp_path / f"{strategy['kind']}{name}.sqlite") as store:
                runs.append([r.key for r in run_sweep(space, store, SweepOptions("inline"))])
        assert runs[0] == runs[1] and 1 <= len(runs[0]) <= 3  # optuna may repeat a point


def test_area_constraint_keeps_big_designs_off_the_front(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path))
    with Store(tmp_path / "r.sqlite") as store:
        rows = run_sweep(space, store, SweepOptions("inline"))
    cap = min(r.metrics["area_mm2"] for r in rows) * 1.01
    space = load_space(_space(tmp_path, constraints=[{"metric": "area_mm2", "max": cap}]))
    fronts = front(rows, space.objectives, space.constraints)
    assert fronts["mlp"] and all(r.metrics["area_mm2"] <= cap for r in fronts["mlp"])


def test_cli_sweep_then_show_replots_without_recomputing(tmp_path: Path, capsys) -> None:
    space = _space(tmp_path)
    out = tmp_path / "out"
    assert main(["dse", str(space), "--out", str(out), "--workers", "1", "-q"]) == 0
    assert (out / "latency_vs_energy.png").is_file() and (out / "points.csv").is_file()
    (out / "latency_vs_energy.png").unlink()
    mtime = os.stat(out / "results.sqlite").st_mtime_ns
    capsys.readouterr()
    assert main(["dse", "show", str(out / "results.sqlite"), "--json", "-"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 4 and any(r["on_front"] for r in recs)
    assert main(["dse", "show", str(out / "results.sqlite")]) == 0
    assert (out / "latency_vs_energy.png").is_file()
    assert os.stat(out / "results.sqlite").st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"axes": [{"name": "a", "paths": ["clock_ghz"]}]}, "exactly one of values"),
        ({"axes": [{"name": "a", "paths": ["nope.x"], "values": [1]}]}, "axis a"),
        ({"objectives": ["speed"]}, "objectives"),
        ({"strategy": {"kind": "random"}}, "needs samples"),
    ],
)
def test_bad_space_is_a_one_line_error_naming_the_field(
    tmp_path: Path, capsys, change: dict, message: str
) -> None:
    space = _space(tmp_path, **change)
    assert main(["dse", str(space), "--out", str(tmp_path / "o"), "--workers", "1", "-q"]) in (0, 2)
    err = capsys.readouterr().err
    if "nope" in json.dumps(change):  # a bad path fails the point, not the space
        with Store(tmp_path / "o/results.sqlite") as store:
            assert all("no field 'nope'" in (r.error or "") for r in store.rows())
        return
    assert message in err and str(space) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples/dse").glob("*.yaml")))
def test_example_spaces_validate(name: str) -> None:
    from codesign.errors import InputError

    try:
        space = load_space(ROOT / "examples/dse" / name)
    except InputError as exc:  # a generated model that is not there yet: the message says how
        assert "examples/models/generate.py" in str(exc)
        return
    assert space.grid()


def test_axis_through_a_file_reference_edits_the_host_gpu(tmp_path: Path) -> None:
    """gpu_hbm_llm_decode sweeps host.memory.0.bandwidth_gbps of a tensor-core card: more HBM
    bandwidth makes memory-bound batch-1 decode faster."""
    from codesign.dse.evaluate import evaluate, make_task

    space = load_space(ROOT / "examples/dse/gpu_hbm_llm_decode.yaml")
    points = [p for p in space.grid() if p.workload == "batch1"]
    slow, fast = points[0], points[-1]
    assert dict(slow.values)["hbm_gbps"] < dict(fast.values)["hbm_gbps"]
    outcomes = [evaluate(make_task(space, p, str(i))) for i, p in enumerate((slow, fast))]
    assert all(o.error is None for o in outcomes)
    latency = [dict(o.metrics)["latency_s"] for o in outcomes]
    assert latency[1] < latency[0]


def test_card_without_areas_has_none_and_an_area_objective_is_a_named_error(tmp_path: Path) -> None:
    sat = ROOT / "examples" / "hw" / "sat_like.yaml"  # its energy table lists no areas
    doc = {"axes": [{"name": "glb", "paths": ["levels.1.size_words"], "values": [65536]}]}
    with Store(tmp_path / "r.sqlite") as store:
        rows = run_sweep(load_space(_space(tmp_path, hardware=str(sat), **doc)), store,
                         SweepOptions("inline"))  # fmt: skip
    assert rows and all("no area model" in (r.error or "") for r in rows)
    space = load_space(_space(tmp_path, hardware=str(sat), objectives=["latency", "energy"], **doc))
    with Store(tmp_path / "s.sqlite") as store:
        rows = run_sweep(space, store, SweepOptions("inline"))
    assert rows and all(r.error is None and r.metrics["area_mm2"] is None for r in rows)
    assert front(rows, space.objectives, space.constraints)["mlp"]
