"""Roofline analyzer: LLM-Viewer comparison points, bounds, what-if quantization and batching."""

from __future__ import annotations

import json
from functools import cache

import pytest

from codesign.cli.main import main
from codesign.frontends.layers import gemm
from codesign.hwmodels.gpu import gpu_preset
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Binary, BinaryOp, Const
from codesign.sim.roofline import (
    COMPUTE_BOUND,
    PhaseReport,
    RooflineOptions,
    TensorKind,
    analyze,
    by_label,
    retype,
    tensor_kinds,
)
from codesign.sim.roofline_llm import attention_options, llm_options
from tests.validation import load_cases

A100 = gpu_preset("a100")
# cases with "passes" (fusion) are checked by tests/test_fuse.py
LLM_VIEWER = [c for c in load_cases("llm_viewer") if "passes" not in c["inputs"]]
TOTAL_KEYS = {"ops", "memory_bytes", "weights_bytes", "kv_bytes", "time_ms", "footprint_bytes"}


def _llm_builder():
    try:
        from codesign.frontends.llm import llm_from_spec
    except ImportError:
        pytest.skip("codesign.frontends.llm (the LLM workload builder) is not in this tree yet")
    return llm_from_spec


@cache
def _llm_cascade(name: str, batch: int, seq: int, phase: str) -> Cascade:
    return _llm_builder()(name, batch=batch, seq=seq, phase=phase, kv_len=None)


def _llm_report(
    phase: str, batch: int = 1, seq: int = 1024, flash: bool = True, wbits: DType | None = None,
    name: str = "llama-2-7b",
) -> PhaseReport:
    cascade = _llm_cascade(name, batch, seq, phase)
    options = llm_options(cascade, A100, flash_attention=flash)
    if wbits is not None:
        cascade = retype(cascade, tensor_kinds(cascade, options.kv_tensors), weight=wbits)
    return analyze(cascade, A100, options, phase)


def _attention(seq: int = 256, heads: int = 4, head_dim: int = 64) -> Cascade:
    """One self-attention over projections of x (weights f16), scores scaled then softmaxed."""
    b = CascadeBuilder("attention")
    hidden = heads * head_dim
    x = b.tensor("x", (seq, hidden), DType.F16, Role.INPUT)
    qkv = []
    for name in ("q", "k", "v"):
        w = b.tensor(f"w{name}", (hidden, hidden), DType.F16, Role.WEIGHT)
        y = b.reshape(f"{name}_heads", b.matmul(f"{name}_proj", x, w), (seq, heads, head_dim))
        qkv.append(b.transpose(f"{name}_t", y, (1, 0, 2)))
    q, k, v = qkv
    scores = b.matmul("qk_matmul", q, k, transpose_b=True)
    scaled = b.map("qk_scale", [scores], lambda s: Binary(BinaryOp.MUL, s, Const(0.125)))
    out = b.matmul("sv_matmul", b.softmax("softmax", scaled), v)
    b.set_role(out, Role.OUTPUT)
    return b.build()


# -- LLM-Viewer comparison points (tests/validation/llm_viewer.yaml) -----------------------------
@pytest.mark.parametrize("case", LLM_VIEWER, ids=[c["id"] for c in LLM_VIEWER])
def test_llama2_7b_on_a100_agrees_with_llm_viewer(case):
    inputs = case["inputs"]
    assert (inputs["hw"], inputs["wbits"], inputs["abits"]) == ("a100", 16, 16)
    report = _llm_report(
        inputs["phase"], inputs["batch"], inputs["seq"], inputs["flash_attention"],
        name=inputs["llm"],
    )
    totals = report.totals.as_dict()
    for key, expected in case["expected"].items():
        assert totals[key] == pytest.approx(expected, rel=case["tolerance"]), key


def test_llm_prefill_is_compute_bound_and_decode_memory_bound():
    prefill, decode = _llm_report("prefill"), _llm_report("decode")

    def compute_share(report: PhaseReport) -> float:
        bound = sum(r.time_s for r in report.rows if r.bound == COMPUTE_BOUND)
        return bound / report.totals.time_s

    assert compute_share(prefill) > 0.8
    assert compute_share(decode) == 0.0
    projections = [r for r in by_label(decode.rows) if r.label.endswith("proj")]
    assert projections and all(r.bound == A100.dram.name for r in projections)


def test_llm_decode_reads_the_kv_cache_and_every_weight_once():
    decode = _llm_report("decode")
    cascade = _llm_cascade("llama-2-7b", 1, 1024, "decode")
    weights = sum(t.size_bytes for t in cascade.weights)
    # every weight except the embedding table (only one row is gathered) is read once
    assert 0.9 * weights < decode.totals.weights_bytes <= weights
    # K and V of 32 layers x 1024 tokens x 4096 channels in f16
    assert decode.totals.kv_bytes >= 2 * 32 * 1024 * 4096 * 2


def test_four_bit_weights_cut_decode_time():
    fp16 = _llm_report("decode")
    int4 = _llm_report("decode", wbits=DType.I4)
    assert int4.totals.weights_bytes == pytest.approx(fp16.totals.weights_bytes / 4, rel=0.01)
    assert int4.totals.time_s < 0.4 * fp16.totals.time_s
    assert int4.totals.ops == fp16.totals.ops


def test_batching_raises_decode_intensity():
    one, many = _llm_report("decode", batch=1), _llm_report("decode", batch=16)
    intensity = [r.totals.ops / r.totals.memory_bytes for r in (one, many)]
    assert intensity[1] > 8 * intensity[0]


