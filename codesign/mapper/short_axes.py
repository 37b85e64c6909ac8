"""Reductions and running scans over the short axes of a mapping batch (levels, dims, tensors,
tiling slots: a handful each), as chains of elementwise ops.

On the (B, L, D)-shaped arrays of a batch of ~1000 mappings, NumPy's ``ufunc.reduce`` and
``accumulate`` over a 3-12 long axis cost up to ~20x a chain of that many elementwise ops (the
per-row set-up of the reduction dominates).  `fold` combines in index order (0, 1, 2, ...) and
`running` in NumPy's accumulate order, which gives the same result as NumPy for max/min,
logical and/or and products of whole numbers that stay below 2**53 (loop bounds, extents,
footprints); float *sums*, and products that round, keep NumPy's own reduction (its order can
differ in the last bit).
"""

from __future__ import annotations

import numpy as np


def fold(op: np.ufunc, x: np.ndarray, axis: int | tuple[int, ...], empty: float | None = None
         ) -> np.ndarray:  # fmt: skip
    """``op.reduce(x, axis)`` over short axes; ``empty``: the value where an axis has length 0."""
    if isinstance(axis, tuple):
        for one in sorted((a % x.ndim for a in axis), reverse=True):
            x = fold(op, x, one, empty)
        return x
    axis %= x.ndim
    if x.shape[axis] == 0:
        if empty is None:
            raise ValueError("fold over an empty axis needs `empty`")
        return np.full(x.shape[:axis] + x.shape[axis + 1 :], empty)
    index: list[slice | int] = [slice(None)] * x.ndim
    index[axis] = 0
    out = x[tuple(index)]
    for i in range(1, x.shape[axis]):
        index[axis] = i
        out = op(out, x[tuple(index)])
    return out if x.shape[axis] > 1 else out.copy()  # never a view into `x`


def running(op: np.ufunc, x: np.ndarray, reverse: bool = False) -> np.ndarray:
    """``op.accumulate(x, axis=1)`` (from the last index down with ``reverse``)."""
    out = np.empty_like(x)
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    previous = None
    for i in steps:
        out[:, i] = x[:, i] if previous is None else op(out[:, previous], x[:, i])
        previous = i
    return out
