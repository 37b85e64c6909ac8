"""Files the commands write: checked before any work starts, then written atomically.

Every output flag of every command is listed once in `OUTPUT_FLAGS`; `check_outputs` refuses a
directory where a file is wanted, a missing or unwritable parent, an unknown figure format, or
two outputs on one path, with a one-line `InputError` naming the flag -- before the model is
even loaded, so a bad path never leaves other outputs half made.  `write_text` and `staged`
write into a temporary file beside the target and rename it over the target, so a failure
(or Ctrl-C) never leaves a truncated file behind.
"""

from __future__ import annotations

import argparse
import enum
import os
from dataclasses import dataclass
from pathlib import Path

from codesign.atomic import staged, write_bytes, write_text
from codesign.errors import InputError

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


class OutputKind(enum.Enum):
    FILE = "file"  # a file, or '-' for stdout
    FIGURE = "figure"  # a file whose suffix names a figure format
    DIRECTORY = "directory"  # created (with its parents) when missing


@dataclass(frozen=True, slots=True)
class OutputFlag:
    """One output option: its argparse destination, its spelling and what it names."""

    dest: str
    flag: str
    kind: OutputKind


OUTPUT_FLAGS: tuple[OutputFlag, ...] = (
    OutputFlag("json", "--json", OutputKind.FILE),
    OutputFlag("plot", "--plot", OutputKind.FIGURE),
    OutputFlag("mapping_out", "--mapping-out", OutputKind.DIRECTORY),
    OutputFlag("out", "--out", OutputKind.DIRECTORY),
)


def _writable_dir(directory: Path, flag: str, text: str) -> None:
    if not directory.exists():
        raise InputError(f"{flag} {text}: directory {directory} does not exist")
    if not directory.is_dir():
        raise InputError(f"{flag} {text}: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {text}: cannot write in {directory}")


def check_output(text: str, flag: str, kind: OutputKind) -> None:
    """InputError (naming `flag`) unless `text` can be written as an output of `kind`."""
    if text == "-" and kind is OutputKind.FILE:
        return
    if not text.strip():
        raise InputError(f"{flag}: empty path")
    path = Path(text)
    if kind is OutputKind.DIRECTORY:
        if path.exists():
            _writable_dir(path, flag, text)
            return
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        _writable_dir(ancestor, flag, text)
        return
    if path.is_dir():
        raise InputError(f"{flag} {text}: is a directory, expected a file")
    if kind is OutputKind.FIGURE and path.suffix.lower() not in FIGURE_SUFFIXES:
        raise InputError(
            f"{flag} {text}: unknown figure format {path.suffix or '(no suffix)'} "
            f"(expected {', '.join(FIGURE_SUFFIXES)})"
        )
    _writable_dir(path.parent, flag, text)


def check_outputs(args: argparse.Namespace) -> None:
    """Check every output flag the command was given (see `OUTPUT_FLAGS`), and that no two
    outputs name the same path."""
    seen: dict[Path, str] = {}
    for output in OUTPUT_FLAGS:
        text = getattr(args, output.dest, None)
        if not isinstance(text, str):
            continue
        check_output(text, output.flag, output.kind)
        if text == "-":
            continue
        where = Path(text).resolve()
        if where in seen:
            raise InputError(f"{output.flag} {text}: the same path as {seen[where]}")
        seen[where] = output.flag


__all__ = ["check_output", "check_outputs", "staged", "write_bytes", "write_text"]
