"""Pass registry and the pipeline text syntax.

A pass is a pure function ``(Cascade, options, PassContext) -> Cascade`` registered under a name
with a frozen options dataclass.  Pipelines are spelled as text, as in MLIR and xDSL::

    quantize{format=int,bits=4,group=128},quantize-activations{bits=8},canonicalize

Each item is a registered pass name with optional ``{key=value,...}``.  Values are typed from
the options dataclass fields: ``int``, ``float``, ``bool`` (true/false), ``str`` (bare or
quoted), enums by value (``scale=f16``), tuples of ints as ``[2,3,4]``, optionals as ``none``.
Every fault raises `InputError` with one line naming the pass and, for unknown names, the list
of known ones (as TVM's pipeline registry does).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from codesign.errors import InputError
from codesign.ir.cascade import Cascade
from codesign.ir.inputs import sample_inputs

F = TypeVar("F", bound=Callable[..., Cascade])


@dataclass(frozen=True, slots=True)
class PassContext:
    """What a pass may read besides the cascade and its options: the calibration inputs.

    `inputs` maps input tensor names to arrays; when None a pass that needs data calibrates on
    `codesign.ir.inputs.sample_inputs(cascade, seed)`.
    """

    inputs: Mapping[str, np.ndarray] | None = None
    seed: int = 0

    def inputs_for(self, cascade: Cascade) -> dict[str, np.ndarray]:
        if self.inputs is not None:
            return dict(self.inputs)
        return sample_inputs(cascade, self.seed)


PassFn = Callable[[Cascade, Any, PassContext], Cascade]


@dataclass(frozen=True, slots=True)
class RegisteredPass:
    """A pass: its name, options dataclass, function and one-line summary."""

    name: str
    options: type
    run: PassFn
    summary: str


# The pass table (rule 9: extend through a registry keyed by name).  Filled at import time by
# `register_pass`; `codesign.passes` imports every pass module so the table is complete.
PASSES: dict[str, RegisteredPass] = {}

_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")


def register_pass(name: str, options: type) -> Callable[[F], F]:
    """Decorator registering ``fn(cascade, options, context) -> Cascade`` under `name`."""
    if not _NAME.match(name):
        raise ValueError(f"pass name {name!r} must match {_NAME.pattern}")
    params = getattr(options, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"pass {name}: options {options.__name__} must be a frozen dataclass")

    def wrap(fn: F) -> F:
        if name in PASSES:
            raise ValueError(f"pass {name} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        PASSES[name] = RegisteredPass(name, options, fn, summary)
        return fn

    return wrap


def known_passes() -> tuple[str, ...]:
    return tuple(sorted(PASSES))


def lookup_pass(name: str) -> RegisteredPass:
    """The registered pass; InputError listing the known ones otherwise."""
    try:
        return PASSES[name]
    except KeyError:
        raise InputError(
            f"unknown pass {name!r} (known passes: {', '.join(known_passes())})"
        ) from None


@dataclass(frozen=True, slots=True)
class PassInvocation:
    """One pipeline item: a registered pass name and its options instance."""

    name: str
    options: Any

    def __str__(self) -> str:
        changed = [
            f"{f.name}={_format_value(getattr(self.options, f.name))}"
            for f in dataclasses.fields(self.options)
            if getattr(self.options, f.name) != _default(f)
        ]
        return self.name + ("{" + ",".join(changed) + "}" if changed else "")


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A sequence of pass invocations; `str()` gives the canonical text `parse_pipeline` reads."""

    passes: tuple[PassInvocation, ...]

    def __str__(self) -> str:
        return ",".join(str(p) for p in self.passes)


def make_pass(name: str, **options: Any) -> PassInvocation:
    """A typed invocation from Python (no text): ``make_pass("quantize", bits=4)``."""
    registered = lookup_pass(name)
    try:
        return PassInvocation(name, registered.options(**options))
    except (TypeError, ValueError) as exc:
        raise InputError(f"pass {name}: {exc}") from None


