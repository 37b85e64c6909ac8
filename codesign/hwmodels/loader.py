"""``load_arch``: the one place hardware YAML becomes frozen ``Arch`` objects."""

from __future__ import annotations

from pathlib import Path

from codesign.errors import InputError
from codesign.hwmodels.arch import (
    Action,
    Arch,
    ComponentEnergy,
    ComputeUnit,
    EnergyTable,
    StorageLevel,
)
from codesign.hwmodels.energy import build_energy_table
from codesign.hwmodels.presets import resolve_relative
from codesign.hwmodels.schema import ArchSpec, EnergyTableSpec, LevelSpec
from codesign.hwmodels.sparse_support import SparseSupport
from codesign.hwmodels.yamlio import input_error, load_validated


def load_energy_table(path: str | Path, target_nm: float | None = None) -> EnergyTable:
    """Load an ERT/ART YAML, scaled to ``target_nm`` (its own node when None)."""
    spec = load_validated(path, EnergyTableSpec)
    return build_energy_table(spec, spec.technology_nm if target_nm is None else target_nm)


def _energy(
    path: Path,
    loc: tuple[int | str, ...],
    component: ComponentEnergy | None,
    action: Action,
    bits: int | None = None,
) -> float:
    if component is None:
        raise input_error(path, loc, "no such component in the energy table")
    energy = component.energy_pj(action, bits)
    if energy is None:
        what = f"{action.value}" + (f" at {bits} bits" if bits is not None else "")
        raise input_error(path, loc, f"energy table component {component.name} has no {what}")
    return energy


def _level(
    path: Path, index: int, spec: LevelSpec, table: EnergyTable, clock_ghz: float
) -> StorageLevel:
    name = spec.component or spec.name
    loc: tuple[int | str, ...] = ("levels", index, "component" if spec.component else "name")
    component = table.component(name)
    read_pj = _energy(path, loc, component, Action.READ)
    write_pj = _energy(path, loc, component, Action.WRITE)
    assert component is not None
    update_pj = component.energy_pj(Action.UPDATE)
    leak_pj = component.energy_pj(Action.LEAK) or 0.0
    read_bw = spec.read_bandwidth_words_per_cycle
    write_bw = spec.write_bandwidth_words_per_cycle
    if spec.bandwidth_gbps is not None:
        # GB/s over cycles/ns gives bytes per cycle; shared by reads and writes.
        read_bw = write_bw = spec.bandwidth_gbps / clock_ghz * 8 / spec.word_bits
    return StorageLevel(
        name=spec.name,
        kind=spec.kind,
        size_words=spec.words,
        word_bits=spec.word_bits,
        block_words=spec.block_words,
        banks=spec.banks,
        read_bandwidth_words_per_cycle=read_bw,
        write_bandwidth_words_per_cycle=write_bw,
        keeps=frozenset(spec.keeps),
        fanout_x=spec.fanout.x,
        fanout_y=spec.fanout.y,
        read_energy_pj=read_pj / spec.block_words,
        write_energy_pj=write_pj / spec.block_words,
        update_energy_pj=(write_pj if update_pj is None else update_pj) / spec.block_words,
        leak_energy_pj_per_cycle=leak_pj,
        area_um2=component.area_um2,
    )


def _table(path: Path, spec: ArchSpec) -> EnergyTable:
    """The named energy table (next to the card, else in the preset library), or the
    estimators' table when the YAML names none."""
    if spec.energy_table is None:
        from codesign.hwmodels.estimators import estimate_arch_table

        return estimate_arch_table(spec)
    table_path = resolve_relative(path, spec.energy_table)
    if table_path is None:
        raise input_error(
            path, ("energy_table",), f"no such file {spec.energy_table!r} next to the card or "
            "in the preset library"
        )  # fmt: skip
    try:
        return load_energy_table(table_path, spec.technology_nm)
    except InputError as error:
        raise InputError(f"{path}: energy_table: {error}") from error


def arch_from_spec(spec: ArchSpec, path: Path) -> Arch:
    """The frozen ``Arch`` of a validated card at ``path`` (its energy table resolved next to
    the card, else in the preset library).  InputError ``file:line: field: message``."""
    errors = spec.semantic_errors()
    if errors:
        loc, message = errors[0]
        raise input_error(path, loc, message)
    table = _table(path, spec)
    levels = tuple(
        _level(path, index, level, table, spec.clock_ghz) for index, level in enumerate(spec.levels)
    )
    compute_name = spec.compute.component or spec.compute.name
    compute_component = table.component(compute_name)
    compute_loc: tuple[int | str, ...] = ("compute", "name")
    mac_pj = _energy(path, compute_loc, compute_component, Action.MAC, spec.compute.mac_bits)
    assert compute_component is not None
    compute = ComputeUnit(
        name=spec.compute.name,
        mac_bits=spec.compute.mac_bits,
        count=spec.pe_count,
        mac_energy_pj=mac_pj,
        leak_energy_pj_per_cycle=compute_component.energy_pj(Action.LEAK) or 0.0,
        area_um2=compute_component.area_um2,
    )
    sparse = spec.sparse
    return Arch(
        name=spec.name,
        clock_ghz=spec.clock_ghz,
        technology_nm=spec.technology_nm,
        dataflow=spec.dataflow,
        levels=levels,
        compute=compute,
        energy_table=table,
        source_path=str(path),
        sparse=SparseSupport(
            sparse.compute, sparse.compressed_weights, sparse.nm, sparse.gated_energy_ratio
        ),
    )


def load_arch(path: str | Path) -> Arch:
    """Validate a spatial-array card (and the energy table it names) into a frozen ``Arch``.

    Raises ``InputError`` with ``file:line: field.path: message`` on the first problem.
    """
    path = Path(path)
    return arch_from_spec(load_validated(path, ArchSpec), path)
