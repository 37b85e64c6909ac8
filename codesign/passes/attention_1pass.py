"""`attention-1pass`: 3-pass softmax attention -> FuseMax's 1-pass online-softmax cascade.

Matches the cascade the ONNX and LLM frontends emit (``ir.builder.softmax`` then the ``P·V``
contraction)::

    MX[r,0]  = max[t] S[r,t]              # pass 1 over the key rank T
    E[r,t]   = exp(S[r,t] - MX[r,0])      # pass 2
    SM[r,0]  = sum[t] E[r,t]
    P[r,t]   = E[r,t] / SM[r,0]           # pass 3
    O[o]     = sum[t] P[r(o),t] * V[v(o,t)]

and rewrites it over the key rank split into ``M1`` tiles of ``M0`` keys (t = m1·M0 + m0) into
one pass (FuseMax Cascade 5, with the correction products inlined so that every recurrence is
one self-referential Einsum, see `codesign.ir.recurrence`)::

    LM[r,m1]      = max[m0] S[r,m1*M0+m0]                        # tile max
    RM[r,0]       = -inf
    RM[r,m1+1]    = max(RM[r,m1], LM[r,m1])                      # running max
    SLN[r,m1,m0]  = exp(S[r,m1*M0+m0] - RM[r,m1+1])              # tile numerator
    SLD[r,m1]     = sum[m0] SLN[r,m1,m0]                          # tile denominator
    PRM[r,m1]     = exp(RM[r,m1] - RM[r,m1+1])                    # correction factor
    RD[r,0]       = 0;  RD[r,m1+1]  = RD[r,m1] * PRM[r,m1] + SLD[r,m1]
    SLNV[o,m1]    = sum[m0] SLN[r(o),m1,m0] * V[v(o,m1*M0+m0)]
    RNV[o,0]      = 0;  RNV[o,m1+1] = RNV[o,m1] * PRM[r(o),m1] + SLNV[o,m1]
    O[o]          = RNV[o,M1] / RD[r(o),M1]

Exact in real arithmetic; in float32 the interpreter agrees to ~1e-6 relative.  A row whose
first tile is entirely ``-inf`` (a fully masked tile before any real key) would give NaN, as in
FuseMax; causal masks never do that (key 0 is always visible).
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Einsum, Role, TensorSpec
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Unary, UnaryOp
from codesign.ir.index import Affine, IndexExpr
from codesign.passes.pipeline import PassContext, register_pass

MAX, SUB, DIV, MUL = BinaryOp.MAX, BinaryOp.SUB, BinaryOp.DIV, BinaryOp.MUL


@dataclass(frozen=True, slots=True)
class Attention1PassOptions:
    """`tile`: keys per tile (M0); 0 picks the largest divisor of the key extent <= 64."""

    tile: int = 0


@dataclass(frozen=True, slots=True)
class SoftmaxAttention:
    """One matched 3-pass softmax attention: the five Einsums and where the key rank is."""

    scores: str  # S
    axis: int  # the key (softmaxed) dimension of S
    max_: Einsum
    exp: Einsum
    sum_: Einsum
    div: Einsum
    av: Einsum


def _plain_vars(access: Access) -> tuple[str, ...] | None:
    names = tuple(i.plain_var if isinstance(i, Affine) else None for i in access.indices)
    return None if None in names else names  # type: ignore[return-value]


def _row(access: Access, axis: int, rank: int) -> tuple[IndexExpr, ...] | None:
    """The non-key indices of a row-reduced tensor access (keepdims' constant 0 allowed)."""
    idx = access.indices
    if len(idx) == rank:
        if idx[axis] != Affine.constant(0):
            return None
        return idx[:axis] + idx[axis + 1 :]
    return idx if len(idx) == rank - 1 else None


def _only_consumers(cascade: Cascade, tensor: str, names: set[str]) -> bool:
    spec = cascade.tensor(tensor)
    return spec.role is Role.INTERMEDIATE and {e.name for e in cascade.consumers(tensor)} <= names


def match_attention(cascade: Cascade, mx: Einsum) -> SoftmaxAttention | None:
    """The 3-pass softmax attention whose max is `mx`, or None when the pattern does not hold."""
    body = mx.body
    if mx.reduce is not ReduceOp.MAX or len(mx.reduced) != 1 or not isinstance(body, Access):
        return None
    s_vars = _plain_vars(body)
    if s_vars is None or mx.reduced[0] not in s_vars or len(set(s_vars)) != len(s_vars):
        return None
    axis, rank = s_vars.index(mx.reduced[0]), len(s_vars)
    scores = body.tensor
    row_mx = tuple(Affine.var(v) for k, v in enumerate(s_vars) if k != axis)
    if _row(mx.output, axis, rank) != row_mx or len(cascade.producers(mx.output.tensor)) != 1:
        return None
    exp = _single(cascade, mx.output.tensor)
    if exp is None or exp.reduce is not None or not isinstance(exp.body, Unary):
        return None
    inner = exp.body.arg
    if exp.body.op is not UnaryOp.EXP or not isinstance(inner, Binary) or inner.op is not SUB:
        return None
    if not (isinstance(inner.lhs, Access) and isinstance(inner.rhs, Access)):
        return None
    e_vars = _plain_vars(exp.output)
    if e_vars is None or inner.lhs != Access(scores, exp.output.indices):
        return None
    if inner.rhs.tensor != mx.output.tensor or not _same_row(inner.rhs, exp.output, axis, rank):
        return None
    consumers = cascade.consumers(exp.output.tensor)
    sum_ = next((e for e in consumers if e.reduce is ReduceOp.SUM), None)
    div = next((e for e in consumers if e.reduce is None), None)
    if sum_ is None or div is None or len(consumers) != 2 or len(sum_.reduced) != 1:
        return None
    if not (isinstance(sum_.body, Access) and sum_.body.tensor == exp.output.tensor):
        return None
    sum_vars = _plain_vars(sum_.body)
    if sum_vars is None or sum_vars[axis] != sum_.reduced[0]:
        return None
    if _row(sum_.output, axis, rank) != tuple(
        Affine.var(v) for k, v in enumerate(sum_vars) if k != axis
    ):
        return None
    d = div.body
    if not (isinstance(d, Binary) and d.op is DIV and isinstance(d.lhs, Access)):
        return None
    if not isinstance(d.rhs, Access) or d.rhs.tensor != sum_.output.tensor:
        return None
    if d.lhs != Access(exp.output.tensor, div.output.indices) or _plain_vars(div.output) is None:
        return None
    if not _same_row(d.rhs, div.output, axis, rank):
        return None
    av = _single(cascade, div.output.tensor)
    if av is None or not _is_av(av, div.output.tensor, axis):
        return None
    if not (
        _only_consumers(cascade, mx.output.tensor, {exp.name})
        and _only_consumers(cascade, exp.output.tensor, {sum_.name, div.name})
        and _only_consumers(cascade, sum_.output.tensor, {div.name})
        and _only_consumers(cascade, div.output.tensor, {av.name})
    ):
        return None
    return SoftmaxAttention(scores, axis, mx, exp, sum_, div, av)


def _same_row(row_access: Access, full: Access, axis: int, rank: int) -> bool:
    return _row(row_access, axis, rank) == full.indices[:axis] + full.indices[axis + 1 :]


def _single(cascade: Cascade, tensor: str) -> Einsum | None:
    consumers = cascade.consumers(tensor)
    return consumers[0] if len(consumers) == 1 else None


def _is_av(av: Einsum, probs: str, axis: int) -> bool:
    """``O[o] = sum[t] P[..t..] * V[..]`` with t the key index of P and P read once."""
    b = av.body
    if av.reduce is not ReduceOp.SUM or len(av.reduced) != 1 or not isinstance(b, Binary):
        return False
    if b.op is not MUL or not isinstance(b.lhs, Access) or not isinstance(b.rhs, Access):
        return False
    p, v = (b.lhs, b.rhs) if b.lhs.tensor == probs else (b.rhs, b.lhs)
    if p.tensor != probs or v.tensor == probs:
        return False
    t = av.reduced[0]
    key = p.indices[axis]
    others = p.indices[:axis] + p.indices[axis + 1 :]
    return (
        isinstance(key, Affine)
        and key.plain_var == t
        and all(t not in i.variables for i in others)
        and all(isinstance(i, Affine) for i in v.indices)
    )


def _auto_tile(keys: int) -> int:
    return max(d for d in range(1, min(keys, 64) + 1) if keys % d == 0)


def _substitute(index: IndexExpr, var: str, by: Affine) -> IndexExpr:
    """``index`` with ``var`` replaced by the affine ``by`` (affine indices only)."""
    assert isinstance(index, Affine)
    coeff = dict(index.terms).get(var, 0)
    if coeff == 0:
        return index
    terms = [(n, c) for n, c in index.terms if n != var] + [(n, coeff * c) for n, c in by.terms]
    return Affine.of(terms, index.const + coeff * by.const)


def _fresh(taken: set[str], base: str) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}{k}", k + 1
    taken.add(name)
    return name


