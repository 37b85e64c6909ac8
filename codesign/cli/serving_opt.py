"""Serving-scenario and multi-device flags of ``codesign roofline`` (``--generate``, ``--tp``,
``--pp``, ``--interconnect``): parse them into frozen values, run `codesign.sim.serving.serve`,
print and write the report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from codesign.atomic import write_text
from codesign.errors import InputError

if TYPE_CHECKING:
    # the serving model is imported when a scenario is asked for: `map` and `roofline` add
    # these flags to their parsers, and a run without them must not load it
    from codesign.hwmodels.gpu import Device
    from codesign.hwmodels.interconnect import Interconnect
    from codesign.sim.serving import PricePass, ServingReport


def add_serving_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("serving scenario and multi-device (with --llm)")
    g.add_argument("--generate", type=int, metavar="N",
                   help="serve: prefill --batch prompts of --seq tokens, then generate N tokens "
                        "(TTFT, TPOT, tokens/s, memory footprint vs capacity)")  # fmt: skip
    g.add_argument("--decode-samples", type=int, default=4, metavar="K",
                   help="decode steps priced exactly, the rest interpolated (default 4)")
    g.add_argument("--tp", type=int, default=1, metavar="N", help="tensor-parallel devices")
    g.add_argument("--pp", type=int, default=1, metavar="N", help="pipeline-parallel stages")
    g.add_argument("--microbatches", type=int, default=0, metavar="M",
                   help="pipeline microbatches (default min(pp, batch))")
    g.add_argument("--interconnect", metavar="NAME",
                   help="device link: nvlink3, nvlink4, pcie4, pcie5 (default: the card's)")
    g.add_argument("--link-gbps", type=float, metavar="GB/s",
                   help="custom link bandwidth per device and direction (chiplets)")
    g.add_argument("--link-latency-us", type=float, default=1.0, metavar="US",
                   help="custom link latency per message (default 1)")


def serving_requested(args: argparse.Namespace) -> bool:
    return args.generate is not None or args.tp > 1 or args.pp > 1


def _link(args: argparse.Namespace) -> Interconnect | None:
    from codesign.hwmodels.interconnect import custom_link, interconnect_preset

    if args.link_gbps is not None:
        if args.interconnect:
            raise InputError("give --interconnect or --link-gbps, not both")
        return custom_link(args.link_gbps, args.link_latency_us)
    return interconnect_preset(args.interconnect) if args.interconnect else None


def run_serving(
    args: argparse.Namespace, device: Device, price: PricePass
) -> ServingReport:
    """The report for the scenario the flags describe (`price` prices one phase's cascade)."""
    from rich.progress import Progress

    from codesign.frontends.llm import resolve_llm
    from codesign.sim.parallel import Parallelism
    from codesign.sim.serving import Scenario, serve

    if not getattr(args, "llm", None):
        raise InputError("--generate/--tp/--pp need --llm NAME|config.json")
    if args.generate is None:
        raise InputError("--tp/--pp analyse a serving scenario: give --generate N too")
    if getattr(args, "both_phases", False) or args.phase != "prefill" or args.kv_len is not None:
        raise InputError("--generate covers both phases: drop --phase/--both-phases/--kv-len")
    for flag, value, least in (("--generate", args.generate, 1), ("--tp", args.tp, 1),
                               ("--pp", args.pp, 1), ("--decode-samples", args.decode_samples, 1),
                               ("--microbatches", args.microbatches, 0)):  # fmt: skip
        if value < least:
            raise InputError(f"{flag} {value}: must be at least {least}")
    config = resolve_llm(args.llm)
    scenario = Scenario(args.batch, args.seq, args.generate, args.decode_samples)
    parallelism = Parallelism(args.tp, args.pp, args.microbatches)
    passes = 1 + min(scenario.decode_samples, scenario.decode_steps)
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"pricing {config.name}", total=passes)

        def counted(cascade, phase):  # type: ignore[no-untyped-def]
            out = price(cascade, phase)
            progress.advance(task)
            return out

        return serve(config, scenario, device, counted, parallelism, _link(args))


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 10 else f"{seconds:.2f} s"


