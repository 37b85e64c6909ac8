"""The preset library: every bundled hardware card, addressable by name, shipped as package data.

``codesign/hwmodels/data/hw/`` (a link to ``examples/hw`` in the repository; real files in a
built wheel) holds the cards, GPU/CPU devices under ``gpu/`` and energy tables under ``ert/``.
A card's name is its file stem (``eyeriss_like``, ``a100_40g``); a few short aliases (``a100``,
``h100``) name GPU devices.
Paths inside a card (``energy_table:``, ``host:``) resolve against the card's own folder first,
then against the library, so a card copied out of it keeps working.
"""

from __future__ import annotations

from pathlib import Path

from codesign.errors import InputError

PRESET_DIR = Path(__file__).resolve().parent / "data" / "hw"
GPU_PRESET_DIR = PRESET_DIR / "gpu"

# Short names a user types (``--hw a100``) for device files whose stem is longer.
ALIASES = {
    "a100": "a100_40g", "a100_40gb": "a100_40g", "a100_sxm": "a100_40g",
    "a100_80gb": "a100_80g", "h100": "h100_sxm", "h100_fp16": "h100_sxm", "h100_sxm5": "h100_sxm",
    "rtx_3090": "rtx3090", "3090": "rtx3090", "l40_fp16": "l40",
}  # fmt: skip

_CARD_SUFFIXES = (".yaml", ".yml", ".cfg")


def preset_key(name: str) -> str:
    """``A100-80G`` -> ``a100_80g``: the spelling presets are looked up by."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _cards(root: Path) -> dict[str, Path]:
    folders = (root, root / "gpu")
    return {p.stem: p for folder in folders for p in sorted(folder.glob("*.yaml"))}


def preset_names(root: Path = PRESET_DIR) -> tuple[str, ...]:
    """Every preset name: the card stems and the aliases, sorted."""
    return tuple(sorted({*_cards(root), *ALIASES}))


def preset_path(name: str, root: Path = PRESET_DIR) -> Path | None:
    """The card a preset name stands for (a stem wins over an alias), None if unknown."""
    cards = _cards(root)
    key = preset_key(name)
    return cards.get(key) or cards.get(ALIASES.get(key, ""))


def is_card_path(text: str) -> bool:
    """Whether ``--hw TEXT`` names a file rather than a preset."""
    path = Path(text)
    return path.suffix.lower() in _CARD_SUFFIXES or path.is_file() or "/" in text


def resolve_card(text: str | Path, root: Path = PRESET_DIR) -> Path:
    """``--hw`` resolution: an existing file, else a preset name; InputError naming both."""
    path = Path(text)
    if path.is_file():
        return path
    if is_card_path(str(text)):
        what = (
            "is a directory, expected a hardware card file"
            if path.is_dir()
            else "no such hardware file"
        )
        raise InputError(f"{text}: {what}")
    found = preset_path(str(text), root)
    if found is None and path.is_dir():
        raise InputError(f"{text}: is a directory, expected a hardware card file or a preset name")
    if found is None:
        raise InputError(
            f"unknown hardware {str(text)!r}: not a file, and not a preset "
            f"(known: {', '.join(preset_names(root))})"
        )
    return found


def resolve_relative(card: Path, relative: str, root: Path = PRESET_DIR) -> Path | None:
    """A path named inside ``card``: next to the card first, then in the preset library (and
    its ``gpu/`` folder, for a bare device file name); None when neither exists."""
    candidates = (card.parent / relative, root / relative, root / "gpu" / relative)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None
