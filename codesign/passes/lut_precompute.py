"""`lut-precompute`: rewrite low-bit integer GEMMs into the table-lookup form of the LUT Tensor
Core (Mo et al., ISCA 2025), optionally fusing the table build into the producer of the
activations.

For a MAC Einsum ``Y = sum[..., v] X[..., v, ...] * W[..., v, ...]`` whose weight `W` carries an
integer `Quantization` (INT or ternary, as `quantize` leaves it) of at most `max_weight_bits`:

* a **table Einsum** builds, for every group of ``K`` activations along `v`, the signed sums
  ``Tab[..., g, ..., e] = sum[k:K] X[..., K*g+k, ...] * S[e, k]`` for the ``E`` sign patterns
  `S` (``E = 2^(K-1)`` with symmetrization: the first sign is fixed to +1 and ``T(-s) =
  -T(s)``; ``2^K`` without).  A reduction that is not a multiple of ``K`` is padded by the
  guard rule (out-of-range activations contribute 0).  The table tensor is declared at
  ``table_bits`` (the width the hardware stores entries at; its values are held exactly, the
  table quantization error is not simulated).
* the GEMM becomes a **lookup** ``Y = sum[..., g, b] Tab[..., g, ..., Idx[..., g, ..., b]] *
  Coef[..., g, ..., b]``.  A ``W``-bit code ``c`` is written ``c = a*q + o`` with ``q`` an
  unsigned ``W``-bit number (``a`` = 1, or 2 for binary ±1 codes) and its bits mapped to signs
  ``s_b = 2*q_b - 1``, so ``sum_k X_k c_k = a * sum_b 2^(b-1) T(s_b) + (a*(2^W-1)/2 + o) *
  sum_k X_k``.  Planes ``b < W`` are the bit-planes (``Idx`` = the pattern's table entry,
  ``Coef`` = pattern sign * ``a*2^(b-1)`` * quantization scale); plane ``b = W`` is the offset
  correction (``Idx`` = 0, the all-plus entry, which is ``sum_k X_k``).  The lookup Einsum
  therefore always reduces over ``W + 1`` planes: `codesign.sim.lut_tc` reads the weight width
  back as ``planes - 1``.
* with ``fuse=true`` an elementwise producer of `X` (non-reducing, not a view) whose result only
  these lookups read is inlined into the table Einsum (its body with its output variables
  remapped), and `X` leaves the cascade.  Refused (left unfused, with the reason in the plan)
  for graph inputs, cascade outputs, other consumers, multi-producer tensors, a reduction that
  needs padding (the producer's reads would not be guarded), or an integer-typed `X` (its
  producer's saturating store would be skipped).  A narrow float `X` (f16) is fused: the fused
  kernel builds the table from the producer's value in registers, so X's store rounding (at
  most one f16 ulp per activation) is gone, as on the hardware.

`plan_lut_precompute` returns the rewritten cascade and a `LutPlan` saying which GEMMs were
rewritten, which tables fused and why the others were not.  Run it last: a later `quantize`
would see the float `Coef` tensors as weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, QuantFormat, Quantization, Role, TensorSpec
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, Expr, ReduceOp, map_accesses
from codesign.ir.index import Affine, Gathered, IndexExpr, map_affine
from codesign.ir.traits import EinsumClass
from codesign.passes.numerics import INT_DTYPES
from codesign.passes.pipeline import PassContext, register_pass
from codesign.passes.quantize import _unique, contractions

TABLE_OP = "LutTable"  # op tag of table Einsums (documentation; the cost model matches shapes)
LOOKUP_OP = "LutGemm"  # op tag of rewritten GEMMs
_INTEGER_FORMATS = (QuantFormat.INT, QuantFormat.TERNARY)


@dataclass(frozen=True, slots=True)
class LutPrecomputeOptions:
    """`lut-precompute` options: `k` activations per table, `symmetrize` (``2^(k-1)`` entries
    instead of ``2^k``), the widest weight rewritten, the table entry width in bits, whether to
    fuse the table build into the activations' producer, and a regex on GEMM names."""

    k: int = 4
    symmetrize: bool = True
    max_weight_bits: int = 4
    table_bits: int = 8
    fuse: bool = True
    einsums: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 8:
            raise ValueError(f"k={self.k}: a table groups 1..8 activations")
        if not 1 <= self.max_weight_bits <= 8:
            raise ValueError(f"max_weight_bits={self.max_weight_bits} must be in 1..8")
        if self.table_bits not in (*INT_DTYPES, 16):
            raise ValueError(f"table_bits={self.table_bits} must be 1..8 or 16")
        try:
            re.compile(self.einsums)
        except re.error as exc:
            raise ValueError(f"einsums={self.einsums!r} is not a regex: {exc}") from None

    @property
    def entries(self) -> int:
        return 2 ** (self.k - 1) if self.symmetrize else 2**self.k