# -- generic cascades --------------------------------------------------------------------------
def test_gemm_intensity_and_bound_follow_the_batch():
    rows = [analyze(gemm(m, 4096, 4096, DType.F16), A100).rows[0] for m in (1, 16, 4096)]
    intensities = [r.intensity_ops_per_byte for r in rows]
    assert intensities == sorted(intensities)
    assert [r.bound for r in rows] == ["HBM2", "HBM2", COMPUTE_BOUND]
    big = rows[2]
    assert big.time_s == pytest.approx(2 * 4096**3 / 312e12)
    assert big.attainable_ops_per_s == pytest.approx(312e12)


def test_memory_bound_time_is_bytes_over_bandwidth():
    row = analyze(gemm(1, 4096, 4096, DType.F16), A100).rows[0]
    assert row.memory_bytes == 2 * (4096 + 4096 * 4096 + 4096)
    assert row.time_s == pytest.approx(row.memory_bytes / 1555e9)


def test_precision_comes_from_the_ir_dtypes():
    f32 = analyze(gemm(4096, 4096, 4096, DType.F32), A100).rows[0]
    i8 = analyze(gemm(4096, 4096, 4096, DType.I8), A100).rows[0]
    assert f32.peak_ops_per_s == pytest.approx(19.5e12)  # CUDA cores, no TF32 unless asked
    assert i8.peak_ops_per_s == pytest.approx(624e12)
    tf32 = analyze(gemm(4096, 4096, 4096, DType.F32), A100, RooflineOptions(tf32=True)).rows[0]
    assert tf32.peak_ops_per_s == pytest.approx(156e12)


def test_flash_attention_keeps_scores_off_dram_and_counts_the_same_ops():
    cascade = _attention()
    plain = analyze(cascade, A100)
    fused = analyze(cascade, A100, attention_options(cascade, A100))
    assert fused.totals.ops == plain.totals.ops
    assert fused.totals.memory_bytes < plain.totals.memory_bytes
    (group,) = [r for r in fused.rows if r.label == "fused_attention"]
    assert {"qk_matmul", "softmax_max", "softmax_div", "sv_matmul"} <= set(group.einsums)
    qkvo = 256 * 256 * 2  # seq x hidden in f16; the 4 x 256 x 256 scores are not moved
    assert group.memory_bytes == 2 * qkvo + 4 * 2 * qkvo  # Q, O once; K, V per query block


def test_flash_attention_streams_k_and_v_once_per_query_block():
    cascade = _attention(seq=256, head_dim=64)
    (group,) = attention_options(cascade, A100).groups
    # A100: 164 KiB of shared memory = 83968 f16 elements -> Br = min(328, 64) = 64 -> 4 blocks
    assert dict(group.reread) == {"k_t": 4, "v_t": 4}


def test_views_cost_nothing_and_kv_follows_views():
    b = CascadeBuilder("cache")
    past = b.tensor("k_cache", (8, 4), DType.F16, Role.INPUT)
    new = b.tensor("k_new", (1, 4), DType.F16, Role.INPUT)
    full = b.concat("k_all", [past, new], axis=0)
    q = b.tensor("q", (1, 4), DType.F16, Role.INPUT)
    b.set_role(b.matmul("qk", q, full, transpose_b=True), Role.OUTPUT)
    cascade = b.build()
    kinds = tensor_kinds(cascade, frozenset({"k_cache"}))
    assert kinds["k_all"] is kinds["k_new"] is TensorKind.KV
    report = analyze(cascade, A100, RooflineOptions(kv_tensors=frozenset({"k_cache"})))
    assert [r.name for r in report.rows] == ["qk"]
    assert report.rows[0].kv_bytes == 9 * 4 * 2


def test_bytes_override_from_a_mapping_moves_the_bound():
    cascade = gemm(4096, 4096, 4096, DType.F16)
    name = cascade.einsums[0].name
    override = RooflineOptions(bytes_override=((name, (("HBM2", 10**11),)),))
    assert analyze(cascade, A100).rows[0].bound == COMPUTE_BOUND
    assert analyze(cascade, A100, override).rows[0].bound == "HBM2"


def test_retyping_weights_changes_only_weight_bytes():
    cascade = gemm(1, 4096, 4096, DType.F16)
    quant = retype(cascade, tensor_kinds(cascade, frozenset()), weight=DType.I4)
    before, after = analyze(cascade, A100).rows[0], analyze(quant, A100).rows[0]
    assert after.weights_bytes == before.weights_bytes // 4
    assert after.activation_bytes == before.activation_bytes


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_json_has_rows_and_the_documented_totals(tmp_path, capsys):
    out = tmp_path / "r.json"
    plot = tmp_path / "r.svg"
    code = main(["roofline", "gemm:M=64,N=256,K=256,dtype=f16", "--hw", "h100",
                 "--json", str(out), "--plot", str(plot)])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data["totals"]["model"]) == TOTAL_KEYS
    assert data["rows"] and TOTAL_KEYS - {"footprint_bytes"} <= set(data["rows"][0])
    assert plot.read_text().lstrip().startswith("<?xml")


def test_cli_plot_writes_a_png(tmp_path):
    plot = tmp_path / "r.png"
    assert main(["roofline", "gemm:M=64,N=256,K=256", "--hw", "a100", "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hw", "v100"], "unknown hardware 'v100'"),
        (["--hw", "a100", "--wbits", "fp13"], "--wbits 'fp13': unknown dtype"),
        (["--hw", "a100", "--kvbits", "3"], "--kvbits 3: unsupported bit width"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(extra, message, capsys):
    assert main(["roofline", "gemm:M=4,N=4,K=4", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
