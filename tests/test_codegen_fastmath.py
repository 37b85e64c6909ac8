"""float32 exp/erf/tanh in kernels go through TVM's vectorisable approximations
(`codesign.codegen.te_fastmath`): accurate to ~1e-7 and free of per-lane libm calls."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

pytest.importorskip("tvm", reason="apache-tvm not installed (pip install codesign[tvm])")

from codesign.codegen.te_fastmath import FAST, fast_unary  # noqa: E402
from codesign.codegen.tvm import compile_cascade, host_target  # noqa: E402
from codesign.ir import interpret  # noqa: E402
from codesign.ir.builder import CascadeBuilder, var_access  # noqa: E402
from codesign.ir.cascade import Role  # noqa: E402
from codesign.ir.dtypes import DType  # noqa: E402
from codesign.ir.expr import Unary, UnaryOp  # noqa: E402

N = 4096
REFERENCE = {"exp": np.exp, "erf": np.vectorize(math.erf), "tanh": np.tanh}


def _values() -> np.ndarray:
    grid = np.linspace(-87.0, 87.0, N // 2)
    noise = np.random.default_rng(0).standard_normal(N // 2) * 4.0
    return np.concatenate([grid, noise]).astype(np.float32)


def _kernel(name: str):  # noqa: ANN202 - a compiled TVM module
    import tvm
    from tvm import te

    a = te.placeholder((N,), "float32", name="A")
    b = te.compute((N,), lambda i: fast_unary(name, a[i]), name="B")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b]))
    (loop,) = sch.get_loops(sch.get_sblock("B"))
    sch.vectorize(sch.split(loop, [None, 16])[1])
    return tvm.compile(sch.mod, target=host_target())


@pytest.mark.parametrize("name", sorted(FAST))
def test_fast_unary_matches_float64_numpy_and_calls_no_libm(name):
    import tvm

    lib = _kernel(name)
    x = _values()
    out = tvm.runtime.tensor(np.zeros(N, np.float32), tvm.cpu(0))
    lib.mod["main"](tvm.runtime.tensor(x, tvm.cpu(0)), out)
    got, want = out.numpy().astype(np.float64), REFERENCE[name](x.astype(np.float64))
    scale = np.abs(want) if name == "exp" else 1.0  # relative for exp, absolute for the others
    assert np.max(np.abs(got - want) / scale) < 1e-6
    calls = set(re.findall(r"call [^@]*@([\w.]+)", lib.mod.inspect_source("ll")))
    assert not {c for c in calls if c.startswith(("llvm.exp", "expf", "erff", "tanhf"))}


@pytest.mark.parametrize(
    "op", [UnaryOp.EXP, UnaryOp.ERF, UnaryOp.TANH, UnaryOp.SIGMOID, UnaryOp.GELU,
           UnaryOp.GELU_TANH, UnaryOp.SILU],
)  # fmt: skip
def test_compiled_activations_equal_the_interpreter(op):
    b = CascadeBuilder("act")
    x = b.tensor("x", (8, 64), DType.F32, Role.INPUT)
    y = b.tensor("y", (8, 64), DType.F32, Role.OUTPUT)
    b.einsum("act", var_access(y, "ij"), Unary(op, var_access(x, "ij")), {"i": 8, "j": 64})
    cascade = b.build()
    values = {"x": (np.random.default_rng(1).standard_normal((8, 64)) * 3).astype(np.float32)}
    got = compile_cascade(cascade).run(values)["y"]
    np.testing.assert_allclose(got, interpret(cascade, values)["y"], rtol=1e-4, atol=1e-6)

