"""Running a pipeline: verify after each pass and report what changed and what it cost.

`run_pipeline` is the entry point the CLI calls for ``--passes``.  Per pass it records the
Einsums and tensors touched, dtype changes, storage bytes before/after (codes plus quantization
scales) and, when the cascade can be interpreted, the numerical error of the outputs against the
*unmodified* input cascade on the same sample inputs (cumulative over the pipeline).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade, Quantization, Role, TensorSpec
from codesign.ir.dtypes import DType
from codesign.ir.groups import carry_groups
from codesign.ir.interpreter import interpret
from codesign.ir.verify import VerifyError, verify
from codesign.passes.pipeline import PassContext, Pipeline, lookup_pass, parse_pipeline


@dataclass(frozen=True, slots=True)
class NumericalError:
    """Error of all outputs (flattened and concatenated in name order) against a reference."""

    max_abs: float
    rel_l2: float  # ||y - ref||_2 / ||ref||_2
    cosine: float  # cosine similarity of y and ref

    @staticmethod
    def between(
        reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray]
    ) -> NumericalError:
        names = sorted(reference)
        ref = np.concatenate([np.asarray(reference[n], np.float64).ravel() for n in names])
        got = np.concatenate([np.asarray(actual[n], np.float64).ravel() for n in names])
        diff = got - ref
        ref_norm, got_norm = float(np.linalg.norm(ref)), float(np.linalg.norm(got))
        rel = float(np.linalg.norm(diff)) / ref_norm if ref_norm else float(np.linalg.norm(diff))
        if ref_norm and got_norm:
            cosine = float(ref @ got) / (ref_norm * got_norm)
        else:
            cosine = 1.0 if ref_norm == got_norm else 0.0
        return NumericalError(float(np.max(np.abs(diff), initial=0.0)), rel, cosine)


@dataclass(frozen=True, slots=True)
class TensorChange:
    """A tensor added, removed, retyped, requantized or given new data by a pass."""

    name: str
    dtype_before: DType | None  # None: added by the pass
    dtype_after: DType | None  # None: removed by the pass
    bytes_before: int  # storage bytes (codes + scales), 0 when absent
    bytes_after: int
    quant_after: Quantization | None


@dataclass(frozen=True, slots=True)
class PassReport:
    """What one pass did.  `error` is against the pipeline's input cascade (None if the
    cascade could not be interpreted, e.g. weights without data)."""

    pass_text: str
    einsums_added: tuple[str, ...]
    einsums_removed: tuple[str, ...]
    einsums_changed: tuple[str, ...]
    tensor_changes: tuple[TensorChange, ...]
    weight_bytes_before: int
    weight_bytes_after: int
    error: NumericalError | None
    seconds: float
    groups_changed: bool = False

    @property
    def changed(self) -> bool:
        """Whether the pass edited anything (an Einsum, a tensor or the fused groups); a pass
        that found nothing to rewrite in the model (`attention-1pass` on a CNN) did not."""
        return bool(
            self.einsums_added or self.einsums_removed or self.einsums_changed
            or self.tensor_changes or self.groups_changed
        )  # fmt: skip

    @property
    def dtype_changes(self) -> tuple[TensorChange, ...]:
        return tuple(
            c for c in self.tensor_changes
            if c.dtype_before is not None and c.dtype_after is not None
            and c.dtype_before is not c.dtype_after
        )  # fmt: skip

    def summary(self) -> str:
        """One line: pass, edits, weight bytes and error (or that it changed nothing)."""
        if not self.changed:
            return f"{self.pass_text}: no change (nothing in the model for this pass to rewrite)"
        edits = (
            f"+{len(self.einsums_added)}/-{len(self.einsums_removed)}/"
            f"~{len(self.einsums_changed)} einsums, {len(self.tensor_changes)} tensors"
        )
        size = f"weights {self.weight_bytes_before} -> {self.weight_bytes_after} B"
        err = "error n/a"
        if self.error is not None:
            e = self.error
            err = f"max|err| {e.max_abs:.3g}, rel L2 {e.rel_l2:.3g}, cos {e.cosine:.6f}"
        return f"{self.pass_text}: {edits}; {size}; {err}"


def weight_bytes(cascade: Cascade) -> int:
    """Storage bytes of all weights, quantization scales included."""
    return sum(t.storage_bytes for t in cascade.weights)


def diff_cascades(before: Cascade, after: Cascade) -> tuple[tuple[str, ...], ...]:
    """(einsums added, removed, changed) by name."""
    old = {e.name: e for e in before.einsums}
    new = {e.name: e for e in after.einsums}
    added = tuple(n for n in new if n not in old)
    removed = tuple(n for n in old if n not in new)
    changed = tuple(n for n in new if n in old and new[n] != old[n])
    return added, removed, changed


def tensor_changes(before: Cascade, after: Cascade) -> tuple[TensorChange, ...]:
    old = {t.name: t for t in before.tensors}
    new = {t.name: t for t in after.tensors}
    out: list[TensorChange] = []
    for name in list(old) + [n for n in new if n not in old]:
        a, b = old.get(name), new.get(name)
        if a is not None and b is not None and a == b and _same_data(a, b):
            continue
        out.append(
            TensorChange(
                name,
                None if a is None else a.dtype,
                None if b is None else b.dtype,
                0 if a is None else a.storage_bytes,
                0 if b is None else b.storage_bytes,
                None if b is None else b.quant,
            )
        )
    return tuple(out)


def _same_data(a: TensorSpec, b: TensorSpec) -> bool:
    if a.data is None or b.data is None:
        return a.data is None and b.data is None
    return a.data is b.data or bool(np.array_equal(a.data, b.data))


def _outputs(cascade: Cascade, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Outputs, or None when the cascade cannot run (weights without data)."""
    if any(t.data is None for t in cascade.weights):
        return None
    return interpret(cascade, inputs)


