"""Attention on a 2D + 1D PE array (FuseMax, MICRO 2024), priced from the Einsum cascades.

The model reads the attention cascade itself -- the 3-pass softmax cascade the frontends emit,
or the 1-pass cascade `attention-1pass` makes of it -- and prices every Einsum:

* **operations**: per iteration point, from the body (`Op` kinds; a sum-of-products reduction
  step is one MAC, a sum step one add, a max step one max); times the points of the space;
* **binding**: an Einsum that touches every key (its key variables span the whole key rank)
  is per-key work.  On FuseMax (PEs with exp and max) per-key work runs on the 2D array and
  per-tile/per-row work (running max, correction, running sums, final divide) on the 1D
  array.  On FLAT only per-key contractions (QK, AV) use the 2D array; all softmax work runs
  on the 1D array;
* **cycles** per array: Σ ops x issue cycles / PEs (FLAT's 1D chain: one point per PE per
  cycle); spatial tiles assumed full (every extent here is a multiple of 256);
* **DRAM traffic**: Q, K, V read and the output written, K and V once more per query tile
  of R rows the buffer holds (R from the buffer, the per-row state and, for a multi-pass
  cascade, the crossing fibres of `codesign.ir.passcount`); a multi-pass cascade whose
  fibres do not fit may instead spill them (one write, one read per later pass): the cheaper
  tiling is taken;
* **latency**: fused and pipelined designs overlap the arrays and DRAM (max of the three:
  TeAAL's component heuristic); `ARCHITECTURE` serialises the two arrays; `UNFUSED` runs each
  Einsum as its own kernel with a DRAM round trip for every tensor (sum of per-kernel maxima);
* **energy** (pJ): ops x per-op energy + register-file accesses + global-buffer words (inputs
  staged, K/V re-read per 256-row query tile, intermediates that change array or pass) +
  DRAM bytes + leakage of both arrays over the latency.

Every assumption is listed in docs/papers.md (FuseMax).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from codesign.hwmodels.fusemax import AttentionArray, Op, PeArray
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Binary, BinaryOp, Const, ReduceOp, Unary, UnaryOp, walk
from codesign.ir.passcount import count_passes, rank_dims, rank_vars
from codesign.ir.recurrence import is_iterative
from codesign.passes.attention_1pass import Attention1PassOptions, attention_1pass
from codesign.passes.pipeline import PassContext

KEY_RANK = "M"


@dataclass(frozen=True, slots=True)
class Transformer:
    """Encoder shape: model width D, heads H, key/value head dims E/F, FFN width S, batch B."""

    name: str
    d_model: int
    heads: int
    head_dim: int
    value_dim: int
    ffn: int
    batch: int


class Design(enum.Enum):
    """The FuseMax paper's ladder, from the unfused baseline to FuseMax."""

    UNFUSED = "unfused"  # 3-pass, FLAT hardware, one kernel per Einsum
    FLAT = "flat"  # 3-pass fused (FLAT dataflow)
    CASCADE = "cascade"  # + the 1-pass cascade, still on FLAT hardware
    ARCHITECTURE = "architecture"  # + FuseMax PEs (exp/max on the 2D array), arrays serialised
    FUSEMAX = "fusemax"  # + binding that pipelines the 2D and 1D arrays


ONE_PASS = {Design.CASCADE, Design.ARCHITECTURE, Design.FUSEMAX}


@dataclass(frozen=True, slots=True)
class Cost:
    """One run: cycles, energy (pJ), DRAM bytes and the two arrays' busy fractions."""

    cycles: float
    energy_pj: float
    dram_bytes: float
    utilization_2d: float
    utilization_1d: float


