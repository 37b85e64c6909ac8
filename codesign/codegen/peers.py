"""Peer runtimes timed on the same model file and inputs as the TVM build: onnxruntime and
torch eager.  Registry `PEERS`, keyed by name; each entry times one whole-model inference.

* ``onnxruntime`` — an ``InferenceSession`` on the CPU execution provider, default options
  (its graph optimisations and MLAS kernels, all cores).
* ``torch`` — the ONNX graph run node by node with torch's eager ATen operators (what an
  ``nn.Module.forward`` does: one dispatched kernel per operator, no graph compiler), under
  ``torch.inference_mode``.  Only the operators in `TORCH_OPS` are known; a model with another
  operator gets no torch time, with the operator named.

Times are medians of `repeat` runs after one warm-up run, in seconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class PeerTime:
    """One peer's whole-model time (`median_s` None when it could not run, `note` says why)."""

    peer: str
    median_s: float | None
    runs_s: tuple[float, ...]
    note: str = ""


def graph_input_value(inputs: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    """The value given for ONNX graph input `name`: under its own name, or under the name the
    ONNX frontend gave its tensor (``gpu_0/data_0`` -> ``gpu_0_data_0``); None when neither."""
    from codesign.ir.builder import sanitize  # noqa: PLC0415

    value = inputs.get(name)
    return inputs.get(sanitize(name)) if value is None else value


def _median_runs(fn: Callable[[], object], repeat: int) -> tuple[float, ...]:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return tuple(runs)


def time_onnxruntime(
    model: Path, inputs: Mapping[str, np.ndarray], repeat: int, threads: int | None = None
) -> PeerTime:
    """onnxruntime's CPU provider on `model`; `threads` intra-op threads (None: its default)."""
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError:
        return PeerTime("onnxruntime", None, (), "onnxruntime not installed")
    session_options = ort.SessionOptions()
    if threads is not None:
        session_options.intra_op_num_threads = threads
    # idle workers sleep: a spinning one holds a core into the next contender's runs
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model), session_options, providers=["CPUExecutionProvider"])
    # an old-style graph lists its initializers among its inputs: those keep their values
    given = {i.name: graph_input_value(inputs, i.name) for i in session.get_inputs()}
    feeds = {name: value for name, value in given.items() if value is not None}
    try:
        runs = _median_runs(lambda: session.run(None, feeds), repeat)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types: report, do not fail
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PeerTime("onnxruntime", None, (), f"onnxruntime failed: {first[:160]}")
    return PeerTime("onnxruntime", statistics.median(runs), runs)


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx  # noqa: PLC0415

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _gemm(torch: Any, node: Any, a: Any, b: Any, c: Any = None) -> Any:
    if _attr(node, "transA", 0):
        a = a.t()
    if _attr(node, "transB", 0):
        b = b.t()
    alpha, beta = _attr(node, "alpha", 1.0), _attr(node, "beta", 1.0)
    y = a @ b if alpha == 1.0 else alpha * (a @ b)
    return y if c is None else y + (c if beta == 1.0 else beta * c)


def _conv(torch: Any, node: Any, x: Any, w: Any, b: Any = None) -> Any:
    pads = list(_attr(node, "pads", [0, 0, 0, 0]))
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise NotImplementedError("Conv with asymmetric pads")
    return torch.nn.functional.conv2d(
        x, w, b, stride=list(_attr(node, "strides", [1, 1])), padding=pads[:half],
        dilation=list(_attr(node, "dilations", [1, 1])), groups=_attr(node, "group", 1),
    )  # fmt: skip


def _reduce_mean(torch: Any, node: Any, x: Any, axes: Any = None) -> Any:
    dims = _attr(node, "axes", None) if axes is None else axes.tolist()
    keep = bool(_attr(node, "keepdims", 1))
    return x.mean(dim=list(dims), keepdim=keep) if dims else x.mean()


def _reshape(torch: Any, node: Any, x: Any, shape: Any) -> Any:
    target = [int(s) if s != 0 else x.shape[k] for k, s in enumerate(shape.tolist())]
    return x.reshape(target)


