"""`codesign rank-passes MODEL [--rank R]`: passes over each rank (FuseMax §3) and what they
cost: the on-chip bytes one row needs to avoid a DRAM round trip, and the extra DRAM traffic
when the buffer is smaller (`codesign.ir.passcount`)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from codesign.atomic import write_text
from codesign.errors import InputError


def add_parser(sub: Any, model_args: Callable[..., None]) -> None:
    from codesign.cli.passes_opt import add_passes_arguments

    p = sub.add_parser(
        "rank-passes",
        help="passes over each rank (FuseMax §3) and the buffer vs DRAM-traffic consequence",
    )
    model_args(p, required=False)
    p.add_argument(
        "--rank", action="append", default=[], metavar="NAME",
        help="rank name to analyse (repeatable; default: every rank of the model)",
    )  # fmt: skip
    p.add_argument(
        "--buffer-bytes", type=int, default=16 * 2**20,
        help="on-chip buffer for the spill estimate (default 16 MiB, FuseMax's global buffer)",
    )  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON ('-' = stdout)")
    add_passes_arguments(p, error_flag=False)
    p.set_defaults(func=cmd_rank_passes)


def cmd_rank_passes(args: argparse.Namespace) -> int:
    from codesign.cli.commands import load_from_args
    from codesign.cli.passes_opt import apply_passes, parse_passes, passes_text
    from codesign.ir.passcount import count_passes, rank_names

    if args.buffer_bytes < 0:
        raise InputError(f"--buffer-bytes {args.buffer_bytes}: must be >= 0")
    passes = apply_passes(load_from_args(args), parse_passes(args.passes), False)
    cascade = passes.cascade
    known = rank_names(cascade)
    for rank in args.rank:
        if rank not in known:
            raise InputError(f"--rank {rank}: not a rank of {cascade.name} ({', '.join(known)})")
    rows: list[dict[str, Any]] = []
    for rank in args.rank or known:
        r = count_passes(cascade, rank)
        rows.append({
            "rank": rank, "extent": r.extent, "passes": r.passes,
            "crossing": [c.tensor for c in r.crossing], "fiber_bytes": r.fiber_bytes,
            "spill_bytes": r.spill_bytes(args.buffer_bytes),
        })  # fmt: skip
    if args.json:
        doc = {"model": cascade.name, "buffer_bytes": args.buffer_bytes, "ranks": rows}
        text = json.dumps(doc, indent=1)
        if args.json == "-":
            print(text)
            return 0
        write_text(args.json, text)
    print(passes_text(passes), end="")
    table = Table(title=f"{cascade.name}: passes per rank (buffer {args.buffer_bytes} B)")
    for col in ("rank", "extent", "passes", "crossing tensors", "bytes/row on chip", "spill B"):
        table.add_column(col, justify="left" if col in ("rank", "crossing tensors") else "right")
    for row in rows:
        crossing = ", ".join(row["crossing"][:4]) + (" ..." if len(row["crossing"]) > 4 else "")
        table.add_row(row["rank"], str(row["extent"]), str(row["passes"]), crossing or "-",
                      str(row["fiber_bytes"]), str(row["spill_bytes"]))  # fmt: skip
    Console().print(table)
    return 0
