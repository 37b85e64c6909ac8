"""`attention-1pass` (FuseMax online softmax) and pass counting over a rank (FuseMax §3)."""

from __future__ import annotations

import numpy as np
import pytest

from codesign.errors import InputError
from codesign.frontends.llm import Workload, attach_random_weights, build_llm
from codesign.ir import Role, interpret, parse_cascade, print_cascade, verify
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade
from codesign.ir.inputs import sample_inputs
from codesign.ir.passcount import count_passes
from codesign.passes import run_pipeline
from tests.test_llm_builder import TINY


def attention(p: int, m: int, e: int, f: int) -> Cascade:
    """Q[P,E], K[M,E], V[M,F] -> softmax(Q K^T) V as the frontends lower it (3-pass)."""
    b = CascadeBuilder("attn")
    q = b.tensor("Q", (p, e), role=Role.INPUT, ranks=("P", "E"))
    k = b.tensor("K", (m, e), role=Role.INPUT, ranks=("M", "E"))
    v = b.tensor("V", (m, f), role=Role.INPUT, ranks=("M", "F"))
    probs = b.softmax("SM", b.matmul("QK", q, k, transpose_b=True))
    b.set_role(b.matmul("AV", probs, v), Role.OUTPUT)
    return b.build()


GOLDEN_1PASS = """\
cascade attn {
  input Q: f32[P=6,E=4]
  input K: f32[M=8,E=4]
  input V: f32[M=8,F=5]
  tensor QK: f32[D0=6,D1=8]
  tensor SM_lm: f32[D0=6,M1=2]
  tensor SM_rm: f32[D0=6,M1=3]
  tensor SM_sln: f32[D0=6,M1=2,M0=4]
  tensor SM_sld: f32[D0=6,M1=2]
  tensor SM_prm: f32[D0=6,M1=2]
  tensor SM_rd: f32[D0=6,M1=3]
  tensor SM_slnv: f32[D0=6,D1=5,M1=2]
  tensor SM_rnv: f32[D0=6,D1=5,M1=3]
  output AV: f32[D0=6,D1=5]
  QK (MatMul): QK[d0,d1] = sum[k:4] Q[d0,k] * K[d1,k]
  SM_lm (Softmax): SM_lm[r0,m1] = max[m0:4] QK[r0,4m1+m0]
  SM_rm_init (Softmax): SM_rm[r0,0] = (-inf)
  SM_rm_step (Softmax): SM_rm[r0,m1+1] = max(SM_rm[r0,m1], SM_lm[r0,m1]) over {m1:2}
  SM_sln (Softmax): SM_sln[r0,m1,m0] = exp(QK[r0,4m1+m0] - SM_rm[r0,m1+1])
  SM_sld (Softmax): SM_sld[r0,m1] = sum[m0:4] SM_sln[r0,m1,m0]
  SM_prm (Softmax): SM_prm[r0,m1] = exp(SM_rm[r0,m1] - SM_rm[r0,m1+1])
  SM_rd_init (Softmax): SM_rd[r0,0] = 0.0
  SM_rd_step (Softmax): SM_rd[r0,m1+1] = SM_rd[r0,m1] * SM_prm[r0,m1] + SM_sld[r0,m1] over {m1:2}
  SM_slnv (MatMul): SM_slnv[d0,d1,m1] = sum[m0:4] SM_sln[d0,m1,m0] * V[4m1+m0,d1]
  SM_rnv_init (MatMul): SM_rnv[d0,d1,0] = 0.0
  SM_rnv_step (MatMul): SM_rnv[d0,d1,m1+1] = SM_rnv[d0,d1,m1] * SM_prm[d0,m1] + SM_slnv[d0,d1,m1] over {m1:2}
  AV (MatMul): AV[d0,d1] = SM_rnv[d0,d1,2] / SM_rd[d0,2]
}
"""  # noqa: E501


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-30))


def test_attention_1pass_prints_the_online_softmax_cascade():
    out, _ = run_pipeline(attention(6, 8, 4, 5), "attention-1pass{tile=4}")
    assert print_cascade(out) == GOLDEN_1PASS
    assert parse_cascade(GOLDEN_1PASS) == out


@pytest.mark.parametrize(
    ("p", "m", "tile", "seed"),
    [(6, 8, 4, 0), (3, 12, 3, 1), (5, 16, 1, 2), (2, 10, 10, 3), (7, 64, 0, 4)],
)
def test_attention_1pass_equals_3pass_on_random_attention(p, m, tile, seed):
    cascade = attention(p, m, 16, 8)
    out, _ = run_pipeline(cascade, f"attention-1pass{{tile={tile}}}")
    verify(out)
    rng = np.random.default_rng(seed)
    x = {name: rng.normal(scale=3.0, size=cascade.tensor(name).shape).astype(np.float32)
         for name in ("Q", "K", "V")}  # fmt: skip
    assert _rel_err(interpret(cascade, x)["AV"], interpret(out, x)["AV"]) <= 1e-5


