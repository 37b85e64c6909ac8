"""Reading SCALE-Sim .cfg and topology .csv files."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.errors import InputError
from codesign.frontends.scalesim import TopologyKind, load_topology, parse_topology_text
from codesign.hwmodels.scalesim_config import (
    InterfaceBandwidth,
    ScaleSimConfig,
    load_config,
    parse_config_text,
)
from codesign.sim.systolic import ConvShape, Dataflow, SystolicArray, simulate_gemm

DATA = Path(__file__).parent / "data" / "scalesim"

MINIMAL_CFG = """\
[architecture_presets]
ArrayHeight: 8
ArrayWidth: 16
IfmapSramSzkB: 64
FilterSramSzkB: 64
OfmapSramSzkB: 32
Dataflow: is
[run_presets]
InterfaceBandwidth: CALC
"""


def test_full_scalesim_config_is_read_with_its_values() -> None:
    config = load_config(DATA / "ws_32x32.cfg")
    assert config == ScaleSimConfig(
        run_name="ws_32x32",
        array_height=32,
        array_width=32,
        ifmap_sram_kb=64,
        filter_sram_kb=64,
        ofmap_sram_kb=64,
        dataflow=Dataflow.WS,
        interface_bandwidth=InterfaceBandwidth.CALC,
        bandwidth_words_per_cycle=(10,),
        memory_banks=1,
        read_request_buffer_entries=512,
        write_request_buffer_entries=512,
    )
    assert config.to_array() == SystolicArray(32, 32, Dataflow.WS)


def test_config_without_optional_sections_takes_scalesim_defaults() -> None:
    config = load_config(DATA / "tpu_like_user_bw.cfg")
    assert config.to_array() == SystolicArray(256, 128, Dataflow.OS)  # "OS" is case-insensitive
    assert config.interface_bandwidth is InterfaceBandwidth.USER
    assert config.bandwidth_words_per_cycle == (10, 20)
    assert config.topology_path == "./topologies/conv_nets/resnet_like.csv"
    assert (config.ifmap_offset, config.filter_offset, config.ofmap_offset) == (
        0,
        10_000_000,
        20_000_000,
    )
    assert not config.sparsity_support


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("ArrayHeight: 8\n", ""), r"x\.cfg: \[architecture_presets\] "
         "ArrayHeight: missing"),
        (lambda t: t.replace("ArrayWidth: 16", "ArrayWidth: wide"), "ArrayWidth: expected an "
         "integer, got 'wide'"),
        (lambda t: t.replace("ArrayWidth: 16", "ArrayWidth: 0"), "ArrayWidth: must be >= 1"),
        (lambda t: t.replace("Dataflow: is", "Dataflow: rs"), "Dataflow: expected one of ws, "
         "os, is, got 'rs'"),
        (lambda t: t.replace("CALC", "USER"), "Bandwidth: missing"),
        (lambda t: t.replace("CALC", "MAYBE"), "InterfaceBandwidth: expected one of CALC, USER"),
        (lambda t: "ArrayHeight: 8\n" + t, r"x\.cfg:1: expected a \[section\] header"),
        (lambda t: t.replace("8\n", "8\nArrayHeight: 9\n"), r"x\.cfg:3: duplicate "
         "key 'arrayheight'"),
        (lambda t: t + "not a key value line\n", r"x\.cfg:10: not a 'key: value' line"),
        (lambda t: t + "[sparsity]\nSparsitySupport: sometimes\n", "SparsitySupport: expected "
         "True or False"),
    ],
)  # fmt: skip
def test_bad_config_raises_one_line_input_error_naming_file_and_field(edit, message) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_config_text(edit(MINIMAL_CFG), source="x.cfg")
    assert "\n" not in str(info.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_config(tmp_path / "nope.cfg")
    with pytest.raises(InputError, match="file not found"):
        load_topology(tmp_path / "nope.csv")


def test_conv_topology_gives_the_im2col_gemm_scalesim_runs() -> None:
    layers = load_topology(DATA / "resnet_like.csv")
    conv1, conv2 = layers[0], layers[1]
    assert conv1.conv == ConvShape(230, 230, 7, 7, 3, 64, 2, 2)
    assert (conv1.m, conv1.n, conv1.k) == (113 * 113, 64, 147)
    assert (conv2.m, conv2.n, conv2.k) == (56 * 56, 64, 576)
    assert (conv1.line, conv2.line) == (2, 3)


def test_depthwise_dp_layers_expand_to_one_layer_per_channel_as_in_scalesim() -> None:
    layers = load_topology(DATA / "resnet_like.csv")
    dp = [layer for layer in layers if "DP" in layer.name]
    assert [layer.name for layer in dp] == [f"Conv3_DPChannel_{i}" for i in range(4)]
    assert {(layer.m, layer.n, layer.k) for layer in dp} == {(14 * 14, 1, 9)}
    assert all(layer.line == 5 for layer in dp)


def test_sparsity_ratio_column_is_read() -> None:
    fc = load_topology(DATA / "resnet_like.csv")[-1]
    assert (fc.name, fc.m, fc.n, fc.k) == ("FC", 1, 1000, 512)
    assert (fc.sparsity_n, fc.sparsity_m) == (2, 4)


def test_gemm_topology_keeps_m_n_k_and_simulates_like_the_reference() -> None:
    layers = load_topology(DATA / "gemm.csv")
    assert [(layer.name, layer.m, layer.n, layer.k) for layer in layers] == [
        ("g64", 64, 64, 64),
        ("qkv", 128, 768, 256),
        ("odd", 100, 37, 59),
    ]
    assert layers[0].conv is None
    assert (layers[2].sparsity_n, layers[2].sparsity_m) == (1, 2)
    array = load_config(DATA / "ws_32x32.cfg").to_array()
    g64 = layers[0]
    assert simulate_gemm(g64.m, g64.n, g64.k, array).compute_cycles == 631  # SCALE-Sim 3.0.0


def test_kind_can_be_forced_and_rows_may_omit_the_trailing_comma() -> None:
    text = "anything\nfc, 4, 5, 6\n"
    (layer,) = parse_topology_text(text, source="t.csv", kind=TopologyKind.GEMM)
    assert (layer.m, layer.n, layer.k) == (4, 5, 6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Layer, M, N, K,\ng, 1, 2,\n", r"topo\.csv:2: expected 4 columns, got 3"),
        ("Layer name, IFMAP Height,\nc, 8, 8, 3, 3, 1, 2, 1,\nd, 8, 8, 3, 3,\n",
         r"topo\.csv:3: expected 8 columns, got 5"),
        ("Layer, M, N, K,\ng, 1, x, 3,\n", r"topo\.csv:2: N: expected a positive integer, got 'x'"),
        ("Layer, M, N, K,\ng, 1, 0, 3,\n", r"topo\.csv:2: N: expected a positive integer, got 0"),
        ("Layer, M, N, K,\ng, 1, 2, 3, 4-4,\n", r"topo\.csv:2: sparsity: expected N:M"),
        ("Layer, M, N, K,\ng, 1, 2, 3, 3:2,\n", r"topo\.csv:2: sparsity: N 3 exceeds M 2"),
        ("Layer, M, N, K,\n, 1, 2, 3,\n", r"topo\.csv:2: empty layer name"),
        ("Layer name, IFMAP Height,\nc, 2, 8, 3, 3, 1, 2, 1,\n",
         r"topo\.csv:2: Filter Height 3 exceeds IFMAP Height 2"),
        ("Layer, M, N, K,\n\n", r"topo\.csv: no layers"),
        ("", r"topo\.csv:1: empty topology"),
        ("name, a, b, c,\ng, 1, 2, 3,\n", r"topo\.csv:1: cannot tell conv from GEMM"),
    ],
)  # fmt: skip
def test_bad_topology_raises_input_error_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_topology_text(text, source="topo.csv")
    assert "\n" not in str(info.value)


def test_bundled_scalesim_energy_table_equals_the_validated_load() -> None:
    # the .cfg path reads the bundled table without pydantic; it must be the schema's result
    from codesign.hwmodels.loader import load_energy_table
    from codesign.hwmodels.scalesim import DEFAULT_ERT, default_energy_table

    assert default_energy_table() == load_energy_table(DEFAULT_ERT)


def test_a_cfg_map_imports_no_pydantic_yaml_pass_library_or_other_family() -> None:
    # start-up (issue 12): a SCALE-Sim run loads only what it uses; a fresh process sees it
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\n"
        "from codesign.cli.main import main\n"
        f"assert main(['map', {str(DATA / 'gemm.csv')!r}, '--hw', "
        f"{str(DATA / 'ws_32x32.cfg')!r}, '--model', 'cycle', '-q', '--json', '-']) == 0\n"
        "loaded = [m for m in ('pydantic', 'yaml', 'codesign.passes', 'codesign.hwmodels.gpu',"
        " 'codesign.hwmodels.bitserial', 'codesign.hwmodels.schema') if m in sys.modules]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": ""}, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stderr
