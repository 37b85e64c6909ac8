"""Parser for the text form written by `codesign.ir.printer` (see its docstring for notation)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesign.errors import InputError
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
from codesign.ir.groups import FusedGroup, GroupKind
from codesign.ir.index import Affine, FloorDiv, Gathered, IndexExpr, Mod
from codesign.ir.printer import PRECEDENCE

_TOKEN = re.compile(
    r"\s*(?:(?P<float>\d+\.\d*(?:[eE][+-]?\d+)?)|(?P<int>\d+)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>//|==|!=|<=|>=|[-+*/%<>()\[\]{}:,=]))"
)
_REDUCE = {op.value: op for op in ReduceOp}
_UNARY = {op.value: op for op in UnaryOp}
_CALL_BINARY = {op.value: op for op in BinaryOp if not op.infix}
_INFIX = {op.value: op for op in BinaryOp if op.infix}
_ROLES = {role.value: role for role in Role}
_DTYPES = {d.value: d for d in DType}
_FORMATS = {f.value: f for f in QuantFormat}
_SPARSE_FORMATS = {f.value: f for f in SparseFormat}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    line: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        pos = 0
        while pos < len(line):
            if line[pos:].strip() == "":
                break
            m = _TOKEN.match(line, pos)
            if m is None or m.end() == pos:
                raise InputError(f"line {lineno}: unexpected character {line[pos:].strip()[0]!r}")
            kind = m.lastgroup or "op"
            tokens.append(_Tok(kind, m.group(kind), lineno))
            pos = m.end()
    tokens.append(_Tok("eof", "", len(text.splitlines()) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.pos = 0

    # -- token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def peek(self, offset: int = 1) -> _Tok:
        return self.toks[min(self.pos + offset, len(self.toks) - 1)]

    def error(self, message: str) -> InputError:
        return InputError(f"line {self.tok.line}: {message} (at {self.tok.text!r})")

    def take(self, text: str | None = None, kind: str | None = None) -> _Tok:
        tok = self.tok
        if (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            raise self.error(f"expected {text or kind}")
        self.pos += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.tok.text == text and self.tok.kind in ("op", "ident"):
            self.pos += 1
            return True
        return False

    def integer(self) -> int:
        sign = -1 if self.accept("-") else 1
        return sign * int(self.take(kind="int").text)

    # -- grammar
    def cascade(self) -> Cascade:
        self.take("cascade")
        name = self.take(kind="ident").text
        self.take("{")
        tensors: list[TensorSpec] = []
        while self.tok.kind == "ident" and self.tok.text in _ROLES and self.peek().kind == "ident":
            tensors.append(self.tensor())
        shapes = {t.name: t.shape for t in tensors}
        einsums: list[Einsum] = []
        groups: list[FusedGroup] = []
        while not self.accept("}"):
            if self.tok.text == "group" and self.peek().kind == "ident":
                groups.append(self.group())
            else:
                einsums.append(self.einsum(shapes))
        self.take(kind="eof")
        return Cascade(name, tuple(tensors), tuple(einsums), tuple(groups))

    def group(self) -> FusedGroup:
        """``group NAME (KIND) [e1, e2] on_chip [t1]`` (see `codesign.ir.groups`)."""
        self.take("group")
        name = self.take(kind="ident").text
        self.take("(")
        kind_tok = self.take(kind="ident")
        kinds = {k.value: k for k in GroupKind}
        if kind_tok.text not in kinds:
            raise InputError(
                f"line {kind_tok.line}: unknown group kind {kind_tok.text!r} "
                f"(known: {', '.join(kinds)})"
            )
        self.take(")")
        einsums = self.name_list()
        on_chip: tuple[str, ...] = ()
        if self.tok.text == "on_chip" and self.peek().text == "[":
            self.take("on_chip")
            on_chip = self.name_list()
        return FusedGroup(name, kinds[kind_tok.text], einsums, on_chip)

    def name_list(self) -> tuple[str, ...]:
        self.take("[")
        names: list[str] = []
        while not self.accept("]"):
            if names:
                self.take(",")
            names.append(self.take(kind="ident").text)
        return tuple(names)

    def tensor(self) -> TensorSpec:
        role = _ROLES[self.take(kind="ident").text]
        name = self.take(kind="ident").text
        self.take(":")
        dtype_name = self.take(kind="ident").text
        if dtype_name not in _DTYPES:
            raise self.error(f"unknown dtype {dtype_name}")
        self.take("[")
        ranks: list[str] = []
        shape: list[int] = []
        while not self.accept("]"):
            if ranks:
                self.take(",")
            ranks.append(self.take(kind="ident").text)
            self.take("=")
            shape.append(self.integer())
        quant = None
        if self.tok.text == "quant" and self.peek().text == "{":
            quant = self.quant()
        sparse = None
        if self.tok.text == "sparse" and self.peek().text == "{":
            sparse = self.sparse()
        return TensorSpec(
            name, tuple(ranks), tuple(shape), _DTYPES[dtype_name], role, quant=quant, sparse=sparse
        )

    def sparse(self) -> Sparsity:
        """``sparse{format=F,density=D,n=N,m=M,axis=A}`` (printer's form)."""
        self.take("sparse")
        self.take("{")
        values: dict[str, str] = {}
        while not self.accept("}"):
            if values:
                self.take(",")
            key = self.take(kind="ident").text
            self.take("=")
            values[key] = self.take().text
        unknown = set(values) - {"format", "density", "n", "m", "axis"}
        if unknown or "format" not in values or "density" not in values:
            raise self.error(f"sparse needs format=... and density=..., unknown {sorted(unknown)}")
        if values["format"] not in _SPARSE_FORMATS:
            raise self.error(f"unknown sparse format {values['format']!r}")
        try:
            density = float(values["density"])
            ints = {k: int(values[k]) for k in ("n", "m", "axis") if k in values}
        except ValueError:
            raise self.error("sparse density must be a number and n/m/axis integers") from None
        return Sparsity(_SPARSE_FORMATS[values["format"]], density, **ints)

    def quant(self) -> Quantization:
        """``quant{format=F,axis=A,group=G,scale=DTYPE,zero_point=true}`` (printer's form)."""
        self.take("quant")
        self.take("{")
        values: dict[str, _Tok] = {}
        while not self.accept("}"):
            if values:
                self.take(",")
            key = self.take(kind="ident").text
            self.take("=")
            values[key] = self.take()
        unknown = set(values) - {"format", "axis", "group", "scale", "zero_point"}
        if unknown or "format" not in values:
            raise self.error(f"quant needs format=..., unknown field(s) {sorted(unknown)}")
        fmt, scale = values["format"].text, values.get("scale")
        if fmt not in _FORMATS or (scale is not None and scale.text not in _DTYPES):
            raise self.error(f"bad quant format {fmt!r} or scale dtype")
        axis, group = values.get("axis"), values.get("group")
        return Quantization(
            _FORMATS[fmt],
            axis=None if axis is None else int(axis.text),
            group_size=None if group is None else int(group.text),
            scale_dtype=DType.F16 if scale is None else _DTYPES[scale.text],
            zero_point=values.get("zero_point", _Tok("ident", "false", 0)).text == "true",
        )

    def einsum(self, shapes: dict[str, tuple[int, ...]]) -> Einsum:
        name = self.take(kind="ident").text
        op = ""
        if self.accept("("):
            op = self.take(kind="ident").text
            self.take(")")
        self.take(":")
        output = self.access()
        self.take("=")
        extents: dict[str, int] = {}
        shape = shapes.get(output.tensor, ())
        for index, dim in zip(output.indices, shape, strict=False):
            if isinstance(index, Affine) and index.plain_var is not None:
                extents.setdefault(index.plain_var, dim)
        reduce: ReduceOp | None = None
        reduced: list[str] = []
        if self.tok.text in _REDUCE and self.peek().text == "[":
            reduce = _REDUCE[self.take().text]
            self.take("[")
            while not self.accept("]"):
                if reduced:
                    self.take(",")
                var = self.take(kind="ident").text
                self.take(":")
                extents[var] = self.integer()
                reduced.append(var)
        body = self.expr(0)
        if self.accept("over"):
            self.take("{")
            first = True
            while not self.accept("}"):
                if not first:
                    self.take(",")
                first = False
                var = self.take(kind="ident").text
                self.take(":")
                extents[var] = self.integer()
        try:
            return Einsum.build(name, output, body, extents, reduce, tuple(reduced), op)
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def access(self) -> Access:
        tensor = self.take(kind="ident").text
        self.take("[")
        indices: list[IndexExpr] = []
        while not self.accept("]"):
            if indices:
                self.take(",")
            indices.append(self.index())
        return Access(tensor, tuple(indices))

    def index(self) -> IndexExpr:
        if self.tok.kind == "ident" and self.peek().text == "[":
            inner = self.access()
            return Gathered(inner.tensor, inner.indices)
        if self.accept("("):
            arg = self.index()
            if isinstance(arg, Gathered):
                raise self.error("a gathered index cannot be divided")
            self.take(")")
            if self.accept("//"):
                return FloorDiv(arg, self.integer())
            self.take("%")
            return Mod(arg, self.integer())
        return self.affine()

    def affine(self) -> Affine:
        terms: list[tuple[str, int]] = []
        const = 0
        first = True
        while True:
            sign = 1
            if self.accept("-"):
                sign = -1
            elif not first and not self.accept("+"):
                break
            first = False
            if self.tok.kind == "int":
                value = int(self.take().text)
                if self.tok.kind == "ident":
                    terms.append((self.take().text, sign * value))
                else:
                    const += sign * value
            else:
                terms.append((self.take(kind="ident").text, sign))
        return Affine(tuple(terms), const)

    def expr(self, min_prec: int) -> Expr:
        lhs = self.unary()
        while True:
            tok = self.tok
            op = _INFIX.get(tok.text) if tok.kind in ("op", "ident") else None
            if op is None or PRECEDENCE[op] < min_prec:
                return lhs
            self.pos += 1
            rhs = self.expr(PRECEDENCE[op] + 1)
            lhs = Binary(op, lhs, rhs)

    def unary(self) -> Expr:
        if self.accept("-"):
            if self.tok.kind in ("float", "int") or self.tok.text == "inf":
                return Const(-self.number())
            return Unary(UnaryOp.NEG, self.unary())
        return self.primary()

    def number(self) -> float:
        tok = self.take()
        if tok.kind in ("float", "int") or tok.text in ("inf", "nan"):
            return float(tok.text)
        raise self.error("expected a number")

    def primary(self) -> Expr:
        tok = self.tok
        if self.accept("("):
            inner = self.expr(0)
            self.take(")")
            return inner
        if tok.kind in ("float", "int") or (tok.text in ("inf", "nan") and self.peek().text != "["):
            return Const(self.number())
        if tok.kind != "ident":
            raise self.error("expected an expression")
        if self.peek().text == "[":
            return self.access()
        if self.peek().text == "(":
            self.pos += 2
            args = [self.expr(0)]
            while self.accept(","):
                args.append(self.expr(0))
            self.take(")")
            return self._call(tok, args)
        raise self.error("expected an access, a constant or a call")

    def _call(self, tok: _Tok, args: list[Expr]) -> Expr:
        name = tok.text
        arity = 1 if name in _UNARY else 2 if name in _CALL_BINARY else 3 if name == "select" else 0
        if arity == 0:
            raise InputError(f"line {tok.line}: unknown function {name!r}")
        if len(args) != arity:
            raise InputError(f"line {tok.line}: {name} takes {arity} argument(s)")
        if name in _UNARY:
            return Unary(_UNARY[name], args[0])
        if name in _CALL_BINARY:
            return Binary(_CALL_BINARY[name], args[0], args[1])
        return Select(args[0], args[1], args[2])


def parse_cascade(text: str) -> Cascade:
    """Parse the printed form of a Cascade; raises InputError with the line of a fault."""
    return _Parser(text).cascade()
