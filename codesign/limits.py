"""Memory limits: work whose arrays would not fit is refused with its estimate, up front.

Frontends and the interpreter estimate what they are about to allocate and call
`check_memory` first, so an oversized request (``rmat:scale=30``, a 20000² constant, ``run`` on
a 10^12-element GEMM) is a one-line `InputError` instead of a MemoryError or a swapping machine.
The limit is an explicit argument; `DEFAULT_MEMORY_LIMIT_BYTES` is its default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from codesign.errors import InputError

if TYPE_CHECKING:
    import yaml

DEFAULT_MEMORY_LIMIT_BYTES = 8 * 2**30

MAX_YAML_NODES = 1_000_000
"""Most nodes a YAML file may hold once its aliases are expanded (the largest bundled card has
a few hundred); nested aliases ("billion laughs") would otherwise expand exponentially."""


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


def check_yaml_expansion(root: yaml.Node | None, path: str | Path) -> None:
    """InputError when the composed YAML `root` of `path` expands (every alias at every use)
    to more than `MAX_YAML_NODES` nodes, or an alias refers to a node that contains it."""
    import yaml

    too_many = MAX_YAML_NODES + 1
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = too_many  # until done: a node reached inside itself is recursive
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        sizes[id(node)] = min(total, too_many)
        return sizes[id(node)]

    if root is not None and size(root) > MAX_YAML_NODES:
        raise InputError(
            f"{path}: its aliases expand to more than {MAX_YAML_NODES:,} YAML nodes "
            "(or refer to themselves)"
        )
