"""Cost of Einsums on a bit-serial / bit-parallel PE array (`codesign.hwmodels.bitserial`).

The array's dataflow fixes the schedule, so there is no mapping search (the model follows the
`EinsumPricing` protocol of `codesign.sim.family_models`).  A MAC Problem is seen as a GEMM
(`codesign.sim.systolic_cost.gemm_view`): ``K`` reduced dims (``cin``), ``N`` weight-only dims
(``cout``, down the PE rows), ``M`` input-only dims (tokens, across the columns) and ``batch``
dims shared by all three (attention heads).  Per VALIDATION.md section 4:

* compute cycles ``= batch * ceil(K/dp) * ceil(N/rows) * ceil(M/cols) * latency``, the latency
  of the PE at the operand widths (`BitSerialArray.latency_cycles`);
* DRAM bits = weights + inputs + outputs at their widths; when, per batch item, both the weights
  and the inputs exceed their buffers, one operand is re-fetched once per buffer-load of the
  other, whichever costs fewer bits (the BitMoD artifact's rule);
* cycles ``= max(compute, DRAM bits / bits_per_cycle)``.

Operand widths: a static weight is ``weight_bits`` (the design's average incl. scale overhead,
or the IR dtype when the YAML leaves it out); activations ``activation_bits``; an Einsum of two
activations (QK^T, SV) runs both operands at ``attention_bits`` (16), which on a weight-serial
PE also sets its latency.  The BitMoD artifact keeps the design's *weight* latency there
(``ceil(floor(w)/2)``); ``BitSerialModel(AttentionLatency.WEIGHT)`` prices it that way, for
reproducing its numbers (examples/papers/bitmod.py ``--attention artifact``, docs/papers.md).

Energy: every PE burns ``pe_energy_pj`` per compute cycle (idle lanes included, as synthesised);
each tile reads one dp-wide word per PE row from the weight buffer and per PE column from the
input buffer; every DRAM fill is written into a buffer once; DRAM at its per-bit access energy.
Non-MAC Einsums run on the vector unit: ``ceil(ops/lanes)`` cycles, against their compulsory DRAM
traffic (`codesign.ir.stats`) only when the YAML says the unit streams through DRAM
(``vector.dram_traffic``; by default it works on the buffers' contents).  That traffic is priced
at the width the MAC Einsums store activations at (issue 11, item 5): every non-weight tensor at
``activation_bits`` per element when the design fixes it, else at its IR dtype; weights (a bias,
a norm scale) at their IR dtype (`stored_bytes`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from codesign.hwmodels.arch import TensorRole
from codesign.hwmodels.bitserial import BitSerialArray
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.stats import einsum_stats
from codesign.mapper.mapping import Mapping
from codesign.mapper.problem import Problem, ProblemTensor
from codesign.sim.cost import COMPUTE_BOUND, Cost, LevelCost, TensorActions
from codesign.sim.systolic_cost import gemm_view

DRAM = "DRAM"
BUFFERS = "buffers"


def stored_bytes(
    cascade: Cascade, tensor: str, nbytes: float, activation_bits: float | None
) -> float:
    """`nbytes` of `tensor` (at its IR dtype) as the array stores it: a weight at its IR dtype;
    any other tensor at `activation_bits` per element when the design fixes it (what `mac_cost`
    reads and writes activations at), else at its IR dtype."""
    if activation_bits is None or not cascade.has_tensor(tensor):
        return float(nbytes)
    spec = cascade.tensor(tensor)
    if spec.role is Role.WEIGHT:
        return float(nbytes)
    return nbytes * activation_bits / spec.dtype.bits


@dataclass(frozen=True, slots=True)
class OperandBits:
    """Widths the array runs one MAC Einsum at, in bits per element."""

    weight: float
    activation: float
    output: float


def _tensor(problem: Problem, role: TensorRole) -> ProblemTensor:
    return next(t for t in problem.tensors if t.role is role)


def operand_bits(hw: BitSerialArray, problem: Problem, static_weight: bool) -> OperandBits:
    """The widths of `problem` on `hw`: design precision, else the IR's dtypes (module doc)."""
    if not static_weight:
        return OperandBits(hw.attention_bits, hw.attention_bits, hw.attention_bits)
    weight = hw.weight_bits or float(_tensor(problem, TensorRole.WEIGHT).bits)
    act = hw.activation_bits or float(_tensor(problem, TensorRole.INPUT).bits)
    out = hw.activation_bits or float(problem.output.bits)
    return OperandBits(weight, act, out)


