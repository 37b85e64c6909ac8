"""Timeloop compatibility: exercise designs imported from their own files reproduce Timeloop's
cycles exactly and energy within tolerance through the CLI; Timeloop dataspace names in mappings
and constraints; whole-block accesses; per-tensor bypass at every level, DRAM included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from codesign.cli.main import main
from codesign.hwmodels import load_arch
from codesign.mapper.mapping import LevelMapping, Loop, Mapping, load_mapping
from codesign.mapper.problem import Problem
from codesign.sim.analytical import AnalyticalModel
from tests.validation import load_cases

IMPORTED = [c for c in load_cases("timeloop") if "timeloop" in c["inputs"]]
EYERISS = "examples/hw/eyeriss_like.yaml"
LAYER = "conv:C=3,K=32,P=112,Q=112,R=3,S=3,stride=2"


def _flags(folder: str | Path) -> list[str]:
    d = Path(folder)
    return ["--timeloop-arch", str(d / "arch.yaml"), "--timeloop-map", str(d / "map.yaml"),
            "--timeloop-problem", str(d / "problem.yaml"),
            "--timeloop-ert", str(d / "ERT.yaml")]  # fmt: skip


def _map_json(capsys, *argv: str) -> dict:
    assert main(["map", *argv, "--json", "-", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", IMPORTED, ids=[c["id"] for c in IMPORTED])
def test_imported_exercise_matches_timeloop_cycles_exactly_and_energy(case, capsys):
    total = _map_json(capsys, *_flags(case["inputs"]["timeloop"]))["total"]
    expected, tol = case["expected"], case["tolerance"]
    assert total["macs"] == expected["computes"]
    assert tol["cycles"] == 0 and total["cycles"] == expected["cycles"]
    energy_pj = expected["fj_per_compute"] * expected["computes"] / 1000
    assert total["energy_pj"] == pytest.approx(energy_pj, rel=tol["energy"])
    # each level within the tolerance of the total (plus the stats' 2-decimal rounding)
    by_level = total["energy_by_level_pj"]
    assert set(by_level) == set(expected["by_level"])
    for level, fj in expected["by_level"].items():
        got = by_level[level] / expected["computes"] * 1000
        assert abs(got - fj) <= tol["energy"] * expected["fj_per_compute"] + 0.005, level


def test_flattened_subtree_arch_gives_the_same_result_as_the_nodes_tree(capsys):
    folder = Path("tests/data/timeloop/ispass_04_spatial_cp")
    tree = _map_json(capsys, *_flags(folder))
    flags = _flags(folder)
    flags[1] = str(folder / "arch_flattened.yaml")  # Timeloop's parsed-processed-input.yaml
    assert _map_json(capsys, *flags)["total"] == tree["total"]


def test_multi_word_dram_charges_whole_block_accesses(capsys):
    # 32-word MainMemory blocks at 2048 pJ: Weights 96 words = 3 blocks, Inputs 18 words = 1
    # block (a word-by-word charge would be 18/32 of one), Outputs 512 updates = 16 blocks.
    doc = _map_json(capsys, *_flags("tests/data/timeloop/ispass_03_3level_bypass"))
    assert doc["total"]["energy_by_level_pj"]["MainMemory"] == pytest.approx(20 * 2048.0)


def test_import_writes_files_that_map_reads_back_to_the_same_totals(capsys, tmp_path):
    folder = "tests/data/timeloop/ispass_04_spatial_kp"
    out = tmp_path / "kp"
    assert main(["import-timeloop", "--arch", f"{folder}/arch.yaml", "--map", f"{folder}/map.yaml",
                 "--problem", f"{folder}/problem.yaml", "--ert", f"{folder}/ERT.yaml",
                 "-o", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "codesign map" in printed
    assert {p.name for p in out.iterdir()} == {"problem.ein", "card.yaml", "ert.yaml",
                                               "mapping.yaml"}  # fmt: skip
    copied = tmp_path / "elsewhere"
    shutil.copytree(out, copied)  # the card names its ERT relative to itself
    again = _map_json(capsys, str(copied / "problem.ein"), "--hw", str(copied / "card.yaml"),
                      "--mapping", str(copied / "mapping.yaml"))  # fmt: skip
    direct = _map_json(capsys, *_flags(folder))
    assert again["total"] == direct["total"]


def test_imported_card_keeps_follow_the_arch_dataspace_constraints(tmp_path, capsys):
    folder = "tests/data/timeloop/eyeriss_like"
    assert main(["import-timeloop", "--arch", f"{folder}/arch.yaml", "--map", f"{folder}/map.yaml",
                 "--problem", f"{folder}/problem.yaml", "--ert", f"{folder}/ERT.yaml",
                 "-o", str(tmp_path)]) == 0  # fmt: skip
    capsys.readouterr()
    arch = load_arch(tmp_path / "card.yaml")
    glb = arch.levels[arch.level_index("shared_glb")]
    assert {r.value for r in glb.keeps} == {"inputs", "outputs"}
    assert (glb.fanout_x, glb.fanout_y, glb.block_words) == (14, 12, 8)
    assert arch.compute.count == 168


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: (d / "ERT.yaml").write_text("ERT: {version: 0.4, tables: []}\n"),
         "no entry for component"),
        (lambda d: (d / "map.yaml").write_text("mapping:\n  - {target: Nowhere, type: temporal}\n"),
         "unknown target 'Nowhere'"),
        (lambda d: (d / "map.yaml").write_text(
            "mapping:\n  - {target: GlobalBuffer, type: temporal, factors: Z=3}\n"),
         "unknown dims"),
        (lambda d: (d / "map.yaml").write_text(
            "mapping:\n  - {target: MainMemory, type: temporal, factors: K=2}\n"),
         "dim k: factors"),
    ],
)  # fmt: skip
def test_bad_timeloop_inputs_are_one_line_errors(edit, message, tmp_path, capsys):
    folder = tmp_path / "design"
    shutil.copytree("tests/data/timeloop/ispass_03_3level_bypass", folder)
    edit(folder)
    assert main(["map", *_flags(folder), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_timeloop_flags_must_come_together_and_replace_hw(capsys):
    folder = "tests/data/timeloop/ispass_03_3level_bypass"
    assert main(["map", "--timeloop-arch", f"{folder}/arch.yaml", "-q"]) == 2
    assert "--timeloop-map" in capsys.readouterr().err
    assert main(["map", *_flags(folder), "--hw", EYERISS, "-q"]) == 2
    assert "replaces --hw" in capsys.readouterr().err
    assert main(["map", LAYER, "-q"]) == 2
    assert "--hw is required" in capsys.readouterr().err


# -- Timeloop dataspace names on codesign's own problems --------------------------------------
def test_timeloop_dataspace_names_work_on_a_layer_whose_tensors_are_x_w_y(tmp_path, capsys):
    mapping = tmp_path / "conv.yaml"
    mapping.write_text(
        "problem: conv\nlevels:\n"
        "  - {level: DRAM, temporal: [[p, 8], [q, 2], [m, 4]], keep: [Weights, Inputs, Outputs]}\n"
        "  - {level: shared_glb, temporal: [[p, 14], [q, 4]], spatial_x: [[q, 14]],\n"
        "     spatial_y: [[c, 3], [s, 3]], keep: [Inputs, Outputs]}\n"
        "  - {level: ifmap_spad, keep: [Inputs]}\n"
        "  - {level: weights_spad, temporal: [[r, 3]], keep: [Weights]}\n"
        "  - {level: psum_spad, temporal: [[m, 8]], keep: [Outputs]}\n"
    )
    named = _map_json(capsys, LAYER, "--hw", EYERISS, "--mapping", str(mapping))
    default = _map_json(capsys, LAYER, "--hw", EYERISS, "--mapping",
                        "tests/data/mappings/eyeriss_like_timeloop.yaml")  # fmt: skip
    assert named["total"] == default["total"]
    assert named["total"]["cycles"] == 86016


def test_unknown_tensor_in_a_mapping_names_the_known_ones(tmp_path, capsys):
    mapping = tmp_path / "conv.yaml"
    mapping.write_text("problem: conv\nlevels:\n  - {level: DRAM, keep: [Psums]}\n")
    assert main(["map", LAYER, "--hw", EYERISS, "--mapping", str(mapping), "-q"]) == 2
    err = capsys.readouterr().err
    assert "unknown tensors ['Psums']" in err and "Weights/Inputs/Outputs" in err


def test_bypass_constraint_takes_timeloop_names(capsys):
    doc = _map_json(capsys, "gemm:M=64,N=48,K=80", "--hw", EYERISS, "--evaluations", "500",
                     "--bypass", "shared_glb:Outputs")  # fmt: skip
    assert doc["total"]["cycles"] > 0


# -- keep / bypass at every level, DRAM included -----------------------------------------------
def _eyeriss_mapping(problem: Problem, dram_keep: frozenset[str]) -> Mapping:
    outer = (Loop("p", problem.bound("p") // 14), Loop("q", problem.bound("q") // 56))
    return Mapping("conv", (
        LevelMapping("DRAM", (*(lp for lp in outer if lp.bound > 1), Loop("m", 4)),
                     keep=dram_keep),
        LevelMapping("shared_glb", (Loop("p", 14), Loop("q", 4)), (Loop("q", 14),),
                     (Loop("c", 3), Loop("s", 3)), keep=frozenset({"Inputs", "Outputs"})),
        LevelMapping("ifmap_spad", keep=frozenset({"Inputs"})),
        LevelMapping("weights_spad", (Loop("r", 3),), keep=frozenset({"Weights"})),
        LevelMapping("psum_spad", (Loop("m", 8),), keep=frozenset({"Outputs"})),
    ))  # fmt: skip


def test_an_intermediate_may_bypass_dram_and_live_in_the_global_buffer():
    # The Inputs come from the previous layer of a fused group: never in DRAM.
    problem = Problem.conv(1, 3, 32, 56, 56, 3, 3, stride=2)
    arch = load_arch(EYERISS)
    model = AnalyticalModel()
    full = model.evaluate(problem, _eyeriss_mapping(problem, frozenset(
        {"Weights", "Inputs", "Outputs"})), arch)  # fmt: skip
    fused = model.evaluate(
        problem, _eyeriss_mapping(problem, frozenset({"Weights", "Outputs"})), arch
    )
    assert full.valid and fused.valid, fused.reason
    dram = {t.tensor for t in next(lv for lv in fused.levels if lv.name == "DRAM").tensors}
    assert dram == {"Weights", "Outputs"}
    glb = next(lv for lv in fused.levels if lv.name == "shared_glb")
    inputs = next(t for t in glb.tensors if t.tensor == "Inputs")
    assert inputs.fills == 0  # produced on chip
    assert inputs.tile_words == 3 * 113 * 113  # the home holds the whole tensor
    glb_full = next(lv for lv in full.levels if lv.name == "shared_glb")
    assert inputs.reads == next(t for t in glb_full.tensors if t.tensor == "Inputs").reads
    dram_full = next(lv for lv in full.levels if lv.name == "DRAM")
    saved = next(t for t in dram_full.tensors if t.tensor == "Inputs").energy_pj
    glb_fills_pj = fused.energy_pj - full.energy_pj + saved  # what else changed
    assert fused.energy_pj < full.energy_pj - saved + 1e-6 and glb_fills_pj < 0
    assert fused.cycles == full.cycles


def test_an_on_chip_home_must_fit_the_whole_tensor():
    problem = Problem.conv(1, 3, 32, 112, 112, 3, 3, stride=2)  # Inputs: 151,875 words
    arch = load_arch(EYERISS)  # shared_glb: 131,072 words
    keep = frozenset({"Weights", "Outputs"})
    assert AnalyticalModel().evaluate(problem, _eyeriss_mapping(problem, keep | {"Inputs"}),
                                      arch).valid  # fmt: skip
    cost = AnalyticalModel().evaluate(problem, _eyeriss_mapping(problem, keep), arch)
    assert not cost.valid and "shared_glb" in cost.reason


def test_mapping_yaml_bypass_list_and_a_tensor_kept_nowhere(tmp_path):
    problem = Problem.conv(1, 3, 32, 112, 112, 3, 3, stride=2)
    arch = load_arch(EYERISS)
    path = tmp_path / "m.yaml"
    path.write_text(
        "problem: conv\nlevels:\n"
        "  - {level: DRAM, temporal: [[p, 8], [q, 2], [m, 4]], bypass: [Outputs]}\n"
        "  - {level: shared_glb, temporal: [[p, 14], [q, 4]], spatial_x: [[q, 14]],\n"
        "     spatial_y: [[c, 3], [s, 3]]}\n"
        "  - {level: ifmap_spad}\n  - {level: weights_spad, temporal: [[r, 3]]}\n"
        "  - {level: psum_spad, temporal: [[m, 8]]}\n"
    )
    mapping = load_mapping(path, problem, arch)
    assert mapping.levels[0].keep == frozenset({"Weights", "Inputs"})
    # the whole output (401,408 words) now lives in the 131,072-word global buffer
    assert AnalyticalModel().evaluate(problem, mapping, arch).reason == (
        "over capacity at ['shared_glb']"
    )
    nowhere = Mapping("conv", tuple(
        LevelMapping(lv.level, lv.temporal, lv.spatial_x, lv.spatial_y, lv.keep - {"Outputs"})
        for lv in mapping.levels))  # fmt: skip
    cost = AnalyticalModel().evaluate(problem, nowhere, arch)
    assert not cost.valid and "kept at no level" in cost.reason


def test_mapper_homes_a_dram_bypassed_intermediate_on_chip(capsys, tmp_path):
    args = ("gemm:M=64,N=48,K=80", "--hw", EYERISS, "--evaluations", "1500", "--seed", "1")
    base = _map_json(capsys, *args)
    fused = _map_json(capsys, *args, "--bypass", "DRAM:Inputs", "--mapping-out", str(tmp_path))
    levels = yaml.safe_load((tmp_path / "gemm.yaml").read_text())["levels"]
    assert levels[0]["level"] == "DRAM" and "A" not in levels[0]["keep"]  # A: the Inputs
    assert "A" in levels[1]["keep"]  # homed in the global buffer
    energy = {name: doc["total"]["energy_by_level_pj"]["DRAM"] for name, doc in
              (("base", base), ("fused", fused))}  # fmt: skip
    assert energy["fused"] < energy["base"]


def test_a_bypass_only_entry_keeps_the_other_dataspaces(tmp_path, capsys):
    folder = tmp_path / "design"
    shutil.copytree("tests/data/timeloop/ispass_03_3level_no_bypass", folder)
    entries = yaml.safe_load((folder / "map.yaml").read_text())["mapping"]
    entries.append({"target": "GlobalBuffer", "type": "bypass", "bypass": ["Outputs"]})
    (folder / "map.yaml").write_text(yaml.safe_dump({"mapping": entries}))
    out = tmp_path / "out"
    assert main(["import-timeloop", "--arch", str(folder / "arch.yaml"),
                 "--map", str(folder / "map.yaml"), "--problem", str(folder / "problem.yaml"),
                 "--ert", str(folder / "ERT.yaml"), "-o", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    levels = yaml.safe_load((out / "mapping.yaml").read_text())["levels"]
    assert levels[1]["level"] == "GlobalBuffer"
    assert levels[1]["keep"] == ["Inputs", "Weights"]
