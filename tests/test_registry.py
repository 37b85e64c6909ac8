"""The hardware-family registry: one entry per family, any card through `map`, and a new family
added from this one file (its spec, hardware, build, model and registration) works through the
library API and the CLI without touching codesign."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

import codesign
from codesign.api import map_model
from codesign.cli.main import main
from codesign.errors import InputError
from codesign.hwmodels.registry import (
    Command,
    Family,
    families,
    family_of,
    load_hardware,
    load_hardware_card,
    register_family,
    unregister_family,
)
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.stats import einsum_stats
from codesign.sim.cost import COMPUTE_BOUND, Cost, EinsumKind, EinsumResult
from codesign.sim.family_models import CostOptions

ROOT = Path(__file__).resolve().parents[1]
CNN = str(ROOT / "examples" / "models" / "cnn.onnx")


# ---- a toy but real family: a MAC array that retires `macs_per_cycle` MACs and
# `ops_per_cycle` other operations per cycle, at `pj_per_op` per operation -------------------


class ToySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    family: Literal["toy"]
    name: str
    clock_ghz: float = Field(gt=0)
    macs_per_cycle: int = Field(gt=0)
    ops_per_cycle: int = Field(gt=0)
    pj_per_op: float = Field(ge=0)


@dataclass(frozen=True, slots=True)
class ToyChip:
    name: str
    clock_ghz: float
    macs_per_cycle: int
    ops_per_cycle: int
    pj_per_op: float


def build_toy(spec: ToySpec, path: Path) -> ToyChip:
    return ToyChip(spec.name, spec.clock_ghz, spec.macs_per_cycle, spec.ops_per_cycle,
                   spec.pj_per_op)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToyModel:
    options: CostOptions

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: ToyChip) -> EinsumResult:
        stats = einsum_stats(einsum, cascade)
        other = stats.flops - 2 * stats.macs
        cycles = math.ceil(stats.macs / hw.macs_per_cycle) + math.ceil(other / hw.ops_per_cycle)
        energy = (stats.macs + other) * hw.pj_per_op
        kind = (
            EinsumKind.VIEW
            if einsum.is_view
            else (EinsumKind.MAC if stats.macs else EinsumKind.VECTOR)
        )
        util = stats.macs / (cycles * hw.macs_per_cycle) if cycles else 0.0
        cost = Cost(float(cycles), energy, stats.macs, util, COMPUTE_BOUND, float(cycles),
                    energy, hw.macs_per_cycle, ())  # fmt: skip
        return EinsumResult(einsum.name, einsum.op, kind, cost)

    def area_mm2(self, hw: ToyChip) -> float | None:
        return 1.5

    def notes(self, hw: ToyChip, cascade: Cascade) -> tuple[str, ...]:
        return ()


TOY = Family("toy", ToySpec, build_toy, ToyModel, (ToyChip,), frozenset({Command.MAP}), ("toy",))

CARD = """family: toy
name: toy-chip
clock_ghz: 2.0
macs_per_cycle: 64
ops_per_cycle: 8
pj_per_op: 0.5
"""


@pytest.fixture
def toy_card(tmp_path: Path):
    register_family(TOY)
    path = tmp_path / "toy.yaml"
    path.write_text(CARD)
    yield path
    unregister_family("toy")


def _expected_cycles(cascade: Cascade) -> int:
    total = 0
    for e in cascade.einsums:
        s = einsum_stats(e, cascade)
        total += math.ceil(s.macs / 64) + math.ceil((s.flops - 2 * s.macs) / 8)
    return total


def test_a_family_registered_from_a_test_module_maps_through_the_api(toy_card: Path) -> None:
    cascade = codesign.load(CNN)
    report = codesign.map_model(cascade, toy_card)
    assert report.family is TOY and isinstance(report.hw, ToyChip)
    assert report.cycles == _expected_cycles(cascade) > 0
    assert report.result.area_mm2 == 1.5
    assert family_of(report.hw) is TOY


def test_a_family_registered_from_a_test_module_maps_through_the_cli(toy_card, capsys) -> None:
    assert main(["map", CNN, "--hw", str(toy_card), "--json", "-", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["arch"] == "toy-chip"
    assert doc["total"]["cycles"] == _expected_cycles(codesign.load(CNN))


def test_a_bad_field_of_a_plugin_card_is_one_line_naming_the_field(toy_card: Path) -> None:
    toy_card.write_text(CARD.replace("macs_per_cycle: 64", "macs_per_cycle: 0"))
    with pytest.raises(InputError, match=r"toy.yaml:4: macs_per_cycle"):
        load_hardware(toy_card)


def test_a_command_the_family_does_not_serve_names_the_commands_that_do(toy_card, capsys):
    assert main(["roofline", CNN, "--hw", str(toy_card)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "taken by: map" in err


def test_every_built_in_family_is_registered_once() -> None:
    names = [f.name for f in families()]
    assert len(names) == len(set(names))
    assert {"spatial", "scalesim", "bitserial", "tensor_core", "device", "piuma"} <= set(names)
    keys = [k for f in families() for k in f.keys]
    assert len(keys) == len(set(keys))


def test_an_unknown_family_is_one_line_listing_the_known_ones(tmp_path: Path) -> None:
    card = tmp_path / "x.yaml"
    card.write_text("family: quantum\nname: q\n")
    with pytest.raises(InputError, match=r"x.yaml:1: family: unknown hardware family 'quantum'"):
        load_hardware(card)


def test_registering_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_family(families()[0])


@pytest.mark.parametrize(
    ("command", "card", "ok"),
    [(Command.ROOFLINE, "a100", True), (Command.ROOFLINE, "eyeriss_like", True),
     (Command.ROOFLINE, "lut_tc", True), (Command.GRAPH, "piuma", True),
     (Command.GRAPH, "lut_tc", False),
     (Command.GRAPH, "a100", False), (Command.BENCH, "bitmod_gen", False)],
)  # fmt: skip
def test_commands_take_the_families_that_declare_them(command, card, ok) -> None:
    if ok:
        load_hardware_card(card, command)
    else:
        with pytest.raises(InputError, match=f"cannot be used by `{command.value}`"):
            load_hardware_card(card, command)


def test_map_takes_a_gpu_preset_and_a_piuma_card(capsys) -> None:
    for hw in ("a100", "examples/hw/piuma.yaml"):
        assert main(["map", CNN, "--hw", hw, "--json", "-", "-q"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["total"]["cycles"] > 0 and doc["total"]["macs"] > 0


def test_cycle_model_on_a_fixed_schedule_family_is_refused() -> None:
    with pytest.raises(InputError, match="priced by its own model"):
        map_model(codesign.load(CNN), "bitmod_gen", cost_model="cycle")
