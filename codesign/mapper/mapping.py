"""A Mapping: per storage level, temporal loops (outer to inner), X/Y spatial unrolling below the
level, and which tensors the level keeps (any level may bypass any tensor, DRAM included, as
long as some level keeps it; tensors may be named as Timeloop names them: Weights/Inputs/Outputs).

Nest order, outermost first: level 0 temporal, level 0 spatial, level 1 temporal, ... The loops
of level ``l`` and everything below it form the tile that one instance of level ``l`` holds.

Imperfect factors: a dim's factors may multiply to more than its bound. The padded iteration
space is counted in full (every partial last iteration costs a whole iteration's cycles and
accesses; MAC energy and utilization use the true MAC count), and the padding must be less than
one iteration of the dim's outermost loop: ``inner * (outer - 1) < bound <= inner * outer``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codesign.errors import InputError
from codesign.hwmodels.arch import Arch
from codesign.mapper.problem import Problem

if TYPE_CHECKING:
    # NumPy loads where mappings are packed into arrays (a search or the analytical model)
    import numpy as np


@dataclass(frozen=True, slots=True)
class Loop:
    dim: str
    bound: int


@dataclass(frozen=True, slots=True)
class LevelMapping:
    """Loops of one storage level; spatial loops unroll over the fan-out below the level."""

    level: str
    temporal: tuple[Loop, ...] = ()
    spatial_x: tuple[Loop, ...] = ()
    spatial_y: tuple[Loop, ...] = ()
    keep: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Mapping:
    """One LevelMapping per arch level, outermost first."""

    problem: str
    levels: tuple[LevelMapping, ...]

    def to_yaml(self) -> str:
        """Deterministic YAML that ``load_mapping`` reads back into an equal Mapping."""

        def loops(items: tuple[Loop, ...]) -> list[list[str | int]]:
            return [[loop.dim, loop.bound] for loop in items]

        data = {
            "problem": self.problem,
            "levels": [
                {
                    "level": level.level,
                    "temporal": loops(level.temporal),
                    "spatial_x": loops(level.spatial_x),
                    "spatial_y": loops(level.spatial_y),
                    "keep": sorted(level.keep),
                }
                for level in self.levels
            ],
        }
        import yaml  # only a mapping written out needs it

        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


@dataclass(frozen=True, slots=True)
class MappingArrays:
    """Dense form of a batch of mappings for the vectorised cost model.

    Shapes: ``temporal``, ``spatial_x``, ``spatial_y``: (B, L, D) loop bounds (1 = no loop);
    ``order``: (B, L, D) dim indices of each level's temporal loops, outer to inner;
    ``keep``: (B, L, T) whether level ``l`` keeps tensor ``t``.
    """

    temporal: np.ndarray
    spatial_x: np.ndarray
    spatial_y: np.ndarray
    order: np.ndarray
    keep: np.ndarray

    @property
    def batch(self) -> int:
        return int(self.temporal.shape[0])


def default_keep(problem: Problem, arch: Arch, level_index: int) -> frozenset[str]:
    roles = arch.levels[level_index].keeps
    return frozenset(t.name for t in problem.tensors if t.role in roles)


def mapping_errors(mapping: Mapping, problem: Problem, arch: Arch) -> list[str]:
    """Why ``mapping`` is not a valid mapping of ``problem`` on ``arch`` (empty when valid).

    Capacity is not checked here (it needs tile footprints): the cost model reports it.
    """
    errors: list[str] = []
    names = [level.name for level in arch.levels]
    if [level.level for level in mapping.levels] != names:
        return [f"levels must be {names}, got {[level.level for level in mapping.levels]}"]
    dims = set(problem.dim_names)
    tensors = {t.name for t in problem.tensors}
    factors: dict[str, list[int]] = {dim: [] for dim in problem.dim_names}
    for index, (level, hw) in enumerate(zip(mapping.levels, arch.levels, strict=True)):
        where = f"levels[{index}]"
        seen = [loop.dim for loop in level.temporal]
        if len(set(seen)) != len(seen):
            errors.append(f"{where}.temporal: a dim appears twice: {seen}")
        for field, loops in (
            ("temporal", level.temporal),
            ("spatial_x", level.spatial_x),
            ("spatial_y", level.spatial_y),
        ):
            for loop in loops:
                if loop.dim not in dims:
                    errors.append(f"{where}.{field}: unknown dim {loop.dim!r}")
                elif loop.bound < 1:
                    errors.append(f"{where}.{field}: bound of {loop.dim} must be >= 1")
                else:
                    factors[loop.dim].append(loop.bound)
        for field, loops, limit in (
            ("spatial_x", level.spatial_x, hw.fanout_x),
            ("spatial_y", level.spatial_y, hw.fanout_y),
        ):
            used = math.prod(loop.bound for loop in loops)
            if used > limit:
                errors.append(f"{where}.{field}: unrolls {used} > fan-out {limit} of {hw.name}")
        unknown = problem.canonical_names(level.keep) - tensors
        if unknown:
            errors.append(
                f"{where}.keep: unknown tensors {sorted(unknown)} (known: {sorted(tensors)} "
                "or Timeloop's Weights/Inputs/Outputs)"
            )
    kept = frozenset().union(*(problem.canonical_names(lv.keep) for lv in mapping.levels))
    homeless = tensors - kept
    if homeless:
        errors.append(f"keep: tensors {sorted(homeless)} are kept at no level")
    for dim, bound in problem.dims:
        chain = [f for f in factors[dim] if f > 1]
        total = math.prod(chain)
        outer = chain[0] if chain else 1
        if total < bound or (total // outer) * (outer - 1) >= bound:
            errors.append(
                f"dim {dim}: factors {chain or [1]} cover {total} iterations, not {bound} "
                "(imperfect factors may pad less than one outermost iteration)"
            )
    return errors


def check_mapping(mapping: Mapping, problem: Problem, arch: Arch, where: str = "mapping") -> None:
    """Raise a one-line InputError naming ``where`` if the mapping is invalid."""
    errors = mapping_errors(mapping, problem, arch)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InputError(f"{where}: {errors[0]}{more}")


def to_arrays(mappings: list[Mapping], problem: Problem, arch: Arch) -> MappingArrays:
    """Pack valid mappings of ``problem`` on ``arch`` into dense arrays (see MappingArrays)."""
    import numpy as np

    dim_index = {dim: i for i, dim in enumerate(problem.dim_names)}
    n_b, n_l, n_d, n_t = len(mappings), len(arch.levels), len(problem.dims), len(problem.tensors)
    temporal = np.ones((n_b, n_l, n_d), dtype=np.int64)
    spatial_x = np.ones((n_b, n_l, n_d), dtype=np.int64)
    spatial_y = np.ones((n_b, n_l, n_d), dtype=np.int64)
    order = np.tile(np.arange(n_d, dtype=np.int64), (n_b, n_l, 1))
    keep = np.zeros((n_b, n_l, n_t), dtype=bool)
    for b, mapping in enumerate(mappings):
        for l_index, level in enumerate(mapping.levels):
            listed = [dim_index[loop.dim] for loop in level.temporal]
            rest = [d for d in range(n_d) if d not in listed]
            # Unlisted dims have bound 1; put them outermost so they never count as innermost.
            order[b, l_index] = rest + listed
            for loop in level.temporal:
                temporal[b, l_index, dim_index[loop.dim]] = loop.bound
            for loop in level.spatial_x:
                spatial_x[b, l_index, dim_index[loop.dim]] *= loop.bound
            for loop in level.spatial_y:
                spatial_y[b, l_index, dim_index[loop.dim]] *= loop.bound
            kept = problem.canonical_names(level.keep)
            for t_index, tensor in enumerate(problem.tensors):
                keep[b, l_index, t_index] = tensor.name in kept
    return MappingArrays(temporal, spatial_x, spatial_y, order, keep)


def from_arrays(
    arrays: MappingArrays, index: int, problem: Problem, arch: Arch
) -> Mapping:
    """Mapping number ``index`` of a batch (loops of bound 1 are dropped)."""
    dims = problem.dim_names
    levels = []
    for l_index, hw in enumerate(arch.levels):
        order = arrays.order[index, l_index]
        temporal = tuple(
            Loop(dims[d], int(arrays.temporal[index, l_index, d]))
            for d in order
            if arrays.temporal[index, l_index, d] > 1
        )
        spatial_x = tuple(
            Loop(dims[d], int(b)) for d, b in enumerate(arrays.spatial_x[index, l_index]) if b > 1
        )
        spatial_y = tuple(
            Loop(dims[d], int(b)) for d, b in enumerate(arrays.spatial_y[index, l_index]) if b > 1
        )
        kept = arrays.keep[index, l_index]
        keep = frozenset(t.name for t_index, t in enumerate(problem.tensors) if kept[t_index])
        levels.append(LevelMapping(hw.name, temporal, spatial_x, spatial_y, keep))
    return Mapping(problem.name, tuple(levels))


def load_mapping(
    path: str | Path, problem: Problem | None = None, arch: Arch | None = None
) -> Mapping:
    """Read a mapping YAML; with ``problem`` and ``arch`` also check it is a valid mapping.

    A level without ``keep`` keeps the tensors its arch level keeps (needs ``arch``), less its
    ``bypass`` list. Any level may bypass a tensor, DRAM included: a tensor's outermost keeping
    level is then its home, holding it for the whole Einsum (an on-chip intermediate of a fused
    group). Tensors may be named by their own names or, given ``problem``, by Timeloop's
    Weights/Inputs/Outputs; names are stored canonical (the problem's own).
    """
    from codesign.hwmodels.yamlio import input_error, load_validated
    from codesign.mapper.mapping_spec import MappingSpec

    spec = load_validated(path, MappingSpec)
    levels = []
    for index, level in enumerate(spec.levels):
        if level.keep is None:
            if problem is None or arch is None or index >= len(arch.levels):
                raise input_error(path, ("levels", index), "keep is required without an arch")
            keep = default_keep(problem, arch, index)
        else:
            keep = frozenset(level.keep)
        bypass = frozenset(level.bypass)
        if problem is not None:
            for field, names in (("keep", keep), ("bypass", bypass)):
                unknown = sorted(n for n in names if problem.resolve(n) is None)
                if unknown:
                    known = ", ".join(t.name for t in problem.tensors)
                    raise input_error(
                        path,
                        ("levels", index, field),
                        f"unknown tensors {unknown} (known: {known}, or Weights/Inputs/Outputs)",
                    )
            keep, bypass = problem.canonical_names(keep), problem.canonical_names(bypass)
        if level.keep is not None and keep & bypass:
            raise input_error(
                path, ("levels", index), f"{sorted(keep & bypass)} both kept and bypassed"
            )
        keep = keep - bypass
        levels.append(
            LevelMapping(
                level=level.level,
                temporal=tuple(Loop(d, b) for d, b in level.temporal),
                spatial_x=tuple(Loop(d, b) for d, b in level.spatial_x),
                spatial_y=tuple(Loop(d, b) for d, b in level.spatial_y),
                keep=keep,
            )
        )
    mapping = Mapping(spec.problem, tuple(levels))
    if problem is not None and arch is not None:
        check_mapping(mapping, problem, arch, where=str(path))
    return mapping
