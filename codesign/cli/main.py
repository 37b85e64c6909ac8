"""The `codesign` command line.  Only this package reads argv and the environment."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from codesign.cli import commands
from codesign.cli.passes_opt import add_passes_arguments
from codesign.errors import InputError
from codesign.ir.verify import VerifyError


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "model",
        nargs=None if required else "?",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codesign",
        description="Hardware/software co-design over an Einsum-cascade IR.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ir", help="print a model's Einsum-cascade IR")
    _model_args(p, required=False)
    p.set_defaults(func=commands.cmd_ir)

    p = sub.add_parser("stats", help="per-Einsum statistics (MACs, ops, bytes) and totals")
    _model_args(p, required=False)
    p.add_argument("--json", metavar="PATH", help="also write the table as JSON ('-' = stdout)")
    add_passes_arguments(p, error_flag=True)
    p.set_defaults(func=commands.cmd_stats)

    p = sub.add_parser("run", help="interpret a model on seeded random (or given) inputs")
    _model_args(p)
    p.add_argument("--inputs", metavar="NPZ", help="input arrays by name (.npz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-compare", action="store_true", help="skip the comparison with onnxruntime")
    p.add_argument("--json", metavar="PATH", help="also write outputs (and passes) as JSON")
    add_passes_arguments(p, error_flag=False)
    p.set_defaults(func=commands.cmd_run)

    p = sub.add_parser("ops", help="list the ONNX ops the frontend lowers")
    p.set_defaults(func=commands.cmd_ops)

    from codesign.cli import map_cmd

    map_cmd.add_parser(sub, _model_args)
    from codesign.cli import roofline_cmd

    roofline_cmd.add_parser(sub, _model_args)
    from codesign.cli import codegen_cmd

    codegen_cmd.add_parser(sub, _model_args)
    from codesign.cli import graph_cmd

    graph_cmd.add_parser(sub, _model_args)
    from codesign.cli import timeloop_opt

    timeloop_opt.add_parser(sub)
    from codesign.cli import rank_passes_cmd

    rank_passes_cmd.add_parser(sub, _model_args)
    from codesign.cli import dse_cmd

    dse_cmd.add_parser(sub, _model_args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
