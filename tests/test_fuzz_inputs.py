"""Property-based fuzzing of the CLI's inputs (bounded, seeded): random hardware cards, layer
specs and pass pipelines either work (exit 0) or are refused on one line (exit 2); never a
traceback.  When a mapping runs, its totals are finite and non-negative, it takes at least
MACs / PEs cycles and at least MACs x (energy of one MAC).
"""

from __future__ import annotations

import json
import math
import pathlib

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.cli.main import main

TPU = pathlib.Path("examples/hw/tpu_like.yaml")
FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # seeded: the same examples on every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# numbers that break naive code: zero, negatives, non-finite, huge, fractional, booleans
nasty_numbers = st.sampled_from([0, -1, 1, 2, 3, 7, 1024, 0.5, 1e308, 1e21, True, "x",
                                 float("inf"), float("nan"), -0.0])  # fmt: skip
sane_dims = st.integers(min_value=1, max_value=96)


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse usage errors exit 2 themselves
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert status in (0, 2), captured.err
    if status == 2:
        assert captured.err.strip(), "exit 2 without a message"
    return status, captured.out, captured.err


def _mutated_card(data: st.DataObject) -> dict:
    card = yaml.safe_load(TPU.read_text())
    card["energy_table"] = str((TPU.parent / card["energy_table"]).resolve())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        where = data.draw(st.sampled_from(["clock_ghz", "technology_nm", "level", "compute"]))
        value = data.draw(nasty_numbers, label="value")
        if where in ("clock_ghz", "technology_nm"):
            card[where] = value
        elif where == "compute":
            card["compute"][data.draw(st.sampled_from(["count", "mac_bits"]))] = value
        else:
            level = data.draw(st.integers(0, len(card["levels"]) - 1), label="level")
            keys = ["size_bytes", "word_bits", "block_words", "read_bandwidth_words_per_cycle",
                    "banks"]  # fmt: skip
            key = data.draw(st.sampled_from(keys))
            card["levels"][level][key] = value
    return card


def _numbers(value: object) -> list[float]:
    """Every number in a JSON document."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return []


@settings(FUZZ, max_examples=80)
@given(data=st.data(), m=sane_dims, n=sane_dims, k=sane_dims)
def test_random_cards_map_or_are_refused_and_costs_obey_their_bounds(
    capsys, tmp_path_factory, data, m, n, k
):
    from codesign.hwmodels import load_hardware

    path = tmp_path_factory.mktemp("card") / "card.yaml"
    path.write_text(yaml.safe_dump(_mutated_card(data)))
    status, out, _ = run(capsys, ["map", f"gemm:M={m},N={n},K={k}", "--hw", str(path),
                                  "--evaluations", "200", "-q", "--json", "-"])  # fmt: skip
    if status != 0:
        return
    doc = json.loads(out)
    assert all(math.isfinite(x) and x >= 0 for x in _numbers(doc)), "NaN/inf/negative in JSON"
    total = doc["total"]
    arch = load_hardware(path)
    macs = m * n * k
    assert math.isfinite(total["cycles"]) and total["cycles"] >= 0
    assert math.isfinite(total["energy_pj"]) and total["energy_pj"] >= 0
    assert total["cycles"] >= macs / arch.compute.count
    assert total["energy_pj"] >= macs * arch.compute.mac_energy_pj * (1 - 1e-9)


layer_keys = st.sampled_from(["M", "N", "K", "C", "P", "Q", "R", "S", "stride", "dilation",
                              "dtype", "bogus"])  # fmt: skip
odd_values = st.sampled_from(["", "1e3", "nan", "i8", "f16", "x", "2.5"])
layer_values = st.one_of(st.integers(-3, 40).map(str), odd_values)


@FUZZ
@given(kind=st.sampled_from(["gemm", "conv", "pool"]),
       items=st.lists(st.tuples(layer_keys, layer_values), max_size=9))  # fmt: skip
def test_random_layer_specs_give_stats_or_one_line_errors(capsys, kind, items):
    spec = f"{kind}:" + ",".join(f"{key}={value}" for key, value in items)
    status, out, _ = run(capsys, ["stats", spec, "--json", "-"])
    if status == 0:
        doc = json.loads(out)
        assert doc["total"]["macs"] >= 0


pass_names = st.sampled_from(["quantize", "prune", "prune-nm", "mixed-precision", "canonicalize",
                              "quantize-activations", "nosuch"])  # fmt: skip
pass_options = st.sampled_from(["bits=4", "bits=0", "bits=99", "bits=nan", "group=128",
                                "group=-1", "sparsity=0.5", "sparsity=1.5", "sparsity=inf",
                                "n=2", "m=4", "n=5", "budget=4", "budget=nan", "einsums=fc",
                                "einsums=nomatch", "einsums=[", "format=bitmod",
                                "format=x"])  # fmt: skip


@FUZZ
@given(passes=st.lists(st.tuples(pass_names, st.lists(pass_options, max_size=3)), min_size=1,
                       max_size=3))  # fmt: skip
def test_random_pipelines_run_or_are_refused_on_one_line(capsys, passes):
    text = ",".join(name + ("{" + ",".join(opts) + "}" if opts else "") for name, opts in passes)
    status, out, err = run(capsys, ["stats", "examples/models/mlp.onnx", "--passes", text,
                                    "--json", "-"])  # fmt: skip
    if status == 2:
        assert len(err.strip().splitlines()) == 1
    else:
        assert json.loads(out)["total"]["weight_bytes"] >= 0


@pytest.mark.parametrize("model", ["analytical", "cycle"])
def test_cost_bounds_hold_on_the_bundled_cards(capsys, model):
    """The same bounds on every bundled spatial card, with both cost models."""
    from codesign.hwmodels import load_hardware
    from codesign.hwmodels.arch import Arch

    for card in ("tpu_like", "eyeriss_like", "simba_like", "simple_ws", "simple_os"):
        path = f"examples/hw/{card}.yaml"
        arch = load_hardware(path)
        assert isinstance(arch, Arch)
        argv = ["map", "gemm:M=48,N=40,K=56", "--hw", path, "--model", model,
                "--evaluations", "300", "-q", "--json", "-"]  # fmt: skip
        status, out, _ = run(capsys, argv)
        if status != 0:  # the cycle model takes systolic cards only
            continue
        total = json.loads(out)["total"]
        macs = 48 * 40 * 56
        assert total["cycles"] >= macs / arch.compute.count
        assert total["energy_pj"] >= macs * arch.compute.mac_energy_pj * (1 - 1e-9)


def _numeric_paths(value: object, path: tuple = ()) -> list[tuple]:
    """Paths to every number (not bool) in a parsed YAML document."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _numeric_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _numeric_paths(v, (*path, i))]
    return []


