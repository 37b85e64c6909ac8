"""Memory limits: work whose arrays would not fit is refused with its estimate, up front.

Frontends and the interpreter estimate what they are about to allocate and call
`check_memory` first, so an oversized request (``rmat:scale=30``, a 20000² constant, ``run`` on
a 10^12-element GEMM) is a one-line `InputError` instead of a MemoryError or a swapping machine.
The limit is an explicit argument; `DEFAULT_MEMORY_LIMIT_BYTES` is its default.
"""

from __future__ import annotations

from codesign.errors import InputError

DEFAULT_MEMORY_LIMIT_BYTES = 8 * 2**30


def format_bytes(size_bytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.3g} {unit}"
    return f"{size_bytes:.0f} B"


def check_memory(
    estimate_bytes: float, what: str, limit_bytes: float = DEFAULT_MEMORY_LIMIT_BYTES
) -> None:
    """InputError naming `what` when `estimate_bytes` exceeds `limit_bytes`."""
    if estimate_bytes > limit_bytes:
        raise InputError(
            f"{what}: needs about {format_bytes(estimate_bytes)} of memory, more than the "
            f"{format_bytes(limit_bytes)} limit"
        )
