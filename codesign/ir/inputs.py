"""Seeded sample inputs for a cascade (the CLI's `run` and the passes' error reports)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from codesign.ir.cascade import Cascade
from codesign.ir.dtypes import DType
from codesign.ir.index import Gathered


def _gather_bound(cascade: Cascade, tensor: str) -> int | None:
    """Smallest table dimension that `tensor` indexes through a gather, if any."""
    bound: int | None = None
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            table = cascade.tensor(access.tensor)
            for index, size in zip(access.indices, table.shape, strict=True):
                if isinstance(index, Gathered) and index.tensor == tensor:
                    bound = size if bound is None else min(bound, size)
    return bound


def sample_inputs(cascade: Cascade, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal floats; integer inputs used as gather indices are uniform over the table;
    low-bit (<= 8-bit) integers are uniform over their range (at most [-8, 8)); other integer
    and boolean inputs (masks) are ones."""
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for tensor in cascade.inputs:
        if tensor.dtype.is_float:
            values[tensor.name] = rng.standard_normal(tensor.shape).astype(tensor.dtype.numpy)
            continue
        bound = _gather_bound(cascade, tensor.name)
        if bound is None and tensor.dtype.is_int and tensor.dtype.bits <= 8:
            values[tensor.name] = random_integers(rng, tensor.shape, tensor.dtype)
        elif bound is None:
            values[tensor.name] = np.ones(tensor.shape, dtype=tensor.dtype.numpy)
        else:
            values[tensor.name] = rng.integers(0, bound, tensor.shape).astype(tensor.dtype.numpy)
    return values


def random_integers(rng: np.random.Generator, shape: tuple[int, ...], dtype: DType) -> np.ndarray:
    """Uniform integers over the type's signed range, at most [-8, 8)."""
    half = min(8, 2 ** (dtype.bits - 1))
    return rng.integers(-half, half, shape).astype(dtype.numpy)


# dtype kinds the interpreter computes with: bool, signed/unsigned int, float
_NUMERIC_KINDS = frozenset("biuf")


def interpreter_bytes(cascade: Cascade) -> int:
    """Bytes the reference interpreter holds at once: every tensor at its value dtype."""
    return sum(t.size * np.dtype(t.value_dtype).itemsize for t in cascade.tensors)


def check_input_arrays(cascade: Cascade, inputs: Mapping[str, object]) -> None:
    """InputError unless every entry of `inputs` names an input or weight of `cascade` and holds
    a real-valued (bool, int or float) array; checked before anything is computed."""
    from codesign.errors import InputError
    from codesign.ir.cascade import Role
    from codesign.limits import check_memory

    if not isinstance(cascade, Cascade):
        raise InputError(f"expected a Cascade, got {type(cascade).__name__}")
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs: expected a mapping of names to arrays, got "
                         f"{type(inputs).__name__}")  # fmt: skip
    known = {t.name for t in cascade.tensors if t.role in (Role.INPUT, Role.WEIGHT)}
    for name, value in inputs.items():
        if name not in known:
            names = ", ".join(sorted(t.name for t in cascade.inputs)) or "none"
            raise InputError(f"input {name!r}: not an input or weight of {cascade.name} "
                             f"(inputs: {names})")  # fmt: skip
        kind = np.asarray(value).dtype.kind
        if kind not in _NUMERIC_KINDS:
            raise InputError(
                f"input {name}: dtype {np.asarray(value).dtype} is not bool, integer or float"
            )
    check_memory(interpreter_bytes(cascade), f"interpreting {cascade.name}")