def run_pipeline(
    cascade: Cascade,
    pipeline: Pipeline | str,
    sample_inputs: Mapping[str, np.ndarray] | None = None,
    verify_each: bool = True,
    measure_error: bool = True,
    seed: int = 0,
) -> tuple[Cascade, list[PassReport]]:
    """Run `pipeline` on `cascade`; return the result and one `PassReport` per pass.

    `sample_inputs` (by input name) feed calibration and the error figures; when None they are
    `codesign.ir.inputs.sample_inputs(cascade, seed)`.  With `verify_each` the verifier runs
    after every pass and a failure names the pass.  `measure_error=False` skips the
    interpreter runs (large models).
    """
    if isinstance(pipeline, str):
        pipeline = parse_pipeline(pipeline)
    context = PassContext(sample_inputs, seed)
    inputs = context.inputs_for(cascade)
    reference = _outputs(cascade, inputs) if measure_error else None
    reports: list[PassReport] = []
    current = cascade
    for item in pipeline.passes:
        registered = lookup_pass(item.name)
        start = time.perf_counter()
        result = carry_groups(current, registered.run(current, item.options, context))
        seconds = time.perf_counter() - start
        if verify_each:
            try:
                verify(result)
            except VerifyError as exc:
                raise VerifyError(f"after pass {item}: {exc}") from None
        error = None
        if reference is not None:
            outputs = _outputs(result, inputs)
            if outputs is not None and set(outputs) == set(reference):
                error = NumericalError.between(reference, outputs)
        added, removed, changed = diff_cascades(current, result)
        reports.append(
            PassReport(
                str(item), added, removed, changed, tensor_changes(current, result),
                weight_bytes(current), weight_bytes(result), error, seconds,
                groups_changed=result.groups != current.groups,
            )
        )  # fmt: skip
        current = result
    return current, reports


def format_reports(reports: list[PassReport]) -> str:
    """The reports as a plain-text table, one pass per line (what the CLI prints)."""
    lines = [r.summary() for r in reports]
    return "\n".join(lines) + ("\n" if lines else "")


def quantized_weight_bits(cascade: Cascade) -> float:
    """Average stored bits per weight element, scales included (element-weighted)."""
    weights = [t for t in cascade.tensors if t.role is Role.WEIGHT]
    elements = sum(t.size for t in weights)
    if not elements:
        raise InputError(f"cascade {cascade.name} has no weights")
    return 8 * sum(t.storage_bytes for t in weights) / elements


__all__ = [
    "NumericalError", "PassReport", "TensorChange", "diff_cascades", "format_reports",
    "quantized_weight_bits", "run_pipeline", "tensor_changes", "weight_bytes",
]  # fmt: skip
