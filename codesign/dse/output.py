"""Sweep output: rows as records, CSV / Parquet / JSON files (written atomically) and plots."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codesign.atomic import staged, write_bytes
from codesign.dse.pareto import pareto_indices
from codesign.dse.space import METRICS
from codesign.dse.store import Row
from codesign.errors import InputError


def records(rows: Sequence[Row], front_keys: set[str]) -> list[dict[str, Any]]:
    """One flat dict per row: key, workload, pipeline, axis values, metrics, on_front."""
    out = []
    for row in rows:
        record: dict[str, Any] = {
            "key": row.key,
            "workload": row.workload,
            "pipeline": row.pipeline,
        }
        record.update({f"axis.{k}": v for k, v in row.values})
        record.update({m: row.metrics.get(m) for m in METRICS})
        record["error"] = row.error
        record["on_front"] = row.key in front_keys
        out.append(record)
    return out


def csv_bytes(recs: Sequence[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(k for r in recs for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in recs:
        writer.writerow(record)
    return buffer.getvalue().encode()


def write_table(path: str | Path, recs: Sequence[dict[str, Any]]) -> None:
    """CSV, Parquet (needs pyarrow) or JSON by suffix."""
    suffix = Path(path).suffix.lower()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        write_bytes(path, csv_bytes(recs))
    elif suffix == ".json":
        write_bytes(path, json.dumps(list(recs), indent=1).encode())
    elif suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError(f"{path}: Parquet needs pyarrow (pip install pyarrow)") from None
        columns = list(dict.fromkeys(k for r in recs for k in r))
        table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in recs])
        sink = io.BytesIO()
        pq.write_table(table, sink)
        write_bytes(path, sink.getvalue())
    else:
        raise InputError(f"{path}: unknown table format {suffix!r} (.csv, .parquet, .json)")


def _values(recs: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in recs]


def write_plots(
    out_dir: str | Path, recs: Sequence[dict[str, Any]], axis_names: Sequence[str]
) -> list[Path]:
    """latency vs energy, area vs energy, accuracy vs speedup (when accuracy is known) and a
    parallel-coordinates plot, one PNG each per sweep; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ok = [r for r in recs if r["error"] is None and r["latency_s"] is not None]
    written: list[Path] = []

    def scatter(name: str, x: str, y: str, xlabel: str, ylabel: str, logs: bool = True) -> None:
        pts = [r for r in ok if r.get(x) is not None and r.get(y) is not None]
        if not pts:
            return
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        for index, workload in enumerate(dict.fromkeys(r["workload"] for r in pts)):
            mine = [r for r in pts if r["workload"] == workload]
            color = f"C{index % 10}"
            ax.scatter(
                _values(mine, x), _values(mine, y), s=14, alpha=0.5, color=color, label=workload
            )
            on = [r for r in mine if r["on_front"]]
            if on:
                ax.scatter(
                    _values(on, x),
                    _values(on, y),
                    s=22,
                    marker="s",
                    facecolors="none",
                    edgecolors=color,
                    label=f"{workload}: on the front",
                )
            sign = -1.0 if y == "accuracy_cosine" else 1.0  # accuracy is maximised
            costs = [
                (float(r[x]) * (-1.0 if x == "speedup" else 1.0), sign * float(r[y])) for r in mine
            ]
            pair = sorted((mine[i] for i in pareto_indices(costs)), key=lambda r: r[x])
            ax.plot(
                _values(pair, x),
                _values(pair, y),
                "-",
                lw=1.2,
                color=color,
                label=f"{workload}: front of these two",
            )
        if logs:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{name}.png"
        with staged(path) as temporary:
            fig.savefig(temporary, dpi=110, format="png")
        plt.close(fig)
        written.append(path)

    scatter("latency_vs_energy", "latency_s", "energy_pj", "latency (s)", "energy (pJ)")
    scatter("area_vs_energy", "area_mm2", "energy_pj", "area (mm²)", "energy (pJ)")
    with_acc = [r for r in ok if r.get("accuracy_cosine") is not None]
    if with_acc:
        slowest: dict[str, float] = {}
        for r in with_acc:
            slowest[r["workload"]] = max(slowest.get(r["workload"], 0.0), r["latency_s"])
        for r in with_acc:
            r["speedup"] = slowest[r["workload"]] / r["latency_s"]
        scatter(
            "accuracy_vs_speedup",
            "speedup",
            "accuracy_cosine",
            "speedup over the slowest point",
            "output cosine similarity",
            logs=False,
        )
    columns = [f"axis.{a}" for a in axis_names] + ["latency_s", "energy_pj", "area_mm2"]
    numeric = [c for c in columns if ok and all(isinstance(r.get(c), int | float) for r in ok)]
    if ok and len(numeric) >= 2:
        fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * len(numeric)), 4.8))
        lows = {c: min(_values(ok, c)) for c in numeric}
        highs = {c: max(_values(ok, c)) for c in numeric}
        for r in sorted(ok, key=lambda r: r["on_front"]):
            ys = [(float(r[c]) - lows[c]) / ((highs[c] - lows[c]) or 1.0) for c in numeric]
            ax.plot(
                range(len(numeric)),
                ys,
                color="tab:red" if r["on_front"] else "0.7",
                alpha=0.9 if r["on_front"] else 0.35,
                lw=1.2 if r["on_front"] else 0.7,
            )
        ax.set_xticks(range(len(numeric)))
        ax.set_xticklabels([c.removeprefix("axis.") for c in numeric], rotation=20)
        ax.set_ylabel("normalised (min..max)")
        ax.set_title("parallel coordinates (red: Pareto front)")
        fig.tight_layout()
        path = out / "parallel_coordinates.png"
        with staged(path) as temporary:
            fig.savefig(temporary, dpi=110, format="png")
        plt.close(fig)
        written.append(path)
    return written