# -- the cascades ---------------------------------------------------------------------------------
def attention_cascade(model: Transformer, seq: int) -> Cascade:
    """softmax(Q K^T) V for all heads as the frontends lower it (the 3-pass cascade), fp16.
    Q[B,H,P,E], K[B,H,M,E], V[B,H,M,F]; P = M = `seq` (self-attention)."""
    b = CascadeBuilder(f"{model.name}_attention")
    bh = (model.batch, model.heads)
    q = b.tensor("Q", (*bh, seq, model.head_dim), DType.F16, Role.INPUT, ranks=("B", "H", "P", "E"))
    k = b.tensor("K", (*bh, seq, model.head_dim), DType.F16, Role.INPUT, ranks=("B", "H", "M", "E"))
    v = b.tensor("V", (*bh, seq, model.value_dim), DType.F16, Role.INPUT,
                 ranks=("B", "H", "M", "F"))  # fmt: skip
    probs = b.softmax("SM", b.matmul("QK", q, k, transpose_b=True))
    b.set_role(b.matmul("AV", probs, v), Role.OUTPUT)
    return b.build()


def cascade_for(design: Design, model: Transformer, seq: int, hw: AttentionArray) -> Cascade:
    """The cascade a design runs: 1-pass (tiles of one 2D-array side) or the 3-pass one."""
    cascade = attention_cascade(model, seq)
    if design not in ONE_PASS:
        return cascade
    tile = math.isqrt(hw.array_2d.pes)
    return attention_1pass(cascade, Attention1PassOptions(tile=tile), PassContext())


# -- per-Einsum operations and binding ------------------------------------------------------------
_BINARY_OP = {
    BinaryOp.ADD: Op.ADD, BinaryOp.SUB: Op.ADD, BinaryOp.MUL: Op.MUL, BinaryOp.DIV: Op.DIV,
    BinaryOp.MAX: Op.MAX, BinaryOp.MIN: Op.MAX,
}  # fmt: skip


def einsum_ops(einsum: Einsum) -> dict[Op, int]:
    """Operations an Einsum issues over its whole space (views and constants: none)."""
    per_point: dict[Op, int] = {}

    def add(op: Op, n: int = 1) -> None:
        per_point[op] = per_point.get(op, 0) + n

    body = einsum.body
    contraction = (
        einsum.reduce is ReduceOp.SUM and isinstance(body, Binary) and (body.op is BinaryOp.MUL)
    )
    for node in walk(body):
        if isinstance(node, Binary) and not (contraction and node is body):
            add(_BINARY_OP.get(node.op, Op.ADD))
        elif isinstance(node, Unary):
            add(Op.EXP if node.op is UnaryOp.EXP else Op.ADD)
    if contraction:
        add(Op.MAC)
    elif einsum.reduce is ReduceOp.SUM and not isinstance(body, Const):
        add(Op.ADD)
    elif einsum.reduce in (ReduceOp.MAX, ReduceOp.MIN):
        add(Op.MAX)
    if einsum.is_view or isinstance(body, Const):
        return {}
    return {op: n * einsum.points for op, n in per_point.items()}


def _is_contraction(einsum: Einsum) -> bool:
    return Op.MAC in einsum_ops(einsum)


@dataclass(frozen=True, slots=True)
class Priced:
    """One Einsum's operations and the array it is bound to (True: 2D)."""

    einsum: Einsum
    ops: tuple[tuple[Op, int], ...]
    on_2d: bool


def bind(cascade: Cascade, hw: AttentionArray, rank: str = KEY_RANK) -> tuple[Priced, ...]:
    """Each Einsum with its operations and array (see the module docstring); `rank`: the key
    rank (FuseMax's cascades call it M)."""
    dims = rank_dims(cascade, rank)
    keys = count_passes(cascade, rank).extent
    out: list[Priced] = []
    for einsum in cascade.einsums:
        ops = einsum_ops(einsum)
        if not ops:
            continue
        kvars = rank_vars(einsum, dims) & set(einsum.extents)
        per_key = math.prod(einsum.extents[v] for v in kvars) >= keys if kvars else False
        on_2d = per_key and (hw.exp_on_2d or _is_contraction(einsum))
        out.append(Priced(einsum, tuple(sorted(ops.items(), key=lambda x: x[0].value)), on_2d))
    return tuple(out)


