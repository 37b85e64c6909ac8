"""``--passes PIPELINE`` for `codesign map | run | stats`: parse, run, report.

The pipeline text is parsed before the model is loaded, so a bad pipeline fails fast with
`InputError` naming the pass/option (the CLI prints one line and exits 2).  The pipeline then runs
on the loaded cascade with `codesign.passes.run_pipeline` (verifier after every pass).

Numerical error (outputs of the rewritten cascade against the unmodified one on the same inputs)
costs two interpreter runs per pass, so only `run` measures it by default (it interprets the
model anyway); `map` and `stats` measure it with ``--pass-error``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codesign.errors import InputError

if TYPE_CHECKING:  # the pass modules load on first use: commands without --passes skip them
    import numpy as np

    from codesign.ir.cascade import Cascade
    from codesign.passes import PassReport, Pipeline


@dataclass(frozen=True, slots=True)
class PassesResult:
    """The cascade after the pipeline and one report per pass (empty without ``--passes``)."""

    cascade: Cascade
    reports: tuple[PassReport, ...]
    error_measured: bool


def add_passes_arguments(p: argparse.ArgumentParser, error_flag: bool) -> None:
    """``--passes`` (and, where error is not measured by default, ``--pass-error``)."""
    p.add_argument(
        "--passes",
        metavar="PIPELINE",
        help='pass pipeline run on the model first, e.g. "quantize{bits=4,group=128}" or '
        '"fuse-elementwise"; "none": the model as loaded (docs/passes.md)',
    )
    if error_flag:
        p.add_argument(
            "--pass-error",
            action="store_true",
            help="also measure each pass's output error (interprets the model twice per pass)",
        )


def parse_passes(text: str | None, flag: str = "--passes") -> Pipeline | None:
    """The pipeline given with `flag`, or None when absent or ``none`` (the model as loaded:
    unfused, unquantized); InputError prefixed with `flag`."""
    if text is None or text.strip() == "none":
        return None
    from codesign.passes import parse_pipeline

    try:
        return parse_pipeline(text)
    except InputError as exc:
        raise InputError(f"{flag}: {exc}") from None


def apply_passes(
    cascade: Cascade,
    pipeline: Pipeline | None,
    measure_error: bool,
    sample_inputs: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
) -> PassesResult:
    """Run `pipeline` on `cascade` (identity when None); errors name the failing pass."""
    if pipeline is None:
        return PassesResult(cascade, (), False)
    from codesign.passes import run_pipeline

    result, reports = run_pipeline(
        cascade, pipeline, sample_inputs=sample_inputs, measure_error=measure_error, seed=seed
    )
    return PassesResult(result, tuple(reports), measure_error)


def passes_text(result: PassesResult) -> str:
    """The per-pass report lines, with a note when the error was not measured."""
    if not result.reports:
        return ""
    from codesign.passes import format_reports

    note = "" if result.error_measured else " (error not measured: --pass-error measures it)"
    return f"passes{note}:\n" + format_reports(list(result.reports))


def report_dict(report: PassReport) -> dict[str, Any]:
    """One pass report as JSON (units in the keys)."""
    from codesign.ir.printer import format_quant

    error = report.error
    return {
        "pass": report.pass_text,
        "changed": report.changed,
        "einsums_added": list(report.einsums_added),
        "einsums_removed": list(report.einsums_removed),
        "einsums_changed": list(report.einsums_changed),
        "tensors": [
            {
                "name": c.name,
                "dtype_before": None if c.dtype_before is None else c.dtype_before.value,
                "dtype_after": None if c.dtype_after is None else c.dtype_after.value,
                "bytes_before": c.bytes_before,
                "bytes_after": c.bytes_after,
                "quant": None if c.quant_after is None else format_quant(c.quant_after),
            }
            for c in report.tensor_changes
        ],
        "weight_bytes_before": report.weight_bytes_before,
        "weight_bytes_after": report.weight_bytes_after,
        "error": None
        if error is None
        else {"max_abs": error.max_abs, "rel_l2": error.rel_l2, "cosine": error.cosine},
        "seconds": report.seconds,
    }


def passes_json(result: PassesResult) -> list[dict[str, Any]]:
    return [report_dict(r) for r in result.reports]
