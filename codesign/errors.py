"""Errors that reach the user.

`InputError` means bad user input (a malformed file, an unknown field, an unsupported op, an
impossible constraint).  The CLI prints ``str(error)`` on one line and exits with status 2; every
message names the file, field or node at fault.
"""


class InputError(Exception):
    """Bad user input; the CLI prints it on one line and exits 2."""