def array_cycles(p: Priced, array: PeArray) -> float:
    """Cycles `p` keeps `array` busy: its operations x issue cycles over the PEs (FLAT's 1D
    chain: one point per PE per cycle)."""
    if array.point_per_cycle:
        return p.einsum.points / array.pes
    return sum(n * array.cycles_of(op) for op, n in p.ops) / array.pes


def op_energy_pj(p: Priced, array: PeArray) -> float:
    """Energy (pJ) of `p`'s operations on `array` and their register-file accesses."""
    ops = sum(n for _, n in p.ops)
    compute = sum(n * array.energy_of(op) for op, n in p.ops)
    return compute + ops * array.rf_accesses_per_op * array.rf_access_pj


# -- traffic ---------------------------------------------------------------------------------
def _bytes(cascade: Cascade, name: str) -> int:
    return cascade.tensor(name).size_bytes


def fused_traffic(cascade: Cascade, hw: AttentionArray) -> tuple[float, int]:
    """DRAM bytes of a fused run and its query-tile height R (rows kept on chip)."""
    q, k, v, av = cascade.tensor("Q"), cascade.tensor("K"), cascade.tensor("V"), cascade.outputs[0]
    rows = q.shape[2]
    row_io = (q.shape[3] + av.shape[-1]) * hw.word_bytes
    states = sorted({e.output.tensor for e in cascade.einsums if is_iterative(e)})
    if states:  # the running state of every query row: Q row + running max, sum and numerator
        row_state = q.shape[3] * hw.word_bytes + sum(
            _bytes(cascade, s) // (math.prod(q.shape[:3]) * cascade.tensor(s).shape[-1])
            for s in states
        )
    else:
        row_state = row_io
    tile = math.isqrt(hw.array_2d.pes)
    kv_tiles = 2 * tile * (k.shape[3] + v.shape[3]) * hw.word_bytes  # double-buffered K/V tile
    free = hw.buffer_bytes - kv_tiles
    passes = count_passes(cascade, KEY_RANK)
    base = q.size_bytes + av.size_bytes
    options: list[tuple[float, int]] = []
    fit = free // (row_state + passes.fiber_bytes)
    if fit >= 1:
        r = min(rows, fit)
        options.append((base + (k.size_bytes + v.size_bytes) * math.ceil(rows / r), r))
    if passes.crossing:
        r = min(rows, max(1, free // row_state))
        spill = passes.spill_bytes(0)
        options.append((base + (k.size_bytes + v.size_bytes) * math.ceil(rows / r) + spill, r))
    return min(options)


def _buffer_words(cascade: Cascade, priced: tuple[Priced, ...], rows_per_tile: int,
                  hw: AttentionArray) -> float:  # fmt: skip
    """Global-buffer words: DRAM inputs staged and re-read per 256-row tile, and every
    intermediate whose consumer runs on the other array or in a later pass."""
    tile = math.isqrt(hw.array_2d.pes)
    q, k, v = (cascade.tensor(n) for n in ("Q", "K", "V"))
    p, m = q.shape[2], k.shape[2]
    words = (q.size * (1 + m / tile) + (k.size + v.size) * (math.ceil(p / rows_per_tile)
             + p / tile) + cascade.outputs[0].size * 2)  # fmt: skip
    where = {pr.einsum.output.tensor: pr.on_2d for pr in priced}
    passes = dict(count_passes(cascade, KEY_RANK).einsum_pass)
    for pr in priced:
        for name in pr.einsum.input_tensors:
            spec = cascade.tensor(name)
            if spec.role is not Role.INTERMEDIATE or name not in where:
                continue
            producer = cascade.producers(name)[-1].name
            if where[name] != pr.on_2d or passes.get(producer, 0) != passes.get(pr.einsum.name, 0):
                words += 2 * spec.size  # written once, read once by this consumer
    return words


# -- the cost --------------------------------------------------------------------------------
def evaluate_attention(design: Design, model: Transformer, seq: int, hw: AttentionArray) -> Cost:
    """Cycles, energy and utilization of one attention layer (all heads, the whole batch)."""
    cascade = cascade_for(design, model, seq, hw)
    priced = bind(cascade, hw)
    c2d = sum(array_cycles(p, hw.array_2d) for p in priced if p.on_2d)
    c1d = sum(array_cycles(p, hw.array_1d) for p in priced if not p.on_2d)
    energy = sum(op_energy_pj(p, hw.array_2d if p.on_2d else hw.array_1d) for p in priced)
    per_cycle = hw.dram_bytes_per_cycle
    if design is Design.UNFUSED:
        dram = 0.0
        cycles = 0.0
        for p in priced:
            moved = sum(_bytes(cascade, t) for t in p.einsum.input_tensors)
            moved += _bytes(cascade, p.einsum.output.tensor)
            dram += moved
            array = hw.array_2d if p.on_2d else hw.array_1d
            cycles += max(array_cycles(p, array), moved / per_cycle)
        rows = cascade.tensor("Q").shape[2]
        buffer_words = 2.0 * dram / hw.word_bytes
    else:
        dram, rows = fused_traffic(cascade, hw)
        compute = c2d + c1d if design is Design.ARCHITECTURE else max(c2d, c1d)
        cycles = max(compute, dram / per_cycle)
        buffer_words = _buffer_words(cascade, priced, rows, hw)
    energy += buffer_words * hw.buffer_pj_per_word + dram * hw.dram_pj_per_byte
    energy += cycles * (hw.array_2d.pes * hw.array_2d.leak_pj_per_cycle
                        + hw.array_1d.pes * hw.array_1d.leak_pj_per_cycle)  # fmt: skip
    return Cost(cycles, energy, dram, c2d / cycles, c1d / cycles)


def evaluate_linear(model: Transformer, seq: int, hw: AttentionArray) -> Cost:
    """The rest of one encoder layer on the 2D array: Q, K, V and output projections and the
    two FFN matmuls (B·P rows each), weights and activations read once from DRAM."""
    rows = model.batch * seq
    inner = model.heads * model.head_dim
    shapes = [(model.d_model, inner)] * 3 + [(inner, model.d_model), (model.d_model, model.ffn),
                                             (model.ffn, model.d_model)]  # fmt: skip
    macs = sum(rows * k * n for k, n in shapes)
    dram = hw.word_bytes * sum(k * n + rows * (k + n) for k, n in shapes)
    a = hw.array_2d
    cycles = max(macs / a.pes, dram / hw.dram_bytes_per_cycle)
    energy = macs * (a.energy_of(Op.MAC) + a.rf_accesses_per_op * a.rf_access_pj)
    energy += dram * hw.dram_pj_per_byte + 2 * dram / hw.word_bytes * hw.buffer_pj_per_word
    energy += cycles * (
        a.pes * a.leak_pj_per_cycle + hw.array_1d.pes * hw.array_1d.leak_pj_per_cycle
    )
    return Cost(cycles, energy, dram, macs / a.pes / cycles, 0.0)


def combine(attention: Cost, linear: Cost) -> Cost:
    """One encoder layer end to end: attention then the linear layers (sequential)."""
    cycles = attention.cycles + linear.cycles
    return Cost(
        cycles,
        attention.energy_pj + linear.energy_pj,
        attention.dram_bytes + linear.dram_bytes,
        (attention.utilization_2d * attention.cycles + linear.utilization_2d * linear.cycles)
        / cycles,
        attention.utilization_1d * attention.cycles / cycles,
    )


__all__ = [
    "Cost", "Design", "Priced", "Transformer", "array_cycles", "attention_cascade", "bind",
    "cascade_for", "combine", "einsum_ops", "evaluate_attention", "evaluate_linear",
    "fused_traffic", "op_energy_pj",
]  # fmt: skip
