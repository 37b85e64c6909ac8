"""Hardware presets: every bundled card is package data addressable by name, works from any
folder (paths inside a card resolve next to it, else in the preset library), and from a
non-editable install."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from codesign.cli.main import main
from codesign.errors import InputError
from codesign.hwmodels.presets import PRESET_DIR, preset_names, preset_path
from codesign.hwmodels.registry import load_hardware

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT / "examples" / "models" / "cnn.onnx"
CARDS = sorted([*PRESET_DIR.glob("*.yaml"), *(PRESET_DIR / "gpu").glob("*.yaml")])


def _map_json(capsys, model: Path | str, hw: str) -> dict:
    assert main(["map", str(model), "--hw", hw, "--evaluations", "200", "--json", "-", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_examples_hw_is_the_preset_library() -> None:
    assert sorted(p.name for p in (ROOT / "examples" / "hw").glob("*.yaml")) == sorted(
        p.name for p in PRESET_DIR.glob("*.yaml")
    )
    assert len(CARDS) >= 26


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_every_card_maps_the_cnn_from_a_fresh_folder(card: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / card.name
    shutil.copy(card, copy)
    doc = _map_json(capsys, CNN, str(copy))
    assert doc["total"]["macs"] > 0 and doc["total"]["cycles"] > 0
    assert doc["arch"] == load_hardware(card).name


@pytest.mark.parametrize("name", ["eyeriss_like", "a100", "lut_tc", "bitmod_gen", "piuma"])
def test_a_preset_name_maps_like_its_card(name: str, capsys) -> None:
    by_name = _map_json(capsys, CNN, name)
    path = preset_path(name)
    assert path is not None
    assert _map_json(capsys, CNN, str(path))["total"] == by_name["total"]


def test_every_card_stem_is_a_preset_name() -> None:
    assert {p.stem for p in CARDS} <= set(preset_names())
    assert preset_path("A100-80G") == PRESET_DIR / "gpu" / "a100_80g.yaml"


def test_an_unknown_name_lists_the_presets() -> None:
    with pytest.raises(InputError, match=r"unknown hardware 'v100'.*eyeriss_like"):
        load_hardware("v100")
    with pytest.raises(InputError, match="no such hardware file"):
        load_hardware("missing.yaml")


def test_a_card_copied_without_its_energy_table_uses_the_librarys(tmp_path: Path) -> None:
    copy = tmp_path / "eyeriss.yaml"
    shutil.copy(PRESET_DIR / "eyeriss_like.yaml", copy)
    assert load_hardware(copy).energy_table == load_hardware("eyeriss_like").energy_table


def test_a_card_next_to_its_own_energy_table_uses_that_one(tmp_path: Path) -> None:
    (tmp_path / "ert").mkdir()
    table = (PRESET_DIR / "ert" / "eyeriss_like_65nm.yaml").read_text()
    (tmp_path / "ert" / "eyeriss_like_65nm.yaml").write_text(table.replace("name: ", "name: x", 1))
    shutil.copy(PRESET_DIR / "eyeriss_like.yaml", tmp_path / "e.yaml")
    assert load_hardware(tmp_path / "e.yaml").energy_table.name.startswith("x")


def test_a_non_editable_wheel_maps_presets_from_outside_the_repo(tmp_path: Path) -> None:
    """Build a wheel from a copy of the sources, install it into a fresh venv (dependencies
    from this interpreter's site-packages), and map by preset name from an unrelated folder."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(ROOT / "codesign", src / "codesign",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(src)], **run)  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], **run)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], **run
    ).stdout.strip()
    # this interpreter's packages (numpy, pydantic, rich ...) after the venv's own
    parents = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    Path(purelib, "zz_parent_site.pth").write_text("\n".join(dict.fromkeys(parents)) + "\n")
    wheel = next(wheels.glob("codesign-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                    "-q", str(wheel)], **run)  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy(CNN, work / "cnn.onnx")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(python), "-c", "import codesign; print(codesign.__file__)"],
                           cwd=work, env=env, **run).stdout  # fmt: skip
    assert where.startswith(purelib), where
    for hw in ("eyeriss_like", "a100"):
        out = subprocess.run(
            [str(python), "-m", "codesign.cli.main", "map", "cnn.onnx", "--hw", hw,
             "--evaluations", "200", "--json", "-", "-q"], cwd=work, env=env, **run,
        ).stdout  # fmt: skip
        assert json.loads(out)["total"]["cycles"] > 0
