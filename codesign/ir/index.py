"""Index expressions of tensor accesses.

An access ``X[b, c, 2p+r-1, (4i+j)//12, T[s]]`` has one index expression per tensor dimension:

* `Affine` — ``Σ coeff·var + const``: strides (``2p``), dilations (``2r``), sliding windows
  (``p+r``), offsets for slices, padding (``p+r-1``; see the guard rule in `codesign.ir.cascade`).
* `FloorDiv` / `Mod` of an affine expression by a positive constant — rank splits and merges of
  reshapes (quasi-affine, as in ISL).
* `Gathered` — the value of an integer tensor access (embedding look-ups, ONNX Gather).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Affine:
    """``Σ coeff·var + const``; `terms` keeps the written order and never holds a zero coeff."""

    terms: tuple[tuple[str, int], ...]
    const: int = 0

    @staticmethod
    def var(name: str) -> Affine:
        return Affine(((name, 1),))

    @staticmethod
    def constant(value: int) -> Affine:
        return Affine((), int(value))

    @staticmethod
    def of(terms: Mapping[str, int] | Iterable[tuple[str, int]], const: int = 0) -> Affine:
        """Build from (var, coeff) pairs, merging repeated vars and dropping zero coefficients."""
        merged: dict[str, int] = {}
        items = terms.items() if isinstance(terms, Mapping) else terms
        for name, coeff in items:
            merged[name] = merged.get(name, 0) + int(coeff)
        return Affine(tuple((n, c) for n, c in merged.items() if c != 0), int(const))

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)

    @property
    def plain_var(self) -> str | None:
        """The variable name if this expression is exactly one variable, else None."""
        if self.const == 0 and len(self.terms) == 1 and self.terms[0][1] == 1:
            return self.terms[0][0]
        return None

    def bounds(self, extents: Mapping[str, int]) -> tuple[int, int]:
        """Smallest and largest value over the iteration space (inclusive)."""
        lo = hi = self.const
        for name, coeff in self.terms:
            span = coeff * (extents[name] - 1)
            lo += min(0, span)
            hi += max(0, span)
        return lo, hi


@dataclass(frozen=True, slots=True)
class FloorDiv:
    """``(arg) // divisor`` with a positive constant divisor."""

    arg: QuasiAffine
    divisor: int

    @property
    def variables(self) -> tuple[str, ...]:
        return self.arg.variables

    def bounds(self, extents: Mapping[str, int]) -> tuple[int, int]:
        lo, hi = self.arg.bounds(extents)
        return lo // self.divisor, hi // self.divisor


@dataclass(frozen=True, slots=True)
class Mod:
    """``(arg) % divisor`` with a positive constant divisor."""

    arg: QuasiAffine
    divisor: int

    @property
    def variables(self) -> tuple[str, ...]:
        return self.arg.variables

    def bounds(self, extents: Mapping[str, int]) -> tuple[int, int]:
        lo, hi = self.arg.bounds(extents)
        if hi - lo + 1 >= self.divisor or lo // self.divisor != hi // self.divisor:
            return 0, self.divisor - 1
        return lo % self.divisor, hi % self.divisor


@dataclass(frozen=True, slots=True)
class Gathered:
    """The value read from integer tensor `tensor` at `indices` (negative values wrap, as ONNX)."""

    tensor: str
    indices: tuple[IndexExpr, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        seen: list[str] = []
        for index in self.indices:
            for name in index.variables:
                if name not in seen:
                    seen.append(name)
        return tuple(seen)


QuasiAffine = Affine | FloorDiv | Mod
IndexExpr = Affine | FloorDiv | Mod | Gathered


def map_affine(index: IndexExpr, fn: Callable[[Affine], Affine]) -> IndexExpr:
    """`index` with every affine leaf replaced by ``fn(leaf)`` (inside floor-divisions,
    modulos and the indices of gathered reads alike); tensor names are kept."""
    if isinstance(index, Affine):
        return fn(index)
    if isinstance(index, FloorDiv | Mod):
        arg = map_affine(index.arg, fn)
        assert not isinstance(arg, Gathered)
        return type(index)(arg, index.divisor)
    return Gathered(index.tensor, tuple(map_affine(i, fn) for i in index.indices))
