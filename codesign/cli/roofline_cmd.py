"""`codesign roofline MODEL|--llm NAME --hw GPU`: per-layer roofline table, totals, JSON, plot."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace

from rich.console import Console
from rich.table import Table

from codesign.cli.outputs import staged, write_text
from codesign.cli.passes_opt import add_passes_arguments, apply_passes, parse_passes
from codesign.errors import InputError
from codesign.hwmodels.gpu import Device
from codesign.hwmodels.registry import Command, load_hardware_card
from codesign.hwmodels.spatial_device import RooflineHardware
from codesign.ir.cascade import Cascade
from codesign.ir.dtypes import DType
from codesign.passes import Pipeline
from codesign.sim.roofline import (
    PhaseReport,
    RooflineOptions,
    RooflineReport,
    RooflineRow,
    analyze,
    by_label,
    retype,
    row_dict,
    tensor_kinds,
)
from codesign.sim.roofline_spatial import keeps_bytes_override

FLASH_PASS = "flash-attention"
_BITS_FLOAT = {32: DType.F32, 16: DType.F16}
_BITS_INT = {8: DType.I8, 4: DType.I4, 2: DType.I2}


def parse_dtype(text: str | None, flag: str) -> DType | None:
    """``16`` -> f16, ``8`` -> i8, ``4`` -> i4, or a dtype name (``bf16``, ``fp8e4m3``)."""
    if text is None:
        return None
    text = text.strip().lower()
    if text.isdigit():
        bits = int(text)
        dtype = _BITS_FLOAT.get(bits) or _BITS_INT.get(bits)
        if dtype is None:
            known = ", ".join(str(b) for b in (*_BITS_FLOAT, *_BITS_INT))
            raise InputError(f"{flag} {text}: unsupported bit width (known: {known})")
        return dtype
    try:
        return DType(text)
    except ValueError:
        known = ", ".join(d.value for d in DType)
        raise InputError(f"{flag} {text!r}: unknown dtype (known: {known})") from None


def add_parser(sub, model_args: Callable[..., None]) -> None:
    p = sub.add_parser(
        "roofline", help="roofline per layer on a GPU/CPU: ops, bytes, intensity, bound, time"
    )
    model_args(p, required=False)
    p.add_argument(
        "--hw",
        required=True,
        metavar="GPU|HW.yaml",
        help="any hardware card or preset: GPU/CPU devices (a100, h100, ...), spatial arrays, "
        "tensor-core GPUs, bit-serial arrays, PIUMA (types default to the card's precision)",
    )
    p.add_argument("--wbits", metavar="BITS|DTYPE", help="weight type: 16, 8, 4 or a dtype name")
    p.add_argument("--abits", metavar="BITS|DTYPE", help="activation type (default: the IR's)")
    p.add_argument("--kvbits", metavar="BITS|DTYPE", help="KV-cache type (default: activations)")
    p.add_argument("--flash-attention", action="store_true",
                   help="attention (QK^T, softmax, SV) as one fused kernel: appends the pass "
                   "flash-attention to --passes")  # fmt: skip
    p.add_argument("--both-phases", action="store_true", help="LLM: prefill and decode")
    p.add_argument("--tf32", action="store_true", help="fp32 matmuls on TF32 tensor cores")
    p.add_argument("--per-einsum", action="store_true", help="one table row per kernel")
    p.add_argument("--json", metavar="PATH", help="write rows and totals as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="PATH", help="roofline chart (.png or .svg)")
    from codesign.cli.serving_opt import add_serving_arguments

    add_serving_arguments(p)
    add_passes_arguments(p, error_flag=False)
    p.set_defaults(func=cmd_roofline)


def _phase_cascades(args: argparse.Namespace) -> list[tuple[str, Cascade]]:
    from codesign.cli.commands import load_from_args

    if not getattr(args, "llm", None):
        if args.both_phases:
            raise InputError("--both-phases needs --llm")
        return [("model", load_from_args(args))]
    phases = ("prefill", "decode") if args.both_phases else (args.phase,)
    out = []
    for phase in phases:
        args_phase = argparse.Namespace(**{**vars(args), "phase": phase})
        out.append((phase, load_from_args(args_phase)))
    return out


def _options(args: argparse.Namespace, cascade: Cascade, device: Device) -> RooflineOptions:
    """One kernel per fused group of the IR (--passes, --flash-attention's groups included)."""
    if getattr(args, "llm", None):
        from codesign.sim.roofline_llm import llm_options

        return llm_options(cascade, device, tf32=args.tf32)
    from codesign.sim.roofline_fused import ir_kernel_groups

    return RooflineOptions(groups=ir_kernel_groups(cascade, device, {}), tf32=args.tf32)


def roofline_pipeline(args: argparse.Namespace) -> Pipeline | None:
    """``--passes``, with the pass ``flash-attention`` appended for ``--flash-attention`` (the
    flag is an alias of that pipeline: one fused group per attention)."""
    text = getattr(args, "passes", None)
    if args.flash_attention:
        text = FLASH_PASS if text is None or text.strip() == "none" else f"{text},{FLASH_PASS}"
    return parse_passes(text)


def roofline_hardware(hw: str, wbits: str | None = None) -> RooflineHardware:
    """``--hw`` for the roofline: any card or preset whose family has a roofline device, its
    peaks re-derived for the weight type `wbits` (``--wbits``; None: the card's own widths)."""
    loaded = load_hardware_card(hw, Command.ROOFLINE)
    assert loaded.family.roofline is not None  # Command.ROOFLINE in its commands
    return loaded.family.roofline(loaded.hw).for_weights(parse_dtype(wbits, "--wbits"))


def price_cascade(
    args: argparse.Namespace, hardware: RooflineHardware, cascade: Cascade, phase: str
) -> tuple[Cascade, PhaseReport]:
    """One phase's cascade retyped by --wbits/--abits/--kvbits and priced on `hardware`."""
    device = hardware.device
    weight = parse_dtype(args.wbits, "--wbits") or hardware.weight_dtype
    act = parse_dtype(args.abits, "--abits") or hardware.activation_dtype
    kv = parse_dtype(args.kvbits, "--kvbits") or act
    options = _options(args, cascade, device)
    if weight or act or kv:
        kinds = tensor_kinds(cascade, options.kv_tensors)
        cascade = retype(cascade, kinds, weight=weight, activation=act, kv=kv)
    if hardware.arch is not None:
        override = keeps_bytes_override(cascade, hardware.arch)
        options = replace(options, bytes_override=(*options.bytes_override, *override))
    return cascade, analyze(cascade, device, options, phase)


def build_report(args: argparse.Namespace) -> RooflineReport:
    hardware = roofline_hardware(args.hw, args.wbits)
    device = hardware.device
    reports: list[PhaseReport] = []
    name = ""
    pipeline = roofline_pipeline(args)
    for phase, loaded in _phase_cascades(args):
        cascade = apply_passes(loaded, pipeline, measure_error=False).cascade
        name = cascade.name
        reports.append(price_cascade(args, hardware, cascade, phase)[1])
    return RooflineReport(getattr(args, "llm", None) or name, device, tuple(reports))


def _fmt(n: float, unit: str = "") -> str:
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{prefix}{unit}"
    return f"{n:.3g}{unit}"


def _rows(report: PhaseReport, per_einsum: bool) -> tuple[RooflineRow, ...]:
    return report.rows if per_einsum else by_label(report.rows)


def _print(report: RooflineReport, per_einsum: bool, console: Console) -> None:
    for phase in report.phases:
        table = Table(title=f"{report.model} on {report.device.name}: {phase.phase}")
        for col in ("layer", "n", "OPs", "memory", "weights", "KV cache", "op/B", "time ms",
                    "bound"):  # fmt: skip
            table.add_column(col, justify="left" if col in ("layer", "bound") else "right")
        for r in _rows(phase, per_einsum):
            intensity = r.intensity_ops_per_byte
            table.add_row(
                r.label if not per_einsum else r.name, str(r.count), _fmt(r.ops),
                _fmt(r.memory_bytes, "B"), _fmt(r.weights_bytes, "B"), _fmt(r.kv_bytes, "B"),
                "-" if intensity == float("inf") else f"{intensity:,.1f}", f"{r.time_ms:.4f}",
                r.bound,
            )  # fmt: skip
        console.print(table)
        t = phase.totals
        console.print(
            f"total {phase.phase}: {_fmt(t.ops)} ops ({t.ops:.4e}), {_fmt(t.memory_bytes, 'B')} "
            f"memory ({t.memory_bytes:.4e} B), weights {_fmt(t.weights_bytes, 'B')}, KV cache "
            f"{_fmt(t.kv_bytes, 'B')}, time {t.time_ms:.3f} ms, footprint "
            f"{_fmt(t.footprint_bytes, 'B')}"
        )


def footprint_warnings(report: RooflineReport) -> list[str]:
    """One line per phase whose footprint exceeds the device's DRAM capacity (when known)."""
    capacity = report.device.levels[0].capacity_bytes if report.device.levels else None
    if capacity is None:
        return []
    return [
        f"{p.phase}: footprint {_fmt(p.totals.footprint_bytes, 'B')} exceeds the "
        f"{_fmt(capacity, 'B')} of {report.device.levels[0].name} on {report.device.name}; "
        "the model does not fit one device"
        for p in report.phases
        if p.totals.footprint_bytes > capacity
    ]


def report_json(report: RooflineReport, per_einsum: bool) -> dict[str, object]:
    return {
        "model": report.model,
        "hw": report.device.name,
        "rows": [row_dict(r) for p in report.phases for r in _rows(p, per_einsum)],
        "totals": {p.phase: p.totals.as_dict() for p in report.phases},
        "warnings": footprint_warnings(report),
    }


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # pipes and files get the whole table, not 80 columns
        console = Console(width=160)
    return console


def cmd_roofline(args: argparse.Namespace) -> int:
    from codesign.cli.serving_opt import run_serving, serving_requested, write_serving

    if serving_requested(args):
        hardware = roofline_hardware(args.hw, args.wbits)
        from codesign.sim.serving import roofline_pass

        pipeline = roofline_pipeline(args)

        def price(c: Cascade, phase: str):  # noqa: ANN202 - serving's pass result
            fused = apply_passes(c, pipeline, measure_error=False).cascade
            return roofline_pass(*price_cascade(args, hardware, fused, phase))

        serving = run_serving(args, hardware.device, price)
        write_serving(serving, args.json, _console())
        return 0
    report = build_report(args)
    if args.json:
        text = json.dumps(report_json(report, args.per_einsum), indent=1)
        if args.json == "-":
            sys.stdout.write(text + "\n")
            return 0
        write_text(args.json, text)
    console = _console()
    _print(report, args.per_einsum, console)
    for warning in footprint_warnings(report):
        console.print(f"warning: {warning}", markup=False)
    if args.plot:
        from codesign.sim.roofline_plot import plot_roofline

        rows = [r for p in report.phases for r in _rows(p, args.per_einsum)]
        phases = " vs ".join(p.phase for p in report.phases)
        with staged(args.plot) as plot_path:
            plot_roofline(rows, report.device, plot_path, f"{report.model} ({phases}) on "
                          f"{report.device.name}")  # fmt: skip
        Console().print(f"plot written to {args.plot}")
    return 0
