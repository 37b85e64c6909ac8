"""Pareto fronts over minimised objectives (maximised ones enter negated)."""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """`a` is no worse than `b` in every objective and better in one (all minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_indices(costs: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated cost vectors, sorted by the objectives lexicographically;
    of identical vectors only the first is kept."""
    order = sorted(range(len(costs)), key=lambda i: (tuple(costs[i]), i))
    front: list[int] = []
    for i in order:
        if any(dominates(costs[j], costs[i]) or tuple(costs[j]) == tuple(costs[i]) for j in front):
            continue
        front.append(i)
    return front
