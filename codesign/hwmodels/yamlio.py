"""YAML at the boundary: parse, validate with pydantic, and turn errors into one-line InputErrors.

A pydantic error location such as ``("levels", 2, "size_words")`` is mapped back to the YAML
node that produced it, so the message names ``file:line`` and the field path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pydantic
import yaml

from codesign.errors import InputError

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


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
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from error
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise InputError(f"{where}: {problem}") from error
    try:
        return model.model_validate(data if data is not None else {})
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        loc = tuple(key for key in first["loc"] if not str(key).startswith("function-"))
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line is not None else str(path)
        message = " ".join(str(first["msg"]).split())
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise InputError(f"{where}: {field_path(loc)}: {message}{more}") from error


def input_error(path: str | Path, loc: tuple[int | str, ...], message: str) -> InputError:
    """A one-line InputError for a semantic problem found after schema validation."""
    try:
        root = yaml.compose(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        root = None
    line = _line_of(root, loc)
    where = f"{path}:{line}" if line is not None else str(path)
    return InputError(f"{where}: {field_path(loc)}: {message}")
