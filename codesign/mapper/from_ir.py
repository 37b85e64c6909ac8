"""The bridge from the IR to the mapper: which Einsums are loop nests of MACs, as Problems.

An Einsum maps onto a MAC array when it is ``OUT[...] = sum[...] A[...] * B[...]`` with affine,
non-negative-coefficient indices (GEMMs, convolutions incl. strided/dilated/grouped/depthwise,
batched matmuls of attention).  Constant offsets (padding) do not change tile footprints and are
dropped, as Timeloop folds padding into P and Q.  Everything else (elementwise maps,
non-sum reductions, gathers, views) is priced by the vector model in `codesign.sim.vector`.
"""

from __future__ import annotations

from codesign.hwmodels.arch import TensorRole
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.expr import Access, Binary
from codesign.ir.index import Affine
from codesign.mapper.problem import Problem, ProblemTensor


def _projection(access: Access) -> tuple[tuple[tuple[str, int], ...], ...] | None:
    dims = []
    for index in access.indices:
        if not isinstance(index, Affine) or any(c < 0 for _, c in index.terms):
            return None
        dims.append(tuple(index.terms))
    return tuple(dims)


def is_mac_einsum(einsum: Einsum) -> bool:
    """True for a contraction (`codesign.ir.traits`) whose accesses are all affine and
    non-negatively strided: the loop nests the mapper can tile."""
    operands = einsum.mac_operands
    return operands is not None and all(
        _projection(a) is not None for a in (*operands, einsum.output)
    )


def problem_from_einsum(einsum: Einsum, cascade: Cascade) -> Problem | None:
    """The mapper's Problem for a MAC Einsum, or None when the Einsum is not a MAC nest.

    Roles: an operand that is a weight of the cascade is the WEIGHT; with two activations (e.g.
    QK^T) the second operand plays the weight's role, as in an attention accelerator that
    streams K/V like weights.
    """
    if not is_mac_einsum(einsum):
        return None
    body = einsum.body
    assert isinstance(body, Binary) and isinstance(body.lhs, Access)
    assert isinstance(body.rhs, Access)
    lhs, rhs = body.lhs, body.rhs
    if (
        cascade.tensor(lhs.tensor).role is Role.WEIGHT
        and cascade.tensor(rhs.tensor).role is not Role.WEIGHT
    ):
        lhs, rhs = rhs, lhs
    tensors = []
    for access, role in (
        (lhs, TensorRole.INPUT),
        (rhs, TensorRole.WEIGHT),
        (einsum.output, TensorRole.OUTPUT),
    ):
        spec = cascade.tensor(access.tensor)
        projection = _projection(access)
        assert projection is not None
        name = (
            access.tensor
            if access is not einsum.output or access.tensor not in (lhs.tensor, rhs.tensor)
            else f"{access.tensor}_out"
        )
        tensors.append(
            ProblemTensor(name, projection, role is TensorRole.OUTPUT, spec.dtype.bits, role)
        )
    if tensors[0].name == tensors[1].name:  # A*A (squares) reads one tensor twice
        tensors[1] = ProblemTensor(
            f"{tensors[1].name}_2", tensors[1].projection, False, tensors[1].bits, TensorRole.WEIGHT
        )
    return Problem(einsum.name, einsum.space, tuple(tensors))
