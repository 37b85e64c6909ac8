"""Sparse matrices and graphs in: scipy.sparse, Matrix Market (.mtx) files, seeded R-MAT graphs.

Everything comes out as a ``scipy.sparse.csr_matrix`` of float64 with sorted indices and no
duplicates.  A graph is its adjacency matrix: ``A[u, v]`` is the weight of edge ``u -> v``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp

from codesign.errors import InputError
from codesign.limits import check_memory


@dataclass(frozen=True, slots=True)
class RmatSpec:
    """R-MAT (Chakrabarti et al. 2004): ``2**scale`` vertices, ``edge_factor * 2**scale`` edges
    drawn by recursive quadrant choice with probabilities a, b, c and d = 1 - a - b - c.

    Defaults are Graph500's (a, b, c) = (0.57, 0.19, 0.19).  Duplicate edges and self loops are
    dropped, so the graph has slightly fewer edges than drawn.  Weights are integers in
    [1, max_weight] (SSSP) drawn from the same seed."""

    scale: int = 10
    edge_factor: int = 16
    a: float = 0.57
    b: float = 0.19
    c: float = 0.19
    seed: int = 0
    undirected: bool = False
    max_weight: int = 255

    @property
    def d(self) -> float:
        return 1.0 - self.a - self.b - self.c


def rmat(spec: RmatSpec) -> sp.csr_matrix:
    """The R-MAT graph of `spec` (vectorised: one random draw per edge per scale bit)."""
    if not 1 <= spec.scale <= 30:
        raise InputError(f"rmat: scale={spec.scale} must be in 1..30")
    if spec.edge_factor < 1:
        raise InputError(f"rmat: edge_factor={spec.edge_factor} must be >= 1")
    if not all(math.isfinite(p) for p in (spec.a, spec.b, spec.c)):
        raise InputError(f"rmat: a, b, c = {spec.a}, {spec.b}, {spec.c} must be finite")
    if min(spec.a, spec.b, spec.c) < 0 or spec.d < -1e-12:
        raise InputError(f"rmat: a, b, c = {spec.a}, {spec.b}, {spec.c} must be >= 0, sum <= 1")
    if spec.max_weight < 1:
        raise InputError(f"rmat: max_weight={spec.max_weight} must be >= 1")
    n = 1 << spec.scale
    edges = spec.edge_factor * n
    # src, dst, one draw, weights and the COO/CSR copies: about 8 arrays of 8 bytes per edge
    copies = 16 if spec.undirected else 8
    check_memory(copies * 8 * edges, f"rmat: scale={spec.scale}, edge_factor={spec.edge_factor}")
    rng = np.random.default_rng(spec.seed)
    src = np.zeros(edges, dtype=np.int64)
    dst = np.zeros(edges, dtype=np.int64)
    ab, abc = spec.a + spec.b, spec.a + spec.b + spec.c
    for bit in range(spec.scale):
        r = rng.random(edges)
        down = r >= ab  # quadrant c or d: source bit set
        right = ((r >= spec.a) & (r < ab)) | (r >= abc)  # quadrant b or d: target bit set
        src |= down.astype(np.int64) << bit
        dst |= right.astype(np.int64) << bit
    # Permute vertex ids so that high degree is not concentrated at low ids (Graph500 does too).
    perm = rng.permutation(n)
    src, dst = perm[src], perm[dst]
    weights = rng.integers(1, spec.max_weight + 1, size=edges).astype(np.float64)
    if spec.undirected:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
        weights = np.concatenate([weights, weights])
    keep = src != dst
    return _canonical(sp.coo_matrix((weights[keep], (src[keep], dst[keep])), shape=(n, n)))


def _canonical(matrix: sp.spmatrix) -> sp.csr_matrix:
    """CSR, float64, sorted indices; duplicates keep their first weight rather than summing."""
    coo = sp.coo_matrix(matrix)
    key = coo.row.astype(np.int64) * coo.shape[1] + coo.col
    _, first = np.unique(key, return_index=True)
    out = sp.csr_matrix(
        (coo.data[first].astype(np.float64), (coo.row[first], coo.col[first])), shape=coo.shape
    )
    out.sort_indices()
    return out


def from_scipy(matrix: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    """A scipy sparse (or dense) matrix as canonical CSR (duplicates summed, as scipy does)."""
    out = sp.csr_matrix(matrix, dtype=np.float64)
    out.sum_duplicates()
    out.sort_indices()
    return out


def read_mtx(path: str | Path) -> sp.csr_matrix:
    """A Matrix Market file as CSR; a malformed or non-matrix file is a one-line InputError."""
    path = Path(path)
    try:
        data = scipy.io.mmread(str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (ValueError, OSError, IndexError, TypeError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{path}: malformed Matrix Market file: {first}") from error
    if not (sp.issparse(data) or isinstance(data, np.ndarray)) or np.ndim(data) != 2:
        raise InputError(f"{path}: Matrix Market file does not hold a 2-D matrix")
    if np.iscomplexobj(data):
        raise InputError(f"{path}: complex matrices are not supported")
    matrix = from_scipy(data)
    if min(matrix.shape) == 0:
        raise InputError(f"{path}: the matrix is empty ({matrix.shape[0]}x{matrix.shape[1]})")
    if not np.all(np.isfinite(matrix.data)):
        raise InputError(f"{path}: the matrix holds non-finite values (NaN or inf)")
    return matrix


_RMAT_FIELDS = {f.name: f.type for f in fields(RmatSpec)}


def parse_rmat(text: str) -> RmatSpec:
    """``rmat:scale=17,edge_factor=16,seed=1[,a=..,b=..,c=..,undirected=1]`` -> RmatSpec."""
    body = text.split(":", 1)[1] if ":" in text else ""
    values: dict[str, int | float | bool] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or key not in _RMAT_FIELDS:
            known = ", ".join(_RMAT_FIELDS)
            raise InputError(f"graph {text!r}: bad item {item!r} (known keys: {known})")
        if key in values:
            raise InputError(f"graph {text!r}: {key} given twice")
        kind = _RMAT_FIELDS[key]
        try:
            if kind in ("float", float):
                values[key] = float(raw)
            elif kind in ("bool", bool):
                values[key] = raw.strip().lower() in ("1", "true", "yes")
            else:
                values[key] = int(raw)
        except ValueError:
            raise InputError(f"graph {text!r}: {key}={raw!r} is not a number") from None
    return RmatSpec(**values)  # type: ignore[arg-type]


def load_graph(source: str) -> sp.csr_matrix:
    """``rmat:...`` (generated) or a path to a ``.mtx`` file."""
    if source.startswith("rmat"):
        return rmat(parse_rmat(source))
    if not source.endswith(".mtx"):
        raise InputError(f"graph {source!r}: expected rmat:key=value,... or a .mtx file")
    return read_mtx(source)
