"""Every model of the onnx package's light zoo (AlexNet, DenseNet-121, Inception v1/v2,
ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512; opset 9) imports, verifies, and its
interpretation on a seeded random input matches onnxruntime.

The shipped models carry placeholder weights: every weight is a ``ConstantOfShape`` (mostly
0.02), so all channels of a layer hold the same value and the logits are all equal (each class
gets 0.001).  Two consequences, handled here:

* constant weights cannot expose a wrong channel or kernel order, so each model is also checked
  with its placeholders replaced by seeded random weights (He-scaled; positive BN variances);
* with constant weights SqueezeNet's logits reach ~7e9, where one float32 ulp is 512: the logits
  agree to ~1e-7 relative, but a softmax of values that differ only by rounding noise is
  decided by the noise (onnxruntime happens to round all 1000 identically and gets exactly
  0.001; any other summation order gets 0 or 1/968).  Where the logits' ulp exceeds 1e-4 the
  softmax is ill-conditioned and only its logits (its input) are compared, plus the output being
  a distribution.

Tolerance: rtol 1e-4 and atol 1e-5 x max |reference| (float32 sums of ~1e4 terms in another
order).  BLAS runs single-threaded while this module runs: on a loaded 2-core machine OpenBLAS
threads contend and small matmuls slow down ~50x (the results are the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from codesign.frontends.onnx import import_onnx
from codesign.ir import interpret, verify

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the reference for the zoo")

ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = sorted(ZOO.glob("light_*.onnx"))


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only a speed matter
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_zoo_ships_the_nine_light_models():
    names = {p.stem.removeprefix("light_") for p in MODELS}
    assert names == {
        "bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
        "squeezenet", "vgg19", "zfnet512",
    }  # fmt: skip


def _logits(model: onnx.ModelProto) -> str | None:
    """The input of the Softmax that produces a graph output, if there is one."""
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type == "Softmax" and node.output[0] in outputs:
            return node.input[0]
    return None


def _onnxruntime(model: onnx.ModelProto, feeds: dict, extra: list[str]) -> dict[str, np.ndarray]:
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in extra:
        probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the zoo has unused initializers ORT warns about
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def _close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert ours.shape == ref.shape, what
    atol = 1e-5 * float(np.abs(ref).max())
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=atol, err_msg=what)


def check_matches_onnxruntime(model: onnx.ModelProto, seed: int = 0) -> None:
    imported = import_onnx(model)
    cascade = imported.cascade
    verify(cascade)
    initializers = {t.name for t in model.graph.initializer}
    data = next(v for v in model.graph.input if v.name not in initializers)
    x = np.random.default_rng(seed).standard_normal(cascade.inputs[0].shape).astype(np.float32)
    env = interpret(cascade, {cascade.inputs[0].name: x}, keep_intermediates=True)
    logits = _logits(model)
    reference = _onnxruntime(model, {data.name: x}, [logits] if logits else [])
    if logits is not None:
        _close(env[imported.tensor_names[logits]], reference[logits], f"logits {logits}")
    for out in model.graph.output:
        ours, ref = env[imported.tensor_names[out.name]], reference[out.name]
        ill_conditioned = (
            logits is not None
            and np.spacing(np.abs(reference[logits]).max().astype(np.float32)) > 1e-4
        )
        if ill_conditioned:
            assert ours.shape == ref.shape
            assert np.all(ours >= 0) and abs(float(ours.sum()) - 1.0) < 1e-4
        else:
            _close(ours, ref, out.name)


_MAX_RANDOM = 4_000_000


def randomize_placeholders(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """The model with each ``ConstantOfShape`` weight replaced by a seeded random initializer:
    He-normal for Conv/Gemm weights, U(0.5, 1.5) for BN scales/variances and Mul factors,
    N(0, 0.1) for biases, means and the rest.  Tensors over `_MAX_RANDOM` elements (the
    fully-connected layers of VGG/AlexNet/ZFNet, up to 103M) keep their placeholder: generating
    and serialising them would dominate the test time, and the convolutions feeding them are
    what constant weights cannot check."""
    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    users: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            users.setdefault(name, (node, k))
    kept, added = [], []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits:
            kept.append(node)
            continue
        shape = tuple(int(n) for n in inits[node.input[0]])
        if np.prod(shape) > _MAX_RANDOM:
            kept.append(node)
            continue
        user, k = users.get(node.output[0], (None, -1))
        op = user.op_type if user is not None else ""
        if op in ("Conv", "Gemm") and k == 1:
            trans_b = any(a.name == "transB" and a.i for a in user.attribute)  # type: ignore[union-attr]
            fan_in = int(np.prod(shape[1:])) if op == "Conv" or trans_b else shape[0]
            value = rng.standard_normal(shape, np.float32) * np.sqrt(2.0 / fan_in)
        elif (op == "BatchNormalization" and k in (1, 4)) or op == "Mul":
            value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            value = rng.standard_normal(shape, np.float32) * 0.1
        added.append(numpy_helper.from_array(value.astype(np.float32), node.output[0]))
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(added)
    return out


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_zoo_model_matches_onnxruntime(path: Path):
    check_matches_onnxruntime(onnx.load(str(path)))


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_zoo_model_with_random_weights_matches_onnxruntime(path: Path):
    check_matches_onnxruntime(randomize_placeholders(onnx.load(str(path))), seed=1)


def test_squeezenet_softmax_is_ill_conditioned_with_placeholder_weights():
    """Documents why the module compares SqueezeNet's logits rather than its softmax."""
    model = onnx.load(str(ZOO / "light_squeezenet.onnx"))
    logits = _logits(model)
    assert logits is not None
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = _onnxruntime(model, {"data_0": x}, [logits])[logits]
    assert np.spacing(np.abs(ref).max().astype(np.float32)) >= 256.0
