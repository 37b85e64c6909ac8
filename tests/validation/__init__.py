"""The validation table: published and peer-tool numbers the tests reproduce.

Each YAML file here holds one source's cases; together they are the project's one table.  Every
case has an ``id``, a ``source`` (paper/table or peer tool, version and how it was run), its
``inputs``, the ``expected`` values and a ``tolerance`` (relative unless stated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_HERE = Path(__file__).parent


def load_cases(name: str) -> list[dict[str, Any]]:
    """The cases of ``tests/validation/<name>.yaml`` (a list, or a mapping with ``cases``)."""
    data = yaml.safe_load((_HERE / f"{name}.yaml").read_text())
    cases = data["cases"] if isinstance(data, dict) else data
    for case in cases:
        missing = {"id", "source"} - set(case)
        if missing:
            raise ValueError(f"{name}.yaml case {case.get('id')!r} lacks {sorted(missing)}")
    return cases


def all_tables() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("*.yaml"))