def rewrite_attention(cascade: Cascade, att: SoftmaxAttention, tile: int) -> Cascade:
    """The cascade with `att` replaced by the 1-pass online-softmax cascade."""
    s_spec = cascade.tensor(att.scores)
    keys = s_spec.shape[att.axis]
    m0_n = tile or _auto_tile(keys)
    if m0_n <= 0 or keys % m0_n:
        raise InputError(
            f"attention-1pass: tile {m0_n} does not divide the key rank ({keys}) of {att.max_.name}"
        )
    m1_n = keys // m0_n
    av = att.av
    b = av.body
    assert isinstance(b, Binary) and isinstance(b.lhs, Access) and isinstance(b.rhs, Access)
    p_acc, v_acc = (b.lhs, b.rhs) if b.lhs.tensor == att.div.output.tensor else (b.rhs, b.lhs)
    t = av.reduced[0]
    ext = av.extents
    ov = tuple(v for v, _ in av.space if v != t)
    used = set(ext) | {f"r{k}" for k in range(len(s_spec.shape))}
    m1, m0 = _fresh(used, "m1"), _fresh(used, "m0")
    names = {t_.name for t_ in cascade.tensors} | {e.name for e in cascade.einsums}
    base = att.max_.name.removesuffix("_max")

    def new(suffix: str) -> str:
        return _fresh(names, f"{base}_{suffix}")

    row_n = len(s_spec.shape) - 1
    rvars = tuple(f"r{k}" for k in range(row_n))
    rshape = tuple(n for k, n in enumerate(s_spec.shape) if k != att.axis)
    rranks = tuple(n for k, n in enumerate(s_spec.ranks) if k != att.axis)
    oshape = tuple(ext[v] for v in ov)
    oranks = tuple(v.upper() for v in ov)
    dt = s_spec.dtype
    tensors: list[TensorSpec] = []

    def tensor(suffix: str, shape: tuple[int, ...], ranks: tuple[str, ...]) -> str:
        name = new(suffix)
        tensors.append(TensorSpec(name, ranks, shape, dt, Role.INTERMEDIATE))
        return name

    lm = tensor("lm", rshape + (m1_n,), rranks + ("M1",))
    rm = tensor("rm", rshape + (m1_n + 1,), rranks + ("M1",))
    sln = tensor("sln", rshape + (m1_n, m0_n), rranks + ("M1", "M0"))
    sld = tensor("sld", rshape + (m1_n,), rranks + ("M1",))
    prm = tensor("prm", rshape + (m1_n,), rranks + ("M1",))
    rd = tensor("rd", rshape + (m1_n + 1,), rranks + ("M1",))
    slnv = tensor("slnv", oshape + (m1_n,), oranks + ("M1",))
    rnv = tensor("rnv", oshape + (m1_n + 1,), oranks + ("M1",))

    key = Affine.of({m1: m0_n, m0: 1})
    rv = tuple(Affine.var(v) for v in rvars)
    ovx = tuple(Affine.var(v) for v in ov)
    p_row = p_acc.indices[: att.axis] + p_acc.indices[att.axis + 1 :]
    step, last = Affine.of({m1: 1}, 1), Affine.constant(m1_n)
    v1 = Affine.var(m1)

    def s_at(k: Affine) -> Access:
        return Access(att.scores, rv[: att.axis] + (k,) + rv[att.axis :])

    r_ext = dict(zip(rvars, rshape, strict=True))
    o_ext = {v: ext[v] for v in ov}
    tiles = {m1: m1_n, m0: m0_n}
    op = att.max_.op
    rows = {**r_ext, m1: m1_n}
    outs = {**o_ext, m1: m1_n}
    e = Einsum.build
    einsums = [
        e(lm, Access(lm, rv + (v1,)), s_at(key), {**r_ext, **tiles}, ReduceOp.MAX, (m0,), op),
        e(f"{rm}_init", Access(rm, rv + (Affine.constant(0),)), Const(float("-inf")), r_ext, op=op),
        e(
            f"{rm}_step", Access(rm, rv + (step,)),
            Binary(MAX, Access(rm, rv + (v1,)), Access(lm, rv + (v1,))), rows, op=op,
        ),
        e(
            sln, Access(sln, rv + (v1, Affine.var(m0))),
            Unary(UnaryOp.EXP, Binary(SUB, s_at(key), Access(rm, rv + (step,)))),
            {**r_ext, **tiles}, op=op,
        ),
        e(sld, Access(sld, rv + (v1,)), Access(sln, rv + (v1, Affine.var(m0))),
          {**r_ext, **tiles}, ReduceOp.SUM, (m0,), op),
        e(
            prm, Access(prm, rv + (v1,)),
            Unary(UnaryOp.EXP, Binary(SUB, Access(rm, rv + (v1,)), Access(rm, rv + (step,)))),
            rows, op=op,
        ),
        e(f"{rd}_init", Access(rd, rv + (Affine.constant(0),)), Const(0.0), r_ext, op=op),
        e(
            f"{rd}_step", Access(rd, rv + (step,)),
            _madd(Access(rd, rv + (v1,)), Access(prm, rv + (v1,)), Access(sld, rv + (v1,))),
            rows, op=op,
        ),
        e(
            slnv, Access(slnv, ovx + (v1,)),
            Binary(
                MUL, Access(sln, p_row + (v1, Affine.var(m0))),
                Access(v_acc.tensor, tuple(_substitute(i, t, key) for i in v_acc.indices)),
            ),
            {**o_ext, **tiles}, ReduceOp.SUM, (m0,), av.op,
        ),
        e(f"{rnv}_init", Access(rnv, ovx + (Affine.constant(0),)), Const(0.0), o_ext, op=av.op),
        e(
            f"{rnv}_step", Access(rnv, ovx + (step,)),
            _madd(Access(rnv, ovx + (v1,)), Access(prm, p_row + (v1,)), Access(slnv, ovx + (v1,))),
            outs, op=av.op,
        ),
        e(
            av.name, av.output,
            Binary(DIV, Access(rnv, ovx + (last,)), Access(rd, p_row + (last,))), o_ext, op=av.op,
        ),
    ]  # fmt: skip
    gone = {att.max_.name, att.exp.name, att.sum_.name, att.div.name}
    dropped = {x.output.tensor for x in (att.max_, att.exp, att.sum_, att.div)}
    out: list[Einsum] = []
    for einsum in cascade.einsums:
        if einsum.name == av.name:
            out += einsums
        elif einsum.name not in gone:
            out.append(einsum)
    # the new tensors take the place of the first dropped one (the softmax max)
    specs: list[TensorSpec] = []
    for spec in cascade.tensors:
        if spec.name == att.max_.output.tensor:
            specs += tensors
        if spec.name not in dropped:
            specs.append(spec)
    return Cascade(cascade.name, tuple(specs), tuple(out))


def _madd(state: Access, factor: Access, addend: Access) -> Expr:
    return Binary(BinaryOp.ADD, Binary(MUL, state, factor), addend)


@register_pass("attention-1pass", Attention1PassOptions)
def attention_1pass(
    cascade: Cascade, options: Attention1PassOptions, context: PassContext
) -> Cascade:
    """3-pass softmax attention -> 1-pass online softmax over a tiled key rank (FuseMax)."""
    if options.tile < 0:
        raise InputError(f"attention-1pass: tile must be >= 0, got {options.tile}")
    while True:
        att = next(
            (a for e in cascade.einsums if (a := match_attention(cascade, e)) is not None), None
        )
        if att is None:
            return cascade
        cascade = rewrite_attention(cascade, att, options.tile)
