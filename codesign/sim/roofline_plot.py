"""Roofline chart of a ``RooflineReport``: log-log, one roof per memory level, one point per row.

Points sit at their DRAM operational intensity (ops/byte) and attainable performance (ops/s);
colour says the bound (compute or which memory level), marker the phase.  Ridge points (where a
bandwidth roof meets the compute roof) are labelled with their intensity.  Uses matplotlib's Agg
canvas directly (no global backend switch); the file's suffix picks PNG or SVG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from codesign.errors import InputError
from codesign.hwmodels.gpu import Device, Unit
from codesign.sim.roofline import COMPUTE_BOUND, RooflineRow

_PHASE_MARKERS = {"prefill": "o", "decode": "^"}
_OTHER_MARKERS = ("s", "D", "v", "P", "X")
_BOUND_COLOURS = {COMPUTE_BOUND: "#d62728"}
_LEVEL_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
_LEVEL_STYLES = ("-", "--", ":", "-.")
SUFFIXES = (".png", ".svg")


def _compute_roofs(device: Device, rows: Sequence[RooflineRow]) -> list[tuple[str, float]]:
    """The compute roofs the rows use (tensor and vector roof of each precision seen)."""
    roofs: dict[str, float] = {}
    for r in rows:
        for matrix in (True, False):
            unit, peak = device.compute_unit(r.precision, matrix)
            if matrix and unit is not Unit.TENSOR:
                continue
            roofs[f"{r.precision.value} {unit.value}"] = peak
    if not roofs:
        p, peak = max(device.vector_peaks, key=lambda kv: kv[1])
        roofs[f"{p.value} vector"] = peak
    return sorted(roofs.items(), key=lambda kv: -kv[1])


def plot_roofline(
    rows: Sequence[RooflineRow], device: Device, path: str | Path, title: str = ""
) -> Path:
    """Draw `rows` against `device`'s roofs into `path` (.png or .svg); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: plot format must be one of {', '.join(SUFFIXES)}")
    points = [r for r in rows if r.ops > 0 and r.memory_bytes > 0 and r.time_s > 0]
    fig = Figure(figsize=(10, 6.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    ax.set_yscale("log")

    intensities = [r.intensity_ops_per_byte for r in points] or [1.0]
    roofs = _compute_roofs(device, points)
    top_peak = roofs[0][1]
    bw_levels = device.roofs
    ridges = [top_peak / lv.bandwidth_bytes_per_s for lv in bw_levels if lv.bandwidth_bytes_per_s]
    x_lo = 10 ** math.floor(math.log10(min(min(intensities), *ridges, 1.0) / 2))
    x_hi = 10 ** math.ceil(math.log10(max(max(intensities), *ridges) * 4))
    xs = [x_lo * (x_hi / x_lo) ** (k / 200) for k in range(201)]

    level_colour = {lv.name: _LEVEL_COLOURS[i % 4] for i, lv in enumerate(device.levels)}
    for i, level in enumerate(bw_levels):
        bw = level.bandwidth_bytes_per_s
        assert bw is not None
        colour = level_colour[level.name]
        ax.plot(
            xs, [min(top_peak, x * bw) / 1e12 for x in xs], color=colour,
            linestyle=_LEVEL_STYLES[i % 4], linewidth=1.8,
            label=f"{level.name} roof {bw / 1e9:,.0f} GB/s",
        )  # fmt: skip
        ridge = top_peak / bw
        ax.plot([ridge], [top_peak / 1e12], marker="|", markersize=14, color=colour)
        ax.annotate(
            f"ridge {ridge:,.1f} op/B", (ridge, top_peak / 1e12), textcoords="offset points",
            xytext=(4, 6 + 11 * i), fontsize=8, color=colour,
        )  # fmt: skip
    for name, peak in roofs[1:]:
        ax.axhline(peak / 1e12, color="grey", linestyle=":", linewidth=1)
        ax.text(x_hi, peak / 1e12, f"{name} {peak / 1e12:,.1f} T/s ", ha="right", va="bottom",
                fontsize=8, color="grey")  # fmt: skip
    ax.text(x_hi, top_peak / 1e12, f"{roofs[0][0]} {top_peak / 1e12:,.1f} T/s ", ha="right",
            va="bottom", fontsize=8)  # fmt: skip

    phases = list(dict.fromkeys(r.phase for r in points))
    markers = {
        p: _PHASE_MARKERS.get(p, _OTHER_MARKERS[i % len(_OTHER_MARKERS)])
        for i, p in enumerate(phases)
    }
    colours = {COMPUTE_BOUND: _BOUND_COLOURS[COMPUTE_BOUND], **level_colour}
    # points that (nearly) coincide share one label, so the text stays readable
    clusters: dict[tuple[int, int], list[str]] = {}
    for r in points:
        y = r.attainable_ops_per_s / 1e12
        ax.scatter(
            [r.intensity_ops_per_byte], [y], marker=markers[r.phase], s=46,
            color=colours.get(r.bound, "black"), edgecolors="black", linewidths=0.5, zorder=3,
        )  # fmt: skip
        key = (round(math.log10(r.intensity_ops_per_byte) * 8), round(math.log10(y) * 8))
        clusters.setdefault(key, [])
        if r.label not in clusters[key]:
            clusters[key].append(r.label)
    if len(clusters) <= 40:
        for (kx, ky), labels in clusters.items():
            text = ", ".join(labels[:4]) + (f" +{len(labels) - 4}" if len(labels) > 4 else "")
            ax.annotate(text, (10 ** (kx / 8), 10 ** (ky / 8)), textcoords="offset points",
                        xytext=(5, -10), fontsize=6.5, alpha=0.85)  # fmt: skip

    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours.get(b, "black"),
               markeredgecolor="black", label=f"{b}-bound")
        for b in dict.fromkeys(r.bound for r in points)
    ]  # fmt: skip
    handles += [
        Line2D([], [], marker=markers[p], linestyle="", color="white", markeredgecolor="black",
               label=p or "kernel")
        for p in phases
    ]  # fmt: skip
    roof_legend = ax.legend(loc="lower right", fontsize=8, title="roofs")
    ax.add_artist(roof_legend)
    ax.legend(handles=handles, loc="upper left", fontsize=8, title="points")
    ax.set_xlim(x_lo, x_hi)
    perf_tops = [r.attainable_ops_per_s / 1e12 for r in points] or [top_peak / 1e12 / 1e3]
    y_lo = min(perf_tops) / 2
    ax.set_ylim(y_lo, top_peak / 1e12 * 3)
    ax.set_xlabel("operational intensity at DRAM (ops/byte)")
    ax.set_ylabel("attainable performance (10^12 ops/s)")
    ax.set_title(title or f"Roofline on {device.name}")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower().lstrip("."))
    return path