def test_attention_1pass_on_the_tiny_llm_keeps_the_logits():
    cascade = attach_random_weights(build_llm(TINY["llama"], Workload(1, 8)), 0)
    out, _ = run_pipeline(cascade, "attention-1pass{tile=2}")
    verify(out)
    names = {e.name for e in out.einsums}
    assert not any(n.endswith("softmax_max") for n in names)
    assert {f"L{i}_softmax_rm_step" for i in range(2)} <= names
    x = sample_inputs(cascade, 0)
    assert _rel_err(interpret(cascade, x)["logits"], interpret(out, x)["logits"]) <= 1e-5


def test_attention_1pass_rejects_a_tile_that_does_not_divide_the_keys():
    with pytest.raises(InputError, match="tile 3 does not divide the key rank"):
        run_pipeline(attention(2, 8, 4, 4), "attention-1pass{tile=3}")


def test_attention_1pass_leaves_other_cascades_unchanged():
    b = CascadeBuilder("sm")
    x = b.tensor("X", (3, 5), role=Role.INPUT)
    b.set_role(b.softmax("S", x), Role.OUTPUT)  # softmax without an AV consumer
    cascade = b.build()
    out, _ = run_pipeline(cascade, "attention-1pass")
    assert out == cascade


# -- pass counting -----------------------------------------------------------------------------

TWO_PASS = """\
cascade attn2 {
  input Q: f32[P=4,E=2]
  input K: f32[M=8,E=2]
  input V: f32[M=8,F=3]
  tensor QK: f32[P=4,M=8]
  tensor GM: f32[P=4]
  tensor SN: f32[P=4,M=8]
  tensor SD: f32[P=4]
  tensor SNV: f32[P=4,F=3]
  output AV: f32[P=4,F=3]
  qk: QK[p,m] = sum[e:2] Q[p,e] * K[m,e]
  gm: GM[p] = max[m:8] QK[p,m]
  sn: SN[p,m] = exp(QK[p,m] - GM[p])
  sd: SD[p] = sum[m:8] SN[p,m]
  snv: SNV[p,f] = sum[m:8] SN[p,m] * V[m,f]
  av: AV[p,f] = SNV[p,f] / SD[p]
}
"""


def test_softmax_cascades_need_three_two_and_one_pass_over_the_key_rank():
    three = attention(6, 8, 4, 5)
    two = parse_cascade(TWO_PASS)
    one, _ = run_pipeline(three, "attention-1pass{tile=4}")
    assert [count_passes(c, "M").passes for c in (three, two, one)] == [3, 2, 1]
    assert count_passes(three, "P").passes == 1  # the query rank is never revisited
    passes = dict(count_passes(three, "M").einsum_pass)
    assert passes == {"QK": 1, "SM_max": 1, "SM_exp": 2, "SM_sum": 2, "SM_div": 3, "AV": 3}


def test_crossing_fibres_grow_with_sequence_and_spill_past_the_buffer():
    short, long = (count_passes(attention(4, m, 4, 4), "M") for m in (64, 4096))
    assert [c.tensor for c in short.crossing] == ["QK", "SM_exp"]
    assert (short.fiber_bytes, long.fiber_bytes) == (2 * 64 * 4, 2 * 4096 * 4)
    buffer_bytes = 16 * 1024
    assert short.spill_bytes(buffer_bytes) == 0
    # QK and SM_exp: written once, read once more: 2 round trips of 4 x 4096 x 4 bytes each
    assert long.spill_bytes(buffer_bytes) == 2 * 2 * 4 * 4096 * 4
    one, _ = run_pipeline(attention(4, 4096, 4, 4), "attention-1pass")
    assert count_passes(one, "M").spill_bytes(0) == 0


def test_rank_passes_cli_reports_passes_and_spill(tmp_path):
    from codesign.cli.main import main

    model = tmp_path / "attn2.ein"
    model.write_text(TWO_PASS)
    out = tmp_path / "passes.json"
    assert main(["rank-passes", str(model), "--rank", "M", "--buffer-bytes", "8",
                 "--json", str(out)]) == 0  # fmt: skip
    import json

    (row,) = json.loads(out.read_text())["ranks"]
    # QK (pass 1 -> 2) and SN (2 -> 2 is the same pass: not crossing); fibre of 8 f32 = 32 B
    assert (row["rank"], row["passes"], row["crossing"]) == ("M", 2, ["QK"])
    assert row["spill_bytes"] == 2 * 4 * 8 * 4
    assert main(["rank-passes", str(model), "--rank", "Z"]) == 2


def test_attention_1pass_on_an_onnx_attention(tmp_path):
    torch = pytest.importorskip("torch")
    from codesign.frontends.onnx import load_onnx

    class Attention(torch.nn.Module):
        def forward(self, q, k, v):
            return torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1) @ v

    path = tmp_path / "attention.onnx"
    shapes = ((2, 3, 8, 16), (2, 3, 12, 16), (2, 3, 12, 5))
    torch.onnx.export(Attention(), tuple(torch.randn(*s) for s in shapes), str(path),
                      input_names=["q", "k", "v"], dynamo=False)  # fmt: skip
    cascade = load_onnx(str(path))
    out, _ = run_pipeline(cascade, "attention-1pass{tile=4}")
    verify(out)
    assert any(e.name.endswith("rm_step") for e in out.einsums)
    x = sample_inputs(cascade, 0)
    (name,) = interpret(cascade, x)
    assert _rel_err(interpret(cascade, x)[name], interpret(out, x)[name]) <= 1e-5
