"""Errors that reach the user.

`InputError` means bad user input (a malformed file, an unknown field, an unsupported op, an
impossible constraint).  The CLI prints ``str(error)`` on one line and exits with status 2; every
message names the file, field or node at fault.  The library raises the same errors, so a
caller of ``codesign.load`` or ``codesign.interpret`` sees the same one-line messages.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input; the CLI prints it on one line and exits 2."""


def read_utf8(path: str | Path) -> str:
    """The text of a user's file; a one-line InputError when unreadable or not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start})") from None
