"""Analytical cost model: Timeloop-style nest analysis, vectorised over a batch of mappings.

Per tensor t and level l that keeps t (per instance of l; see docs/hwmodels.md):

* tile T = footprint of t over the loops at l and below.
* N = product of the temporal loops above l after dropping the innermost run of loops that do
  not index t (t stays put across them: stationarity).
* read-only t: fills = N*T, except when no loop was dropped and the innermost loop above l
  slides a window over t: then each of its later iterations fetches only the new part
  (fills = N/b * (T + (b-1)*(T - overlap))), as Timeloop does.
* reads = the child's fills times the child instances it feeds, divided by the multicast factor
  (spatial unrolling over dims that do not index t); at the innermost level, one read per MAC.
* output t: updates = the child's drains N_c*T_c times child instances, divided by the spatial
  reduction factor (unrolling over dims that do not index t); at the innermost level one update
  per MAC. reads = updates - D and fills = N*T - D, where D is the distinct outputs an instance
  produces (the first write of each output needs no read).

Home: a tensor's outermost keeping level. A home below DRAM (an on-chip intermediate of a fused
group) is neither filled nor drained and holds every element its instance touches.

cycles = max(compute cycles, each level's reads / read bandwidth and (fills + updates) / write
bandwidth); energy = sum of actions * ERT per-word energy + leakage * cycles * instances, each
per-instance action count rounded up to whole blocks of the level's ``block_words`` (Timeloop
charges ``ceil(accesses / block size)`` vector accesses; docs/timeloop.md).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from codesign.hwmodels.arch import Arch
from codesign.mapper.mapping import Mapping, MappingArrays, mapping_errors, to_arrays
from codesign.mapper.problem import Problem
from codesign.mapper.short_axes import fold, running
from codesign.sim.cost import COMPUTE_BOUND, Cost, LevelCost, TensorActions


@dataclass(frozen=True, slots=True)
class BatchCost:
    """Costs of a batch; arrays of shape (B,) unless noted. Invalid rows have inf cost.

    ``reads``/``fills``/``updates``/``tile``: (B, L, T) per instance of the level;
    ``level_cycles``: (B, L); ``instances``: (B, L + 1) utilized instances (last: PEs).
    """

    cycles: np.ndarray
    energy_pj: np.ndarray
    valid: np.ndarray
    over_capacity: np.ndarray  # (B, L)
    compute_cycles: np.ndarray
    compute_energy_pj: np.ndarray
    level_cycles: np.ndarray
    level_energy_pj: np.ndarray  # (B, L) including leakage
    leak_energy_pj: np.ndarray  # (B, L)
    tensor_energy_pj: np.ndarray  # (B, L, T)
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    tile: np.ndarray
    instances: np.ndarray


def _projection_coefficients(problem: Problem) -> np.ndarray:
    """(T, J, D) coefficient of dim d in tensor dimension j of tensor t (J padded with zeros)."""
    dims = {dim: i for i, dim in enumerate(problem.dim_names)}
    n_j = max(len(t.projection) for t in problem.tensors)
    coef = np.zeros((len(problem.tensors), n_j, len(dims)), dtype=np.int64)
    for t_index, tensor in enumerate(problem.tensors):
        for j, terms in enumerate(tensor.projection):
            for dim, c in terms:
                coef[t_index, j, dims[dim]] += c
    return coef


def _footprint(k: _Constants, extents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """extents (..., D) -> (ranges (..., T, J), footprint (..., T)).

    A matrix product with `_Constants.coef_matrix` rather than an einsum: extents and
    coefficients are whole numbers far below 2**53, so every partial sum is exact and the
    result does not depend on the order in which BLAS sums."""
    n_t, n_j, n_d = k.coef.shape
    flat = (extents - 1).reshape(-1, n_d) @ k.coef_matrix
    ranges = 1 + flat.reshape(*extents.shape[:-1], n_t, n_j)
    return ranges, fold(np.multiply, ranges, -1)


@dataclass(frozen=True, slots=True)
class _Constants:
    """What `evaluate_batch` needs of a (problem, arch) pair that no mapping changes: computed
    once per pair (`_constants`), read-only arrays.  Shapes: T tensors, J tensor dims, D
    problem dims, L levels."""

    coef: np.ndarray  # (T, J, D) int64 projection coefficients
    coef_matrix: np.ndarray  # (D, T * J) float64: coef for one matrix product per footprint
    relevant: np.ndarray  # (T, D) bool: dim d indexes tensor t
    relevant_dims: tuple[np.ndarray, ...]  # per tensor, the indices of the dims indexing it
    level_start: np.ndarray  # (1, L, 1) position in the flattened nest of each level's first loop
    irrelevant: np.ndarray  # (T, D) float64: 1.0 where d does not index t
    is_output: np.ndarray  # (T,) bool
    bounds: np.ndarray  # (D,) the problem's loop bounds
    size_words: np.ndarray  # (L,) capacity, inf for unbounded
    fanout_x: np.ndarray  # (L,)
    fanout_y: np.ndarray  # (L,)
    read_bw: np.ndarray  # (L,) words per cycle, inf for unbounded
    write_bw: np.ndarray  # (L,)
    e_read: np.ndarray  # (1, L, 1) pJ per word
    e_write: np.ndarray  # (1, L, 1)
    e_update: np.ndarray  # (1, L, 1)
    leak: np.ndarray  # (1, L) pJ per cycle
    block: np.ndarray  # (1, L, 1) float64 words per access
    dim_index: np.ndarray  # (D,) 0, 1, ...
    mac_energy_pj: float  # of all the problem's MACs


@functools.lru_cache(maxsize=64)
def _constants(problem: Problem, arch: Arch) -> _Constants:
    """The mapping-independent part of `evaluate_batch` (a search prices ~20 batches of the
    same pair; problems and archs are frozen, hashable values)."""
    coef = _projection_coefficients(problem)
    relevant = coef.sum(axis=1) > 0
    levels = arch.levels
    out = _Constants(
        coef=coef,
        coef_matrix=coef.reshape(-1, coef.shape[2]).T.astype(np.float64),
        relevant=relevant,
        relevant_dims=tuple(np.flatnonzero(row) for row in relevant),
        level_start=(np.arange(len(levels)) * len(problem.dim_names))[None, :, None],
        irrelevant=(~relevant).astype(np.float64),
        is_output=np.array([t.is_output for t in problem.tensors]),
        bounds=np.array(problem.bounds),
        size_words=np.array([np.inf if lv.size_words is None else lv.size_words for lv in levels]),
        fanout_x=np.array([lv.fanout_x for lv in levels]),
        fanout_y=np.array([lv.fanout_y for lv in levels]),
        read_bw=np.array([_bw(lv.read_bandwidth_words_per_cycle) for lv in levels]),
        write_bw=np.array([_bw(lv.write_bandwidth_words_per_cycle) for lv in levels]),
        e_read=np.array([lv.read_energy_pj for lv in levels])[None, :, None],
        e_write=np.array([lv.write_energy_pj for lv in levels])[None, :, None],
        e_update=np.array([lv.update_energy_pj for lv in levels])[None, :, None],
        leak=np.array([lv.leak_energy_pj_per_cycle for lv in levels])[None, :],
        block=np.array([lv.block_words for lv in levels], dtype=np.float64)[None, :, None],
        dim_index=np.arange(len(problem.dim_names)),
        mac_energy_pj=problem.macs * problem.ops_per_point * arch.compute.mac_energy_pj,
    )
    for entry in dataclasses.fields(out):
        value = getattr(out, entry.name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)  # shared by every batch of the pair
    return out


def evaluate_batch(problem: Problem, arrays: MappingArrays, arch: Arch) -> BatchCost:
    """Price every mapping of a batch at once (see the module docstring for the equations)."""
    k = _constants(problem, arch)
    temporal = arrays.temporal.astype(np.float64)
    spatial = (arrays.spatial_x * arrays.spatial_y).astype(np.float64)
    keep = arrays.keep
    n_b, n_l, n_d = temporal.shape
    n_t = len(problem.tensors)
    coef, is_output = k.coef, k.is_output

    # Extents of each dim over the loops at level l and below; index L is the compute.
    per_level = temporal * spatial
    ext = running(np.multiply, per_level, reverse=True)  # (B, L, D)
    ranges, tile = _footprint(k, ext)  # (B, L, T, J), (B, L, T)

    # Utilized instances above each level, and the multicast/reduction spatial products.
    spat_all = fold(np.multiply, spatial, 2)  # (B, L)
    instances = np.ones((n_b, n_l + 1))
    instances[:, 1:] = running(np.multiply, spat_all)
    irr = np.exp(np.einsum("bld,td->blt", np.log(spatial), k.irrelevant))
    irr_cum = np.ones((n_b, n_l + 1, n_t))
    irr_cum[:, 1:] = running(np.multiply, irr)
    padded_points = fold(np.multiply, fold(np.multiply, per_level, 2), 1)
    macs_under = padded_points[:, None] / instances  # (B, L + 1)

    # Distinct outputs per instance: whole temporal range, spatial range of this level and below.
    spat_rev = running(np.multiply, spatial, reverse=True)
    distinct_ext = fold(np.multiply, temporal, 1)[:, None, :] * spat_rev
    _, distinct = _footprint(k, distinct_ext)  # (B, L, T)

    # The temporal nest above each level, as a flat sequence (outer to inner).
    seq_dim = arrays.order.reshape(n_b, n_l * n_d)
    seq_bound = np.take_along_axis(temporal, arrays.order, axis=2).reshape(n_b, n_l * n_d)
    seq_ext = np.take_along_axis(ext, arrays.order, axis=2).reshape(n_b, n_l * n_d)
    cum = np.cumprod(seq_bound, axis=1)
    # Last position (-1: none) of a real loop (bound > 1), and of a real loop indexing each
    # tensor, in the nest down to the end of each level: the position of every dim's loop (the
    # inverse of the order), its max per level over the dims in question, then a running max
    # over the levels -- (B, L, D) work instead of scanning the (B, T, L*D) nest.
    dim_pos = np.empty_like(arrays.order)
    np.put_along_axis(dim_pos, arrays.order, k.dim_index, axis=2)
    dim_pos = np.where(temporal > 1, dim_pos + k.level_start, -1)  # (B, L, D)
    last_any = running(np.maximum, fold(np.maximum, dim_pos, 2))  # (B, L)
    per_tensor = [fold(np.maximum, dim_pos[:, :, dims], 2, empty=-1) for dims in k.relevant_dims]
    last_rel = running(np.maximum, np.stack(per_tensor, axis=2))  # (B, L, T)

    # Fills of every level below the outermost at once (axis 1: levels 1 .. L-1): the loops
    # above a level are the nest down to the end of the level above it.
    rows = np.arange(n_b)[:, None, None]
    pstar = last_rel[:, :-1]  # (B, L-1, T): innermost relevant real loop above the level
    has = pstar >= 0
    p_safe = np.where(has, pstar, 0)
    count = np.where(has, cum[rows, p_safe], 1.0)
    below = tile[:, 1:]
    residency = np.concatenate([tile[:, :1], count * below], axis=1)  # (B, L, T) N * T
    slides = has & (last_any[:, :-1, None] == pstar)
    d_star = seq_dim[rows, p_safe]
    b_star = seq_bound[rows, p_safe]
    step = seq_ext[rows, p_safe] / b_star
    shift = coef[np.arange(n_t)[None, None, :], :, d_star] * step[..., None]  # (B, L-1, T, J)
    overlap = fold(np.multiply, np.maximum(ranges[:, 1:] - shift, 0), -1)
    slid = count / b_star * (below + (b_star - 1) * (below - overlap))
    read_only_fills = np.where(slides, slid, residency[:, 1:])
    output_fills = np.maximum(residency[:, 1:] - distinct[:, 1:], 0)
    fills = np.zeros((n_b, n_l, n_t))
    fills[:, 1:] = np.where(is_output[None, None, :], output_fills, read_only_fills)

    # Home of each tensor: its outermost keeping level. A home below DRAM (a fused group's
    # on-chip intermediate) holds the whole tensor for the Einsum: it is never filled from
    # above nor drained upward, and its capacity holds every element its instance touches.
    home = np.argmax(keep, axis=1)  # (B, T)
    homed = fold(np.logical_or, keep, 1)
    at_home = (np.arange(n_l)[None, :, None] == home[:, None, :]) & homed[:, None, :]
    on_chip_home = at_home & (np.arange(n_l)[None, :, None] > 0)
    fills = np.where(at_home, 0.0, fills)
    tile = np.where(on_chip_home, distinct, tile)

    # Child of each kept level: the next lower level that keeps the tensor (L = compute).
    child = np.full((n_b, n_l, n_t), n_l)
    nxt = np.full((n_b, n_t), n_l)
    for level in range(n_l - 1, -1, -1):
        child[:, level] = nxt
        nxt = np.where(keep[:, level], level, nxt)
    b_idx = np.arange(n_b)[:, None, None]
    t_idx = np.arange(n_t)[None, None, :]
    l_idx = np.arange(n_l)[None, :, None]
    fan = instances[b_idx, child] / instances[:, :n_l, None]
    spread = irr_cum[b_idx, child, t_idx] / irr_cum[:, :n_l, :]
    at_compute = child == n_l
    child_safe = np.minimum(child, n_l - 1)
    child_fills = fills[b_idx, child_safe, t_idx]
    child_drains = residency[b_idx, child_safe, t_idx]
    per_mac = macs_under[:, :n_l, None] * np.ones((1, 1, n_t))
    reads_in = np.where(at_compute, per_mac, child_fills * fan) / spread
    updates = np.where(at_compute, per_mac, child_drains * fan) / spread
    updates = np.where(is_output[None, None, :] & keep, updates, 0.0)
    reads = np.where(
        is_output[None, None, :], np.maximum(updates - distinct, 0.0), reads_in
    )
    reads = np.where(keep, reads, 0.0)
    fills = np.where(keep, fills, 0.0)
    del l_idx

    # Capacity and spatial legality.
    used = fold(np.add, np.where(keep, tile, 0), 2)  # whole numbers: exact in any order
    over_capacity = used > k.size_words[None, :]
    spatial_ok = fold(
        np.logical_and,
        (fold(np.multiply, arrays.spatial_x, 2) <= k.fanout_x)
        & (fold(np.multiply, arrays.spatial_y, 2) <= k.fanout_y),
        1,
    )
    covers = fold(np.logical_and, fold(np.multiply, per_level, 1) >= k.bounds[None, :], 1)
    valid = (
        ~fold(np.logical_or, over_capacity, 1)
        & spatial_ok
        & covers
        & fold(np.logical_and, homed, 1)
    )

    # Cycles.
    compute_cycles = fold(np.multiply, fold(np.multiply, temporal, 2), 1)
    level_cycles = np.maximum(
        reads.sum(axis=2) / k.read_bw[None, :], (fills + updates).sum(axis=2) / k.write_bw[None, :]
    )
    cycles = np.maximum(compute_cycles, fold(np.maximum, level_cycles, 1))

    # Energy.
    block = k.block
    tensor_energy = (
        _blocks(reads, block) * k.e_read
        + _blocks(fills, block) * k.e_write
        + _blocks(updates, block) * k.e_update
    ) * instances[:, :n_l, None]
    leak_energy = k.leak * cycles[:, None] * instances[:, :n_l]
    level_energy = tensor_energy.sum(axis=2) + leak_energy
    compute_energy = (
        k.mac_energy_pj
        + arch.compute.leak_energy_pj_per_cycle * cycles * instances[:, n_l]
    )
    energy = level_energy.sum(axis=1) + compute_energy
    return BatchCost(
        cycles=np.where(valid, cycles, np.inf),
        energy_pj=np.where(valid, energy, np.inf),
        valid=valid,
        over_capacity=over_capacity,
        compute_cycles=compute_cycles,
        compute_energy_pj=compute_energy,
        level_cycles=level_cycles,
        level_energy_pj=level_energy,
        leak_energy_pj=leak_energy,
        tensor_energy_pj=tensor_energy,
        reads=reads,
        fills=fills,
        updates=updates,
        tile=np.where(keep, tile, 0),
        instances=instances,
    )


def _blocks(words: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Words moved by whole-block accesses: each instance's per-tensor, per-action word count
    rounded up to a multiple of the level's block, as Timeloop's ``ComputeVectorAccesses``
    charges ``ceil(scalar accesses / block size)`` vector accesses. The tolerance keeps float
    counts that are whole multiples (1535.9999999) from gaining a block."""
    return np.ceil(words / block - 1e-9) * block


