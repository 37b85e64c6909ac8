"""A design point's hardware: the base card's YAML mapping with the point's values set at their
paths, then loaded by the ordinary loader (so it is validated exactly as a hand-written card).

The YAML is edited as data (never as text).  File references in the card (``energy_table``,
``host``: strings naming a YAML file next to the card) are made absolute; a path that goes
through one edits a copy of the referenced file.  The edited cards are written to a private
temporary directory and loaded from there.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from codesign.errors import InputError

Key = str | int


def _is_file_ref(value: Any, base: Path) -> bool:
    return isinstance(value, str) and value.endswith((".yaml", ".yml")) and (base / value).is_file()


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read hardware ({str(exc).splitlines()[0]})") from None


def _set(
    node: Any, path: tuple[Key, ...], value: Any, base: Path, out_dir: Path, where: str
) -> Any:
    """`node` with `value` at `path`; a string file reference on the way is followed."""
    if not path:
        return value
    if _is_file_ref(node, base):
        ref = (base / node).resolve()
        data = _set(_read(ref), path, value, ref.parent, out_dir, where)
        data = _absolutize(data, ref.parent)
        target = Path(tempfile.mkstemp(suffix=".yaml", dir=out_dir)[1])
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        return str(target)
    key, rest = path[0], path[1:]
    if isinstance(node, dict) and isinstance(key, str) and (key in node or not rest):
        node = dict(node)
        node[key] = _set(node.get(key), rest, value, base, out_dir, where)
        return node
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        node = list(node)
        node[key] = _set(node[key], rest, value, base, out_dir, where)
        return node
    raise InputError(f"{where}: no field {key!r} in the hardware card")


def _absolutize(data: Any, base: Path) -> Any:
    """Top-level file references made absolute, so the card loads from anywhere."""
    if not isinstance(data, dict):
        return data
    return {k: str((base / v).resolve()) if _is_file_ref(v, base) else v for k, v in data.items()}


def edited_card(
    base_card: Path, settings: Sequence[tuple[tuple[Key, ...], Any, str]], out_dir: Path
) -> Path:
    """Write the base card with each ``(path, value, where)`` applied; returns its path."""
    data = copy.deepcopy(_read(base_card))
    if not isinstance(data, dict):
        raise InputError(f"{base_card}: a hardware card must be a mapping")
    for path, value, where in settings:
        data = _set(data, path, value, base_card.parent, out_dir, where)
    data = _absolutize(data, base_card.parent)
    target = out_dir / base_card.name
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def load_point_hardware(
    base_card: str, settings: Sequence[tuple[tuple[Key, ...], Any, str]]
) -> Any:
    """The hardware of one design point, loaded by the hardware-family registry."""
    from codesign.hwmodels.registry import load_hardware

    with tempfile.TemporaryDirectory(prefix="codesign-dse-") as tmp:
        card = edited_card(Path(base_card), settings, Path(tmp))
        try:
            return load_hardware(card)
        except InputError as exc:  # name the base card and the point, not the temp file
            text = str(exc).replace(str(card), Path(base_card).name)
            raise InputError(text.replace(tmp + "/", "")) from None
