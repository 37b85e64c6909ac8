"""Structured channel/filter pruning: ``prune-channels{ratio=0.5}`` removes ranks.

Channels are found as *coupled groups* (as DepGraph does for PyTorch): two tensor dimensions are
coupled when one Einsum indexes both with the same plain variable — a convolution's output
channel `m` couples its weight's filter rank with the output tensor; the bias add couples that
with the bias vector; a residual add couples both branches; the next convolution's reduction
variable `c` couples its input with its weight's input-channel rank.  Removing channel k of a
group removes index k from every dimension in it, so the cascade stays consistent and smaller
(next convolution's input channels, biases, batch-norm vectors, linear layers after a flatten
that keeps the channel as a plain index).

A group is *not* pruned (and `channel_groups` says why) when it touches an input or output of
the model (the interface would change), when some access indexes it with anything but a plain
variable (strided windows, reshapes that split or merge it, gathers, concatenation offsets,
constant indices), when a non-contraction reduction sums over it (a norm over channels would
change its divisor), or when one tensor holds two of its dimensions.  Residual adds are thus
handled by pruning the coupled group jointly: the same channels leave every branch.

Which channels go: the smallest total importance, the importance of a channel being the L2 norm
of its slice in each *filter* weight of the group (a weight whose group rank is an output
variable of a contraction), each normalised by that weight's largest slice norm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import cast

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, Role, SparseFormat, Sparsity, TensorSpec
from codesign.ir.expr import Access
from codesign.ir.index import Affine, Gathered
from codesign.passes.pipeline import PassContext, register_pass
from codesign.passes.quantize import contractions

Dim = tuple[str, int]  # (tensor name, dimension)
Var = tuple[str, str]  # (einsum name, iteration variable)


@dataclass(frozen=True, slots=True)
class ChannelGroup:
    """Coupled tensor dimensions that must lose the same channels.  `blocked` says why the
    group cannot be pruned ("" when it can); `filters` are the weight dims that define it."""

    dims: tuple[Dim, ...]
    variables: tuple[Var, ...]
    size: int
    filters: tuple[Dim, ...]
    contractions: tuple[str, ...]  # contraction Einsums whose output variable is this group
    blocked: str

    @property
    def prunable(self) -> bool:
        return not self.blocked and bool(self.filters)


Node = tuple[str, Dim | Var]  # ("t", tensor dim) or ("v", einsum variable)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Node, Node] = {}

    def find(self, x: Node) -> Node:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: Node, b: Node) -> None:
        self.parent[self.find(a)] = self.find(b)


def _accesses(einsum: Einsum) -> Iterator[Access]:
    """Output, inputs and the inner accesses of gathers."""
    stack = [einsum.output, *einsum.inputs]
    while stack:
        access = stack.pop()
        yield access
        for index in access.indices:
            if isinstance(index, Gathered):
                stack.append(Access(index.tensor, index.indices))


def channel_groups(cascade: Cascade) -> tuple[ChannelGroup, ...]:
    """Every coupled group of tensor dimensions with its verdict, in first-seen order."""
    uf = _UnionFind()
    blocked: dict[Node, str] = {}
    mac = {e.name for e in contractions(cascade)}
    filters: set[Dim] = set()
    group_contractions: dict[Var, str] = {}
    for einsum in cascade.einsums:
        for access in _accesses(einsum):
            for dim, index in enumerate(access.indices):
                tdim: Dim = (access.tensor, dim)
                uf.find(("t", tdim))
                var = index.plain_var if isinstance(index, Affine) else None
                if var is not None:
                    uf.union(("t", tdim), ("v", (einsum.name, var)))
                    continue
                blocked.setdefault(("t", tdim), f"{access.tensor} dim {dim} is not a plain index")
                for v in index.variables:
                    blocked.setdefault(("v", (einsum.name, v)), f"{einsum.name} uses {v} in an "
                                       "index expression")  # fmt: skip
        for var in einsum.reduced:
            if einsum.name not in mac:
                blocked.setdefault(("v", (einsum.name, var)), f"{einsum.name} reduces over it")
        if einsum.name in mac:
            for access in einsum.inputs:
                spec = cascade.tensor(access.tensor)
                for dim, index in enumerate(access.indices):
                    out_var = index.plain_var if isinstance(index, Affine) else None
                    if spec.role is Role.WEIGHT and out_var and out_var not in einsum.reduced:
                        filters.add((access.tensor, dim))
                        group_contractions[(einsum.name, out_var)] = einsum.name
    members: dict[Node, list[Node]] = {}
    for node in list(uf.parent):
        members.setdefault(uf.find(node), []).append(node)
    groups: list[ChannelGroup] = []
    for nodes in members.values():
        dims = tuple(cast(Dim, n[1]) for n in nodes if n[0] == "t")
        variables = tuple(cast(Var, n[1]) for n in nodes if n[0] == "v")
        if not dims:
            continue
        sizes = {cascade.tensor(t).shape[d] for t, d in dims}
        reason = next((blocked[n] for n in nodes if n in blocked), "")
        tensors = [t for t, _ in dims]
        if not reason:
            for t in tensors:
                role = cascade.tensor(t).role
                if role in (Role.INPUT, Role.OUTPUT):
                    reason = f"it reaches model {role.value} {t}"
                    break
        if not reason and len(set(tensors)) != len(tensors):
            reason = "a tensor holds two of its dimensions"
        if not reason and len(sizes) != 1:
            reason = f"its dimensions differ in size {sorted(sizes)}"
        groups.append(
            ChannelGroup(
                dims, variables, max(sizes), tuple(d for d in dims if d in filters),
                tuple(sorted({group_contractions[v] for v in variables
                              if v in group_contractions})),
                reason,
            )
        )  # fmt: skip
    return tuple(groups)


def channel_importance(cascade: Cascade, group: ChannelGroup) -> np.ndarray:
    """Per channel: sum over filter weights of the slice L2 norm / the weight's largest one."""
    score = np.zeros(group.size)
    for tensor, dim in group.filters:
        data = np.asarray(cascade.tensor(tensor).data, np.float64)
        norms = np.sqrt(np.sum(np.moveaxis(data, dim, 0).reshape(group.size, -1) ** 2, axis=1))
        top = float(norms.max(initial=0.0))
        score += norms / top if top else norms
    return score


