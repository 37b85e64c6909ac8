"""PIUMA fabric: YAML loading, Little's-law regimes, the event-driven simulator, the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from codesign.cli.main import main
from codesign.errors import InputError
from codesign.frontends.graphs import RmatSpec, rmat
from codesign.hwmodels.piuma import PiumaArch, load_piuma
from codesign.sim.graph_kernels import bfs
from codesign.sim.piuma import Bound, Phase, Workload, latency_tolerance, simulate

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "examples" / "hw" / "piuma.yaml"


@pytest.fixture(scope="module")
def arch() -> PiumaArch:
    return load_piuma(PRESET)


def test_preset_has_the_papers_core_structure(arch: PiumaArch) -> None:
    assert (arch.mtp_per_core, arch.threads_per_mtp, arch.stp_per_core) == (4, 16, 2)
    assert arch.access_bytes == 8
    assert arch.threads_per_core == 66
    assert arch.remote_round_trip_cycles > arch.local_latency_cycles


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    return path


def test_unknown_yaml_field_is_a_one_line_error_naming_file_and_field(tmp_path: Path) -> None:
    text = PRESET.read_text().replace("cores: 8", "cores: 8\nwarp_size: 32")
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_piuma(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "warp_size" in message


def test_remote_latency_below_local_is_rejected(tmp_path: Path) -> None:
    text = PRESET.read_text().replace("remote_latency_cycles: 120", "remote_latency_cycles: 10")
    with pytest.raises(InputError, match="remote_latency_cycles"):
        load_piuma(_write(tmp_path, text))


def _random_reads(arch: PiumaArch, tasks: int = 20000, requests: int = 8) -> Workload:
    core = np.arange(tasks) % arch.cores
    phase = Phase.of("gather", core, remote=requests, instructions=requests)
    return Workload("gather", (phase,))


@pytest.mark.parametrize("model", [latency_tolerance, simulate])
def test_more_threads_turn_latency_bound_into_bandwidth_bound(arch: PiumaArch, model) -> None:
    work = _random_reads(arch)
    few = model(work, arch.with_threads_per_mtp(1))
    many = model(work, arch.with_threads_per_mtp(128))
    more = model(work, arch.with_threads_per_mtp(256))
    assert few.bound is Bound.LATENCY
    assert many.bound is Bound.BANDWIDTH
    assert few.cycles > 10 * many.cycles
    # Once bandwidth-bound, more threads buy (almost) nothing.
    assert more.cycles == pytest.approx(many.cycles, rel=0.05)


def test_instruction_heavy_kernel_is_issue_bound(arch: PiumaArch) -> None:
    core = np.arange(10000) % arch.cores
    work = Workload("alu", (Phase.of("alu", core, local=1, instructions=2000),))
    assert latency_tolerance(work, arch).bound is Bound.ISSUE
    assert simulate(work, arch).bound is Bound.ISSUE


def test_one_long_task_makes_a_phase_imbalance_bound(arch: PiumaArch) -> None:
    core = np.arange(100) % arch.cores
    remote = np.ones(100)
    remote[0] = 100000
    work = Workload("hub", (Phase.of("hub", core, remote=remote),))
    little, event = latency_tolerance(work, arch), simulate(work, arch)
    assert little.bound is Bound.IMBALANCE
    assert event.cycles >= 100000 * arch.remote_round_trip_cycles


def test_event_simulation_respects_every_server_floor_and_tracks_littles_law(arch) -> None:
    graph = rmat(RmatSpec(scale=12, edge_factor=8, seed=3))
    run = bfs(graph, int(np.argmax(np.diff(graph.indptr))), arch)
    event, little = simulate(run.workload, arch), latency_tolerance(run.workload, arch)
    for phase_event, phase_little in zip(event.phases, little.phases, strict=True):
        floors = [phase_little.terms[b] for b in (Bound.ISSUE, Bound.BANDWIDTH, Bound.IMBALANCE)]
        assert phase_event.cycles >= max(floors)
    assert 0.5 < event.cycles / little.cycles < 2.0


def test_splitting_a_task_keeps_its_totals(arch: PiumaArch) -> None:
    phase = Phase.of("p", np.array([0, 1]), local=np.array([10, 3]), instructions=7)
    split = phase.split(np.array([5, 1]))
    assert split.tasks == 6
    assert split.local.sum() == pytest.approx(13)
    assert split.instructions.sum() == pytest.approx(14)


def test_arch_is_frozen(arch: PiumaArch) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.cores = 2  # type: ignore[misc]


# -- CLI --------------------------------------------------------------------------------------
def test_cli_graph_bfs_prints_cycles_bound_and_traffic(capsys) -> None:
    code = main(["graph", "bfs", "--hw", str(PRESET), "--graph", "rmat:scale=9,seed=2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "cycles" in out and "bound=" in out and "dram_bytes=" in out


def test_cli_graph_json_holds_both_models(capsys) -> None:
    import json

    argv = ["graph", "spgemm", "--dataflow", "outer", "--hw", str(PRESET),
            "--graph", "rmat:scale=8,seed=2", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["models"]) == {"little", "event"}
    assert info["partial_products_stored"] == info["multiplies"] > 0


def test_cli_malformed_mtx_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1.0\nnot a line\n")
    assert main(["graph", "bfs", "--hw", str(PRESET), "--graph", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err


def test_cli_bad_hw_yaml_exits_2(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, PRESET.read_text().replace("family: piuma", "family: gpu"))
    assert main(["graph", "bfs", "--hw", str(path), "--graph", "rmat:scale=6"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "family" in err


def test_cli_bad_graph_spec_exits_2(capsys) -> None:
    assert main(["graph", "bfs", "--hw", str(PRESET), "--graph", "rmat:scael=6"]) == 2
    assert "scael" in capsys.readouterr().err
