"""Cost of Einsums on a GPU with MMA or LUT tensor cores (`codesign.hwmodels.lut_tc`).

Kernel-by-kernel roofline at the host's clock (the GPU fixes the schedule; the model follows the
`FixedScheduleModel` protocol of `codesign.mapper.cascade`):

* a MAC Einsum whose weight is a static integer weight of at most ``max_weight_bits`` runs on
  the LUT units (when the GPU has them): ``time = max(2*MACs / LUT peak at W bits,
  bytes / DRAM bandwidth)``, the activations read as their tables
  (``entries/K * table_bits`` bits per activation, `table_bits_per_activation`);
  its **table precompute** (`precompute_cost`) is a vector kernel of its own that reads the
  activations and writes the tables, or, fused into the preceding elementwise op, only that
  op's extra vector work;
* any other MAC Einsum (activation x activation attention, FP16 weights such as an LM head)
  runs on the host's FP16 MMA tensor cores, reading its operands at their IR widths;
* a non-MAC Einsum runs on the vector units against its compulsory DRAM traffic.

Energy: tensor-core ops at the TC's TOPS/W (LUT: the fitted synthesis model; MMA: the host's),
vector ops and DRAM bits at their per-op / per-bit energies.
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.hwmodels.arch import TensorRole
from codesign.hwmodels.gpu import Precision
from codesign.hwmodels.lut_tc import CoreKind, TensorCoreGpu
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.stats import einsum_stats
from codesign.mapper.mapping import Mapping
from codesign.mapper.problem import Problem, ProblemTensor
from codesign.sim.cost import COMPUTE_BOUND, Cost, LevelCost, TensorActions

DRAM = "DRAM"


def _tensor(problem: Problem, role: TensorRole) -> ProblemTensor:
    return next(t for t in problem.tensors if t.role is role)


def table_bits_per_activation(gpu: TensorCoreGpu) -> float:
    """Bits of precomputed table per activation: ``entries / K`` entries of ``table_bits``."""
    return gpu.table_entries / gpu.tile_k * gpu.table_bits


@dataclass(frozen=True, slots=True)
class PrecomputeCost:
    """Table precompute for one LUT GEMM: seconds on the vector units and DRAM bytes moved."""

    ops: float
    seconds: float
    dram_bytes: float


def precompute_cost(gpu: TensorCoreGpu, activations: int, activation_bits: int) -> PrecomputeCost:
    """Build the tables of `activations` elements: ``entries`` adds per ``K`` activations.

    Unfused it is a kernel reading the activations and writing the tables; fused into the
    preceding elementwise op the data are already on chip and only the adds remain.
    """
    ops = activations / gpu.tile_k * gpu.table_entries * gpu.precompute_ops_per_entry
    vector_peak = dict(gpu.host.vector_peaks)[Precision.FP16] * gpu.vector_efficiency
    compute_s = ops / vector_peak
    if gpu.precompute_fused:
        return PrecomputeCost(ops, compute_s, 0.0)
    nbytes = activations * (activation_bits + table_bits_per_activation(gpu)) / 8
    memory_s = nbytes / _bandwidth(gpu)
    return PrecomputeCost(ops, max(compute_s, memory_s), nbytes)


def _bandwidth(gpu: TensorCoreGpu) -> float:
    bandwidth = gpu.host.dram.bandwidth_bytes_per_s
    assert bandwidth is not None  # the gpu loader requires a DRAM bandwidth
    return bandwidth * gpu.memory_efficiency


def runs_on_lut(gpu: TensorCoreGpu, problem: Problem, cascade: Cascade) -> bool:
    """True when the Einsum's weight operand is a static integer weight the LUT units take."""
    if gpu.kind is not CoreKind.LUT:
        return False
    name = _tensor(problem, TensorRole.WEIGHT).name
    if not cascade.has_tensor(name):
        return False
    spec = cascade.tensor(name)
    return spec.role is Role.WEIGHT and spec.dtype.is_int and spec.dtype.bits <= gpu.max_weight_bits


