"""`codesign dse SPACE.yaml` (sweep a design space) and `codesign dse show DB` (re-plot)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from codesign.errors import InputError


def add_parser(sub, model_args: Callable[..., None]) -> None:
    p = sub.add_parser(
        "dse",
        help="design-space exploration: sweep SPACE.yaml, or `dse show DB` to re-plot a store",
    )
    p.add_argument("target", nargs="+", metavar="SPACE.yaml | show DB")
    p.add_argument("--out", metavar="DIR", help="plots and tables (default dse_out/<space>)")
    p.add_argument("--db", metavar="PATH", help="SQLite results store (default DIR/results.sqlite)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--executor", default="pool", help="pool | ray | inline")
    p.add_argument("--address", default=None, help="ray cluster address (default: local)")
    p.add_argument("--json", metavar="PATH", help="write the points as JSON ('-' = stdout)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dse)


def _progress_bar(quiet: bool):
    columns = (
        TextColumn("dse"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), transient=True, disable=quiet)


def _print_front(front_rows, objectives: Sequence[str], console: Console) -> None:
    for workload, rows in front_rows.items():
        table = Table(title=f"Pareto front: {workload} ({len(rows)} points)")
        for col in ("point", "latency", "energy", "area mm²", "EDP J·s", "inf/s/mm²", "cosine"):
            table.add_column(col, justify="left" if col == "point" else "right")

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        for row in rows:
            m = row.metrics
            table.add_row(
                row.label(),
                fmt(m.get("latency_s"), ".4g") + " s",
                fmt(m.get("energy_pj"), ".4g") + " pJ",
                fmt(m.get("area_mm2"), ".4g"),
                fmt(m.get("edp_js"), ".3g"),
                fmt(m.get("perf_per_area_inf_per_s_mm2"), ".4g"),
                fmt(m.get("accuracy_cosine"), ".5f"),
            )
        console.print(table)
    console.print(f"objectives: {', '.join(objectives)} (accuracy maximised, others minimised)")


def _finish(
    rows, objectives, constraints, axes: Sequence[str], out: Path, args, console: Console
) -> int:
    from codesign.dse.output import records, write_plots, write_table
    from codesign.dse.sweep import front

    fronts = front(rows, objectives, constraints)
    keys = {r.key for rs in fronts.values() for r in rs}
    recs = records(rows, keys)
    errors = [r for r in rows if r.error is not None]
    write_table(out / "points.csv", recs)
    try:
        write_table(out / "points.parquet", recs)
    except InputError:
        pass  # pyarrow is optional: CSV is always written
    plots = [] if args.no_plots else write_plots(out, recs, axes)
    if args.json == "-":
        print(json.dumps(recs, indent=1))
        return 0
    if args.json:
        write_table(args.json, recs)
    _print_front(fronts, [o.value for o in objectives], console)
    console.print(f"{len(rows)} points, {len(errors)} failed; tables and plots in {out}/")
    for row in errors[:3]:
        console.print(f"  failed: {row.label()}: {row.error}")
    for plot in plots:
        console.print(f"  {plot}")
    return 0


def _show(args: argparse.Namespace, console: Console) -> int:
    from codesign.dse.space import ConstraintSpec, Objective
    from codesign.dse.store import Store

    if len(args.target) != 2:
        raise InputError("usage: codesign dse show DB")
    db = Path(args.target[1])
    if not db.is_file():
        raise InputError(f"{db}: no such results database")
    with Store(db) as store:
        objectives_text = store.meta("objectives")
        if objectives_text is None:
            raise InputError(f"{db}: no sweep recorded in this database")
        objectives = [Objective(o) for o in json.loads(objectives_text)]
        constraints = [ConstraintSpec(**c) for c in json.loads(store.meta("constraints") or "[]")]
        axes = json.loads(store.meta("axes") or "[]")
        rows = list(store.rows())
    out = Path(args.out) if args.out else db.parent
    return _finish(rows, objectives, constraints, axes, out, args, console)


def cmd_dse(args: argparse.Namespace) -> int:
    from codesign.dse.space import load_space
    from codesign.dse.store import Store
    from codesign.dse.sweep import SweepOptions, run_sweep

    console = Console(width=max(Console().width, 120))
    if args.target[0] == "show":
        return _show(args, console)
    if len(args.target) != 1:
        raise InputError("usage: codesign dse SPACE.yaml (or: codesign dse show DB)")
    if args.workers < 1:
        raise InputError("--workers must be at least 1")
    space = load_space(args.target[0])
    out = Path(args.out) if args.out else Path("dse_out") / space.name
    out.mkdir(parents=True, exist_ok=True)
    db = Path(args.db) if args.db else out / "results.sqlite"
    options = SweepOptions(args.executor, args.workers, args.address)
    quiet = args.quiet or not sys.stderr.isatty()
    with Store(db) as store, _progress_bar(quiet) as bar:
        task = bar.add_task("points", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        rows = run_sweep(space, store, options, tick)
    axes = [a.name for a in space.axes]
    return _finish(rows, space.objectives, space.constraints, axes, out, args, console)
