"""Einsum-cascade IR: tensors, extended Einsums, printer/parser, verifier, interpreter, stats.

The names below are imported on first use (PEP 562), so that a module needing only
`codesign.ir.cascade` does not load the interpreter, parser and verifier with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# eager: the submodule `codesign.ir.verify` would otherwise shadow the function `verify` once
# anything imports it (the CLI does, for VerifyError)
from codesign.ir.verify import VerifyError, verify

if TYPE_CHECKING:
    from codesign.ir.cascade import (
        Cascade,
        Einsum,
        QuantFormat,
        Quantization,
        Role,
        SparseFormat,
        Sparsity,
        TensorSpec,
    )
    from codesign.ir.dtypes import DType
    from codesign.ir.expr import (
        Access,
        Binary,
        BinaryOp,
        Const,
        Expr,
        ReduceOp,
        Select,
        Unary,
        UnaryOp,
    )
    from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
    from codesign.ir.interpreter import interpret
    from codesign.ir.parser import parse_cascade
    from codesign.ir.printer import print_cascade
    from codesign.ir.stats import CascadeStats, EinsumStats, cascade_stats, einsum_stats
    from codesign.ir.traits import EinsumClass

__all__ = [
    "Access", "Affine", "Binary", "BinaryOp", "Cascade", "CascadeStats", "Const", "DType",
    "Einsum", "EinsumClass", "EinsumStats", "Expr", "FloorDiv", "Gathered", "IndexExpr", "Mod",
    "QuantFormat", "Quantization", "ReduceOp",
    "Role", "Select", "SparseFormat", "Sparsity", "TensorSpec", "Unary", "UnaryOp",
    "VerifyError", "cascade_stats",
    "einsum_stats", "interpret", "parse_cascade", "print_cascade", "verify",
]  # fmt: skip

# public name -> its module
_LAZY: dict[str, str] = {
    "Access": "codesign.ir.expr",
    "Affine": "codesign.ir.index",
    "Binary": "codesign.ir.expr",
    "BinaryOp": "codesign.ir.expr",
    "Cascade": "codesign.ir.cascade",
    "CascadeStats": "codesign.ir.stats",
    "Const": "codesign.ir.expr",
    "DType": "codesign.ir.dtypes",
    "Einsum": "codesign.ir.cascade",
    "EinsumClass": "codesign.ir.traits",
    "EinsumStats": "codesign.ir.stats",
    "Expr": "codesign.ir.expr",
    "FloorDiv": "codesign.ir.index",
    "Gathered": "codesign.ir.index",
    "IndexExpr": "codesign.ir.index",
    "Mod": "codesign.ir.index",
    "QuantFormat": "codesign.ir.cascade",
    "Quantization": "codesign.ir.cascade",
    "ReduceOp": "codesign.ir.expr",
    "Role": "codesign.ir.cascade",
    "Select": "codesign.ir.expr",
    "SparseFormat": "codesign.ir.cascade",
    "Sparsity": "codesign.ir.cascade",
    "TensorSpec": "codesign.ir.cascade",
    "Unary": "codesign.ir.expr",
    "UnaryOp": "codesign.ir.expr",
    "cascade_stats": "codesign.ir.stats",
    "einsum_stats": "codesign.ir.stats",
    "interpret": "codesign.ir.interpreter",
    "parse_cascade": "codesign.ir.parser",
    "print_cascade": "codesign.ir.printer",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'codesign.ir' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