def refetch_counts(
    weight_bits: float, input_bits: float, weight_buffer_bits: float, input_buffer_bits: float
) -> tuple[int, int]:
    """(weight fetches, input fetches) of one GEMM: 1 each unless both overflow their buffers;
    then the operand whose repetition moves fewer bits is streamed again per buffer-load of the
    other (ties re-fetch the input, as the BitMoD artifact does)."""
    if weight_bits <= weight_buffer_bits or input_bits <= input_buffer_bits:
        return 1, 1
    weight_times = math.ceil(input_bits / input_buffer_bits)
    input_times = math.ceil(weight_bits / weight_buffer_bits)
    if weight_times * weight_bits + input_bits < input_times * input_bits + weight_bits:
        return weight_times, 1
    return 1, input_times


class AttentionLatency(enum.Enum):
    """How many cycles a tile of an activation x activation Einsum (QK^T, SV) takes."""

    OPERANDS = "operands"  # the PE's latency at the operands' width (`attention_bits`)
    WEIGHT = "weight"  # the design's weight latency, as the BitMoD artifact prices attention


@dataclass(frozen=True, slots=True)
class BitSerialModel:
    """Prices Einsums on a `BitSerialArray`; results are values.

    `attention_latency` picks the latency of activation x activation Einsums; ``WEIGHT`` falls
    back to the operands' width on a design that leaves ``weight_bits`` to the IR.
    """

    attention_latency: AttentionLatency = AttentionLatency.OPERANDS

    def evaluate(self, problem: Problem, mapping: Mapping | None, arch: BitSerialArray) -> Cost:
        """The CostModel entry point: a MAC problem whose weight operand is a static weight."""
        del mapping  # the array's dataflow fixes the schedule
        return self.mac_cost(problem, arch, static_weight=True)

    def evaluate_einsum(
        self, einsum: Einsum, problem: Problem | None, cascade: Cascade, hardware: BitSerialArray
    ) -> Cost:
        """Price one non-view Einsum: a MAC `problem` on the array, anything else on the
        vector unit."""
        if problem is None:
            return self.vector_cost(einsum, cascade, hardware)
        weight = _tensor(problem, TensorRole.WEIGHT).name
        static = cascade.has_tensor(weight) and cascade.tensor(weight).role is Role.WEIGHT
        return self.mac_cost(problem, hardware, static_weight=static)

    def mac_cost(self, problem: Problem, hw: BitSerialArray, static_weight: bool) -> Cost:
        batch, m, n, k = gemm_view(problem)
        bits = operand_bits(hw, problem, static_weight)
        latency = hw.latency_cycles(bits.weight, bits.activation)
        if (
            not static_weight
            and self.attention_latency is AttentionLatency.WEIGHT
            and hw.weight_bits is not None
        ):
            latency = hw.latency_cycles(hw.weight_bits, bits.activation)
        tiles = batch * math.ceil(k / hw.dp) * math.ceil(n / hw.rows) * math.ceil(m / hw.cols)
        compute_cycles = float(tiles * latency)

        extents = dict(problem.dims)
        weight_t = _tensor(problem, TensorRole.WEIGHT)
        input_t = _tensor(problem, TensorRole.INPUT)
        w_bits = weight_t.footprint(extents) * bits.weight
        i_bits = input_t.footprint(extents) * bits.activation
        o_bits = problem.output.footprint(extents) * bits.output
        w_fetch, i_fetch = refetch_counts(
            w_bits / batch, i_bits / batch, hw.weight_buffer_bytes * 8, hw.input_buffer_bytes * 8
        )
        fills = {
            weight_t.name: w_bits * w_fetch,
            input_t.name: i_bits * i_fetch,
            problem.output.name: o_bits,
        }
        dram_bits = sum(fills.values())
        dram_cycles = dram_bits / hw.dram_bits_per_cycle

        # one dp-wide word per PE row (weights) and per PE column (inputs) each tile
        w_read_bits = tiles * hw.dp * hw.rows * hw.stored_weight_bits(bits.weight)
        i_read_bits = tiles * hw.dp * hw.cols * bits.activation
        buffer_actions = (
            TensorActions(weight_t.name, w_read_bits, fills[weight_t.name], 0.0, 0,
                          w_read_bits * hw.sram_read_pj_per_bit
                          + fills[weight_t.name] * hw.sram_write_pj_per_bit),
            TensorActions(input_t.name, i_read_bits, fills[input_t.name], 0.0, 0,
                          i_read_bits * hw.sram_read_pj_per_bit
                          + fills[input_t.name] * hw.sram_write_pj_per_bit),
            TensorActions(problem.output.name, 0.0, 0.0, o_bits, 0,
                          o_bits * hw.sram_write_pj_per_bit),
        )  # fmt: skip
        dram_actions = tuple(
            TensorActions(name, 0.0 if name == problem.output.name else b,
                          b if name == problem.output.name else 0.0, 0.0, 0,
                          b * hw.dram_pj_per_bit)
            for name, b in fills.items()
        )  # fmt: skip
        levels = (
            LevelCost(DRAM, 1, 0, dram_cycles, sum(a.energy_pj for a in dram_actions), 0.0,
                      dram_actions),
            LevelCost(BUFFERS, 1, 0, 0.0, sum(a.energy_pj for a in buffer_actions), 0.0,
                      buffer_actions),
        )  # fmt: skip
        compute_energy = hw.pe_energy_pj * hw.pe_count * compute_cycles
        cycles = max(compute_cycles, dram_cycles)
        macs = problem.macs
        peak_macs = cycles * hw.pe_count * hw.dp / latency
        return Cost(
            cycles=cycles,
            energy_pj=compute_energy + sum(level.energy_pj for level in levels),
            macs=macs,
            utilization=macs / peak_macs if peak_macs else 0.0,
            bound=COMPUTE_BOUND if compute_cycles >= dram_cycles else DRAM,
            compute_cycles=compute_cycles,
            compute_energy_pj=compute_energy,
            utilized_pes=min(n, hw.rows) * min(m, hw.cols),
            levels=levels,
        )

    def vector_cost(self, einsum: Einsum, cascade: Cascade, hw: BitSerialArray) -> Cost:
        """A non-MAC Einsum on the vector unit against its compulsory DRAM traffic."""
        stats = einsum_stats(einsum, cascade)
        ops = stats.flops
        compute_cycles = float(math.ceil(ops / hw.vector_lanes)) if ops else 0.0
        traffic = (
            tuple(
                (t, stored_bytes(cascade, t, n, hw.activation_bits)) for t, n in stats.tensor_bytes
            )
            if hw.vector_dram_traffic
            else ()
        )
        actions = tuple(
            TensorActions(tensor, 0.0 if tensor == stats.output_tensor else nbytes * 8.0,
                          nbytes * 8.0 if tensor == stats.output_tensor else 0.0, 0.0, 0,
                          nbytes * 8.0 * hw.dram_pj_per_bit)
            for tensor, nbytes in traffic
        )  # fmt: skip
        dram_cycles = sum(n for _, n in traffic) * 8.0 / hw.dram_bits_per_cycle
        dram_energy = sum(a.energy_pj for a in actions)
        compute_energy = ops * hw.vector_pj_per_op
        cycles = max(compute_cycles, dram_cycles)
        return Cost(
            cycles=cycles,
            energy_pj=compute_energy + dram_energy,
            macs=0,
            utilization=ops / (cycles * hw.vector_lanes) if cycles else 0.0,
            bound=COMPUTE_BOUND if compute_cycles >= dram_cycles else DRAM,
            compute_cycles=compute_cycles,
            compute_energy_pj=compute_energy,
            utilized_pes=min(ops, hw.vector_lanes),
            levels=(LevelCost(DRAM, 1, 0, dram_cycles, dram_energy, 0.0, actions),),
        )
