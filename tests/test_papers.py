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

# BitMoD's artifact prices prefill attention as heads x the real QK^T MACs and re-reads K per
# head; codesign prices the real Einsums, which lowers the shared 16-bit part of the energy and
# with it the normalized energies by ~12% (docs/papers.md, "BitMoD: attention accounting").
BITMOD_GAPS = {
    "disc_energy_ant": "artifact's prefill-attention accounting (docs/papers.md)",
    "disc_energy_olive": "artifact's prefill-attention accounting (docs/papers.md)",
    "disc_energy_bitmod": "artifact's prefill-attention accounting (docs/papers.md)",
}
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
