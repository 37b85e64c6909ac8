"""`codesign.frontends.torch.load_torch`: nn.Module -> ONNX export -> Cascade."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from codesign.errors import InputError
from codesign.ir import interpret, verify
from codesign.ir.cascade import Role

HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "onnxscript"))
NEEDS_TORCH = pytest.mark.skipif(not HAS_TORCH, reason="needs torch (pip install codesign[torch])")

if HAS_TORCH:
    import torch
    from torch import nn

    class ConvNet(nn.Module):
        """Conv + BatchNorm (eval: folded by the exporter) + residual + pooling + Linear."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.skip = nn.Conv2d(3, 8, 1)
            self.fc = nn.Linear(8, 5)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.bn(self.conv(image)) + self.skip(image))
            return self.fc(y.mean(dim=(2, 3)))

    class TwoInputs(nn.Module):
        """Attention-like scores with a LayerNorm: two named inputs, a softmax, GELU."""

        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(16)
            self.proj = nn.Linear(16, 16)

        def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
            scores = torch.softmax(self.proj(self.norm(query)) @ keys.transpose(-1, -2), dim=-1)
            return nn.functional.gelu(scores @ keys)

    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else -x

    class CumulativeSum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1)


def _seeded_convnet() -> nn.Module:
    torch.manual_seed(0)
    module = ConvNet()
    with torch.no_grad():  # non-trivial running statistics, so BN is not an identity
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    return module.eval()


def _assert_matches_torch(module: nn.Module, cascade, args: tuple) -> None:
    feeds = {t.name: a.numpy() for t, a in zip(cascade.inputs, args, strict=True)}
    (got,) = interpret(cascade, feeds).values()
    with torch.no_grad():
        want = module(*args).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@NEEDS_TORCH
def test_load_torch_cascade_computes_what_the_module_computes() -> None:
    module = _seeded_convnet()
    image = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    cascade = load_torch_checked(module, (image,))
    _assert_matches_torch(module, cascade, (image,))


@NEEDS_TORCH
def test_load_torch_inputs_keep_forward_parameter_names_and_shapes() -> None:
    torch.manual_seed(0)
    module = TwoInputs().eval()
    args = (torch.randn(1, 4, 16), torch.randn(1, 6, 16))
    cascade = load_torch_checked(module, args)
    assert [(t.name, t.shape) for t in cascade.inputs] == [
        ("query", (1, 4, 16)),
        ("keys", (1, 6, 16)),
    ]
    assert [t.shape for t in cascade.outputs] == [(1, 4, 16)]
    _assert_matches_torch(module, cascade, args)


@NEEDS_TORCH
def test_load_torch_names_cascade_after_module_class_unless_named() -> None:
    from codesign.frontends.torch import load_torch

    module = nn.Sequential(nn.Linear(4, 2), nn.ReLU()).eval()
    x = torch.zeros(1, 4)
    assert load_torch(module, x).name == "Sequential"  # a bare tensor is one input
    assert load_torch(module, (x,), name="my net/v2").name == "my_net_v2"


@NEEDS_TORCH
def test_load_torch_weights_carry_module_parameters() -> None:
    torch.manual_seed(0)
    module = nn.Linear(7, 3).eval()
    cascade = load_torch_checked(module, (torch.randn(4, 7),))
    weights = {t.shape: t.data for t in cascade.with_role(Role.WEIGHT)}
    stored = weights.get((7, 3), weights.get((3, 7)))
    assert stored is not None, f"no 7x3 weight among {list(weights)}"
    expected = module.weight.detach().numpy()
    np.testing.assert_array_equal(stored if stored.shape == (3, 7) else stored.T, expected)


@NEEDS_TORCH
def test_untraceable_module_gives_one_line_input_error_naming_it() -> None:
    from codesign.frontends.torch import load_torch

    with pytest.raises(InputError) as err:
        load_torch(DataDependent(), (torch.randn(2, 3),))
    message = str(err.value)
    assert message.startswith("DataDependent: torch.onnx.export failed:")
    assert "\n" not in message and "\x1b" not in message


@NEEDS_TORCH
def test_unsupported_op_error_names_module_op_and_node() -> None:
    from codesign.frontends.torch import load_torch

    with pytest.raises(InputError) as err:
        load_torch(CumulativeSum(), (torch.randn(2, 3),))
    message = str(err.value)
    assert message.startswith("CumulativeSum (exported):")
    assert "CumSum" in message and "\n" not in message


def test_missing_torch_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from codesign.frontends import torch as torch_frontend

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(
        InputError, match=r"^PyTorch frontend needs torch: pip install 'codesign\[torch\]'$"
    ):
        torch_frontend.load_torch(object(), ())


def load_torch_checked(module, args):
    """load_torch, then the verifier (every frontend result must verify)."""
    from codesign.frontends.torch import load_torch

    cascade = load_torch(module, args)
    verify(cascade)
    return cascade
