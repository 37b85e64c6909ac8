"""Paper reproductions (examples/papers/*.py): every published number in
tests/validation/{bitmod,lut_tensor_core}.yaml is a test at its stated tolerance.

Known gaps are strict xfails whose reasons are documented in docs/papers.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.validation import load_cases

PAPERS = Path(__file__).resolve().parents[1] / "examples" / "papers"

# BitMoD: the published cases are checked under the artifact's attention accounting, the one
# the published numbers were made with (examples/papers/bitmod.py --attention artifact); the
# real-Einsum accounting's rows (ids ending in _einsum) are not validation cases.
BITMOD_GAPS: dict[str, str] = {}
# The paper's end-to-end numbers come from Accel-Sim; codesign's kernel-by-kernel roofline at
# peak has no independent source for the ~53% GEMM efficiency they imply (docs/papers.md).
LUT_GAPS = {
    "e2e_speedup_bitnet3b_bs1024": "Accel-Sim GEMM efficiency vs roofline (docs/papers.md)",
    "e2e_fp16_ms": "Accel-Sim GEMM efficiency vs roofline (docs/papers.md)",
    "e2e_lut_ms": "Accel-Sim GEMM efficiency vs roofline (docs/papers.md)",
}


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"papers_{name}", PAPERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bitmod_rows() -> dict[str, dict]:
    return {row["id"]: row for row in _script("bitmod").rows()}


@pytest.fixture(scope="module")
def lut_rows() -> dict[str, dict]:
    return {row["id"]: row for row in _script("lut_tensor_core").rows()}


def _params(table: str, gaps: dict[str, str]) -> list:
    return [
        pytest.param(
            case,
            id=case["id"],
            marks=[pytest.mark.xfail(reason=gaps[case["id"]], strict=True)]
            if case["id"] in gaps
            else [],
        )
        for case in load_cases(table)
    ]


@pytest.mark.parametrize("case", _params("bitmod", BITMOD_GAPS))
def test_bitmod_published_number_within_tolerance(case: dict, bitmod_rows: dict) -> None:
    row = bitmod_rows[case["id"]]
    assert row["paper"] == case["expected"]["value"]
    assert abs(row["rel_error"]) <= case["tolerance"], row


@pytest.mark.parametrize("design", ["ant", "olive", "bitmod"])
def test_bitmod_real_einsums_lower_disc_energy_than_artifact_accounting(
    design: str, bitmod_rows: dict
) -> None:
    # The artifact's prefill attention (heads x the QK^T MACs, K re-read per head) inflates
    # 16-bit work common to all designs, pulling normalized energies toward 1 (docs/papers.md).
    artifact = bitmod_rows[f"disc_energy_{design}"]
    einsum = bitmod_rows[f"disc_energy_{design}_einsum"]
    assert (artifact["attention"], einsum["attention"]) == ("artifact", "einsum")
    assert einsum["codesign"] < artifact["codesign"]


def test_bitmod_artifact_prefill_qk_is_heads_times_the_real_macs() -> None:
    from codesign.frontends.llm import build_llm
    from codesign.frontends.llm_config import Workload, preset
    from codesign.ir.cascade import Cascade
    from codesign.mapper.from_ir import problem_from_einsum
    from codesign.mapper.problem import Problem

    module = _script("bitmod")
    config = preset("yi-6b")  # grouped-query: 32 heads share 4 K/V heads
    workload = Workload(1, 256)
    real = build_llm(config, workload, layers=1)
    ours = module.artifact_attention(config, workload)

    def problem(cascade: Cascade, name: str) -> Problem:
        found = problem_from_einsum(cascade.einsum(name), cascade)
        assert found is not None, name
        return found

    real_qk, art_qk = problem(real, "L0_qk_matmul"), problem(ours, "qk_matmul")
    assert art_qk.macs == config.heads * real_qk.macs
    keys = next(t for t in art_qk.tensors if t.name == "Kh")
    kv_width = config.kv_heads * config.head_dim
    assert art_qk.tensor_size(keys) == config.heads * 256 * kv_width  # K once per head


@pytest.mark.parametrize("case", _params("lut_tensor_core", LUT_GAPS))
def test_lut_tensor_core_published_number_within_tolerance(case: dict, lut_rows: dict) -> None:
    row = lut_rows[case["id"]]
    assert row["paper"] == case["expected"]["value"]
    assert abs(row["rel_error"]) <= case["tolerance"], row


def test_paper_script_prints_rows_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    module = _script("lut_tensor_core")
    out = tmp_path / "rows.json"
    assert module.main(["--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {r["id"] for r in rows} == {c["id"] for c in load_cases("lut_tensor_core")}
    assert "density_ratio" in capsys.readouterr().out
