"""Consistent dtypes on the bit-serial and LUT tensor-core families (issue 11, item 5): a non-MAC
Einsum moves an activation at the width the MAC Einsum next to it wrote or reads it at."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from codesign.frontends.onnx import load_onnx
from codesign.hwmodels.bitserial import load_bitserial
from codesign.hwmodels.registry import load_hardware
from codesign.mapper.from_ir import problem_from_einsum
from codesign.sim.bitserial import BitSerialModel
from codesign.sim.cost import Cost
from codesign.sim.lut_tc import TensorCoreModel

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT / "examples" / "models" / "cnn.onnx"


def _moved(cost: Cost, tensor: str) -> tuple[float, float]:
    """(reads, fills) of `tensor` at the backing store (units of the family: bits or bytes)."""
    (level,) = [lv for lv in cost.levels if lv.name == "DRAM"]
    (action,) = [a for a in level.tensors if a.tensor == tensor]
    return action.reads, action.fills


def _conv_and_bias(model, hw):  # noqa: ANN001, ANN202 - either family
    cascade = load_onnx(str(CNN))
    conv = cascade.einsum("node_Conv_137")
    bias = cascade.consumers(conv.output.tensor)[0]
    assert problem_from_einsum(bias, cascade) is None  # the bias add is a non-MAC Einsum
    priced = [model.evaluate_einsum(e, problem_from_einsum(e, cascade), cascade, hw)
              for e in (conv, bias)]  # fmt: skip
    return conv.output.tensor, priced


@pytest.mark.parametrize("activation_bits", [16, 8])
def test_bitserial_vector_traffic_is_at_the_arrays_activation_width(activation_bits):
    hw = load_bitserial(ROOT / "examples" / "hw" / "stripes_like.yaml")
    hw = dataclasses.replace(hw, vector_dram_traffic=True, activation_bits=activation_bits)
    tensor, (conv, bias) = _conv_and_bias(BitSerialModel(), hw)
    written = _moved(conv, tensor)[1]
    read = _moved(bias, tensor)[0]
    assert read == pytest.approx(written)  # the f32 IR tensor is stored at the array's width
    assert read == 16 * 32 * 32 * activation_bits


def test_bitserial_without_a_design_activation_width_keeps_the_ir_dtype():
    hw = load_bitserial(ROOT / "examples" / "hw" / "stripes_like.yaml")
    hw = dataclasses.replace(hw, vector_dram_traffic=True, activation_bits=None)
    tensor, (conv, bias) = _conv_and_bias(BitSerialModel(), hw)
    assert _moved(bias, tensor)[0] == pytest.approx(_moved(conv, tensor)[1]) == 16 * 32 * 32 * 32


def test_lut_tensor_core_vector_traffic_matches_the_gemm_it_follows():
    hw = load_hardware(ROOT / "examples" / "hw" / "lut_tc.yaml")
    tensor, (conv, bias) = _conv_and_bias(TensorCoreModel(), hw)
    # the MMA/LUT kernel writes its result at the IR width, the epilogue reads it at the same
    assert _moved(bias, tensor)[0] == pytest.approx(_moved(conv, tensor)[1])
