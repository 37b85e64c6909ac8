"""`codesign ir | stats | run | ops`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from codesign.cli.outputs import write_text
from codesign.errors import InputError
from codesign.frontends import load_model
from codesign.ir.cascade import Cascade, Role
from codesign.ir.printer import print_cascade
from codesign.ir.stats import cascade_stats

if TYPE_CHECKING:
    import numpy as np  # `run` computes with it; `map` of a SCALE-Sim .cfg never loads it


def _dims(pairs: list[str]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not value.strip().isdigit() or int(value) < 1:
            raise InputError(f"--dim {pair!r}: expected NAME=N with N a positive integer")
        if name.strip() in dims:
            raise InputError(f"--dim {pair!r}: {name.strip()} given twice")
        dims[name.strip()] = int(value)
    return dims


# Largest LLM sizes accepted: beyond them the IR's tensors (and every estimate) are nonsense.
_LLM_LIMITS = {"batch": 2**16, "seq": 2**24, "kv_len": 2**24}


def _check_llm_sizes(args: argparse.Namespace) -> None:
    for name, limit in _LLM_LIMITS.items():
        value = getattr(args, name, None)
        if value is not None and not 1 <= value <= limit:
            flag = "--" + name.replace("_", "-")
            raise InputError(f"{flag} {value}: must be in 1..{limit}")


def load_from_args(args: argparse.Namespace) -> Cascade:
    """The cascade named by MODEL or --llm (with --batch/--seq/--phase/--kv-len)."""
    if getattr(args, "llm", None):
        if args.model:
            raise InputError("give either MODEL or --llm, not both")
        _check_llm_sizes(args)
        from codesign.frontends.llm import llm_from_spec

        return llm_from_spec(
            args.llm, batch=args.batch, seq=args.seq, phase=args.phase, kv_len=args.kv_len
        )
    if not args.model:
        raise InputError("no model given (MODEL or --llm NAME)")
    return load_model(args.model, dims=_dims(args.dim))


def cmd_ir(args: argparse.Namespace) -> int:
    sys.stdout.write(print_cascade(load_from_args(args)))
    return 0


def _fmt(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:g}"


def cmd_stats(args: argparse.Namespace) -> int:
    from codesign.cli.passes_opt import apply_passes, parse_passes, passes_json, passes_text

    pipeline = parse_passes(args.passes)
    passes = apply_passes(load_from_args(args), pipeline, args.pass_error)
    cascade = passes.cascade
    stats = cascade_stats(cascade)
    rows: list[dict[str, Any]] = [
        {
            "name": s.name, "op": s.op, "points": s.points, "macs": s.macs, "flops": s.flops,
            "ops": dict(s.ops), "input_bytes": s.input_bytes, "output_bytes": s.output_bytes,
            "intensity_flops_per_byte": round(s.intensity_flops_per_byte, 3)
            if s.total_bytes else None,
        }
        for s in stats.einsums
    ]  # fmt: skip
    # storage bytes: packed codes (compressed when sparse) plus quantization scales
    weight_bytes = sum(t.storage_bytes for t in cascade.weights)
    params = sum(t.size for t in cascade.weights)
    total: dict[str, Any] = {
        "einsums": len(rows),
        "macs": stats.macs,
        "flops": stats.flops,
        "ops": stats.ops(),
        "weight_bytes": weight_bytes,
        "params": params,
        "weight_bits_per_param": 8 * weight_bytes / params if params else None,
    }
    if args.json:
        doc: dict[str, Any] = {"model": cascade.name, "einsums": rows, "total": total}
        if pipeline is not None:
            doc["passes"] = passes_json(passes)
        text = json.dumps(doc, indent=1)
        if args.json == "-":
            print(text)
            return 0
        write_text(args.json, text)
    table = Table(title=f"{cascade.name}: {len(rows)} Einsums")
    for col in ("Einsum", "op", "MACs", "other ops", "in bytes", "out bytes", "FLOP/B"):
        table.add_column(col, justify="left" if col in ("Einsum", "op") else "right")
    for r in rows:
        other = sum(r["ops"].values())
        table.add_row(
            r["name"],
            r["op"],
            _fmt(r["macs"]),
            _fmt(other),
            _fmt(r["input_bytes"]),
            _fmt(r["output_bytes"]),
            "-"
            if r["intensity_flops_per_byte"] is None
            else f"{r['intensity_flops_per_byte']:.2f}",
        )
    print(passes_text(passes), end="")
    console = Console()
    console.print(table)
    bits = f", {total['weight_bits_per_param']:.3g} bits/param" if params else ""
    console.print(
        f"total: {_fmt(stats.macs)} MACs, {_fmt(stats.flops)} FLOPs, "
        f"{_fmt(params)} parameters ({_fmt(weight_bytes)}B of weights{bits})"
    )
    return 0


def _read_inputs(path: str) -> dict[str, Any]:
    """The arrays of an ``.npz`` archive (np.savez) by input name; InputError otherwise."""
    import zipfile

    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise InputError(f"{path}: cannot read inputs ({exc})") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise InputError(f"{path}: not an .npz archive (np.savez writes one)") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: one array (.npy); --inputs takes an .npz of arrays by name")
    try:
        with data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read inputs ({exc})") from None


def cmd_run(args: argparse.Namespace) -> int:

    from codesign.cli.passes_opt import apply_passes, parse_passes, passes_json, passes_text
    from codesign.ir.inputs import interpreter_bytes, sample_inputs
    from codesign.ir.interpreter import interpret
    from codesign.limits import check_memory

    pipeline = parse_passes(args.passes)
    cascade = load_from_args(args)
    check_memory(interpreter_bytes(cascade), f"run {cascade.name}")  # before sampling inputs
    inputs = _read_inputs(args.inputs) if args.inputs else sample_inputs(cascade, args.seed)
    inputs.update(_random_weights(cascade, inputs, args.seed))
    if pipeline is not None:
        # the passes rewrite weights, so every weight the run uses becomes cascade data
        cascade = _with_weight_data(cascade, inputs)
        inputs = {k: v for k, v in inputs.items() if not _is_weight(cascade, k)}
    passes = apply_passes(cascade, pipeline, True, sample_inputs=inputs, seed=args.seed)
    outputs = interpret(passes.cascade, inputs)
    to_stdout = args.json != "-"
    console = Console(quiet=not to_stdout)
    if to_stdout:
        print(passes_text(passes), end="")
    for name, value in outputs.items():
        console.print(
            f"{name}: shape {tuple(value.shape)} {value.dtype}, mean {value.mean():.6g}, "
            f"std {value.std():.6g}"
        )
    doc: dict[str, Any] = {
        "model": cascade.name,
        "outputs": {
            name: {"shape": list(v.shape), "dtype": str(v.dtype), "mean": float(v.mean()),
                   "std": float(v.std())}
            for name, v in outputs.items()
        },
    }  # fmt: skip
    if pipeline is not None:
        doc["passes"] = passes_json(passes)
    status = 0
    if args.model and args.model.endswith(".onnx") and not args.no_compare:
        if pipeline is not None:
            console.print("no onnxruntime comparison: --passes changed the model")
        else:
            errors = _compare_onnxruntime(args.model, inputs, outputs, console)
            doc["onnxruntime_rel_error"] = errors
            status = 0 if max(errors.values(), default=0.0) < 1e-3 else 1
    if args.json:
        text = json.dumps(doc, indent=1)
        if args.json == "-":
            print(text)
        else:
            write_text(args.json, text)
    return status


def _is_weight(cascade: Cascade, name: str) -> bool:
    return cascade.has_tensor(name) and cascade.tensor(name).role is Role.WEIGHT


def _random_weights(
    cascade: Cascade, given: dict[str, np.ndarray], seed: int
) -> dict[str, np.ndarray]:
    """Seeded values for weights that have no data and are not in `given`."""
    import numpy as np

    from codesign.ir.inputs import random_integers

    missing = [t.name for t in cascade.weights if t.data is None and t.name not in given]
    rng = np.random.default_rng(seed + 1)
    out: dict[str, np.ndarray] = {}
    for name in missing:
        spec = cascade.tensor(name)
        if spec.dtype.is_int:
            out[name] = random_integers(rng, spec.shape, spec.dtype)
        else:
            out[name] = (rng.standard_normal(spec.shape) * 0.02).astype(spec.dtype.numpy)
    return out


def _with_weight_data(cascade: Cascade, values: dict[str, np.ndarray]) -> Cascade:
    """`cascade` with the weights named in `values` holding those arrays as data."""
    import numpy as np

    tensors = tuple(
        dataclasses.replace(t, data=np.asarray(values[t.name], t.value_dtype))
        if t.role is Role.WEIGHT and t.name in values
        else t
        for t in cascade.tensors
    )
    return Cascade(cascade.name, tensors, cascade.einsums)


def _compare_onnxruntime(
    path: str, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], console: Console
) -> dict[str, float]:
    """max |error| / max |ref| of every output against onnxruntime (empty without it)."""
    import numpy as np

    try:
        import onnxruntime as ort
    except ImportError:
        console.print("onnxruntime not installed: no comparison (pip install onnxruntime)")
        return {}
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {}
    from codesign.ir.builder import sanitize

    for inp in session.get_inputs():
        key = inp.name if inp.name in inputs else sanitize(inp.name)
        feeds[inp.name] = inputs[key]
    reference = session.run(None, feeds)
    errors: dict[str, float] = {}
    for meta, ref in zip(session.get_outputs(), reference, strict=True):
        key = meta.name if meta.name in outputs else sanitize(meta.name)
        ours = outputs[key]
        err = float(np.max(np.abs(ours.astype(np.float64) - ref)) / (np.max(np.abs(ref)) + 1e-30))
        errors[meta.name] = err
        console.print(f"{meta.name}: max |error| / max |ref| vs onnxruntime = {err:.3e}")
    return errors


def cmd_ops(args: argparse.Namespace) -> int:
    from codesign.frontends.onnx import supported_ops

    for op in supported_ops():
        print(op)
    return 0
