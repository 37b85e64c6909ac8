"""LLM roofline speed: codesign beside LLM-Viewer, measured in the same run (never asserted).

    python benchmarks/bench_roofline.py [--llm-viewer /work/peers/LLM-Viewer \\
        --llm-viewer-python /work/peers/llmviewer-venv/bin/python]

For Llama-2-7B and Llama-2-70B prefill (batch 1, 1024 tokens, FP16, A100) it prints:

* in-process: the time to build the cascade and the time to analyse it (``analyze``), with the
  Einsum count, and the 70B/7B ratios of time and of Einsums (a linear analysis keeps them
  close; the old tensor->consumers rescans made 70B 8.5x slower than LLM-Viewer);
* whole process: ``codesign roofline --llm ...`` from start-up to exit, beside LLM-Viewer's
  whole process (``ModelAnalyzer.analyze`` on a local ``config.json``, imports included), and the
  ratio.  LLM-Viewer is a peer tool: a checkout of github.com/hahnyuan/LLM-Viewer and a virtual
  environment with its requirements (transformers, easydict), never a codesign dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {  # Hugging Face config.json fields of the two models (as in their model cards)
    "llama-2-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
                   "num_hidden_layers": 32, "num_key_value_heads": 32},
    "llama-2-70b": {"hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
                    "num_hidden_layers": 80, "num_key_value_heads": 8},
}  # fmt: skip
LLM_VIEWER_RUN = """
from model_analyzer import ModelAnalyzer
a = ModelAnalyzer({path!r}, "nvidia_A100", "configs/Llama.py", source="huggingface")
r = a.analyze(batchsize=1, seqlen={seq}, w_bit=16, a_bit=16, kv_bit=16)
print(r["total_results"]["prefill"]["inference_time"])
"""


def best_of(repeat: int, run) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def in_process(name: str, seq: int, repeat: int) -> tuple[int, float, float]:
    """(Einsums, build seconds, analysis seconds) for one model, best of `repeat`."""
    from codesign.frontends.llm import llm_from_spec
    from codesign.hwmodels.gpu import load_device
    from codesign.sim.roofline import analyze
    from codesign.sim.roofline_llm import llm_options

    device = load_device("a100")
    build_s = best_of(repeat, lambda: llm_from_spec(name, batch=1, seq=seq, phase="prefill"))
    analysis_s = float("inf")
    for _ in range(max(1, repeat)):
        cascade = llm_from_spec(name, batch=1, seq=seq, phase="prefill")  # no warm indices
        start = time.perf_counter()
        analyze(cascade, device, llm_options(cascade, device), "prefill")
        analysis_s = min(analysis_s, time.perf_counter() - start)
    return len(cascade.einsums), build_s, analysis_s


def whole_process(argv: list[str], cwd: Path, repeat: int, env: dict[str, str]) -> float:
    def run() -> None:
        subprocess.run(argv, cwd=cwd, check=True, capture_output=True, env=env)

    return best_of(repeat, run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--llm-viewer", type=Path, default=Path("/work/peers/LLM-Viewer"))
    parser.add_argument("--llm-viewer-python", default="/work/peers/llmviewer-venv/bin/python")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    have_peer = args.llm_viewer.is_dir() and Path(args.llm_viewer_python).exists()
    counts: dict[str, tuple[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fields in MODELS.items():
            einsums, build_s, analysis_s = in_process(name, args.seq, args.repeat)
            counts[name] = (einsums, analysis_s)
            ours = whole_process(
                [sys.executable, "-m", "codesign.cli.main", "roofline", "--llm", name, "--hw",
                 "a100", "--seq", str(args.seq), "--json", os.devnull],
                ROOT, args.repeat, env,
            )  # fmt: skip
            line = (f"{name:12s} {einsums:5d} Einsums: build {build_s * 1e3:7.1f} ms, analyse "
                    f"{analysis_s * 1e3:7.1f} ms; whole process {ours:.2f} s")  # fmt: skip
            if have_peer:
                config = Path(tmp) / name
                config.mkdir()
                doc = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                       "vocab_size": 32000, "max_position_embeddings": 4096,
                       "rms_norm_eps": 1e-5, **fields}  # fmt: skip
                (config / "config.json").write_text(json.dumps(doc))
                code = LLM_VIEWER_RUN.format(path=str(config), seq=args.seq)
                theirs = whole_process([args.llm_viewer_python, "-c", code], args.llm_viewer,
                                       args.repeat, env)  # fmt: skip
                line += f"; LLM-Viewer whole process {theirs:.2f} s ({theirs / ours:.1f}x ours)"
            print(line)
    (small, small_s), (big, big_s) = counts["llama-2-7b"], counts["llama-2-70b"]
    print(f"70B / 7B: {big / small:.2f}x the Einsums, {big_s / small_s:.2f}x the analysis time "
          "(linear: about equal)")  # fmt: skip
    if not have_peer:
        print("LLM-Viewer not found: pass --llm-viewer and --llm-viewer-python")
    return 0


if __name__ == "__main__":
    sys.exit(main())
