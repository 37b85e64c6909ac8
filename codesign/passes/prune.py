"""Pruning passes that zero weights: `prune` (magnitude), `prune-nm` (N:M) and `prune-kv`.

Which weights: float weights read as a factor of a sum-reduced product (matmul, conv, linear),
as for quantization; biases, norm scales and gathered tables stay dense.  Every pruned weight
gets a `Sparsity` record (measured density, storage format), so `TensorSpec.storage_bytes` and
the pipeline's reports count the compressed bytes.  `sparsity_table` lists the density of every
sparse tensor, the per-tensor figure the CLI prints beside the pass reports.

* ``prune{sparsity=0.5,scope=global|layer,format=bitmap}``: unstructured magnitude pruning;
  `global` ranks all selected weights together (one threshold), `layer` prunes each to the
  same sparsity.
* ``prune-nm{n=2,m=4,axis=-1}``: keep the `n` largest of every `m` consecutive elements along
  `axis` (-1: the weight's reduction axis, where N:M hardware groups).  Weights whose rank is not
  a multiple of `m` stay dense (the stem convolution with 3 input channels, typically).
* ``prune-kv{sparsity=0.5}``: KV-cache magnitude pruning for decode cascades: marks the
  ``L{i}_k_cache``/``v_cache`` inputs with the expected density (bitmap format) so cost models
  count the smaller cache; with ``simulate=true`` it also inserts a magnitude threshold
  calibrated on the sample inputs so the reports show the output error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, Role, SparseFormat, Sparsity, TensorSpec
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, Select, Unary, UnaryOp
from codesign.ir.index import Affine
from codesign.passes.pipeline import PassContext, register_pass
from codesign.passes.quantize import contraction_weights


class Scope(Enum):
    GLOBAL = "global"
    LAYER = "layer"


def prunable_weights(cascade: Cascade, pattern: str = "") -> dict[str, int | None]:
    """Float weights with data read as a factor of a matching contraction -> reduction axis."""
    return contraction_weights(cascade, pattern, lambda spec: spec.data is not None)


def with_sparsity(spec: TensorSpec, data: np.ndarray, sparse_format: SparseFormat) -> TensorSpec:
    """`spec` holding `data`, its `Sparsity` measured from the data in `sparse_format`."""
    density = float(np.count_nonzero(data)) / data.size if data.size else 1.0
    return replace(spec, data=data, sparse=Sparsity(sparse_format, density))


def replace_tensors(cascade: Cascade, new: dict[str, TensorSpec]) -> Cascade:
    tensors = tuple(new.get(t.name, t) for t in cascade.tensors)
    return Cascade(cascade.name, tensors, cascade.einsums)


def magnitude_mask(values: np.ndarray, sparsity: float) -> np.ndarray:
    """True where kept: the ``round((1 - sparsity) * size)`` largest magnitudes (ties by order)."""
    keep = values.size - round(sparsity * values.size)
    mask = np.zeros(values.size, dtype=bool)
    if keep > 0:
        order = np.argsort(-np.abs(values.ravel()), kind="stable")
        mask[order[:keep]] = True
    return mask.reshape(values.shape)


def _check_sparsity(value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity={value} must be in [0, 1)")


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"einsums={pattern!r} is not a regex: {exc}") from None


@dataclass(frozen=True, slots=True)
class PruneOptions:
    """`prune` options: fraction of weights zeroed, global or per-layer threshold, the storage
    format recorded, and a regex on consumer Einsum names ("" = every contraction)."""

    sparsity: float = 0.5
    scope: Scope = Scope.GLOBAL
    format: SparseFormat = SparseFormat.BITMAP
    einsums: str = ""

    def __post_init__(self) -> None:
        _check_sparsity(self.sparsity)
        if self.format is SparseFormat.NM:
            raise ValueError("format=nm is what prune-nm writes; pick bitmap, csr, csc or coo")
        _check_regex(self.einsums)


def _selected(cascade: Cascade, pattern: str, pass_name: str) -> dict[str, int | None]:
    found = prunable_weights(cascade, pattern)
    if not found:
        raise InputError(
            f"pass {pass_name}: cascade {cascade.name} has no float weight with data in a "
            f"contraction matching {pattern!r}"
        )
    return found


@register_pass("prune", PruneOptions)
def prune(cascade: Cascade, options: PruneOptions, context: PassContext) -> Cascade:
    """Magnitude pruning (unstructured): zero the smallest weights, globally or per layer."""
    del context
    names = list(_selected(cascade, options.einsums, "prune"))
    new: dict[str, TensorSpec] = {}
    if options.scope is Scope.LAYER:
        for name in names:
            spec = cascade.tensor(name)
            data = np.asarray(spec.data)
            masked = np.where(magnitude_mask(data, options.sparsity), data, 0).astype(data.dtype)
            new[name] = with_sparsity(spec, masked, options.format)
        return replace_tensors(cascade, new)
    flat = np.concatenate([np.asarray(cascade.tensor(n).data).ravel() for n in names])
    mask = magnitude_mask(flat, options.sparsity)
    start = 0
    for name in names:
        spec = cascade.tensor(name)
        data = np.asarray(spec.data)
        part = mask[start : start + data.size].reshape(data.shape)
        start += data.size
        new[name] = with_sparsity(spec, np.where(part, data, 0).astype(data.dtype), options.format)
    return replace_tensors(cascade, new)


# -- N:M -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NMOptions:
    """`prune-nm` options: keep `n` of every `m` along `axis` (-1: each weight's reduction
    axis); `einsums` is a regex on consumer Einsum names ("" = every contraction)."""

    n: int = 2
    m: int = 4
    axis: int = -1
    einsums: str = ""

    def __post_init__(self) -> None:
        if self.m < 1 or not 0 < self.n <= self.m:
            raise ValueError(f"impossible N:M {self.n}:{self.m} (need 0 < N <= M)")
        if self.axis < -1:
            raise ValueError(f"axis={self.axis} must be a rank index >= 0 (or -1: reduction)")
        _check_regex(self.einsums)


def nm_mask(values: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """True where kept: the `n` largest magnitudes of every `m` consecutive elements along
    `axis` (whose length must be a multiple of `m`)."""
    moved = np.moveaxis(np.abs(values), axis, -1)
    groups = moved.reshape(-1, m)
    order = np.argsort(-groups, axis=1, kind="stable")
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, order[:, :n], True, axis=1)
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)


def nm_prune_weight(spec: TensorSpec, n: int, m: int, axis: int) -> TensorSpec:
    """`spec` with the N:M pattern applied along `axis` and an `nm` Sparsity record."""
    data = np.asarray(spec.data)
    pruned = np.where(nm_mask(data, n, m, axis), data, 0).astype(data.dtype)
    density = float(np.count_nonzero(pruned)) / pruned.size
    return replace(spec, data=pruned, sparse=Sparsity(SparseFormat.NM, density, n, m, axis))


@register_pass("prune-nm", NMOptions)
def prune_nm(cascade: Cascade, options: NMOptions, context: PassContext) -> Cascade:
    """N:M fine-grained structured pruning: keep the n largest of every m along a rank."""
    del context
    new: dict[str, TensorSpec] = {}
    for name, reduction in _selected(cascade, options.einsums, "prune-nm").items():
        spec = cascade.tensor(name)
        axis = reduction if options.axis == -1 else options.axis
        if axis is None or axis >= len(spec.shape):
            raise InputError(
                f"pass prune-nm: axis {options.axis} is not a rank of weight {name} "
                f"{dict(zip(spec.ranks, spec.shape, strict=True))}"
            )
        if spec.shape[axis] % options.m:
            continue  # stays dense: the rank does not split into groups of m
        new[name] = nm_prune_weight(spec, options.n, options.m, axis)
    if not new:
        raise InputError(
            f"pass prune-nm: no selected weight has a rank {options.axis} that is a multiple of "
            f"m={options.m}"
        )
    return replace_tensors(cascade, new)


# -- KV cache --------------------------------------------------------------------------------
KV_CACHE = re.compile(r"_[kv]_cache\Z")


@dataclass(frozen=True, slots=True)
class KVPruneOptions:
    """`prune-kv` options: fraction of cache entries dropped (smallest magnitude); `simulate`
    inserts the calibrated threshold into the cascade so the reference interpreter sees it."""

    sparsity: float = 0.5
    simulate: bool = False

    def __post_init__(self) -> None:
        _check_sparsity(self.sparsity)


def kv_cache_inputs(cascade: Cascade) -> tuple[TensorSpec, ...]:
    return tuple(t for t in cascade.inputs if KV_CACHE.search(t.name))


@register_pass("prune-kv", KVPruneOptions)
def prune_kv(cascade: Cascade, options: KVPruneOptions, context: PassContext) -> Cascade:
    """KV-cache magnitude pruning: bitmap caches at the target density (decode cascades)."""
    caches = kv_cache_inputs(cascade)
    if not caches:
        raise InputError(
            f"pass prune-kv: cascade {cascade.name} has no L<i>_k_cache/v_cache input "
            "(build a decode workload)"
        )
    density = 1.0 - options.sparsity
    new = {c.name: replace(c, sparse=Sparsity(SparseFormat.BITMAP, density)) for c in caches}
    if not options.simulate:
        return replace_tensors(cascade, new)
    inputs = context.inputs_for(cascade)
    return _insert_thresholds(replace_tensors(cascade, new), caches, inputs, options.sparsity)


def _insert_thresholds(
    cascade: Cascade,
    caches: tuple[TensorSpec, ...],
    inputs: dict[str, np.ndarray],
    sparsity: float,
) -> Cascade:
    """Readers of each cache read ``select(abs(c) >= t, c, 0)`` with `t` the calibrated
    magnitude quantile, written by a new Einsum right before the first reader."""
    tensors = list(cascade.tensors)
    einsums = list(cascade.einsums)
    taken = {t.name for t in tensors} | {e.name for e in einsums}
    for cache in caches:
        values = np.abs(np.asarray(inputs[cache.name], np.float64)).ravel()
        threshold = float(np.quantile(values, sparsity)) if values.size else 0.0
        name = _unique(taken, f"{cache.name}_pruned")
        variables = tuple(f"d{k}" for k in range(len(cache.shape)))
        src = Access(cache.name, tuple(Affine.var(v) for v in variables))
        body = Select(
            Binary(BinaryOp.GE, Unary(UnaryOp.ABS, src), Const(threshold)), src, Const(0.0)
        )
        out = Access(name, src.indices)
        einsum = Einsum.build(name, out, body, dict(zip(variables, cache.shape, strict=True)),
                              op="PruneKV")  # fmt: skip
        tensors.append(replace(cache, name=name, role=Role.INTERMEDIATE))
        readers = [i for i, e in enumerate(einsums) if cache.name in e.input_tensors]
        for i in readers:
            einsums[i] = _rename_reads(einsums[i], cache.name, name)
        einsums.insert(readers[0] if readers else len(einsums), einsum)
    return Cascade(cascade.name, tuple(tensors), tuple(einsums))


def _unique(taken: set[str], base: str) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _rename_reads(einsum: Einsum, old: str, new: str) -> Einsum:
    def walk(expr: Expr) -> Expr:
        if isinstance(expr, Access):
            return Access(new, expr.indices) if expr.tensor == old else expr
        if isinstance(expr, Unary):
            return Unary(expr.op, walk(expr.arg))
        if isinstance(expr, Binary):
            return Binary(expr.op, walk(expr.lhs), walk(expr.rhs))
        if isinstance(expr, Select):
            return Select(walk(expr.cond), walk(expr.then), walk(expr.other))
        return expr

    return replace(einsum, body=walk(einsum.body))


# -- reporting -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TensorSparsity:
    """Sparsity of one tensor: measured from data when present, else the recorded density."""

    name: str
    format: SparseFormat
    density: float
    dense_bytes: int
    stored_bytes: int  # values plus metadata (plus quantization scales)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.density


def sparsity_table(cascade: Cascade) -> tuple[TensorSparsity, ...]:
    """Every tensor with a `Sparsity` record, in declaration order."""
    rows: list[TensorSparsity] = []
    for t in cascade.tensors:
        if t.sparse is None:
            continue
        density = t.sparse.density
        if t.data is not None:
            density = float(np.count_nonzero(t.data)) / max(t.size, 1)
        rows.append(
            TensorSparsity(t.name, t.sparse.format, density, t.size_bytes + t.scale_bytes,
                           t.storage_bytes)
        )  # fmt: skip
    return tuple(rows)


def weight_sparsity(cascade: Cascade, names: tuple[str, ...] | None = None) -> float:
    """Fraction of zeros over the given weights (default: every prunable weight)."""
    chosen = names if names is not None else tuple(prunable_weights(cascade))
    total = sum(cascade.tensor(n).size for n in chosen)
    zeros = sum(int(np.sum(np.asarray(cascade.tensor(n).data) == 0)) for n in chosen)
    return zeros / total if total else 0.0


def format_sparsity(rows: tuple[TensorSparsity, ...]) -> str:
    """One line per sparse tensor: name, format, sparsity and bytes dense -> stored."""
    lines = [
        f"{r.name}: {r.format.value} sparsity {r.sparsity:.1%} "
        f"({r.dense_bytes} -> {r.stored_bytes} B)"
        for r in rows
    ]
    return "\n".join(lines) + ("\n" if lines else "")


__all__ = [
    "KVPruneOptions", "NMOptions", "PruneOptions", "Scope", "TensorSparsity", "format_sparsity",
    "kv_cache_inputs", "magnitude_mask", "nm_mask", "nm_prune_weight", "prunable_weights",
    "sparsity_table", "weight_sparsity", "with_sparsity",
]  # fmt: skip
