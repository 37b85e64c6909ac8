"""The cycle-level systolic model behind the one CostModel protocol (``--model cycle``).

A MAC Problem becomes SCALE-Sim's GEMM view: dims indexed by the output and the input but not
the weight are M (streamed operand rows), dims of the output and the weight but not the input
are N (filters), dims not in the output are K (reduced); dims in all three (batch/heads of an
attention matmul) repeat the GEMM.  The array is the fan-out below the first level that fans
out, rows = y, cols = x, running the arch's dataflow.  Mappings are not used: a systolic
dataflow fixes the schedule.

Energy: MACs × MAC energy, SRAM traffic from the schedule (operand reads and output writes the
fold structure implies) at the fanned-out level's per-word energies, and each tensor's
footprint crossing DRAM once.  Cycles are the compute cycles (SCALE-Sim's ``Total Cycles``),
or the DRAM transfer time when the DRAM bandwidth is finite and larger.
"""

from __future__ import annotations

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch, TensorRole
from codesign.ir.cascade import Cascade, Einsum
from codesign.mapper.mapping import Mapping
from codesign.mapper.problem import Problem
from codesign.sim.cost import COMPUTE_BOUND, Cost, LevelCost, TensorActions
from codesign.sim.systolic import SystolicArray, SystolicResult, simulate_gemm
from codesign.sim.vector import vector_cost


def array_of(arch: Arch) -> SystolicArray:
    """The systolic array of an arch: the first level with a fan-out, and the arch dataflow."""
    if arch.dataflow is None:
        raise InputError(
            f"{arch.source_path or arch.name}: dataflow: the cycle-level systolic "
            "model needs a dataflow (ws, os or is)"
        )
    for level in arch.levels:
        if level.fanout > 1:
            return SystolicArray(level.fanout_y, level.fanout_x, arch.dataflow)
    raise InputError(f"{arch.source_path or arch.name}: levels: no level fans out to a PE array")


def gemm_view(problem: Problem) -> tuple[int, int, int, int]:
    """(batch, M, N, K) of a MAC problem, as SCALE-Sim's GEMM convention."""
    out = problem.output.dims()
    weight = next(t for t in problem.tensors if t.role is TensorRole.WEIGHT).dims()
    inp = next(t for t in problem.tensors if t.role is TensorRole.INPUT).dims()
    extents = dict(problem.dims)
    size = {"b": 1, "m": 1, "n": 1, "k": 1}
    for dim, bound in extents.items():
        if dim not in out:
            size["k"] *= bound
        elif dim in weight and dim in inp:
            size["b"] *= bound
        elif dim in weight:
            size["n"] *= bound
        else:
            size["m"] *= bound
    return size["b"], size["m"], size["n"], size["k"]


class SystolicCostModel:
    """SCALE-Sim-exact compute cycles for MAC problems on the arch's systolic array."""

    def simulate(self, problem: Problem, arch: Arch) -> tuple[int, SystolicResult]:
        batch, m, n, k = gemm_view(problem)
        return batch, simulate_gemm(m, n, k, array_of(arch))

    def evaluate_einsum(
        self, einsum: Einsum, problem: Problem | None, cascade: Cascade, hardware: Arch
    ) -> Cost:
        """`FixedScheduleModel`: MAC Einsums on the array, others on the PEs as vector ops."""
        if problem is None:
            return vector_cost(einsum, cascade, hardware)
        return self.evaluate(problem, None, hardware)

    def evaluate(self, problem: Problem, mapping: Mapping | None, arch: Arch) -> Cost:
        del mapping  # the dataflow fixes the schedule
        batch, result = self.simulate(problem, arch)
        fan_index = next(i for i, lv in enumerate(arch.levels) if lv.fanout > 1)
        sram, dram = arch.levels[fan_index], arch.levels[0]
        extents = dict(problem.dims)
        dram_actions, words_total = [], 0.0
        for tensor in problem.tensors:
            words = tensor.footprint(extents) * tensor.bits / dram.word_bits
            words_total += words
            energy = words * (dram.write_energy_pj if tensor.is_output else dram.read_energy_pj)
            dram_actions.append(
                TensorActions(
                    tensor.name,
                    0.0 if tensor.is_output else words,
                    words if tensor.is_output else 0.0,
                    0.0,
                    0,
                    energy,
                )
            )
        by_role = {t.role: t.name for t in problem.tensors}
        sram_counts = {
            by_role[TensorRole.INPUT]: (batch * result.sram_reads_ifmap, 0.0),
            by_role[TensorRole.WEIGHT]: (batch * result.sram_reads_filter, 0.0),
            by_role[TensorRole.OUTPUT]: (0.0, batch * result.sram_writes_ofmap),
        }
        sram_actions = tuple(
            TensorActions(name, reads, writes, 0.0, 0,
                          reads * sram.read_energy_pj + writes * sram.update_energy_pj)
            for name, (reads, writes) in sram_counts.items()
        )  # fmt: skip
        compute_cycles = float(batch * result.compute_cycles)
        bw = dram.read_bandwidth_words_per_cycle
        dram_cycles = words_total / bw if bw else 0.0
        cycles = max(compute_cycles, dram_cycles)
        macs = problem.macs
        compute_energy = macs * arch.compute.mac_energy_pj
        levels = (
            LevelCost(dram.name, 1, 0, dram_cycles, sum(a.energy_pj for a in dram_actions), 0.0,
                      tuple(dram_actions)),
            LevelCost(sram.name, 1, 0, 0.0, sum(a.energy_pj for a in sram_actions), 0.0,
                      sram_actions),
        )  # fmt: skip
        pes = arch.compute.count
        return Cost(
            cycles=cycles,
            energy_pj=compute_energy + sum(lv.energy_pj for lv in levels),
            macs=macs,
            utilization=macs / (pes * cycles) if cycles else 0.0,
            bound=COMPUTE_BOUND if compute_cycles >= dram_cycles else dram.name,
            compute_cycles=compute_cycles,
            compute_energy_pj=compute_energy,
            utilized_pes=round(result.mapping_efficiency * pes),
            levels=levels,
        )
