"""Layer-adaptive sparsity: ``prune-adaptive{sparsity=0.5}`` allocates a global budget.

As in the layer-adaptive pruning literature (rate-distortion style allocation), the output
distortion of pruning several layers is taken to be roughly the *sum* of the distortions of
pruning each alone.  So:

1. For each prunable weight l and each candidate level s (``0, step, 2*step, ... max_layer``)
   the reference interpreter measures D[l][s] = mean squared output error of the cascade with
   only l magnitude-pruned to s, on the calibration inputs (`PassContext`).
2. Dynamic programming over layers picks one level per layer minimising sum D[l][s_l] subject to
   the zeros (counted in `bins` units of the total) reaching the global target.
3. The allocation is trimmed to the exact target: the overshoot (a level step of one layer) is
   given back by the layers whose table says it costs the most, lowering their sparsity.

Each layer is then magnitude-pruned to its level; the global sparsity over the selected weights
is the target to within one weight per layer.  `allocation` returns the per-layer levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Role, SparseFormat, TensorSpec
from codesign.ir.interpreter import interpret
from codesign.passes.pipeline import PassContext, register_pass
from codesign.passes.prune import magnitude_mask, prunable_weights, replace_tensors, with_sparsity


@dataclass(frozen=True, slots=True)
class AdaptiveOptions:
    """`prune-adaptive` options: global sparsity target over the selected weights, number of
    candidate levels per layer (step = max_layer / levels), the highest level a layer may take,
    the DP's budget resolution and the storage format recorded."""

    sparsity: float = 0.5
    levels: int = 10
    max_layer: float = 0.95
    bins: int = 2000
    format: SparseFormat = SparseFormat.BITMAP
    einsums: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity={self.sparsity} must be in [0, 1)")
        if not 0.0 < self.max_layer < 1.0 or self.sparsity > self.max_layer:
            raise ValueError(f"max_layer={self.max_layer} must be in (sparsity, 1)")
        if self.levels < 1 or self.bins < 10:
            raise ValueError("levels must be >= 1 and bins >= 10")
        try:
            re.compile(self.einsums)
        except re.error as exc:
            raise ValueError(f"einsums={self.einsums!r} is not a regex: {exc}") from None


def _pruned(spec: TensorSpec, sparsity: float, fmt: SparseFormat) -> TensorSpec:
    data = np.asarray(spec.data)
    return with_sparsity(spec, np.where(magnitude_mask(data, sparsity), data, 0), fmt)


def _mse(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray]) -> float:
    diffs = [np.asarray(actual[n], np.float64) - np.asarray(reference[n], np.float64)
             for n in sorted(reference)]  # fmt: skip
    return float(np.mean(np.concatenate([d.ravel() for d in diffs]) ** 2))


def distortion_table(
    cascade: Cascade, names: list[str], levels: np.ndarray, inputs: dict[str, np.ndarray]
) -> np.ndarray:
    """(layers, levels) mean squared output error with only that layer pruned to that level.

    Each trial re-runs only the Einsums from the layer's first reader on (the tensors written
    before it are fed in from one full reference run)."""
    env = interpret(cascade, inputs, keep_intermediates=True)
    reference = {t.name: env[t.name] for t in cascade.outputs}
    table = np.zeros((len(names), len(levels)))
    for i, name in enumerate(names):
        suffix = _suffix_from(cascade, name)
        feed = {t.name: env[t.name] for t in suffix.inputs}
        data = np.asarray(cascade.tensor(name).data)
        for j, level in enumerate(levels):
            if level > 0.0:
                feed[name] = np.where(magnitude_mask(data, float(level)), data, 0)
                table[i, j] = _mse(reference, interpret(suffix, feed))
    return table


def _suffix_from(cascade: Cascade, weight: str) -> Cascade:
    """The Einsums from the first reader of `weight` on; tensors written before are inputs."""
    first = next(k for k, e in enumerate(cascade.einsums) if weight in e.input_tensors)
    before = {e.output.tensor for e in cascade.einsums[:first]}
    tensors = tuple(replace(t, role=Role.INPUT) if t.name in before else t for t in cascade.tensors)
    return Cascade(cascade.name, tensors, cascade.einsums[first:])


