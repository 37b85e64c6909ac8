"""Any Einsum on a FuseMax/FLAT attention array (``family: attention_array``), one kernel each.

`AttentionArrayModel` is the family's `HardwareModel`: it prices every Einsum of any cascade on
the card's 2D and 1D PE arrays with the operation counting and binding of
`codesign.sim.fusemax`:

* **operations**: `einsum_ops` (a sum-of-products step is one MAC, a sum step one add, a max
  step one max, ``exp`` one exp ...), times the iteration points;
* **binding**: every contraction on the 2D array; on a card with ``exp_on_2d`` (FuseMax) also
  the per-key softmax work of an attention (the Einsums `bind` puts there: they span the whole
  key rank); all other work -- per-row softmax state, norms, activations, residual adds -- on
  the 1D array.  The key rank is the one a softmax max-reduces: ``M`` in FuseMax's cascades,
  ``T`` (the key tokens) in the LLM frontend's; a cascade without one (a CNN) has no per-key
  work;
* **cycles** = max(operations x issue cycles / PEs on the bound array, DRAM bytes / bandwidth),
  DRAM bytes = every input tensor read and the output written (FuseMax's ``UNFUSED`` kernel);
* **energy** (pJ) = operations x per-op energy + register-file accesses + global-buffer words
  (every DRAM word staged in and out: 2 x bytes / word) + DRAM bytes x pJ/B + the static
  energy of both arrays over the cycles.

Views cost nothing (they fold into their consumers' addressing).  Nothing is fused: every
intermediate makes a DRAM round trip, so a 1-pass cascade pays for its tile-level tensors here
while the paper's fused dataflow keeps them on chip; `codesign.sim.fusemax.evaluate_attention`
prices the fused designs (examples/papers/fusemax.py).  On FuseMax's 3-pass attention cascade
the per-Einsum sum equals ``evaluate_attention(Design.UNFUSED, ...)`` on the same card.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codesign.hwmodels.fusemax import AttentionArray, Op
from codesign.ir.cascade import Cascade, Einsum
from codesign.ir.expr import ReduceOp
from codesign.ir.passcount import rank_dims, rank_names, rank_vars
from codesign.sim.cost import COMPUTE_BOUND, Cost, EinsumKind, EinsumResult, LevelCost
from codesign.sim.fusemax import Priced, array_cycles, bind, einsum_ops

KEY_RANKS = ("M", "T")  # FuseMax's cascades, the LLM frontend's key tokens
DRAM = "DRAM"
BUFFER = "buffer"
REGISTER_FILES = "register_files"

_FREE = Cost(0.0, 0.0, 0, 0.0, COMPUTE_BOUND, 0.0, 0.0, 0, ())


def _reduced_vars(einsum: Einsum) -> set[str]:
    kept = {v for index in einsum.output.indices for v in index.variables}
    return set(einsum.extents) - kept


def key_rank(cascade: Cascade) -> str | None:
    """The attention key rank of `cascade`: the first of `KEY_RANKS` a max-reduction (a
    softmax's max) reduces over; None when no softmax traverses one."""
    present = set(rank_names(cascade))
    maxes = [e for e in cascade.einsums if e.reduce is ReduceOp.MAX]
    for rank in KEY_RANKS:
        if rank not in present:
            continue
        dims = rank_dims(cascade, rank)
        if any(_reduced_vars(e) & rank_vars(e, dims) for e in maxes):
            return rank
    return None


def binding(cascade: Cascade, hw: AttentionArray) -> dict[str, Priced]:
    """Every Einsum that issues operations, by name, with its operations and array."""
    rank = key_rank(cascade)
    per_key = {p.einsum.name for p in bind(cascade, hw, rank) if p.on_2d} if rank else set()
    out: dict[str, Priced] = {}
    for einsum in cascade.einsums:
        ops = einsum_ops(einsum)
        if ops:  # every contraction (projections too, not only QK and AV) on the 2D array
            table = tuple(sorted(ops.items(), key=lambda x: x[0].value))
            out[einsum.name] = Priced(einsum, table, Op.MAC in ops or einsum.name in per_key)
    return out


def einsum_cost(einsum: Einsum, priced: Priced | None, cascade: Cascade,
                hw: AttentionArray) -> Cost:  # fmt: skip
    """One non-view Einsum as its own kernel (`priced` None: it issues no operations, e.g. a
    constant fill, and only writes its output)."""
    moved = sum(cascade.tensor(t).size_bytes for t in einsum.input_tensors)
    moved += cascade.tensor(einsum.output.tensor).size_bytes
    dram_cycles = moved / hw.dram_bytes_per_cycle
    array = hw.array_2d if priced is None or priced.on_2d else hw.array_1d
    ops = dict(priced.ops) if priced is not None else {}
    compute = array_cycles(priced, array) if priced is not None else 0.0
    cycles = max(compute, dram_cycles)
    op_pj = sum(n * array.energy_of(op) for op, n in ops.items())
    rf_pj = sum(ops.values()) * array.rf_accesses_per_op * array.rf_access_pj
    buffer_pj = 2.0 * moved / hw.word_bytes * hw.buffer_pj_per_word
    dram_pj = moved * hw.dram_pj_per_byte
    leak_pj = cycles * (hw.array_2d.pes * hw.array_2d.leak_pj_per_cycle
                        + hw.array_1d.pes * hw.array_1d.leak_pj_per_cycle)  # fmt: skip
    levels = (
        LevelCost(REGISTER_FILES, array.pes, 0, 0.0, rf_pj, 0.0, ()),
        LevelCost(BUFFER, 1, 0, 0.0, buffer_pj, 0.0, ()),
        LevelCost(DRAM, 1, 0, dram_cycles, dram_pj, 0.0, ()),
    )
    return Cost(
        cycles=cycles, energy_pj=op_pj + rf_pj + buffer_pj + dram_pj + leak_pj,
        macs=ops.get(Op.MAC, 0), utilization=compute / cycles if cycles else 0.0,
        bound=COMPUTE_BOUND if compute >= dram_cycles else DRAM, compute_cycles=compute,
        compute_energy_pj=op_pj + leak_pj, utilized_pes=min(array.pes, einsum.points),
        levels=levels,
    )  # fmt: skip


@dataclass
class AttentionArrayModel:
    """The attention-array family's model; the binding is computed once per cascade."""

    _bound: dict[int, tuple[Cascade, AttentionArray, dict[str, Priced]]] = field(
        default_factory=dict
    )

    def _binding(self, cascade: Cascade, hw: AttentionArray) -> dict[str, Priced]:
        cached = self._bound.get(id(cascade))
        if cached is not None and cached[0] is cascade and cached[1] is hw:
            return cached[2]
        bound = binding(cascade, hw)
        self._bound[id(cascade)] = (cascade, hw, bound)
        return bound

    def evaluate(self, einsum: Einsum, cascade: Cascade, hw: AttentionArray) -> EinsumResult:
        if einsum.is_view:
            return EinsumResult(einsum.name, einsum.op, EinsumKind.VIEW, _FREE)
        priced = self._binding(cascade, hw).get(einsum.name)
        cost = einsum_cost(einsum, priced, cascade, hw)
        kind = EinsumKind.MAC if cost.macs else EinsumKind.VECTOR
        return EinsumResult(einsum.name, einsum.op, kind, cost)

    def area_mm2(self, hw: AttentionArray) -> float | None:
        return None

    def notes(self, hw: AttentionArray, cascade: Cascade) -> tuple[str, ...]:
        return (
            f"{hw.name}: each Einsum priced as its own kernel (no fusion: intermediates make "
            "a DRAM round trip); fused attention: examples/papers/fusemax.py",
        )


__all__ = [
    "KEY_RANKS", "AttentionArrayModel", "binding", "einsum_cost", "key_rank",
]  # fmt: skip
