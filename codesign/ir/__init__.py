"""Einsum-cascade IR: tensors, extended Einsums, printer/parser, verifier, interpreter, stats."""

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
from codesign.ir.expr import Access, Binary, BinaryOp, Const, Expr, ReduceOp, Select, Unary, UnaryOp
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
from codesign.ir.interpreter import interpret
from codesign.ir.parser import parse_cascade
from codesign.ir.printer import print_cascade
from codesign.ir.stats import CascadeStats, EinsumStats, cascade_stats, einsum_stats
from codesign.ir.traits import EinsumClass
from codesign.ir.verify import VerifyError, verify

__all__ = [
    "Access", "Affine", "Binary", "BinaryOp", "Cascade", "CascadeStats", "Const", "DType",
    "Einsum", "EinsumClass", "EinsumStats", "Expr", "FloorDiv", "Gathered", "IndexExpr", "Mod",
    "QuantFormat", "Quantization", "ReduceOp",
    "Role", "Select", "SparseFormat", "Sparsity", "TensorSpec", "Unary", "UnaryOp",
    "VerifyError", "cascade_stats",
    "einsum_stats", "interpret", "parse_cascade", "print_cascade", "verify",
]  # fmt: skip