@dataclass(frozen=True, slots=True)
class GemmDecision:
    """One MAC Einsum: rewritten into a lookup of `table`, or left as is for `reason`."""

    einsum: str
    rewritten: bool
    reason: str = ""
    table: str = ""


@dataclass(frozen=True, slots=True)
class TableDecision:
    """One table of activation tensor `activation`: fused with `producer` or not, and why."""

    table: str
    activation: str
    fused: bool
    reason: str = ""
    producer: str = ""


@dataclass(frozen=True, slots=True)
class LutPlan:
    gemms: tuple[GemmDecision, ...]
    tables: tuple[TableDecision, ...]

    @property
    def rewritten(self) -> tuple[str, ...]:
        return tuple(d.einsum for d in self.gemms if d.rewritten)

    @property
    def fused(self) -> tuple[str, ...]:
        return tuple(t.table for t in self.tables if t.fused)

    def lines(self) -> tuple[str, ...]:
        """One line per decision (what `describe` prints)."""
        out = [
            f"gemm {d.einsum}: " + (f"lookup of {d.table}" if d.rewritten else f"kept ({d.reason})")
            for d in self.gemms
        ]
        out += [
            f"table {t.table} of {t.activation}: "
            + (f"fused with {t.producer}" if t.fused else f"unfused ({t.reason})")
            for t in self.tables
        ]
        return tuple(out)

    def describe(self) -> str:
        return "\n".join(self.lines()) + ("\n" if self.gemms or self.tables else "")


# -- choosing the GEMMs ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Target:
    einsum: Einsum
    x: Access  # the activation operand
    w: Access  # the quantized weight operand
    x_dim: int  # dimension of X indexed by the reduced variable
    w_axis: int  # dimension of W indexed by it
    var: str  # the grouped reduced variable
    bits: int  # weight code width


def _plain_dims(access: Access, var: str) -> list[int]:
    return [d for d, i in enumerate(access.indices) if var in i.variables]


def _target(cascade: Cascade, einsum: Einsum, options: LutPrecomputeOptions) -> _Target | str:
    """The rewrite of one MAC Einsum, or why it is not rewritten."""
    body = einsum.body
    if not (isinstance(body, Binary) and isinstance(body.lhs, Access)
            and isinstance(body.rhs, Access)):  # fmt: skip
        return "not a product of two tensors"
    pairs = [(body.lhs, body.rhs), (body.rhs, body.lhs)]
    quantized = [
        (x, w) for x, w in pairs
        if cascade.tensor(w.tensor).role is Role.WEIGHT and cascade.tensor(w.tensor).quant
        is not None and cascade.tensor(x.tensor).role is not Role.WEIGHT
    ]  # fmt: skip
    if not quantized:
        return "no quantized weight operand"
    x, w = quantized[0]
    spec = cascade.tensor(w.tensor)
    quant = spec.quant
    assert quant is not None
    if quant.format not in _INTEGER_FORMATS or not spec.dtype.is_int:
        return f"weight {spec.name} is {quant.format.value}, not integer codes"
    if spec.dtype.bits > options.max_weight_bits:
        return f"weight {spec.name} has {spec.dtype.bits} bits > max_weight_bits"
    if any(isinstance(i, Gathered) for a in (x, w) for i in a.indices):
        return "gathered operand"
    axis = _grouped_axis(einsum, w, spec)
    if axis is None:
        return f"weight {spec.name} has no plain reduced dimension"
    var = w.indices[axis].variables[0]
    x_dims = _plain_dims(x, var)
    x_index = x.indices[x_dims[0]] if len(x_dims) == 1 else None
    if (not isinstance(x_index, Affine) or x_index.plain_var != var
            or _plain_dims(w, var) != [axis]):  # fmt: skip
        return f"reduced variable {var} is not a plain index of both operands"
    if quant.axis is not None and quant.axis != axis:
        return f"weight {spec.name} scales along dim {quant.axis}, not the reduction dim {axis}"
    if quant.group_size is not None and quant.group_size % options.k:
        return f"scale group {quant.group_size} is not a multiple of k={options.k}"
    if cascade.tensor(x.tensor).shape[x_dims[0]] != spec.shape[axis]:
        return "operands disagree on the reduction extent"
    return _Target(einsum, x, w, x_dims[0], axis, var, spec.dtype.bits)


