"""`codesign map MODEL --hw HW.yaml`: map every Einsum, report cycles, energy and bottlenecks."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from codesign.api import Report, map_model, resolve_hardware, retypes_weights
from codesign.cli.outputs import staged, write_text
from codesign.cli.passes_opt import (
    PassesResult,
    add_passes_arguments,
    apply_passes,
    parse_passes,
    passes_json,
    passes_text,
)
from codesign.cli.timeloop_opt import add_timeloop_arguments, resolve_timeloop
from codesign.errors import InputError
from codesign.hwmodels.arch import Dataflow
from codesign.hwmodels.registry import Command
from codesign.mapper.mapping import Mapping, load_mapping
from codesign.mapper.memo import Mapper
from codesign.mapper.search_types import Constraints, Objective, SearchOptions
from codesign.sim.cascade import CascadeResult
from codesign.sim.family_models import SPATIAL_MODELS


def add_parser(sub, model_args: Callable[..., None]) -> None:
    p = sub.add_parser("map", help="map a model onto hardware: cycles, energy, utilization, bound")
    model_args(p, required=False)  # MODEL or --llm NAME
    p.add_argument(
        "--hw", metavar="HW.yaml|PRESET",
        help="hardware card (any family) or preset name (eyeriss_like, a100, lut_tc ...)",
    )  # fmt: skip
    p.add_argument(
        "--model", dest="cost_model", default="analytical",
        help=f"spatial arrays' cost model: {' | '.join(SPATIAL_MODELS)}",
    )  # fmt: skip
    p.add_argument("--objective", choices=[o.value for o in Objective], default="edp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluations", type=int, default=None, help="mapper budget per layer")
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="S",
        help="mapper time budget per layer in seconds",
    )
    p.add_argument("--dataflow", choices=[d.value for d in Dataflow], default=None)
    p.add_argument("--min-utilization", type=float, default=0.0)
    p.add_argument(
        "--bypass",
        action="append",
        default=[],
        metavar="LEVEL:TENSOR",
        help="forbid LEVEL from keeping TENSOR (repeatable)",
    )
    p.add_argument("--max-factor", action="append", default=[], metavar="LEVEL:DIM:N")
    p.add_argument("--fixed-order", action="append", default=[], metavar="LEVEL:D1,D2,...")
    p.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="processes that search the model's distinct layers in parallel (default 1; the "
        "mappings found do not depend on N)",
    )  # fmt: skip
    p.add_argument("--mapping", metavar="FILE|DIR", help="evaluate given mapping(s) (YAML)")
    p.add_argument("--mapping-out", metavar="DIR", help="write each MAC Einsum's mapping here")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="PATH", help="energy breakdown + latency chart (.png/.svg)")
    from codesign.cli.serving_opt import add_serving_arguments  # --generate, --tp, --pp

    add_serving_arguments(p)
    p.add_argument(
        "--baseline", metavar="OTHER.yaml|PRESET", help="also map onto OTHER and compare"
    )
    p.add_argument(
        "--baseline-passes",
        metavar="PIPELINE",
        help="pipeline for the --baseline model instead of --passes ('none': the model as loaded)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_passes_arguments(p, error_flag=True)
    add_timeloop_arguments(p)
    p.add_argument(
        "--explain", action="store_true", help="print each pass's plan with reasons (fusion)"
    )
    p.set_defaults(func=cmd_map)


def _constraints(args: argparse.Namespace) -> Constraints:
    def split(text: str, parts: int, flag: str) -> list[str]:
        items = text.split(":")
        if len(items) != parts or not all(items):
            raise InputError(f"{flag} {text!r}: expected {':'.join(['X'] * parts)}")
        return items

    max_factors = []
    for text in args.max_factor:
        level, dim, n = split(text, 3, "--max-factor")
        if not n.isdigit():
            raise InputError(f"--max-factor {text!r}: N must be a positive integer")
        max_factors.append((level, dim, int(n)))
    orders = [
        (lv, tuple(d.split(",")))
        for lv, d in (split(t, 2, "--fixed-order") for t in args.fixed_order)
    ]
    bypass = [tuple(split(t, 2, "--bypass")) for t in args.bypass]
    if not 0.0 <= args.min_utilization <= 1.0:
        raise InputError("--min-utilization must be within [0, 1]")
    return Constraints(
        fixed_orders=tuple(orders), max_factors=tuple(max_factors),
        min_utilization=args.min_utilization, bypass=tuple(bypass),  # type: ignore[arg-type]
        dataflow=Dataflow(args.dataflow) if args.dataflow else None,
    )  # fmt: skip


def _given_mappings(path: str | None, cascade, arch) -> dict[str, Mapping]:
    if path is None:
        return {}
    from codesign.mapper.from_ir import problem_from_einsum

    files = sorted(Path(path).glob("*.yaml")) if Path(path).is_dir() else [Path(path)]
    if not files or not files[0].exists():
        raise InputError(f"{path}: no mapping file found")
    problems = {e.name: problem_from_einsum(e, cascade) for e in cascade.einsums}
    problems = {k: v for k, v in problems.items() if v is not None}
    given: dict[str, Mapping] = {}
    for file in files:
        name = _problem_name(file)
        if name not in problems and len(problems) == 1 and len(files) == 1:
            name = next(iter(problems))
        if name not in problems:
            raise InputError(
                f"{file}: problem {name!r} is not a MAC Einsum of {cascade.name} "
                f"(known: {', '.join(problems) or 'none'})"
            )
        given[name] = load_mapping(file, problems[name], arch)
    return given


def _problem_name(file: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{file}: cannot read mapping ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("problem"), str):
        raise InputError(f"{file}: a mapping needs a 'problem' name")
    return data["problem"]


def map_from_flags(
    args: argparse.Namespace, passes: PassesResult, hw: str, mapping: str | None, quiet: bool,
    mapper: Mapper | None = None,
) -> Report:
    """`map_model` on the cascade after the passes, with the options the flags spell, behind a
    progress bar.  `mapper`: the spatial arrays' layer search (its `stats` count what ran)."""
    loaded = resolve_hardware(hw, Command.MAP)
    if mapping and not loaded.family.takes_mappings:
        raise InputError(
            f"--mapping: {hw} is a {loaded.family.name} card, which fixes its own schedule; "
            "mappings apply to spatial arrays only"
        )
    cascade = passes.cascade
    given = _given_mappings(mapping, cascade, loaded.hw) if mapping else None
    search = SearchOptions(
        objective=Objective(args.objective),
        seed=args.seed,
        time_budget_s=args.time_budget,
        **({"max_evaluations": args.evaluations} if args.evaluations is not None else {}),
    )

    def run(progress: Callable[[str], None] | None = None) -> Report:
        return map_model(
            cascade, loaded, cost_model=args.cost_model, search=search, seed=args.seed,
            constraints=_constraints(args), mappings=given, progress=progress,
            ir_precision=retypes_weights(passes.reports), mapper=mapper, workers=args.jobs,
        )  # fmt: skip

    if quiet:
        return run()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("mapping {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        steps = len(cascade.einsums) + len(cascade.groups)  # the groups' shared nests after
        task = bar.add_task(f"{cascade.name} on {loaded.hw.name}", total=steps)

        def tick(name: str) -> None:
            bar.advance(task)

        return run(tick)


_PREFIXES = (
    ("T", 1e12),
    ("G", 1e9),
    ("M", 1e6),
    ("k", 1e3),
    ("", 1.0),
    ("m", 1e-3),
    ("µ", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
)


def _si(value: float, unit: str) -> str:
    """``value`` with an SI prefix, e.g. 5.67e-05 J -> '56.7 µJ'; MACs never go below 1."""
    for prefix, scale in _PREFIXES:
        if abs(value) >= scale or (unit == "" and scale == 1.0):
            return f"{value / scale:.3g} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}"


def print_result(result: CascadeResult, console: Console, explain: bool = False) -> None:
    table = Table(title=f"{result.model} on {result.arch}")
    for col in ("Einsum", "op", "kind", "MACs", "cycles", "energy", "util", "bound"):
        table.add_column(
            col, justify="left" if col in ("Einsum", "op", "kind", "bound") else "right"
        )
    for e in result.einsums:
        if e.kind.value == "view":
            continue
        table.add_row(
            e.name,
            e.op,
            e.kind.value,
            _si(e.cost.macs, ""),
            f"{e.cost.cycles:,.0f}",
            _si(e.cost.energy_pj * 1e-12, "J"),
            f"{e.cost.utilization:.2f}",
            e.cost.bound,
        )
    console.print(table)
    views = sum(1 for e in result.einsums if e.kind.value == "view")
    console.print(
        f"total: {result.cycles:,.0f} cycles ({_si(result.latency_s, 's')}), "
        f"{_si(result.energy_pj * 1e-12, 'J')}, {_si(result.macs, 'MACs')}"
        + (f"; {views} views folded into their consumers" if views else "")
    )
    if result.energy_pj > 0:
        parts = ", ".join(
            f"{k} {v / result.energy_pj:.1%}"
            for k, v in sorted(result.energy_by_level_pj().items(), key=lambda kv: -kv[1])
        )
        console.print(f"energy by level: {parts}")
    if result.groups:
        print_groups(result, console, explain)


def print_groups(result: CascadeResult, console: Console, explain: bool = False) -> None:
    """The fused groups (sim/fused.py): one block each, members, the model that priced them,
    shared outer loops, on-chip level and reuse; with `explain`, why that model and each
    contraction's inner nest."""
    from codesign.sim.report import loops_text

    table = Table(title=f"{len(result.groups)} fused groups (one kernel each)")
    columns = ("group", "kind", "Einsums", "model", "shared loops", "on chip", "cycles",
               "energy", "saved", "reuse")  # fmt: skip
    for col in columns:
        left = col in ("group", "kind", "Einsums", "model", "shared loops")
        table.add_column(col, justify="left" if left else "right")
    for g in result.groups:
        reuse = f"{g.reuse:,.1f}" if g.backing_accesses else "-"
        table.add_row(
            g.name, g.kind, f"{g.einsums[0]} +{len(g.einsums) - 1}", g.model, g.loops_text,
            f"{len(g.on_chip)} @ {g.on_chip_level}", f"{g.cycles:,.0f}",
            _si(g.energy_pj * 1e-12, "J"), _si(g.saved_energy_pj * 1e-12, "J"), reuse,
        )  # fmt: skip
    console.print(table)
    if explain:
        for g in result.groups:
            tile = f"; {g.blocks} blocks, intermediates {g.tile_words:,} of {g.capacity_words:,}"
            words = f"{tile} words" if g.model == "fused-nest" else ""
            lines = [f"{g.name}: {g.model}{words} ({g.reason})"]
            lines += [f"  {name}: {loops_text(mapping)}" for name, mapping in g.nests]
            for line in lines:
                console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(
        "reuse: MACs per backing-store access; saved: the intermediates' backing-store energy "
        "net of their on-chip cost; a group's loads and stores are charged to its first "
        "contraction's row"
    )


def _print_notes(report: Report) -> None:
    for note in report.notes:
        print(f"codesign: note: {note}", file=sys.stderr)


def _figures_of_merit(report: Report) -> dict:
    """Area per component (the hardware's estimators or ART) and perf/area, perf/W, EDP; a
    family without estimators (a plug-in) gives its model's total as one component, and None
    where its model knows no area either."""
    from codesign.hwmodels.estimators import area_breakdown_mm2, has_area_model
    from codesign.sim.report import figures_of_merit

    family = report.family.name
    area: dict[str, float] | None = None
    if has_area_model(report.hw, family):
        area = area_breakdown_mm2(report.hw, family)
    elif report.result.area_mm2 is not None:
        area = {family: report.result.area_mm2}
    return figures_of_merit(report.result, area)


def _print_figures_of_merit(total: dict, console: Console) -> None:
    area = total["area_mm2"]
    if area is None:
        console.print(f"area: no area model for this hardware; EDP {total['edp_js']:.4g} J·s")
        return
    parts = ", ".join(f"{k} {v:.3g}" for k, v in area["by_component"].items() if v > 0)
    line = f"area: {area['total']:.4g} mm²" + (f" ({parts})" if parts else "")
    if total["perf_per_area_inf_per_s_mm2"] is not None:
        line += f"; perf/area {total['perf_per_area_inf_per_s_mm2']:.4g} inf/s/mm²"
    if total["perf_per_w_inf_per_j"] is not None:
        line += f"; perf/W {total['perf_per_w_inf_per_j']:.4g} inf/J"
    console.print(line + f"; EDP {total['edp_js']:.4g} J·s")


def cmd_map(args: argparse.Namespace) -> int:
    from codesign.cli.commands import load_from_args
    from codesign.cli.serving_opt import map_serving, serving_requested

    if serving_requested(args):
        return map_serving(args)
    from codesign.sim.report import plot_result, result_dict

    args = resolve_timeloop(args)  # --timeloop-* flags -> MODEL, --hw, --mapping
    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1 (got {args.jobs})")
    pipeline = parse_passes(args.passes)
    base_pipeline = pipeline
    if args.baseline_passes is not None:
        if not args.baseline:
            raise InputError("--baseline-passes needs --baseline")
        none = args.baseline_passes.strip() == "none"
        base_pipeline = None if none else parse_passes(args.baseline_passes, "--baseline-passes")
    loaded = load_from_args(args)
    passes = apply_passes(loaded, pipeline, args.pass_error, seed=args.seed)
    quiet = args.quiet or not sys.stderr.isatty()
    from codesign.sim.mapping_search import analytical_mapper

    mapper = analytical_mapper()  # one layer cache for the model and its baseline
    report = map_from_flags(args, passes, args.hw, args.mapping, quiet, mapper)
    _print_notes(report)
    result = report.result
    baseline = None
    base_passes = passes
    if args.baseline:
        if base_pipeline is not pipeline:
            base_passes = apply_passes(loaded, base_pipeline, args.pass_error, seed=args.seed)
        base_report = map_from_flags(args, base_passes, args.baseline, None, quiet, mapper)
        _print_notes(base_report)
        baseline = base_report.result
        base_figures = _figures_of_merit(base_report)
    doc = result_dict(result)
    doc["total"].update(_figures_of_merit(report))
    if report.notes:
        doc["notes"] = list(report.notes)
    if mapper.stats.searches or mapper.stats.cache_hits:
        # real searches only: a layer served from the cache repeats its mapper_evaluations
        doc["mapper"] = mapper.stats.as_dict()
        nests = [r.fused_nest_stats for r in (result, baseline) if r is not None]
        spent = [s for s in nests if s is not None]
        if spent:  # the part of it the fused groups' shared nests took (sim/fused_nest.py)
            for more in spent[1:]:
                spent[0] = spent[0].plus(more)
            doc["mapper"]["fused_nest"] = spent[0].as_dict()
    if pipeline is not None:
        doc["passes"] = passes_json(passes)
    if baseline is not None:
        doc["baseline"] = result_dict(baseline)
        doc["baseline"]["total"].update(base_figures)
        if base_pipeline is not None:
            doc["baseline"]["passes"] = passes_json(base_passes)
        doc["speedup"] = baseline.cycles / result.cycles if result.cycles else None
        doc["energy_ratio"] = result.energy_pj / baseline.energy_pj if baseline.energy_pj else None
    if args.mapping_out:
        out = Path(args.mapping_out)
        out.mkdir(parents=True, exist_ok=True)
        for e in result.einsums:
            if e.mapping is not None:
                write_text(out / f"{e.name}.yaml", e.mapping.to_yaml())
    if args.plot:
        with staged(args.plot) as plot_path:
            plot_result(result, plot_path, baseline)
    if args.json == "-":
        print(json.dumps(doc, indent=1))
        return 0
    if args.json:
        write_text(args.json, json.dumps(doc, indent=1))
    console = Console(width=max(Console().width, 110))
    if pipeline is not None:
        print(passes_text(passes), end="")
    if args.explain and pipeline is not None:
        from codesign.passes.explain import explain_pipeline

        print(explain_pipeline(loaded, pipeline, args.seed), end="")
    print_result(result, console, args.explain)
    _print_figures_of_merit(doc["total"], console)
    if baseline is not None:
        if base_passes is not passes:
            print("baseline " + (passes_text(base_passes) or "passes: none\n"), end="")
        print_result(baseline, console)
        console.print(
            f"speedup over {baseline.arch}: {doc['speedup']:.2f}x; energy ratio "
            f"{doc['energy_ratio']:.3f} ({result.arch} / {baseline.arch})"
        )
    return 0