def print_serving(report: ServingReport, console: Console) -> None:
    s, p = report.scenario, report.parallelism
    where = report.device if p.devices == 1 else (
        f"{p.devices} x {report.device} (tp {p.tensor} x pp {p.pipeline}, "
        f"{report.microbatches} microbatch(es), link {report.interconnect})"
    )  # fmt: skip
    table = Table(title=f"{report.model} serving on {where}: batch {s.batch}, prompt "
                        f"{s.prompt_tokens}, generate {s.generated_tokens}")  # fmt: skip
    for col in ("pass", "KV len", "time ms", "compute ms", "comm ms", "bubble", "ops", "bytes"):
        table.add_column(col, justify="left" if col == "pass" else "right")
    for q in (report.prefill, *report.decode):
        table.add_row(
            q.phase, str(q.kv_len), f"{q.time_s * 1e3:.3f}", f"{q.compute_s * 1e3:.3f}",
            f"{q.comm_s * 1e3:.3f}", f"{q.bubble_fraction:.0%}", f"{q.ops:.4e}",
            f"{q.memory_bytes:.4e}",
        )  # fmt: skip
    console.print(table)
    energy = report.energy_per_token_pj
    console.print(
        f"TTFT {_fmt_s(report.ttft_s)}, TPOT {_fmt_s(report.tpot_s)}, end-to-end "
        f"{_fmt_s(report.e2e_s)}, {report.tokens_per_s:,.1f} tokens/s "
        f"({report.decode_tokens_per_s:,.1f} tokens/s in decode)"
        + ("" if energy is None else f", {energy / 1e6:,.3f} uJ per generated token")
    )
    m = report.memory
    cap = "unknown capacity" if m.capacity_bytes is None else f"of {m.capacity_bytes / 1e9:.1f} GB"
    fit = "" if report.max_batch is None else f"; largest batch that fits: {report.max_batch}"
    console.print(
        f"memory per device: {m.total_bytes / 1e9:.2f} GB {cap} (weights "
        f"{m.weights_bytes / 1e9:.2f} GB, KV cache {m.kv_cache_bytes / 1e9:.2f} GB, activations "
        f"{m.activation_bytes / 1e9:.3f} GB){fit}"
    )
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")


def write_serving(report: ServingReport, path: str | None, console: Console) -> None:
    """Print the report; with `path` also write its JSON ('-': JSON on stdout only)."""
    from codesign.sim.serving import serving_dict

    if path:
        text = json.dumps(serving_dict(report), indent=1)
        if path == "-":
            sys.stdout.write(text + "\n")
            for warning in report.warnings:
                print(f"codesign: warning: {warning}", file=sys.stderr)
            return
        write_text(path, text)  # readers never see a half-written report
    print_serving(report, console)


def map_serving(args: argparse.Namespace) -> int:
    """``codesign map --llm M --generate N [--tp/--pp]``: every pass of the scenario mapped
    onto the array by the mapper (time and energy per kernel), combined as in `serve`."""
    from codesign.cli.map_cmd import map_from_flags
    from codesign.cli.passes_opt import apply_passes, parse_passes
    from codesign.cli.roofline_cmd import roofline_hardware
    from codesign.sim.serving import mapped_pass

    device = roofline_hardware(args.hw).device
    pipeline = parse_passes(args.passes)

    def price(cascade, phase):  # type: ignore[no-untyped-def]
        passes = apply_passes(cascade, pipeline, False, seed=args.seed)
        return mapped_pass(passes.cascade, map_from_flags(args, passes, args.hw, None, True).result)

    write_serving(run_serving(args, device, price), args.json, Console(width=160))
    return 0
