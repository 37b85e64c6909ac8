"""A multi-stage CPU kernel (a fused group with several reductions) schedules each block as the
single-contraction schedule would: every contraction the register-blocked micro-kernel (local
accumulator, pre-packed constant weights), parallel exactly where the cost rule makes the same
block parallel as its own kernel; a block TVM refuses the micro-kernel for falls back to the
generic register tile; every build equals the reference interpreter (rtol 1e-4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

tvm = pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.codegen import group_kernels  # noqa: E402
from codesign.codegen.cpu_schedule import PREPACK_ATTR  # noqa: E402
from codesign.codegen.tvm import compile_cascade  # noqa: E402
from codesign.frontends import load_model  # noqa: E402
from codesign.ir.cascade import Cascade  # noqa: E402
from codesign.ir.inputs import sample_inputs  # noqa: E402
from codesign.ir.interpreter import interpret  # noqa: E402
from codesign.passes import parse_pipeline, run_pipeline  # noqa: E402
from tests.ir_cases import transformer_cascade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope="module")
def cnn() -> Cascade:
    return load_model(str(ROOT / "examples" / "models" / "cnn.onnx"))


@pytest.fixture(scope="module")
def fused_cnn(cnn) -> Cascade:
    return run_pipeline(cnn, parse_pipeline("fuse"))[0]


def _assert_matches_interpreter(compiled, cascade: Cascade) -> None:
    inputs = sample_inputs(cascade, seed=1)
    got = compiled.run(inputs)
    for name, ref in interpret(cascade, inputs).items():
        np.testing.assert_allclose(got[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)


def _multi(compiled) -> list:
    return [s for s in compiled.lowered.stages if s.multi_stage]


def _parallel_extents(script: str) -> list[int]:
    return sorted(int(n) for n in re.findall(r"T\.parallel\((\d+)\)", script))


def test_fused_convs_get_local_accumulators_and_prepacked_weights_and_match(fused_cnn):
    compiled = compile_cascade(fused_cnn, threads=2)
    stages = _multi(compiled)
    assert len(stages) == 2
    for stage in stages:
        func = compiled.scheduled[stage.symbol]
        script = func.script()
        convs = {e for e in stage.einsums if e.startswith("node_Conv") and "_bias" not in e}
        for conv in convs:  # each conv accumulates in registers, stored once per tile
            assert f"{conv}_local = T.sblock_alloc_buffer(" in script, conv
        packed = json.loads(str(func.attrs[PREPACK_ATTR]))
        assert packed  # the stride-2 and 1x1 convs read their weight in panels
        for entry in packed:  # the parameter itself takes the panel layout [o // t, ..., t]
            found = re.search(rf"{entry['buffer']}: T\.Buffer\(\(([\d, ]+)\)", script)
            assert found is not None, entry["buffer"]
            shape = [int(n) for n in found.group(1).split(",")]
            assert shape[-1] == entry["tile"] and len(shape) == 5
    _assert_matches_interpreter(compiled, fused_cnn)


def test_fused_blocks_are_parallel_where_their_own_kernels_are(cnn, fused_cnn):
    """Each parallel block is one fork-join: the cost rule decides per block, so the fused CNN
    has the parallel loops of the 11 separate kernels (the stem conv, the 1x1 shortcuts, the
    mean and the linear layer stay serial), and with one thread none."""
    unfused = compile_cascade(cnn, threads=2).scheduled.script()
    fused = compile_cascade(fused_cnn, threads=2)
    assert _parallel_extents(fused.scheduled.script()) == _parallel_extents(unfused)
    assert _parallel_extents(unfused)
    serial = compile_cascade(fused_cnn, threads=1)
    assert not _parallel_extents(serial.scheduled.script())


def test_a_block_refusing_the_micro_kernel_falls_back_to_the_generic_tile(fused_cnn, monkeypatch):
    def refuse(*args, **kwargs):
        raise tvm.s_tir.ScheduleError("refused")

    monkeypatch.setattr(group_kernels, "micro_kernel", refuse)
    compiled = compile_cascade(fused_cnn, threads=2)
    for stage in _multi(compiled):
        func = compiled.scheduled[stage.symbol]
        script = func.script()  # the convs keep the generic tile: no accumulator, no panels
        assert not re.search(r"node_Conv_\d+_local", script) and PREPACK_ATTR not in script
        assert "T.unroll" in script and "T.vectorized" in script
    _assert_matches_interpreter(compiled, fused_cnn)


def test_flash_attention_kernel_uses_the_micro_kernel_and_matches():
    cascade = transformer_cascade(np.random.default_rng(0))
    fused = run_pipeline(cascade, parse_pipeline("flash-attention"))[0]
    compiled = compile_cascade(fused, threads=2)
    (stage,) = _multi(compiled)
    assert 'scope="local"' in compiled.scheduled[stage.symbol].script()
    _assert_matches_interpreter(compiled, fused)
