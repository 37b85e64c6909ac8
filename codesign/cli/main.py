"""The `codesign` command line.  Only this package reads argv and the environment.

Start-up is kept small: the parser for a subcommand (and the modules that subcommand needs:
numpy, onnx, rich, ...) is built only when that subcommand is named, so ``codesign --help``
imports argparse and nothing heavy.  `COMMANDS` is the one index of subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from codesign.errors import InputError


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    # MODEL may always be left out for --llm; `load_from_args` says when neither is given
    del required
    p.add_argument(
        "model",
        nargs="?",
        help="model file (.onnx, .ein, SCALE-Sim .csv) or layer spec gemm:M=..,N=..,K=..",
    )
    p.add_argument(
        "--llm", metavar="NAME|config.json",
        help="an LLM preset (e.g. llama-2-7b, mixtral-8x7b) or a Hugging Face config.json / model "
        "directory, in place of MODEL"
    )
    p.add_argument("--batch", type=int, default=1, help="LLM batch size")
    p.add_argument("--seq", type=int, default=1024, help="LLM sequence length (tokens)")
    p.add_argument("--phase", choices=("prefill", "decode"), default="prefill")
    p.add_argument("--kv-len", type=int, default=None, help="KV-cache length for decode")
    p.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=N",
        help="value of a symbolic input dimension (repeatable)",
    )


def _add_ir(sub) -> None:
    from codesign.cli import commands

    p = sub.add_parser("ir", help=COMMANDS["ir"].help)
    _model_args(p, required=False)
    p.set_defaults(func=commands.cmd_ir)


def _add_stats(sub) -> None:
    from codesign.cli import commands
    from codesign.cli.passes_opt import add_passes_arguments

    p = sub.add_parser("stats", help=COMMANDS["stats"].help)
    _model_args(p, required=False)
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON ('-' = stdout)")
    add_passes_arguments(p, error_flag=True)
    p.set_defaults(func=commands.cmd_stats)


def _add_run(sub) -> None:
    from codesign.cli import commands
    from codesign.cli.passes_opt import add_passes_arguments

    p = sub.add_parser("run", help=COMMANDS["run"].help)
    _model_args(p, required=False)  # MODEL or --llm NAME
    p.add_argument("--inputs", metavar="NPZ", help="input arrays by name (.npz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-compare", action="store_true", help="skip the comparison with onnxruntime")
    p.add_argument("--json", metavar="PATH", help="also write outputs (and passes) as JSON")
    add_passes_arguments(p, error_flag=False)
    p.set_defaults(func=commands.cmd_run)


def _add_ops(sub) -> None:
    from codesign.cli import commands

    p = sub.add_parser("ops", help=COMMANDS["ops"].help)
    p.set_defaults(func=commands.cmd_ops)


def _from_module(module: str, model_args: bool = True) -> Callable[[object], None]:
    """An adder that imports `module` and calls its ``add_parser(sub, model_args)`` (or
    ``add_parser(sub)`` for a command that reads no model)."""

    def add(sub: object) -> None:
        add_parser = importlib.import_module(module).add_parser
        if model_args:
            add_parser(sub, _model_args)
        else:
            add_parser(sub)

    return add


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its one-line help and the function that adds its full parser."""

    help: str
    add: Callable[..., None]


COMMANDS: dict[str, Command] = {
    "ir": Command("print a model's Einsum-cascade IR", _add_ir),
    "stats": Command("per-Einsum statistics (MACs, ops, bytes) and totals", _add_stats),
    "run": Command("interpret a model on seeded random (or given) inputs", _add_run),
    "ops": Command("list the ONNX ops the frontend lowers", _add_ops),
    "map": Command(
        "map a model onto hardware: cycles, energy, utilization, bound",
        _from_module("codesign.cli.map_cmd"),
    ),
    "roofline": Command(
        "roofline per layer on a GPU/CPU: ops, bytes, intensity, bound, time",
        _from_module("codesign.cli.roofline_cmd"),
    ),
    "compile": Command(
        "build a model with TVM: library + runner script", _from_module("codesign.cli.codegen_cmd")
    ),
    "bench": Command(
        "measure TVM kernel times beside the host roofline",
        _from_module("codesign.cli.codegen_cmd"),
    ),
    "graph": Command(
        "sparse/graph kernels (BFS, SSSP, SpMV, SpGEMM) on a PIUMA-like fabric",
        _from_module("codesign.cli.graph_cmd"),
    ),
    "import-timeloop": Command(
        "translate a Timeloop design (arch, mapping, problem, ERT) into codesign files",
        _from_module("codesign.cli.timeloop_opt", model_args=False),
    ),
    "rank-passes": Command(
        "passes over each rank (FuseMax §3) and the buffer vs DRAM-traffic consequence",
        _from_module("codesign.cli.rank_passes_cmd"),
    ),
    "dse": Command(
        "design-space exploration: sweep SPACE.yaml, or `dse show DB` to re-plot a store",
        _from_module("codesign.cli.dse_cmd"),
    ),
}


def _named_command(argv: Sequence[str]) -> str | None:
    """The subcommand argv names (its first non-option word), if it is a known one."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other bad input (exit status 2).

    The subcommand parsers inherit the class (`add_subparsers` uses the parent's type)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"codesign: error: {message} (`{self.prog} -h` shows the usage)\n")


class _Subparsers:
    """Forwards ``add_parser`` for the wanted command only; other names are stubs already."""

    def __init__(self, sub: argparse._SubParsersAction, wanted: str) -> None:
        self._sub = sub
        self._wanted = wanted

    def add_parser(self, name: str, help: str) -> argparse.ArgumentParser:
        if name == self._wanted:
            return self._sub.add_parser(name, help=help)
        # a module that defines several commands (compile + bench): the others are not needed
        return argparse.ArgumentParser(prog=name, add_help=False)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with `command`'s arguments (every command's for ``"*"``, none for None)."""
    parser = _Parser(
        prog="codesign",
        description="Hardware/software co-design over an Einsum-cascade IR.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        if command == "*" or name == command:
            cmd.add(_Subparsers(sub, name))
        else:
            sub.add_parser(name, help=cmd.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_named_command(argv))
    args = parser.parse_args(argv)
    from codesign.cli.outputs import check_outputs
    from codesign.ir.verify import VerifyError

    try:
        check_outputs(args)  # before any work: a bad output path costs nothing
        return int(args.func(args) or 0)
    except (InputError, VerifyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"codesign: error: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codesign: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) closed stdout: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