def remove_channels(cascade: Cascade, keep: dict[int, np.ndarray]) -> Cascade:
    """Keep only channels `keep[g]` (sorted indices) of group number g of `channel_groups`."""
    groups = channel_groups(cascade)
    by_dim: dict[Dim, np.ndarray] = {}
    by_var: dict[Var, int] = {}
    for g, indices in keep.items():
        group = groups[g]
        if not group.prunable:
            raise InputError(f"channel group {g} cannot be pruned: {group.blocked}")
        for d in group.dims:
            by_dim[d] = indices
        for v in group.variables:
            by_var[v] = len(indices)
    tensors = tuple(_shrink(t, by_dim) for t in cascade.tensors)
    einsums = []
    for e in cascade.einsums:
        extents = {v: by_var.get((e.name, v), n) for v, n in e.space}
        einsums.append(Einsum.build(e.name, e.output, e.body, extents, e.reduce, e.reduced, e.op))
    return Cascade(cascade.name, tensors, tuple(einsums))


def _shrink(spec: TensorSpec, by_dim: dict[Dim, np.ndarray]) -> TensorSpec:
    cut = [(d, by_dim[(spec.name, d)]) for d in range(len(spec.shape)) if (spec.name, d) in by_dim]
    if not cut:
        return spec
    shape = list(spec.shape)
    data = spec.data
    for d, indices in cut:
        shape[d] = len(indices)
        if data is not None:
            data = np.take(data, indices, axis=d)
    sparse = spec.sparse
    if sparse is not None and data is not None:
        fmt = sparse.format
        if fmt is SparseFormat.NM and any(d == sparse.axis for d, _ in cut):
            fmt = SparseFormat.BITMAP  # groups of m along a cut rank no longer line up
        density = float(np.count_nonzero(data)) / max(data.size, 1)
        nm = fmt is SparseFormat.NM
        sparse = Sparsity(fmt, density, sparse.n if nm else None, sparse.m if nm else None,
                          sparse.axis if nm else None)  # fmt: skip
    return replace(spec, shape=tuple(shape), data=data, sparse=sparse)


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """`prune-channels` options: fraction of each prunable group's channels removed, keep count
    rounded up to a multiple of `round_to` (array-friendly widths), and a regex on the
    contractions whose output channels may go ("" = all)."""

    ratio: float = 0.5
    round_to: int = 1
    einsums: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"ratio={self.ratio} must be in [0, 1)")
        if self.round_to < 1:
            raise ValueError(f"round_to={self.round_to} must be >= 1")
        try:
            re.compile(self.einsums)
        except re.error as exc:
            raise ValueError(f"einsums={self.einsums!r} is not a regex: {exc}") from None


def kept_channels(importance: np.ndarray, keep: int) -> np.ndarray:
    """Sorted indices of the `keep` most important channels (ties: lower index first)."""
    order = np.argsort(-importance, kind="stable")[:keep]
    return np.sort(order)


@register_pass("prune-channels", ChannelOptions)
def prune_channels(cascade: Cascade, options: ChannelOptions, context: PassContext) -> Cascade:
    """Structured filter pruning: remove the least important channels of each coupled group."""
    del context
    if any(t.data is None for t in cascade.weights):
        raise InputError(f"pass prune-channels: cascade {cascade.name} has weights without data")
    regex = re.compile(options.einsums)
    groups = channel_groups(cascade)
    keep: dict[int, np.ndarray] = {}
    for g, group in enumerate(groups):
        if not group.prunable or not any(regex.search(n) for n in group.contractions):
            continue
        count = max(1, math.ceil(group.size * (1.0 - options.ratio)))
        count = min(group.size, math.ceil(count / options.round_to) * options.round_to)
        if count < group.size:
            keep[g] = kept_channels(channel_importance(cascade, group), count)
    if not keep and not any(g.prunable for g in groups):
        reasons = sorted({g.blocked for g in groups if g.filters and g.blocked})
        raise InputError(
            f"pass prune-channels: no channel group of {cascade.name} can be pruned "
            f"({'; '.join(reasons[:3]) or 'no filter weights'})"
        )
    return remove_channels(cascade, keep)


__all__ = [
    "ChannelGroup", "ChannelOptions", "channel_groups", "channel_importance", "kept_channels",
    "remove_channels",
]  # fmt: skip