def _grouped_axis(einsum: Einsum, w: Access, spec: TensorSpec) -> int | None:
    """The weight dimension grouped into tables: the quantization axis when it is a plain
    reduced index, else the largest plainly reduced dimension (first on ties)."""
    plain = [
        d for d, i in enumerate(w.indices)
        if isinstance(i, Affine) and i.plain_var in einsum.reduced
    ]  # fmt: skip
    if spec.quant is not None and spec.quant.axis in plain:
        return spec.quant.axis
    return max(plain, key=lambda d: (spec.shape[d], -d), default=None)


# -- weight codes -> bit-plane indices and coefficients ----------------------------------------
def integer_codes(spec: TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    """(integer codes, per-element scales) with ``codes * scales == data`` (to float32
    rounding), recovered from the dequantized data along the `Quantization` groups.

    Any exact factorization serves (the lookup is linear in both), so each group tries the
    symmetric scale ``amax / qmax``, then ``min|w| / m`` for ``m = 1 .. 2^W - 1`` (the smallest
    nonzero magnitude is ``m`` codes for one of them), and keeps the first that gives
    integers.
    """
    quant, data = spec.quant, spec.data
    assert quant is not None and data is not None
    w = np.asarray(data, dtype=np.float64)
    bits = spec.dtype.bits
    if quant.axis is None:
        codes, scales = _group_codes(spec.name, w.reshape(1, -1), bits)
        return codes.reshape(w.shape), np.broadcast_to(scales, (1, w.size)).reshape(w.shape)
    moved = np.moveaxis(w, quant.axis, -1)
    n = moved.shape[-1]
    size = quant.group_size or n
    codes, scales = np.empty_like(moved), np.empty_like(moved)
    for start in range(0, n, size):
        block = moved[..., start : start + size]
        c, s = _group_codes(spec.name, block.reshape(-1, block.shape[-1]), bits)
        codes[..., start : start + size] = c.reshape(block.shape)
        scales[..., start : start + size] = np.broadcast_to(s, c.shape).reshape(block.shape)
    return np.moveaxis(codes, -1, quant.axis), np.moveaxis(scales, -1, quant.axis)


def _group_codes(name: str, rows: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes and one scale per row of `rows` (each row one quantization group)."""
    codes = np.zeros_like(rows)
    scales = np.ones((rows.shape[0], 1))
    qmax = max(2 ** (bits - 1) - 1, 1)
    for r, row in enumerate(rows):
        if not np.any(row):
            continue
        smallest = float(np.min(np.abs(row[row != 0])))
        # the symmetric scale, else the smallest magnitude is m codes for some m < 2^W
        candidates = (np.max(np.abs(row)) / qmax, *(smallest / m for m in range(1, 2**bits)))
        for scale in candidates:
            c = np.rint(row / scale)
            if np.allclose(c * scale, row, rtol=1e-5, atol=1e-6 * scale):
                codes[r], scales[r, 0] = c, scale
                break
        else:
            raise InputError(f"lut-precompute: weight {name} holds no integer codes of a scale")
    return codes, scales


def lookup_tables(
    spec: TensorSpec, axis: int, options: LutPrecomputeOptions
) -> tuple[np.ndarray, np.ndarray]:
    """(Idx, Coef) of a quantized weight grouped along `axis`: shape `spec.shape` with `axis`
    cut into ``ceil(n/k)`` groups, plus a trailing plane rank of ``W + 1`` (module docstring)."""
    k, bits = options.k, spec.dtype.bits
    codes, scales = integer_codes(spec)
    n = spec.shape[axis]
    groups = math.ceil(n / k)
    pad = [(0, 0)] * (codes.ndim - 1) + [(0, groups * k - n)]
    c = np.pad(np.moveaxis(codes, axis, -1), pad, mode="edge")
    s = np.pad(np.moveaxis(scales, axis, -1), pad, mode="edge")
    c = c.reshape(*c.shape[:-1], groups, k)
    s = s.reshape(*s.shape[:-1], groups, k)
    if not np.allclose(s, s[..., :1], rtol=1e-6, atol=0.0):
        raise InputError(f"lut-precompute: weight {spec.name}: a scale group splits a table group")
    a, offset = _affine_map(spec.name, c, bits)
    q = np.rint((c - offset[..., None]) / a[..., None]).astype(np.int64)  # [..., G, K]
    planes = (q[..., None] >> np.arange(bits)) & 1  # [..., G, K, W]
    signs = 2 * planes - 1
    if options.symmetrize:
        first = signs[..., :1, :]
        flipped = signs * first
        weights = 2 ** np.arange(k - 1)
        entry = np.einsum("...kb,k->...b", (flipped[..., 1:, :] < 0).astype(np.int64), weights)
        sign = first[..., 0, :]
    else:
        entry = np.einsum("...kb,k->...b", (signs < 0).astype(np.int64), 2 ** np.arange(k))
        sign = np.ones_like(entry)
    scale = s[..., 0]  # [..., G]
    coef_bits = sign * (a[..., None] * 2.0 ** (np.arange(bits) - 1)) * scale[..., None]
    coef_offset = (a * (2**bits - 1) / 2 + offset) * scale
    idx = np.concatenate([entry, np.zeros_like(entry[..., :1])], axis=-1)
    coef = np.concatenate([coef_bits, coef_offset[..., None]], axis=-1)
    index_dtype = _index_dtype(options)
    return (
        np.moveaxis(idx, -2, axis).astype(index_dtype.numpy),
        np.moveaxis(coef, -2, axis).astype(np.float32),
    )


def _affine_map(name: str, c: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per table group ``(a, o)`` with ``(c - o) / a`` unsigned ``bits``-bit integers: ``a = 1``
    with the signed offset ``-2^(W-1)`` when the codes fit it (else their minimum), ``a = 2``
    for codes of one parity spanning twice the range (binary ±1)."""
    lo, hi = c.min(axis=-1), c.max(axis=-1)
    top = 2**bits - 1
    signed = (lo >= -(2 ** (bits - 1))) & (hi <= 2 ** (bits - 1) - 1)
    one = hi - lo <= top
    two = (hi - lo <= 2 * top) & np.all((c - lo[..., None]) % 2 == 0, axis=-1)
    if not np.all(one | two):
        raise InputError(f"lut-precompute: weight {name}: codes do not fit {bits} bits")
    a = np.where(one, 1.0, 2.0)
    offset = np.where(one & signed, -(2.0 ** (bits - 1)), lo)
    return a, offset


def _index_dtype(options: LutPrecomputeOptions) -> DType:
    """Signed integer type holding entry indices ``0 .. entries-1``."""
    bits = (options.entries - 1).bit_length() + 1
    return INT_DTYPES.get(bits, DType.I16)


def _table_dtype(options: LutPrecomputeOptions) -> DType:
    return INT_DTYPES.get(options.table_bits, DType.I16)


def sign_patterns(options: LutPrecomputeOptions) -> np.ndarray:
    """``S[e, k]``: the ±1 signs of table entry `e` (entry 0 is all +1)."""
    e = np.arange(options.entries)[:, None]
    if options.symmetrize:
        bits = (e >> np.arange(options.k - 1)) & 1
        bits = np.concatenate([np.zeros((options.entries, 1), dtype=np.int64), bits], axis=1)
    else:
        bits = (e >> np.arange(options.k)) & 1
    return (1 - 2 * bits).astype(np.int8)


# -- index substitution (fusion) ---------------------------------------------------------------
def _subst_index(index: IndexExpr, mapping: dict[str, Affine]) -> IndexExpr:
    """`index` with every variable replaced by its affine image in `mapping`."""

    def subst(affine: Affine) -> Affine:
        terms: list[tuple[str, int]] = []
        const = affine.const
        for name, coeff in affine.terms:
            image = mapping[name]
            terms += [(v, coeff * c) for v, c in image.terms]
            const += coeff * image.const
        return Affine.of(terms, const)

    return map_affine(index, subst)


def _subst(expr: Expr, mapping: dict[str, Affine]) -> Expr:
    return map_accesses(
        expr, lambda a: Access(a.tensor, tuple(_subst_index(i, mapping) for i in a.indices))
    )


def _fusion_refusal(
    cascade: Cascade, x: TensorSpec, dim: int, users: set[str], options: LutPrecomputeOptions
) -> str | Einsum:
    """The producer to inline into the table of `x`, or why not."""
    if not options.fuse:
        return "fuse=false"
    if x.role is Role.INPUT:
        return "graph input"
    if x.role is not Role.INTERMEDIATE:
        return f"{x.role.value} tensor"
    producers = cascade.producers(x.name)
    if len(producers) != 1:
        return f"{len(producers)} producers"
    producer = producers[0]
    if producer.einsum_class is not EinsumClass.ELEMENTWISE:
        what = "a view" if producer.is_view else "a reduction"
        return f"producer {producer.name} is {what}"
    others = [e.name for e in cascade.consumers(x.name) if e.name not in users]
    if others:
        return f"also read by {', '.join(others)}"
    plain = [i.plain_var if isinstance(i, Affine) else None for i in producer.output.indices]
    if None in plain or len(set(plain)) != len(plain) or [v for v, _ in producer.space] != plain:
        return f"producer {producer.name} writes {x.name} through non-plain indices"
    if x.shape[dim] % options.k:
        return f"reduction {x.shape[dim]} is not a multiple of k={options.k} (padding)"
    if x.quant is None and not x.dtype.is_float:
        return f"{x.name} is {x.dtype.value}: inlining would skip its saturating store"
    return producer


# -- the pass ----------------------------------------------------------------------------------
def plan_lut_precompute(cascade: Cascade, options: LutPrecomputeOptions) -> tuple[Cascade, LutPlan]:
    """The rewritten cascade and the decisions behind it (module docstring)."""
    taken = {t.name for t in cascade.tensors} | {e.name for e in cascade.einsums}
    decisions: dict[str, GemmDecision] = {}
    targets: dict[str, _Target] = {}
    for einsum in contractions(cascade, options.einsums):
        found = _target(cascade, einsum, options)
        if isinstance(found, str):
            decisions[einsum.name] = GemmDecision(einsum.name, False, found)
        else:
            targets[einsum.name] = found
    # one table per (activation, grouped dimension), shared by its lookups
    tables: dict[tuple[str, int], str] = {}
    for t in targets.values():
        key = (t.x.tensor, t.x_dim)
        if key not in tables:
            tables[key] = _unique(taken, f"{t.x.tensor}_lut")
        decisions[t.einsum.name] = GemmDecision(t.einsum.name, True, table=tables[key])
    if not targets:
        order = [e.name for e in contractions(cascade, options.einsums)]
        return cascade, LutPlan(tuple(decisions[n] for n in order), ())
    signs_name = _unique(taken, f"lut_signs_k{options.k}")
    signs = TensorSpec(signs_name, ("E", "K"), (options.entries, options.k), DType.I2,
                       Role.WEIGHT, data=sign_patterns(options))  # fmt: skip
    table_einsums: dict[str, Einsum] = {}
    table_specs: dict[str, TensorSpec] = {}
    table_decisions: list[TableDecision] = []
    fused_producers: set[str] = set()
    for (x_name, dim), table in tables.items():
        x = cascade.tensor(x_name)
        users = {t.einsum.name for t in targets.values() if tables[(t.x.tensor, t.x_dim)] == table}
        users_other_dim = {
            t.einsum.name for t in targets.values() if t.x.tensor == x_name and t.x_dim != dim
        }
        fusion = _fusion_refusal(cascade, x, dim, users | users_other_dim, options)
        if isinstance(fusion, Einsum) and users_other_dim:
            fusion = "read by lookups of another table"
        producer = fusion if isinstance(fusion, Einsum) else None
        table_specs[table] = _table_spec(x, dim, table, options)
        table_einsums[table] = _table_einsum(
            x, dim, table, signs_name, producer, _unique(taken, f"{x_name}_lut_table"), options
        )
        if producer is not None:
            fused_producers.add(producer.name)
            table_decisions.append(TableDecision(table, x_name, True, producer=producer.name))
        else:
            table_decisions.append(TableDecision(table, x_name, False, str(fusion)))
    weights: dict[str, tuple[TensorSpec, TensorSpec]] = {}
    lookups: dict[str, Einsum] = {}
    for t in targets.values():
        if t.w.tensor not in weights:
            spec = cascade.tensor(t.w.tensor)
            weights[t.w.tensor] = _weight_specs(spec, t.w_axis, taken, options)
        idx, coef = weights[t.w.tensor]
        table = tables[(t.x.tensor, t.x_dim)]
        lookups[t.einsum.name] = _lookup_einsum(t, table, idx.name, coef.name, options)
    einsums: list[Einsum] = []
    placed: set[str] = set()
    for einsum in cascade.einsums:
        if einsum.name in fused_producers:
            continue
        if einsum.name in lookups:
            table = decisions[einsum.name].table
            if table not in placed:
                einsums.append(table_einsums[table])
                placed.add(table)
            einsum = lookups[einsum.name]
        einsums.append(einsum)
    fused_x = {cascade.einsum(p).output.tensor for p in fused_producers}
    still_read = {n for e in einsums for n in e.input_tensors}
    tensors: list[TensorSpec] = []
    for spec in cascade.tensors:
        if spec.name not in fused_x and (spec.name not in weights or spec.name in still_read):
            tensors.append(spec)
        if spec.name in weights:
            tensors.extend(weights[spec.name])
        new_tables = [table_specs[t] for (x_name, _), t in tables.items() if x_name == spec.name]
        if new_tables and signs not in tensors:
            tensors.append(signs)
        tensors.extend(new_tables)
    plan = LutPlan(
        tuple(decisions[e.name] for e in contractions(cascade, options.einsums)),
        tuple(table_decisions),
    )
    return Cascade(cascade.name, tuple(tensors), tuple(einsums)), plan


def _table_spec(x: TensorSpec, dim: int, name: str, options: LutPrecomputeOptions) -> TensorSpec:
    groups = math.ceil(x.shape[dim] / options.k)
    ranks = list(x.ranks)
    ranks[dim] = _fresh_rank(ranks, "G")
    ranks.append(_fresh_rank(ranks, "E"))
    shape = (*x.shape[:dim], groups, *x.shape[dim + 1 :], options.entries)
    quant = Quantization(QuantFormat.INT, scale_dtype=DType.F32)  # exact values, stored narrow
    return TensorSpec(name, tuple(ranks), shape, _table_dtype(options), Role.INTERMEDIATE,
                      quant=quant)  # fmt: skip


def _fresh_rank(ranks: list[str], base: str) -> str:
    name, n = base, 1
    while name in ranks:
        name, n = f"{base}{n}", n + 1
    return name


def _table_einsum(
    x: TensorSpec, dim: int, table: str, signs: str, producer: Einsum | None, name: str,
    options: LutPrecomputeOptions,
) -> Einsum:  # fmt: skip
    """``Tab[d.., g, d.., e] = sum[k] X[d.., K*g+k, d..] * S[e, k]`` (X inlined when fused)."""
    k = options.k
    out_vars = [f"d{i}" if i != dim else "g" for i in range(len(x.shape))]
    grouped = Affine.of((("g", k), ("k", 1)))
    x_indices = tuple(grouped if i == dim else Affine.var(v) for i, v in enumerate(out_vars))
    source: Expr = Access(x.name, x_indices)
    if producer is not None:
        mapping = {
            index.plain_var: x_indices[i]  # type: ignore[union-attr]
            for i, index in enumerate(producer.output.indices)
        }
        source = _subst(producer.body, mapping)  # type: ignore[arg-type]
    body = Binary(BinaryOp.MUL, source, Access(signs, (Affine.var("e"), Affine.var("k"))))
    output = Access(table, (*(Affine.var(v) for v in out_vars), Affine.var("e")))
    extents = {v: (math.ceil(x.shape[i] / k) if i == dim else x.shape[i])
               for i, v in enumerate(out_vars)}  # fmt: skip
    extents.update(e=options.entries, k=k)
    return Einsum.build(name, output, body, extents, ReduceOp.SUM, ("k",), TABLE_OP)


def _weight_specs(
    spec: TensorSpec, axis: int, taken: set[str], options: LutPrecomputeOptions
) -> tuple[TensorSpec, TensorSpec]:
    """The index and coefficient weights replacing `spec` (no data when `spec` has none)."""
    groups = math.ceil(spec.shape[axis] / options.k)
    ranks = list(spec.ranks)
    ranks[axis] = _fresh_rank(ranks, "G")
    ranks.append(_fresh_rank(ranks, "B"))
    shape = (*spec.shape[:axis], groups, *spec.shape[axis + 1 :], spec.dtype.bits + 1)
    idx_data = coef_data = None
    if spec.data is not None:
        idx_data, coef_data = lookup_tables(spec, axis, options)
    idx = TensorSpec(_unique(taken, f"{spec.name}_lut_idx"), tuple(ranks), shape,
                     _index_dtype(options), Role.WEIGHT, data=idx_data)  # fmt: skip
    coef = TensorSpec(_unique(taken, f"{spec.name}_lut_coef"), tuple(ranks), shape, DType.F32,
                      Role.WEIGHT, data=coef_data)  # fmt: skip
    return idx, coef


def _lookup_einsum(
    t: _Target, table: str, idx: str, coef: str, options: LutPrecomputeOptions
) -> Einsum:
    """``Y = sum[.., g, b] Tab[.., g, .., Idx[.., g, .., b]] * Coef[.., g, .., b]``."""
    einsum = t.einsum
    used = {v for v, _ in einsum.space}
    group_var = _fresh_var(used, f"{t.var}g")
    plane_var = _fresh_var(used | {group_var}, "bit")
    w_indices = tuple(Affine.var(group_var) if d == t.w_axis else i
                      for d, i in enumerate(t.w.indices))  # fmt: skip
    w_indices = (*w_indices, Affine.var(plane_var))
    x_indices = tuple(Affine.var(group_var) if d == t.x_dim else i
                      for d, i in enumerate(t.x.indices))  # fmt: skip
    lookup = Access(table, (*x_indices, Gathered(idx, w_indices)))
    body = Binary(BinaryOp.MUL, lookup, Access(coef, w_indices))
    extents = einsum.extents
    extents[group_var] = math.ceil(extents.pop(t.var) / options.k)
    extents[plane_var] = t.bits + 1
    reduced = tuple(group_var if v == t.var else v for v in einsum.reduced) + (plane_var,)
    return Einsum.build(einsum.name, einsum.output, body, extents, ReduceOp.SUM, reduced, LOOKUP_OP)


def _fresh_var(used: set[str], base: str) -> str:
    name, n = base, 1
    while name in used:
        name, n = f"{base}{n}", n + 1
    return name


@register_pass("lut-precompute", LutPrecomputeOptions)
def lut_precompute(
    cascade: Cascade, options: LutPrecomputeOptions, context: PassContext
) -> Cascade:
    """Rewrite low-bit integer GEMMs into LUT Tensor Core table build + lookup (fused or not)."""
    del context  # needs no calibration data
    return plan_lut_precompute(cascade, options)[0]


__all__ = [
    "LOOKUP_OP", "TABLE_OP", "GemmDecision", "LutPlan", "LutPrecomputeOptions", "TableDecision",
    "integer_codes", "lookup_tables", "lut_precompute", "plan_lut_precompute", "sign_patterns",
]  # fmt: skip
