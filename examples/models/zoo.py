"""Torch definitions of the bundled example models (randomly initialised, seeded).

These are examples, not library code: `generate.py` builds each one and exports it to ONNX.
The CNNs are written out here (torchvision is not a dependency) and follow torchvision's
`resnet18` / `resnet50` layer for layer: 7x7/2 stem, 3x3/2 max-pool, four stages of
BasicBlock [2, 2, 2, 2] or Bottleneck [3, 4, 6, 3] with the stride on the 3x3 convolution
(ResNet v1.5), 1x1 projection shortcuts, global average pool, 1000-way classifier.

Every builder returns ``(module_in_eval_mode, example_inputs)`` with fixed shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


# -- MLP ---------------------------------------------------------------------------------------
class MLP(nn.Module):
    """Three Linear layers with ReLU between them (an MNIST-sized classifier)."""

    def __init__(self, sizes: tuple[int, ...] = (784, 256, 128, 10)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if k < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# -- ResNet building blocks (shared by the small CNN and the ResNets) --------------------------
def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd kernels) followed by BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = conv_bn(c_in, width, 3, stride)
        self.conv2 = conv_bn(width, c_out, 3)
        self.shortcut = conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.conv1(x))
        return self.relu(self.conv2(y) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, and a residual connection (ResNet-50+)."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = conv_bn(c_in, width, 1)
        self.conv2 = conv_bn(width, width, 3, stride)
        self.conv3 = conv_bn(width, c_out, 1)
        self.shortcut = conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        y = self.relu(self.conv1(x))
        y = self.relu(self.conv2(y))
        return self.relu(self.conv3(y) + identity)


Block = type[BasicBlock] | type[Bottleneck]


def _stage(block: Block, c_in: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [block(c_in, width, stride)]
    layers += [block(width * block.expansion, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """A CIFAR-sized residual CNN: 3x3 stem, three stages of one BasicBlock (16/32/64 channels,
    the last two strided), global average pool, linear classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 3), nn.ReLU())
        self.stages = nn.Sequential(
            _stage(BasicBlock, 16, 16, 1, 1),
            _stage(BasicBlock, 16, 32, 1, 2),
            _stage(BasicBlock, 32, 64, 1, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(y, 1))


class ResNet(nn.Module):
    """torchvision's ResNet (v1.5) for a given block type and blocks per stage."""

    def __init__(self, block: Block, layers: tuple[int, int, int, int], classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)
        )
        stages: list[nn.Module] = []
        c_in = 64
        for k, (width, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stages.append(_stage(block, c_in, width, blocks, 1 if k == 0 else 2))
            c_in = width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(y, 1))


def randomize_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters, so the
    exported eval-mode BN is not an identity and a wrong lowering shows up in the outputs."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                m.weight.copy_(0.5 + 0.5 * torch.rand(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))


# -- BERT-style encoder block --------------------------------------------------------------------
class SelfAttention(nn.Module):
    """Multi-head self-attention written out (Q/K/V projections, scaled scores, softmax, output
    projection) so the export is plain MatMul/Softmax; `bias` is added to the scores."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if bias is not None:
            scores = scores + bias
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(context.transpose(1, 2).reshape(b, s, h))


class EncoderBlock(nn.Module):
    """A post-LayerNorm BERT encoder layer: x = LN(x + MHA(x)); x = LN(x + W2 GELU(W1 x))."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.attention = SelfAttention(hidden, heads)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.gelu = nn.GELU()
        self.output = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attention_norm(x + self.attention(x, bias))
        return self.output_norm(x + self.output(self.gelu(self.intermediate(x))))


# -- the catalogue -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ZooModel:
    """A bundled model: how to build it and what to call its ONNX inputs and outputs."""

    name: str
    build: Callable[[torch.Generator], tuple[nn.Module, tuple[torch.Tensor, ...]]]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    description: str


def _seeded(module_fn: Callable[[], nn.Module], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return module_fn()


def build_mlp(g: torch.Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return _seeded(MLP, 1).eval(), (torch.randn(8, 784, generator=g),)


def _cnn(module_fn: Callable[[], nn.Module], seed: int, g: torch.Generator, hw: int):
    module = _seeded(module_fn, seed)
    randomize_batchnorm(module, g)
    return module.eval(), (torch.randn(1, 3, hw, hw, generator=g),)


def build_cnn(g: torch.Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return _cnn(SmallCNN, 2, g, 32)


def build_resnet18(g: torch.Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return _cnn(lambda: ResNet(BasicBlock, (2, 2, 2, 2)), 3, g, 224)


def build_resnet50(g: torch.Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    return _cnn(lambda: ResNet(Bottleneck, (3, 4, 6, 3)), 4, g, 224)


def build_transformer_block(g: torch.Generator) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    module = _seeded(lambda: EncoderBlock(hidden=256, heads=4, intermediate=1024), 5)
    return module.eval(), (torch.randn(1, 64, 256, generator=g),)


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel("mlp", build_mlp, ("x",), ("logits",), "3-layer MLP 784-256-128-10, batch 8"),
        ZooModel("cnn", build_cnn, ("image",), ("logits",),
                 "residual CNN with BatchNorm, 1x3x32x32"),
        ZooModel("resnet18", build_resnet18, ("image",), ("logits",),
                 "ResNet-18 (random weights), 1x3x224x224"),
        ZooModel("resnet50", build_resnet50, ("image",), ("logits",),
                 "ResNet-50 (random weights), 1x3x224x224"),
        ZooModel("transformer_block", build_transformer_block, ("x",), ("y",),
                 "BERT encoder block: hidden 256, 4 heads, GELU MLP 1024; 1x64x256"),
    )
}  # fmt: skip
