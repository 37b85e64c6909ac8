"""Cost of Einsums on a GPU with MMA or LUT tensor cores (`codesign.hwmodels.lut_tc`).

Kernel-by-kernel roofline at the host's clock (the GPU fixes the schedule; the model follows the
`EinsumPricing` protocol of `codesign.sim.family_models`):

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

A cascade rewritten by the `lut-precompute` pass carries the tables explicitly, and then the
IR, not the YAML's ``precompute.fused``, says what is fused (`LookupForm`):

* a **table Einsum** (``Tab[.., g, .., e] = sum[k:K] src * S[e, k]``) is a vector kernel of
  ``entries * ops_per_entry`` ops per table (the incremental build, not the ``2K`` of the
  written sum), writing the table at its IR dtype; unfused it reads the activations at
  ``activation_bits`` (what the implicit precompute reads), fused it reads its inlined
  producer's inputs at their IR widths and adds the producer's ops per activation; the sign
  matrix ``S`` is the adder wiring, not DRAM data;
* a **lookup Einsum** runs on the LUT units at the original GEMM's MACs (``points / planes *
  K``) and weight width (``planes - 1``), reading the table and the ``W``-bit weights and
  writing its output, with no precompute of its own.  On a GPU without LUT units (or wider
  weights) it is the same GEMM on the MMA cores.

Energy: tensor-core ops at the TC's TOPS/W (LUT: the fitted synthesis model; MMA: the host's),
vector ops and DRAM bits at their per-op / per-bit energies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping as StrMapping
from dataclasses import dataclass

from codesign.hwmodels.arch import TensorRole
from codesign.hwmodels.gpu import Precision
from codesign.hwmodels.lut_tc import CoreKind, TensorCoreGpu
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp, Select, Unary, walk
from codesign.ir.index import Affine, Gathered
from codesign.ir.stats import einsum_stats, footprint
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
        form = lookup_form(einsum, cascade)
        if form is not None:
            return self.lookup_cost(einsum, form, cascade, hardware)
        if is_table_einsum(einsum, cascade):
            return self.table_cost(einsum, cascade, hardware)
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
        activations = inp.footprint(extents)
        if lut:
            input_bits = activations * table_bits_per_activation(gpu)
            pre = precompute_cost(gpu, activations, gpu.activation_bits)
        else:
            input_bits = activations * inp.bits
            pre = PrecomputeCost(0.0, 0.0, 0.0)
        fills = {
            weight.name: weight.footprint(extents) * weight.bits,
            inp.name: input_bits,
            out.name: out.footprint(extents) * out.bits,
        }
        return _gemm_cost(gpu, problem.macs, weight.bits, fills, out.name, lut, pre)

    def lookup_cost(
        self, einsum: Einsum, form: LookupForm, cascade: Cascade, gpu: TensorCoreGpu
    ) -> Cost:
        """A `lut-precompute` lookup: the original GEMM on the LUT units, reading the table."""
        weight_bits = form.planes - 1
        index = cascade.tensor(form.index)
        table = cascade.tensor(form.table)
        out = cascade.tensor(einsum.output.tensor)
        out_points = math.prod(n for v, n in einsum.space if v not in einsum.reduced)
        fills = {
            form.index: index.size // form.planes * form.group * weight_bits,
            form.table: footprint(form.access, einsum, cascade) * table.dtype.bits,
            out.name: out_points * out.dtype.bits,
        }
        macs = einsum.points // form.planes * form.group
        lut = gpu.kind is CoreKind.LUT and weight_bits <= gpu.max_weight_bits
        none = PrecomputeCost(0.0, 0.0, 0.0)
        return _gemm_cost(gpu, macs, weight_bits, fills, out.name, lut, none)

    def table_cost(self, einsum: Einsum, cascade: Cascade, gpu: TensorCoreGpu) -> Cost:
        """A `lut-precompute` table build on the vector units (module docstring)."""
        table = cascade.tensor(einsum.output.tensor)
        body = einsum.body
        assert isinstance(body, Binary) and isinstance(body.rhs, Access)
        source, signs = body.lhs, body.rhs.tensor
        group = math.prod(n for v, n in einsum.space if v in einsum.reduced)
        ops = table.size * gpu.precompute_ops_per_entry
        stats = einsum_stats(einsum, cascade)
        nbytes = {t: float(n) for t, n in stats.tensor_bytes if t != signs}
        if isinstance(source, Access):  # unfused: the activations, stored at activation_bits
            nbytes[source.tensor] = footprint(source, einsum, cascade) * gpu.activation_bits / 8
        else:  # fused: the producer's arithmetic, once per activation
            producer_ops = sum(isinstance(n, (Unary, Binary, Select)) for n in walk(source))
            ops += producer_ops * table.size // table.shape[-1] * group
        return _vector_kernel(gpu, ops, tuple(nbytes.items()), table.name)

    def vector_cost(self, einsum: Einsum, cascade: Cascade, gpu: TensorCoreGpu) -> Cost:
        """A non-MAC Einsum on the CUDA cores against its compulsory DRAM traffic."""
        stats = einsum_stats(einsum, cascade)
        tensor_bytes = tuple((t, float(n)) for t, n in stats.tensor_bytes)
        return _vector_kernel(gpu, stats.flops, tensor_bytes, stats.output_tensor)


def _gemm_cost(
    gpu: TensorCoreGpu, macs: int, weight_bits: int, fills: StrMapping[str, float], output: str,
    lut: bool, pre: PrecomputeCost,
) -> Cost:  # fmt: skip
    """A GEMM of `macs` on the LUT units (`lut`) or the host's FP16 MMA cores; `fills` are DRAM
    bits per tensor (`output` written, the others read); `pre` its implicit table precompute."""
    ops = 2.0 * macs
    if lut:
        peak = 2 * gpu.lut_macs_per_cycle(weight_bits) * gpu.clock_ghz * 1e9
        tops_per_w = gpu.energy_efficiency_tops_per_w(weight_bits)
    else:
        peak = dict(gpu.host.tensor_peaks)[Precision.FP16]
        tops_per_w = gpu.mma_tops_per_w
    peak *= gpu.tensor_efficiency
    compute_s = ops / peak
    memory_s = sum(fills.values()) / 8 / _bandwidth(gpu)
    seconds = max(compute_s, memory_s) + pre.seconds
    hz = gpu.clock_ghz * 1e9
    actions = tuple(
        TensorActions(name, 0.0 if name == output else b / 8,
                      b / 8 if name == output else 0.0, 0.0, 0, b * gpu.dram_pj_per_bit)
        for name, b in fills.items()
    )  # fmt: skip
    dram_energy = sum(a.energy_pj for a in actions) + pre.dram_bytes * 8 * gpu.dram_pj_per_bit
    compute_energy = ops / tops_per_w + pre.ops * gpu.vector_pj_per_op
    return Cost(
        cycles=seconds * hz,
        energy_pj=compute_energy + dram_energy,
        macs=macs,
        utilization=compute_s / seconds if seconds else 0.0,
        bound=COMPUTE_BOUND if compute_s >= memory_s else DRAM,
        compute_cycles=(compute_s + pre.seconds) * hz,
        compute_energy_pj=compute_energy,
        utilized_pes=gpu.sm_count,
        levels=(LevelCost(DRAM, 1, 0, memory_s * hz, dram_energy, 0.0, actions),),
    )


def _vector_kernel(
    gpu: TensorCoreGpu, flops: float, tensor_bytes: tuple[tuple[str, float], ...], output: str
) -> Cost:
    """`flops` on the CUDA cores against DRAM bytes per tensor (`output` written)."""
    peak = dict(gpu.host.vector_peaks)[Precision.FP16] * gpu.vector_efficiency
    compute_s = flops / peak
    memory_s = sum(n for _, n in tensor_bytes) / _bandwidth(gpu)
    seconds = max(compute_s, memory_s)
    hz = gpu.clock_ghz * 1e9
    actions = tuple(
        TensorActions(t, 0.0 if t == output else float(n), float(n) if t == output else 0.0,
                      0.0, 0, n * 8 * gpu.dram_pj_per_bit)
        for t, n in tensor_bytes
    )  # fmt: skip
    dram_energy = sum(a.energy_pj for a in actions)
    compute_energy = flops * gpu.vector_pj_per_op
    return Cost(
        cycles=seconds * hz,
        energy_pj=compute_energy + dram_energy,
        macs=0,
        utilization=compute_s / seconds if seconds else 0.0,
        bound=COMPUTE_BOUND if compute_s >= memory_s else DRAM,
        compute_cycles=compute_s * hz,
        compute_energy_pj=compute_energy,
        utilized_pes=gpu.sm_count if flops else 0,
        levels=(LevelCost(DRAM, 1, 0, memory_s * hz, dram_energy, 0.0, actions),),
    )


# -- the explicit form of `lut-precompute` ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LookupForm:
    """A lookup Einsum ``sum[.., b] Tab[.., Idx[.., b]] * Coef[..]``: its table access, index
    and coefficient weights, bit planes (weight bits + 1 offset plane) and table group ``K``."""

    access: Access
    index: str
    coef: str
    planes: int
    group: int

    @property
    def table(self) -> str:
        return self.access.tensor


def lookup_form(einsum: Einsum, cascade: Cascade) -> LookupForm | None:
    """The lookup structure of a sum-reduced product reading a table produced by a sum through
    a gathered last index of an integer weight, or None."""
    body = einsum.body
    if not (einsum.reduce is ReduceOp.SUM and isinstance(body, Binary)
            and body.op is BinaryOp.MUL and isinstance(body.lhs, Access)
            and isinstance(body.rhs, Access)):  # fmt: skip
        return None
    for table, coef in ((body.lhs, body.rhs), (body.rhs, body.lhs)):
        last = table.indices[-1] if table.indices else None
        if not isinstance(last, Gathered) or not last.indices:
            continue
        plane = last.indices[-1]
        var = plane.plain_var if isinstance(plane, Affine) else None
        index = cascade.tensor(last.tensor)
        producers = cascade.producers(table.tensor)
        if (var not in einsum.reduced or index.role is not Role.WEIGHT
                or len(producers) != 1 or producers[0].reduce is not ReduceOp.SUM):  # fmt: skip
            continue
        build = producers[0]
        group = math.prod(n for v, n in build.space if v in build.reduced)
        return LookupForm(table, last.tensor, coef.tensor, einsum.extents[str(var)], group)
    return None


def is_table_einsum(einsum: Einsum, cascade: Cascade) -> bool:
    """True for the producer of a table that some lookup Einsum reads."""
    if einsum.reduce is not ReduceOp.SUM or not isinstance(einsum.body, Binary):
        return False
    tensor = einsum.output.tensor
    forms = (lookup_form(c, cascade) for c in cascade.consumers(tensor))
    return any(f is not None and f.table == tensor for f in forms)
