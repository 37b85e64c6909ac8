"""YAML at the boundary: parse, validate with pydantic, and turn errors into one-line InputErrors.

A pydantic error location such as ``("levels", 2, "size_words")`` is mapped back to the YAML
node that produced it, so the message names ``file:line`` and the field path.

Checks every schema gets here, before pydantic sees the data: the file is UTF-8, no mapping
repeats a key (YAML would silently keep the last), every number is finite and at most
`MAX_MAGNITUDE` in size (larger ones overflow the cost models), and a YAML boolean is never
taken for a number (``word_bits: true`` is not 1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from codesign.errors import InputError, read_utf8
from codesign.limits import check_yaml_expansion

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

MAX_MAGNITUDE = 1e15
"""Largest absolute number a hardware file may hold (bytes of DRAM, TOPS, pJ all fit)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _words_for_booleans(value: Any) -> Any:
    """`value` with every boolean as its YAML word: a bool field still accepts ``"true"``, a
    number field refuses it (pydantic would otherwise read ``word_bits: true`` as 1)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return {k: _words_for_booleans(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_words_for_booleans(v) for v in value]
    return value


def _bad_number(value: Any, loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], str] | None:
    """The first non-finite or out-of-range number in validated data, with its location."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return loc, f"{value} is not a finite number"
        if abs(value) > MAX_MAGNITUDE:
            return loc, f"{value:g} is out of range (at most {MAX_MAGNITUDE:g} in size)"
        return None
    items: list[tuple[int | str, Any]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    for key, item in items:
        found = _bad_number(item, (*loc, key))
        if found is not None:
            return found
    return None


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node on ``loc`` that exists."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            key_node = next(k for k, v in node.value if v is match)
            node, line = match, key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                break
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("levels", 2, "size_words")`` -> ``levels[2].size_words``."""
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "<root>"


def load_validated(path: str | Path, model: type[ModelT]) -> ModelT:
    """Parse ``path`` and validate it into ``model``; every failure is a one-line InputError."""
    path = Path(path)
    text = read_utf8(path)
    try:
        root = yaml.compose(text)
        check_yaml_expansion(root, path)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise InputError(f"{where}: {problem}") from error
    try:
        validated = model.model_validate(_words_for_booleans(data) if data is not None else {})
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        loc = tuple(key for key in first["loc"] if not str(key).startswith("function-"))
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line is not None else str(path)
        message = " ".join(str(first["msg"]).split())
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise InputError(f"{where}: {field_path(loc)}: {message}{more}") from error
    # numbers are checked after validation, so that a number written as a string counts too
    bad = _bad_number(validated.model_dump(), ())
    if bad is not None:
        raise input_error_at(path, root, *bad)
    return validated


def check_numbers(path: str | Path, validated: pydantic.BaseModel) -> None:
    """InputError at the first non-finite or out-of-range number of a validated card (for
    loaders that validate a second time, e.g. after reading ``family:``)."""
    bad = _bad_number(validated.model_dump(), ())
    if bad is not None:
        raise input_error(path, *bad)


def input_error_at(
    path: str | Path, root: yaml.Node | None, loc: tuple[int | str, ...], message: str
) -> InputError:
    """A one-line InputError at `loc` of the composed YAML `root`."""
    line = _line_of(root, loc)
    where = f"{path}:{line}" if line is not None else str(path)
    return InputError(f"{where}: {field_path(loc)}: {message}")


def input_error(path: str | Path, loc: tuple[int | str, ...], message: str) -> InputError:
    """A one-line InputError for a semantic problem found after schema validation."""
    try:
        root = yaml.compose(read_utf8(path))
    except (InputError, yaml.YAMLError):
        root = None
    return input_error_at(path, root, loc, message)
