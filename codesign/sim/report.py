"""Reports of a mapped cascade: JSON-ready dictionaries and matplotlib figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codesign.mapper.mapping import Mapping
from codesign.sim.cascade import CascadeResult
from codesign.sim.fused import GroupResult


def result_dict(result: CascadeResult) -> dict[str, Any]:
    """The ``--json`` document: per-Einsum rows and totals (units in the keys)."""
    rows = []
    for e in result.einsums:
        rows.append({
            "name": e.name,
            "op": e.op,
            "kind": e.kind.value,
            "macs": e.cost.macs,
            "cycles": e.cost.cycles,
            "compute_cycles": e.cost.compute_cycles,
            "energy_pj": e.cost.energy_pj,
            "utilization": e.cost.utilization,
            "bound": e.cost.bound,
            "utilized_pes": e.cost.utilized_pes,
            "energy_by_level_pj": {lv.name: lv.energy_pj for lv in e.cost.levels}
            | {"compute": e.cost.compute_energy_pj},
            "mapper_evaluations": e.evaluations,
        })  # fmt: skip
    doc: dict[str, Any] = {
        "model": result.model,
        "arch": result.arch,
        "einsums": rows,
        "groups": [group_dict(g) for g in result.groups],
        "total": {
            "cycles": result.cycles,
            "energy_pj": result.energy_pj,
            "macs": result.macs,
            "latency_s": result.latency_s,
            "energy_by_level_pj": result.energy_by_level_pj(),
        },
    }
    return doc


def figures_of_merit(
    result: CascadeResult, area_by_component_mm2: dict[str, float] | None
) -> dict[str, Any]:
    """Area (mm^2, per component and total) and perf/area, perf/W, EDP; perf counts one run
    of the cascade (an inference) per second.  None where a denominator is zero, and area
    None where the hardware has no area model."""
    latency_s, energy_j = result.latency_s, result.energy_pj * 1e-12
    per_s = 1.0 / latency_s if latency_s > 0 else None
    if area_by_component_mm2 is None:
        area: dict[str, Any] | None = None
        area_mm2 = 0.0
    else:
        area_mm2 = sum(area_by_component_mm2.values())
        area = {"total": area_mm2, "by_component": dict(area_by_component_mm2)}
    return {
        "area_mm2": area,
        "edp_js": energy_j * latency_s,
        "power_w": energy_j / latency_s if latency_s > 0 else None,
        "perf_per_area_inf_per_s_mm2": per_s / area_mm2 if per_s and area_mm2 > 0 else None,
        "perf_per_w_inf_per_j": 1.0 / energy_j if energy_j > 0 else None,
    }


def group_dict(group: GroupResult) -> dict[str, Any]:
    """One fused group of the ``--json`` document (sim/fused.py)."""
    return {
        "name": group.name,
        "kind": group.kind,
        "einsums": list(group.einsums),
        "on_chip": list(group.on_chip),
        "on_chip_level": group.on_chip_level,
        "cycles": group.cycles,
        "energy_pj": group.energy_pj,
        "macs": group.macs,
        "backing_accesses": group.backing_accesses,
        "reuse_macs_per_backing_access": group.reuse if group.backing_accesses else None,
        "saved_energy_pj": group.saved_energy_pj,
        "epilogue_loads_pj": group.epilogue_loads_pj,
        "model": group.model,
        "reason": group.reason,
        "shared_loops": [{"axis": axis, "outer_factor": f} for axis, f in group.shared_loops],
        "blocks": group.blocks,
        "on_chip_tile_words": group.tile_words,
        "on_chip_capacity_words": group.capacity_words,
        "inner_nests": {name: loops_text(mapping) for name, mapping in group.nests},
    }


def loops_text(mapping: Mapping) -> str:
    """A mapping on one line, outermost level first: ``DRAM[m4 p2] glb[c8 X:m14] ...``
    (temporal loops as dim+bound, spatial ones prefixed X:/Y:)."""
    parts = []
    for level in mapping.levels:
        loops = [f"{loop.dim}{loop.bound}" for loop in level.temporal]
        loops += [f"X:{loop.dim}{loop.bound}" for loop in level.spatial_x]
        loops += [f"Y:{loop.dim}{loop.bound}" for loop in level.spatial_y]
        parts.append(f"{level.level}[{' '.join(loops)}]")
    return " ".join(parts)


def plot_result(
    result: CascadeResult, path: str | Path, baseline: CascadeResult | None = None
) -> None:
    """Energy breakdown by level (bar chart) and latency per Einsum; PNG or SVG by suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_energy, ax_latency) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 2.2]}
    )
    runs = [result] + ([baseline] if baseline is not None else [])
    levels: list[str] = []
    for run in runs:
        for name in run.energy_by_level_pj():
            if name not in levels:
                levels.append(name)
    bottom = [0.0] * len(runs)
    for level in levels:
        values = [run.energy_by_level_pj().get(level, 0.0) / 1e6 for run in runs]
        ax_energy.bar([run.arch for run in runs], values, bottom=bottom, label=level)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax_energy.set_ylabel("energy (µJ)")
    ax_energy.set_title(f"{result.model}: energy by level")
    ax_energy.legend(fontsize=8)
    shown = [e for e in result.einsums if e.cost.cycles > 0]
    ax_latency.bar(
        range(len(shown)),
        [e.cost.cycles for e in shown],
        color=["tab:blue" if e.cost.bound == "compute" else "tab:red" for e in shown],
    )
    ax_latency.set_xticks(range(len(shown)))
    ax_latency.set_xticklabels([e.name for e in shown], rotation=90, fontsize=6)
    ax_latency.set_ylabel("cycles")
    ax_latency.set_yscale("log")
    ax_latency.set_title(
        f"latency per Einsum on {result.arch} (blue: compute-bound, red: memory-bound)"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
