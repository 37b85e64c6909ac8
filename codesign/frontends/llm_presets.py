"""The bundled LLM presets: Hugging Face ``config.json`` files in ``frontends/llm_configs``
(package data), each named after its file, and `resolve_llm`, the CLI's ``--llm`` lookup."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from codesign.errors import InputError
from codesign.frontends.hf_config import config_path, load_hf_config
from codesign.frontends.llm_config import LLMConfig

CONFIG_DIR = Path(__file__).resolve().parent / "llm_configs"


@cache
def _bundled() -> dict[str, LLMConfig]:
    return {p.stem: load_hf_config(p, name=p.stem) for p in sorted(CONFIG_DIR.glob("*.json"))}


def preset_names() -> tuple[str, ...]:
    return tuple(_bundled())


def presets() -> dict[str, LLMConfig]:
    """Every bundled preset by name (a fresh dict; the configs are frozen)."""
    return dict(_bundled())


def preset(name: str) -> LLMConfig:
    """The preset called `name` (case-insensitive); InputError lists the known names."""
    key = name.strip().lower()
    known = _bundled()
    if key not in known:
        raise InputError(
            f"unknown LLM {name!r}: neither a preset nor a config.json/model directory "
            f"(known: {', '.join(known)})"
        )
    return known[key]


def resolve_llm(spec: str) -> LLMConfig:
    """``--llm``: a config.json path, a directory holding one, or a preset name."""
    path = config_path(spec)
    if path is not None and (path.is_file() or Path(spec).exists() or "/" in spec):
        return load_hf_config(spec)
    return preset(spec)