def _bw(bandwidth: float | None) -> float:
    return np.inf if bandwidth is None else bandwidth


def cost_from_batch(batch: BatchCost, index: int, problem: Problem, arch: Arch) -> Cost:
    """The Cost value of row ``index`` of a batch."""
    n_l = len(arch.levels)
    cycles = float(batch.cycles[index])
    levels = []
    for level, hw in enumerate(arch.levels):
        inst = float(batch.instances[index, level])
        tensors = tuple(
            TensorActions(
                tensor=t.name,
                reads=float(batch.reads[index, level, t_i] * inst),
                fills=float(batch.fills[index, level, t_i] * inst),
                updates=float(batch.updates[index, level, t_i] * inst),
                tile_words=int(batch.tile[index, level, t_i]),
                energy_pj=float(batch.tensor_energy_pj[index, level, t_i]),
            )
            for t_i, t in enumerate(problem.tensors)
            if batch.tile[index, level, t_i] > 0
        )
        levels.append(
            LevelCost(
                name=hw.name,
                utilized_instances=int(inst),
                capacity_words_used=int(batch.tile[index, level].sum()),
                cycles=float(batch.level_cycles[index, level]),
                energy_pj=float(batch.level_energy_pj[index, level]),
                leak_energy_pj=float(batch.leak_energy_pj[index, level]),
                tensors=tensors,
            )
        )
    compute_cycles = float(batch.compute_cycles[index])
    worst = int(np.argmax(batch.level_cycles[index]))
    bound = arch.levels[worst].name if batch.level_cycles[index, worst] > compute_cycles else (
        COMPUTE_BOUND
    )
    valid = bool(batch.valid[index])
    reason = ""
    if not valid:
        over = [arch.levels[i].name for i in range(n_l) if batch.over_capacity[index, i]]
        reason = f"over capacity at {over}" if over else "spatial fan-out or coverage violated"
    return Cost(
        cycles=cycles,
        energy_pj=float(batch.energy_pj[index]),
        macs=problem.macs,
        utilization=problem.macs / (cycles * arch.compute.count) if valid else 0.0,
        bound=bound,
        compute_cycles=compute_cycles,
        compute_energy_pj=float(batch.compute_energy_pj[index]),
        utilized_pes=int(batch.instances[index, n_l]),
        levels=tuple(levels),
        valid=valid,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class AnalyticalModel:
    """The nest-analysis CostModel. Holds no state; ``evaluate`` prices one mapping."""

    def evaluate(self, problem: Problem, mapping: Mapping, arch: Arch) -> Cost:
        errors = mapping_errors(mapping, problem, arch)
        if errors:
            return _invalid(problem, errors[0])
        batch = evaluate_batch(problem, to_arrays([mapping], problem, arch), arch)
        return cost_from_batch(batch, 0, problem, arch)

    def evaluate_batch(self, problem: Problem, arrays: MappingArrays, arch: Arch) -> BatchCost:
        return evaluate_batch(problem, arrays, arch)


def _invalid(problem: Problem, reason: str) -> Cost:
    return Cost(
        cycles=math.inf,
        energy_pj=math.inf,
        macs=problem.macs,
        utilization=0.0,
        bound=COMPUTE_BOUND,
        compute_cycles=math.inf,
        compute_energy_pj=0.0,
        utilized_pes=0,
        levels=(),
        valid=False,
        reason=reason,
    )