# -- text syntax -----------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<quoted>\"[^\"]*\"|'[^']*')|(?P<punct>[{}=,\[\]])|(?P<word>[^\s{}=,\[\]\"']+))"
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InputError(f"pipeline {text!r}: unexpected {text[pos:].strip()[0]!r}")
        kind = m.lastgroup or "word"
        out.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def parse_pipeline(text: str) -> Pipeline:
    """Parse ``name{key=value,...},name,...``; raises InputError (one line) on any fault."""
    toks = _tokens(text)
    pos = 0

    def fail(message: str) -> InputError:
        where = toks[pos][2] if pos < len(toks) else len(text)
        return InputError(f"pipeline {text!r}: {message} at column {where}")

    def take(expected: str | None = None) -> tuple[str, str, int]:
        nonlocal pos
        if pos >= len(toks):
            raise fail(f"expected {expected or 'more'}, found the end")
        tok = toks[pos]
        if expected is not None and tok[1] != expected:
            raise fail(f"expected {expected!r}, found {tok[1]!r}")
        pos += 1
        return tok

    items: list[PassInvocation] = []
    while pos < len(toks):
        if items:
            take(",")
        kind, name, _ = take()
        if kind != "word":
            raise fail(f"expected a pass name, found {name!r}")
        registered = lookup_pass(name)
        raw: dict[str, str | tuple[str, ...]] = {}
        if pos < len(toks) and toks[pos][1] == "{":
            take("{")
            while toks[pos:] and toks[pos][1] != "}":
                if raw:
                    take(",")
                key = take()[1]
                if key in raw:
                    raise fail(f"option {key!r} of {name} given twice")
                take("=")
                raw[key] = _value_tokens(take, toks, lambda: pos)
            take("}")
        items.append(PassInvocation(name, build_options(registered, raw)))
    if not items:
        raise InputError(f"pipeline {text!r} names no pass")
    return Pipeline(tuple(items))


def _value_tokens(take, toks, here) -> str | tuple[str, ...]:
    """A scalar value, or ``[a,b,...]`` as a tuple of strings."""
    kind, text, _ = take()
    if text != "[":
        return text[1:-1] if kind == "quoted" else text
    values: list[str] = []
    while toks[here() :] and toks[here()][1] != "]":
        if values:
            take(",")
        values.append(take()[1])
    take("]")
    return tuple(values)


def build_options(registered: RegisteredPass, raw: Mapping[str, str | tuple[str, ...]]) -> Any:
    """The options instance from textual values, typed from the dataclass fields."""
    fields = {f.name: f for f in dataclasses.fields(registered.options)}
    hints = typing.get_type_hints(registered.options)
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in fields:
            raise InputError(
                f"pass {registered.name}: unknown option {key!r} "
                f"(options: {', '.join(fields) or 'none'})"
            )
        values[key] = _convert(registered.name, key, hints[key], text)
    try:
        return registered.options(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"pass {registered.name}: {exc}") from None


def _convert(pass_name: str, key: str, hint: Any, text: str | tuple[str, ...]) -> Any:
    def bad(expected: str) -> InputError:
        shown = f"[{','.join(text)}]" if isinstance(text, tuple) else text
        return InputError(f"pass {pass_name}: option {key} expects {expected}, got {shown!r}")

    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        if text == "none":
            return None
        return _convert(pass_name, key, inner[0], text)
    if typing.get_origin(hint) is tuple:
        if not isinstance(text, tuple):
            raise bad(f"a list [{_type_name(args[0])},...]")
        return tuple(_convert(pass_name, key, args[0], t) for t in text)
    if isinstance(text, tuple):
        raise bad(_type_name(hint))
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if hint is int:
            return int(text)
        if hint is float:
            number = float(text)
            if not np.isfinite(number):  # nan/inf are never a meaningful option value
                raise bad("a finite float")
            return number
        if hint is str:
            return text
        if isinstance(hint, type) and issubclass(hint, Enum):
            return hint(text)
    except ValueError:
        raise bad(_type_name(hint)) from None
    raise bad(_type_name(hint))


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "one of " + "|".join(str(m.value) for m in hint)
    return getattr(hint, "__name__", str(hint))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _format_value(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, str) and (not value or re.search(r"[\s{}=,\[\]\"']", value)):
        return repr(value) if '"' in value else f'"{value}"'
    return str(value)