@pytest.fixture(scope="module")
def hw_copy(tmp_path_factory) -> pathlib.Path:
    """examples/hw copied (cards refer to their energy tables and hosts by relative path)."""
    import shutil

    target = tmp_path_factory.mktemp("hw") / "hw"
    shutil.copytree("examples/hw", target)
    return target


FAMILY_RUNS = {  # card -> the command that prices it (MODEL/--hw filled in)
    "bitmod_gen.yaml": ["map", "gemm:M=16,N=16,K=32", "-q", "--json", "-"],
    "lut_tc.yaml": ["map", "gemm:M=16,N=16,K=32", "-q", "--json", "-"],
    "gpu/a100_40g.yaml": ["roofline", "gemm:M=16,N=16,K=32", "--json", "-"],
    "piuma.yaml": ["graph", "bfs", "--graph", "rmat:scale=5,edge_factor=4,seed=1", "--json", "-"],
}


@settings(FUZZ, max_examples=40)
@given(data=st.data(), card=st.sampled_from(sorted(FAMILY_RUNS)))
def test_random_family_cards_run_or_are_refused(capsys, hw_copy, data, card):
    """bit-serial, tensor-core, GPU and PIUMA schemas under the same nasty numbers."""
    source = hw_copy / card
    doc = yaml.safe_load(source.read_text())
    paths = _numeric_paths(doc)
    for _ in range(data.draw(st.integers(1, 2), label="mutations")):
        *parents, leaf = data.draw(st.sampled_from(paths), label="field")
        node = doc
        for key in parents:
            node = node[key]
        node[leaf] = data.draw(nasty_numbers, label="value")
    mutated = source.with_name("fuzzed_" + source.name)
    mutated.write_text(yaml.safe_dump(doc))
    argv = FAMILY_RUNS[card]
    status, out, _ = run(capsys, [*argv[:-2], "--hw", str(mutated), *argv[-2:]])
    if status == 0:
        assert all(math.isfinite(x) for x in _numbers(json.loads(out))), "NaN/inf in JSON"