class TensorCoreModel:
    """Prices Einsums on a `TensorCoreGpu`; stateless, results are values."""

    def evaluate(self, problem: Problem, mapping: Mapping | None, arch: TensorCoreGpu) -> Cost:
        """The CostModel entry point: the problem on the MMA tensor cores at its IR widths."""
        del mapping  # kernels are not mapped here
        return self._mac(problem, arch, lut=False)

    def evaluate_einsum(
        self, einsum: Einsum, problem: Problem | None, cascade: Cascade, hardware: TensorCoreGpu
    ) -> Cost:
        if problem is None:
            return self.vector_cost(einsum, cascade, hardware)
        return self._mac(problem, hardware, lut=runs_on_lut(hardware, problem, cascade))

    def _mac(self, problem: Problem, gpu: TensorCoreGpu, lut: bool) -> Cost:
        extents = dict(problem.dims)
        weight, inp, out = (
            _tensor(problem, TensorRole.WEIGHT),
            _tensor(problem, TensorRole.INPUT),
            problem.output,
        )
        ops = 2.0 * problem.macs
        activations = inp.footprint(extents)
        if lut:
            peak = 2 * gpu.lut_macs_per_cycle(weight.bits) * gpu.clock_ghz * 1e9
            tops_per_w = gpu.energy_efficiency_tops_per_w(weight.bits)
            input_bits = activations * table_bits_per_activation(gpu)
            pre = precompute_cost(gpu, activations, gpu.activation_bits)
        else:
            peak = dict(gpu.host.tensor_peaks)[Precision.FP16]
            tops_per_w = gpu.mma_tops_per_w
            input_bits = activations * inp.bits
            pre = PrecomputeCost(0.0, 0.0, 0.0)
        peak *= gpu.tensor_efficiency
        fills = {
            weight.name: weight.footprint(extents) * weight.bits,
            inp.name: input_bits,
            out.name: out.footprint(extents) * out.bits,
        }
        compute_s = ops / peak
        memory_s = sum(fills.values()) / 8 / _bandwidth(gpu)
        seconds = max(compute_s, memory_s) + pre.seconds
        hz = gpu.clock_ghz * 1e9
        actions = tuple(
            TensorActions(name, 0.0 if name == out.name else b / 8,
                          b / 8 if name == out.name else 0.0, 0.0, 0, b * gpu.dram_pj_per_bit)
            for name, b in fills.items()
        )  # fmt: skip
        dram_energy = sum(a.energy_pj for a in actions) + pre.dram_bytes * 8 * gpu.dram_pj_per_bit
        compute_energy = ops / tops_per_w + pre.ops * gpu.vector_pj_per_op
        return Cost(
            cycles=seconds * hz,
            energy_pj=compute_energy + dram_energy,
            macs=problem.macs,
            utilization=compute_s / seconds if seconds else 0.0,
            bound=COMPUTE_BOUND if compute_s >= memory_s else DRAM,
            compute_cycles=(compute_s + pre.seconds) * hz,
            compute_energy_pj=compute_energy,
            utilized_pes=gpu.sm_count,
            levels=(LevelCost(DRAM, 1, 0, memory_s * hz, dram_energy, 0.0, actions),),
        )

    def vector_cost(self, einsum: Einsum, cascade: Cascade, gpu: TensorCoreGpu) -> Cost:
        """A non-MAC Einsum on the CUDA cores against its compulsory DRAM traffic."""
        stats = einsum_stats(einsum, cascade)
        peak = dict(gpu.host.vector_peaks)[Precision.FP16] * gpu.vector_efficiency
        compute_s = stats.flops / peak
        memory_s = stats.total_bytes / _bandwidth(gpu)
        seconds = max(compute_s, memory_s)
        hz = gpu.clock_ghz * 1e9
        actions = tuple(
            TensorActions(t, 0.0 if t == stats.output_tensor else float(n),
                          float(n) if t == stats.output_tensor else 0.0, 0.0, 0,
                          n * 8 * gpu.dram_pj_per_bit)
            for t, n in stats.tensor_bytes
        )  # fmt: skip
        dram_energy = sum(a.energy_pj for a in actions)
        compute_energy = stats.flops * gpu.vector_pj_per_op
        return Cost(
            cycles=seconds * hz,
            energy_pj=compute_energy + dram_energy,
            macs=0,
            utilization=compute_s / seconds if seconds else 0.0,
            bound=COMPUTE_BOUND if compute_s >= memory_s else DRAM,
            compute_cycles=compute_s * hz,
            compute_energy_pj=compute_energy,
            utilized_pes=gpu.sm_count if stats.flops else 0,
            levels=(LevelCost(DRAM, 1, 0, memory_s * hz, dram_energy, 0.0, actions),),
        )

