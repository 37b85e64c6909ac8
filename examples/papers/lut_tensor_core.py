"""Reproduce LUT Tensor Core (Mo et al., ISCA 2025): Table 1 and the end-to-end speedup.

* Table 1 (28 nm, 1.41 GHz normalisation): peak, compute density (``peak / (TC area per SM x
  108 SMs)``) and energy efficiency of the A100 FP16 tensor core (``examples/hw/a100_fp16.yaml``)
  and of A100-LUT-4X / -8X (``examples/hw/lut_tc.yaml`` with 16 / 32 M2N64K4 units per SM at
  W2A8).  The LUT area/power model is fitted to the 4X synthesis point only, so the 8X row is a
  prediction; the FP16 row is the published point itself.
* Derived: density and energy-efficiency ratios of LUT-4X over the FP16 tensor core.
* End to end: BitNet-b1.58-3B (ternary weights stored as INT2, INT8 activations) on A100-LUT-8X
  vs LLaMA-3B in FP16 on the A100, batch 1024, sequence 1 (one token per sequence, no KV cache),
  both built by `codesign.frontends.llm`; the BitNet weights are retyped here (a stand-in for
  the quantization pass): every linear weight but the LM head becomes INT2.

Prints, per published number (tests/validation/lut_tensor_core.yaml), the paper value,
codesign's value and the relative error; ``--json PATH`` writes the same rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import yaml

from codesign.api import map_model
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Workload
from codesign.hwmodels.lut_tc import TensorCoreGpu, load_tensor_core
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType

ROOT = Path(__file__).resolve().parents[2]
HW_DIR = ROOT / "examples" / "hw"
CASES = ROOT / "tests" / "validation" / "lut_tensor_core.yaml"

# OpenLLaMA-3B (openlm-research/open_llama_3b config.json), the LLaMA-3B of the paper; BitNet
# b1.58 3B (1bitLLM/bitnet_b1_58-3B config.json) has the same shapes with a 32002-token vocab.
LLAMA_3B = LLMConfig("llama-3b", 26, 3200, 8640, 32, 32, 32000, max_position=2048)
BITNET_3B = LLMConfig("bitnet-b1.58-3b", 26, 3200, 8640, 32, 32, 32002, max_position=2048)
BATCH, SEQ = 1024, 1
WEIGHT_BITS = 2  # W2A8 (ternary weights in two bits)


def lut_gpu(units_per_sm: int | None = None) -> TensorCoreGpu:
    """A100-LUT-8X from the preset, or the same design with `units_per_sm` units (4X: 16)."""
    gpu = load_tensor_core(HW_DIR / "lut_tc.yaml")
    return gpu if units_per_sm is None else dataclasses.replace(gpu, units_per_sm=units_per_sm)


def fp16_gpu() -> TensorCoreGpu:
    return load_tensor_core(HW_DIR / "a100_fp16.yaml")


def ternary_weights(cascade: Cascade) -> Cascade:
    """`cascade` with every linear weight but the LM head and embeddings stored as INT2."""
    keep = {"embed", "lm_head"}
    tensors = tuple(
        dataclasses.replace(t, dtype=DType.I2)
        if t.role is Role.WEIGHT and len(t.shape) == 2 and t.name not in keep
        and not t.name.endswith(("_norm_w", "_norm_b"))
        else t
        for t in cascade.tensors
    )  # fmt: skip
    return Cascade(cascade.name, tensors, cascade.einsums)


def end_to_end_ms() -> tuple[float, float]:
    """(LLaMA-3B FP16 on A100, BitNet-3B W2A8 on A100-LUT-8X) latency in ms."""
    workload = Workload(BATCH, SEQ)
    base = map_model(build_llm(LLAMA_3B, workload), fp16_gpu()).result
    lut = map_model(ternary_weights(build_llm(BITNET_3B, workload)), lut_gpu()).result
    return base.latency_s * 1e3, lut.latency_s * 1e3


def values() -> dict[str, float]:
    fp16, lut4, lut8 = fp16_gpu(), lut_gpu(16), lut_gpu()
    out: dict[str, float] = {}
    for key, gpu in (("fp16", fp16), ("lut4x", lut4), ("lut8x", lut8)):
        out[f"{key}/peak_tops"] = gpu.peak_ops_per_s(WEIGHT_BITS) / 1e12
        out[f"{key}/tc_area_mm2_per_sm"] = gpu.tc_area_mm2_per_sm
        out[f"{key}/density"] = gpu.compute_density_tops_per_mm2(WEIGHT_BITS)
        out[f"{key}/efficiency"] = gpu.energy_efficiency_tops_per_w(WEIGHT_BITS)
    out["ratio/density"] = out["lut4x/density"] / out["fp16/density"]
    out["ratio/efficiency"] = out["lut4x/efficiency"] / out["fp16/efficiency"]
    base_ms, lut_ms = end_to_end_ms()
    out["e2e/fp16_ms"], out["e2e/lut_ms"], out["e2e/speedup"] = base_ms, lut_ms, base_ms / lut_ms
    return out


def rows() -> list[dict]:
    """One row per validation case: id, paper value, codesign value, relative error."""
    ours = values()
    out = []
    for case in yaml.safe_load(CASES.read_text())["cases"]:
        paper = float(case["expected"]["value"])
        value = ours[case["inputs"]["quantity"]]
        out.append({
            "id": case["id"], "paper": paper, "codesign": value,
            "rel_error": (value - paper) / paper, "tolerance": case["tolerance"],
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    table = rows()
    print(f"{'case':34} {'paper':>9} {'codesign':>9} {'error':>8}")
    for row in table:
        ok = abs(row["rel_error"]) <= row["tolerance"]
        print(
            f"{row['id']:34} {row['paper']:9.3f} {row['codesign']:9.3f} "
            f"{row['rel_error']:+8.2%} {'ok' if ok else 'OUT of tolerance'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
