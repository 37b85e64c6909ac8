"""Timeloop-style problem: a perfectly nested loop of MACs over named dims and affine tensors.

This is the mapper's own view of one Einsum; it does not depend on the IR. Each tensor dimension
is an affine sum of loop dims (``2*p + 1*r`` for a strided convolution window), so the footprint
of a tile is the product over tensor dims of ``1 + sum(coef * (extent - 1))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from codesign.hwmodels.arch import TensorRole

Projection = tuple[tuple[tuple[str, int], ...], ...]

# Timeloop's dataspace names for the three operands of a MAC (conv2D's Weights/Inputs/Outputs):
# mappings and constraints may name a problem's tensors this way, whatever the tensors are called.
TIMELOOP_DATASPACES = {
    "weights": TensorRole.WEIGHT,
    "inputs": TensorRole.INPUT,
    "outputs": TensorRole.OUTPUT,
}


@dataclass(frozen=True, slots=True)
class ProblemTensor:
    """A tensor of the problem.

    ``projection`` has one entry per tensor dimension: the (loop-dim, coefficient) terms of its
    affine index, e.g. a conv input's H index ``2*p + 1*r`` is ``(("p", 2), ("r", 1))``.
    """

    name: str
    projection: Projection
    is_output: bool
    bits: int
    role: TensorRole

    def dims(self) -> frozenset[str]:
        """Loop dims this tensor's index depends on (its *relevant* dims)."""
        return frozenset(dim for terms in self.projection for dim, _ in terms)

    def footprint(self, extents: dict[str, int]) -> int:
        """Elements touched by a tile whose loop dims span ``extents`` (missing dims span 1)."""
        size = 1
        for terms in self.projection:
            size *= 1 + sum(coef * (extents.get(dim, 1) - 1) for dim, coef in terms)
        return size


@dataclass(frozen=True, slots=True)
class Problem:
    """Loop dims with bounds, and the tensors read and written by one MAC per iteration point.

    Invariants: dim names are unique; every tensor dim refers to declared dims; exactly one tensor
    is the output (it is reduced over the dims it does not index).
    """

    name: str
    dims: tuple[tuple[str, int], ...]
    tensors: tuple[ProblemTensor, ...]
    ops_per_point: int = 1

    def __post_init__(self) -> None:
        names = [dim for dim, _ in self.dims]
        if len(set(names)) != len(names):
            raise ValueError(f"problem {self.name}: duplicate dims {names}")
        if any(bound < 1 for _, bound in self.dims):
            raise ValueError(f"problem {self.name}: dim bounds must be >= 1: {self.dims}")
        for tensor in self.tensors:
            unknown = tensor.dims() - set(names)
            if unknown:
                raise ValueError(f"problem {self.name}: tensor {tensor.name} uses {unknown}")
        if sum(tensor.is_output for tensor in self.tensors) != 1:
            raise ValueError(f"problem {self.name}: exactly one output tensor required")

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(dim for dim, _ in self.dims)

    @property
    def bounds(self) -> tuple[int, ...]:
        return tuple(bound for _, bound in self.dims)

    def bound(self, dim: str) -> int:
        return dict(self.dims)[dim]

    @property
    def macs(self) -> int:
        """Iteration points, i.e. multiply-accumulates."""
        return math.prod(self.bounds)

    @property
    def output(self) -> ProblemTensor:
        return next(tensor for tensor in self.tensors if tensor.is_output)

    def tensor(self, name: str) -> ProblemTensor:
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise KeyError(name)

    def resolve(self, name: str) -> ProblemTensor | None:
        """The tensor a mapping or constraint means by ``name``: the tensor of that name, else
        the one whose role a Timeloop dataspace name (Weights, Inputs, Outputs; any case) names,
        if exactly one tensor has it; None when nothing matches."""
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        role = TIMELOOP_DATASPACES.get(name.lower())
        matches = [tensor for tensor in self.tensors if tensor.role is role]
        return matches[0] if role is not None and len(matches) == 1 else None

    def canonical_names(self, names: frozenset[str]) -> frozenset[str]:
        """``names`` with Timeloop aliases replaced by tensor names (unknown names kept)."""
        resolved = {name: self.resolve(name) for name in names}
        return frozenset(name if t is None else t.name for name, t in resolved.items())

    def tensor_size(self, tensor: ProblemTensor) -> int:
        """Elements of the whole tensor (the footprint of the full iteration space)."""
        return tensor.footprint(dict(self.dims))

    @staticmethod
    def gemm(m: int, n: int, k: int, bits: int = 8, name: str = "gemm") -> Problem:
        """Z[m, n] += A[m, k] * B[k, n]; A is the input, B the weight."""
        return Problem(
            name=name,
            dims=(("m", m), ("n", n), ("k", k)),
            tensors=(
                ProblemTensor("A", ((("m", 1),), (("k", 1),)), False, bits, TensorRole.INPUT),
                ProblemTensor("B", ((("k", 1),), (("n", 1),)), False, bits, TensorRole.WEIGHT),
                ProblemTensor("Z", ((("m", 1),), (("n", 1),)), True, bits, TensorRole.OUTPUT),
            ),
        )

    @staticmethod
    def conv(
        n: int,
        c: int,
        k: int,
        p: int,
        q: int,
        r: int,
        s: int,
        stride: int = 1,
        dilation: int = 1,
        bits: int = 8,
        name: str = "conv",
    ) -> Problem:
        """Timeloop's conv2D: Outputs[n,m,p,q] += Weights[m,c,r,s] * Inputs[n,c,h,w].

        ``k`` output channels become loop dim ``m`` (Timeloop's name); the input index is
        ``h = stride*p + dilation*r`` (padding is folded into P and Q, as Timeloop does), so the
        input tensor spans ``(p-1)*stride + (r-1)*dilation + 1`` rows.
        """
        return Problem(
            name=name,
            dims=(("n", n), ("m", k), ("c", c), ("p", p), ("q", q), ("r", r), ("s", s)),
            tensors=(
                ProblemTensor(
                    "Weights",
                    ((("m", 1),), (("c", 1),), (("r", 1),), (("s", 1),)),
                    False,
                    bits,
                    TensorRole.WEIGHT,
                ),
                ProblemTensor(
                    "Inputs",
                    (
                        (("n", 1),),
                        (("c", 1),),
                        (("p", stride), ("r", dilation)),
                        (("q", stride), ("s", dilation)),
                    ),
                    False,
                    bits,
                    TensorRole.INPUT,
                ),
                ProblemTensor(
                    "Outputs",
                    ((("n", 1),), (("m", 1),), (("p", 1),), (("q", 1),)),
                    True,
                    bits,
                    TensorRole.OUTPUT,
                ),
            ),
        )