def allocate(
    table: np.ndarray, sizes: np.ndarray, levels: np.ndarray, target: float, bins: int
) -> np.ndarray:
    """Per-layer sparsity: min sum table[l, s_l] with sum zeros >= target * total (DP over a
    budget discretised in `bins` units), then trimmed to the exact target."""
    total = float(sizes.sum())
    unit = total / bins
    need = int(np.ceil(target * total / unit - 1e-9))
    # best[z]: least distortion of the layers so far with min(zeros, need) = z units; prev and
    # choice remember the predecessor state and the level picked, to walk back.
    best = np.full(need + 1, np.inf)
    best[0] = 0.0
    prev = np.zeros((len(sizes), need + 1), dtype=np.int64)
    choice = np.zeros((len(sizes), need + 1), dtype=np.int64)
    src = np.arange(need + 1)
    for layer, size in enumerate(sizes):
        new = np.full(need + 1, np.inf)
        for j, level in enumerate(levels):
            units = int(np.floor(level * size / unit + 1e-9))
            cand = best + table[layer, j]
            tgt = np.minimum(src + units, need)
            capped = tgt == need
            # uncapped targets come from one source each
            free_src = src[~capped]
            better = cand[free_src] < new[tgt[~capped]]
            hit_src, hit_tgt = free_src[better], tgt[~capped][better]
            new[hit_tgt] = cand[hit_src]
            prev[layer, hit_tgt] = hit_src
            choice[layer, hit_tgt] = j
            k = int(src[capped][np.argmin(cand[capped])])
            if cand[k] < new[need]:
                new[need], prev[layer, need], choice[layer, need] = cand[k], k, j
        best = new
    if not np.isfinite(best[need]):
        raise InputError(f"pass prune-adaptive: sparsity {target} unreachable with these levels")
    picks = np.zeros(len(sizes), dtype=np.int64)
    z = need
    for layer in range(len(sizes) - 1, -1, -1):
        picks[layer] = choice[layer, z]
        z = int(prev[layer, z])
    return _trim(levels[picks].astype(np.float64), table, picks, levels, sizes, target)


def _trim(
    alloc: np.ndarray, table: np.ndarray, picks: np.ndarray, levels: np.ndarray,
    sizes: np.ndarray, target: float,
) -> np.ndarray:  # fmt: skip
    """Lower the sparsity of the costliest layers until the zeros equal the target."""
    excess = float((alloc * sizes).sum() - target * sizes.sum())
    for layer in np.argsort(-table[np.arange(len(picks)), picks], kind="stable"):
        if excess <= 0:
            break
        lower = levels[picks[layer] - 1] if picks[layer] > 0 else 0.0
        room = (alloc[layer] - lower) * sizes[layer]
        give = min(room, excess)
        alloc[layer] -= give / sizes[layer]
        excess -= give
    return alloc


@register_pass("prune-adaptive", AdaptiveOptions)
def prune_adaptive(cascade: Cascade, options: AdaptiveOptions, context: PassContext) -> Cascade:
    """Layer-adaptive magnitude pruning: DP over per-layer distortion tables to a global target."""
    pruned = {
        name: _pruned(cascade.tensor(name), float(level), options.format)
        for name, level in allocation(cascade, options, context).items()
    }
    return replace_tensors(cascade, pruned)


def allocation(
    cascade: Cascade, options: AdaptiveOptions, context: PassContext
) -> dict[str, float]:
    """Per-layer sparsity the DP chooses (weight name -> fraction of zeros)."""
    names = list(prunable_weights(cascade, options.einsums))
    if not names:
        raise InputError(f"pass prune-adaptive: cascade {cascade.name} has no prunable weight")
    levels = np.linspace(0.0, options.max_layer, options.levels + 1)
    table = distortion_table(cascade, names, levels, context.inputs_for(cascade))
    sizes = np.array([cascade.tensor(n).size for n in names], dtype=np.float64)
    alloc = allocate(table, sizes, levels, options.sparsity, options.bins)
    return dict(zip(names, (float(a) for a in alloc), strict=True))


__all__ = ["AdaptiveOptions", "allocate", "allocation", "distortion_table", "prune_adaptive"]