def _layer_norm(torch: Any, node: Any, x: Any, scale: Any, bias: Any = None) -> Any:
    axis = _attr(node, "axis", -1)
    axis = axis if axis >= 0 else x.dim() + axis
    shape = list(x.shape[axis:])
    eps = _attr(node, "epsilon", 1e-5)
    return torch.nn.functional.layer_norm(x, shape, scale, bias, eps)


def _flatten(torch: Any, node: Any, x: Any) -> Any:
    axis = _attr(node, "axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


# ONNX operator -> torch eager implementation (torch module, node, *inputs)
TORCH_OPS: dict[str, Callable[..., Any]] = {
    "Gemm": _gemm,
    "MatMul": lambda t, n, a, b: a @ b,
    "Conv": _conv,
    "Relu": lambda t, n, x: t.relu(x),
    "Sigmoid": lambda t, n, x: t.sigmoid(x),
    "Tanh": lambda t, n, x: t.tanh(x),
    "Erf": lambda t, n, x: t.erf(x),
    "Add": lambda t, n, a, b: a + b,
    "Sub": lambda t, n, a, b: a - b,
    "Mul": lambda t, n, a, b: a * b,
    "Div": lambda t, n, a, b: a / b,
    "Softmax": lambda t, n, x: t.softmax(x, dim=_attr(n, "axis", -1)),
    "ReduceMean": _reduce_mean,
    "GlobalAveragePool": lambda t, n, x: x.mean(dim=(2, 3), keepdim=True),
    "MaxPool": lambda t, n, x: t.nn.functional.max_pool2d(
        x,
        list(_attr(n, "kernel_shape", [1, 1])),
        list(_attr(n, "strides", [1, 1])),
        list(_attr(n, "pads", [0, 0, 0, 0]))[:2],
    ),  # fmt: skip
    "LayerNormalization": _layer_norm,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": lambda t, n, x: x.permute(*_attr(n, "perm", list(range(x.dim()))[::-1])),
    "Identity": lambda t, n, x: x,
}


def torch_forward(model: Path, inputs: Mapping[str, np.ndarray]) -> Callable[[], list[Any]]:
    """A closure running the ONNX graph of `model` on `inputs` with torch eager operators
    (returns torch tensors, in graph-output order).  NotImplementedError names an operator
    without a rule in `TORCH_OPS`."""
    import onnx  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    graph = onnx.load(str(model)).graph
    missing = sorted({n.op_type for n in graph.node} - set(TORCH_OPS))
    if missing:
        raise NotImplementedError(f"no torch eager rule for ONNX {', '.join(missing)}")
    consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    initial = {t.name for t in graph.initializer}
    feeds = {}
    for value in graph.input:
        given = graph_input_value(inputs, value.name)
        if given is not None:
            feeds[value.name] = torch.from_numpy(np.ascontiguousarray(given))
        elif value.name not in initial:
            raise NotImplementedError(f"no value for graph input {value.name!r}")
    outputs = [o.name for o in graph.output]

    def forward() -> list[Any]:
        env = {**consts, **feeds}
        with torch.inference_mode():
            for node in graph.node:
                args = [env[name] if name else None for name in node.input]
                env[node.output[0]] = TORCH_OPS[node.op_type](torch, node, *args)
        return [env[name] for name in outputs]

    return forward


def time_torch(
    model: Path, inputs: Mapping[str, np.ndarray], repeat: int, threads: int | None = None
) -> PeerTime:
    """torch eager (`torch_forward`); `threads` intra-op threads while timing (None: torch's
    current setting), restored afterwards."""
    try:
        import torch  # noqa: PLC0415

        before = torch.get_num_threads()
        forward = torch_forward(model, inputs)
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            runs = _median_runs(forward, repeat)
        finally:
            torch.set_num_threads(before)
    except ImportError:
        return PeerTime("torch", None, (), "torch or onnx not installed")
    except NotImplementedError as exc:
        return PeerTime("torch", None, (), str(exc))
    return PeerTime("torch", statistics.median(runs), runs)


PeerFn = Callable[[Path, Mapping[str, np.ndarray], int, int | None], PeerTime]
PEERS: dict[str, PeerFn] = {"onnxruntime": time_onnxruntime, "torch": time_torch}
