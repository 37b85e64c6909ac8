"""Timeloop inputs on the command line: ``map --timeloop-arch/--timeloop-map/...`` and
``import-timeloop`` (writes a codesign card, energy table, mapping and problem to a folder)."""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path

from codesign.atomic import write_text
from codesign.errors import InputError

_FLAGS = ("timeloop_arch", "timeloop_map", "timeloop_problem", "timeloop_ert")


def add_timeloop_arguments(p: argparse.ArgumentParser) -> None:
    """The ``map`` flags that take a Timeloop design instead of MODEL/--hw/--mapping."""
    g = p.add_argument_group("Timeloop design (instead of MODEL, --hw and --mapping)")
    g.add_argument("--timeloop-arch", metavar="ARCH.yaml", help="Timeloop v0.4 architecture")
    g.add_argument("--timeloop-map", metavar="MAP.yaml", help="Timeloop mapping")
    g.add_argument("--timeloop-problem", metavar="PROB.yaml", help="Timeloop problem")
    g.add_argument("--timeloop-ert", metavar="ERT.yaml", help="Accelergy ERT of the design")
    g.add_argument("--timeloop-out", metavar="DIR", help="keep the imported codesign files here")


def write_import(arch: str, mapping: str, problem: str, ert: str, out: Path) -> dict[str, Path]:
    """Import a Timeloop design into ``out``; the paths of problem.ein, card, ert, mapping."""
    from codesign.frontends.timeloop import import_timeloop
    from codesign.ir.printer import print_cascade

    design = import_timeloop(arch, mapping, problem, ert)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "problem": out / "problem.ein",
        "card": out / "card.yaml",
        "ert": out / "ert.yaml",
        "mapping": out / "mapping.yaml",
    }
    write_text(files["problem"], print_cascade(design.cascade))
    write_text(files["card"], design.card_yaml)
    write_text(files["ert"], design.ert_yaml)
    write_text(files["mapping"], design.mapping_yaml)
    return files


def resolve_timeloop(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with MODEL/--hw/--mapping set from the --timeloop-* flags (imported into
    --timeloop-out or a temporary folder removed at exit); unchanged without them."""
    given = [f for f in _FLAGS if getattr(args, f, None)]
    if not given:
        if not getattr(args, "hw", None):
            raise InputError("--hw is required (or a Timeloop design: --timeloop-arch ...)")
        return args
    missing = [f"--{f.replace('_', '-')}" for f in _FLAGS if f not in given]
    if missing:
        raise InputError(f"a Timeloop design also needs {', '.join(missing)}")
    clash = [flag for flag, value in (("MODEL", args.model), ("--hw", args.hw),
                                      ("--mapping", args.mapping)) if value]  # fmt: skip
    if clash:
        raise InputError(f"--timeloop-arch replaces {', '.join(clash)}; give one or the other")
    if args.timeloop_out:
        out = Path(args.timeloop_out)
    else:
        out = Path(tempfile.mkdtemp(prefix="codesign-timeloop-"))
        atexit.register(shutil.rmtree, out, True)
    files = write_import(
        args.timeloop_arch, args.timeloop_map, args.timeloop_problem, args.timeloop_ert, out
    )
    return argparse.Namespace(
        **{
            **vars(args),
            "model": str(files["problem"]),
            "hw": str(files["card"]),
            "mapping": str(files["mapping"]),
        }  # fmt: skip
    )


def add_parser(sub) -> None:
    p = sub.add_parser(
        "import-timeloop",
        help="translate a Timeloop design (arch, mapping, problem, ERT) into codesign files",
    )
    p.add_argument("--arch", required=True, metavar="ARCH.yaml")
    p.add_argument("--map", required=True, metavar="MAP.yaml", dest="mapping")
    p.add_argument("--problem", required=True, metavar="PROB.yaml")
    p.add_argument("--ert", required=True, metavar="ERT.yaml")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    files = write_import(args.arch, args.mapping, args.problem, args.ert, Path(args.out))
    for kind, path in files.items():
        print(f"{kind:8s} {path}")
    print(
        f"evaluate: codesign map {files['problem']} --hw {files['card']} "
        f"--mapping {files['mapping']}"
    )
    return 0
