"""Timeloop v0.4 architectures (the ``nodes`` tree or the flattened ``subtree``/``local`` form)
read into storage levels with instance meshes; shared YAML helpers of the Timeloop importer
(`codesign.frontends.timeloop` documents the translation)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from codesign.errors import InputError
from codesign.limits import check_yaml_expansion


@dataclass(frozen=True, slots=True)
class Storage:
    """One Timeloop storage component, with its instance mesh (whole-chip instances)."""

    name: str
    dram: bool
    size_words: int | None
    word_bits: int
    block_words: int
    read_bandwidth: float | None
    write_bandwidth: float | None
    mesh_x: int
    mesh_y: int
    keep: tuple[str, ...] | None  # constraints.dataspace.keep
    bypass: tuple[str, ...]
    cluster_size: int  # instances sharing one physical access (Timeloop's cluster_size)


@dataclass(frozen=True, slots=True)
class TimeloopArch:
    """Storage levels outermost first, the compute, and where each container sits: the index
    of the storage level directly above it (spatial mapping entries name containers)."""

    name: str
    technology_nm: float
    levels: tuple[Storage, ...]
    compute_name: str
    mac_bits: int
    compute_mesh: tuple[int, int]
    container_parent: tuple[tuple[str, int], ...]


# -- YAML with Timeloop's tags ---------------------------------------------------------------
class _TaggedLoader(yaml.SafeLoader):
    """SafeLoader that reads ``!Container {...}`` as a mapping with ``_tag: Container``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        data = loader.construct_mapping(node, deep=True)
        return {**data, "_tag": suffix}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_TaggedLoader.add_multi_constructor("!", _tagged)


def read_section(path: str | Path, key: str) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
        check_yaml_expansion(yaml.compose(text), path)
        data = yaml.load(text, Loader=_TaggedLoader)  # noqa: S506 (safe subclass)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or key not in data:
        raise InputError(f"{path}: no top-level '{key}:'")
    return data[key]


def field_error(path: str | Path, where: str, message: str) -> InputError:
    return InputError(f"{path}: {where}: {message}")


# -- architecture ----------------------------------------------------------------------------
_RANGE = re.compile(r"^(?P<name>[^\[]+)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")


def split_range(name: str) -> tuple[str, int]:
    match = _RANGE.match(name)
    if match is None:
        return name, 1
    return match["name"], int(match["hi"]) - int(match["lo"]) + 1


def _int_attr(attrs: dict, *keys: str) -> int | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def _is_compute(component: dict) -> bool:
    cls = str(component.get("class", "")).lower()
    return "mac" in cls or cls in ("compute", "alu", "multiplier")


def _technology_nm(attrs: dict, default: float) -> float:
    tech = attrs.get("technology")
    if isinstance(tech, str):
        match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*nm\s*$", tech)
        if match:
            return float(match[1])
    if isinstance(tech, (int, float)):
        return float(tech)
    return default


class _ArchWalk:
    """Collects storage levels and the compute while walking either arch form."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.levels: list[Storage] = []
        self.compute: tuple[str, int, tuple[int, int]] | None = None
        self.container_parent: list[tuple[str, int]] = []
        self.technology_nm = 45.0
        self.name = ""

    def component(self, comp: dict, mesh: tuple[int, int], where: str) -> None:
        attrs = comp.get("attributes") or {}
        name, count = split_range(str(comp.get("name", "")))
        if not name:
            raise field_error(self.path, where, "a component needs a name")
        if str(comp.get("class")) == "dummy_storage":  # flattened form's inter_X_spatial
            for alias in {name, re.sub(r"^inter_(.*)_spatial$", r"\1", name)}:
                self.container_parent.append((alias, len(self.levels) - 1))
            return
        mx, my = mesh
        own = comp.get("spatial") or {}
        mx *= int(own.get("meshX", 1))
        my *= int(own.get("meshY", 1))
        if "meshX" in attrs or "meshY" in attrs:  # flattened form: the whole-chip mesh
            mx, my = _int_attr(attrs, "meshX") or 1, _int_attr(attrs, "meshY") or 1
        elif count > mx * my:  # instances only from the name: a row
            mx, my = count, 1
        if _is_compute(comp):
            if self.compute is not None:
                raise field_error(self.path, where, f"a second compute component {name!r}")
            bits = _int_attr(attrs, "multiplier_width", "datawidth", "width", "word-bits") or 8
            self.compute = (name, bits, (mx, my))
            return
        if self.compute is not None:
            raise field_error(self.path, where, f"storage {name!r} below the compute")
        word_bits = _int_attr(attrs, "datawidth", "word-bits", "word_width", "word_bits") or 16
        block = _int_attr(attrs, "block-size", "block_size", "n_words")
        cluster = _int_attr(attrs, "cluster_size", "cluster-size") or 1
        if block is None:
            width = _int_attr(attrs, "width", "memory_width")
            block = max(1, width // (word_bits * cluster)) if width else 1
        dram = "dram" in str(comp.get("class", "")).lower() or attrs.get("technology") == "DRAM"
        depth = _int_attr(attrs, "depth", "memory_depth")
        size = _int_attr(attrs, "entries", "size")
        if size is None and depth is not None:
            size = depth * block
        if size is None and not dram:
            raise field_error(self.path, where, f"storage {name!r} needs depth (or entries)")
        dataspace = (comp.get("constraints") or {}).get("dataspace") or {}
        keep = dataspace.get("keep")
        self.levels.append(
            Storage(
                name=name,
                dram=dram,
                size_words=None if dram else size,
                word_bits=word_bits,
                block_words=block,
                read_bandwidth=attrs.get("read_bandwidth"),
                write_bandwidth=attrs.get("write_bandwidth"),
                mesh_x=mx,
                mesh_y=my,
                keep=None if keep is None else tuple(keep),
                bypass=tuple(dataspace.get("bypass") or ()),
                cluster_size=cluster,
            )
        )

    def nodes(self, nodes: list, mesh: tuple[int, int], where: str) -> tuple[int, int]:
        for index, node in enumerate(nodes):
            here = f"{where}[{index}]"
            if not isinstance(node, dict):
                raise field_error(self.path, here, "expected a node mapping")
            tag = node.get("_tag", "Component" if "class" in node else "Container")
            if tag in ("Parallel", "Hierarchical"):
                inner = self.nodes(node.get("nodes") or [], mesh, f"{here}.nodes")
                mesh = inner if tag == "Hierarchical" else mesh
            elif tag == "Container":
                attrs = node.get("attributes") or {}
                self.technology_nm = _technology_nm(attrs, self.technology_nm)
                self.name = self.name or str(node.get("name", ""))
                self.container_parent.append((str(node.get("name")), len(self.levels) - 1))
                spatial = node.get("spatial") or {}
                mesh = (mesh[0] * int(spatial.get("meshX", 1)),
                        mesh[1] * int(spatial.get("meshY", 1)))  # fmt: skip
            elif tag == "Component":
                self.component(node, mesh, here)
            elif tag != "Nothing":
                raise field_error(self.path, here, f"unknown node type !{tag}")
        return mesh

    def subtree(self, trees: list, count: int, where: str) -> None:
        for index, tree in enumerate(trees):
            here = f"{where}[{index}]"
            name, n = split_range(str(tree.get("name", "")))
            self.technology_nm = _technology_nm(tree.get("attributes") or {}, self.technology_nm)
            self.name = self.name or name
            self.container_parent.append((name, len(self.levels) - 1))
            for j, comp in enumerate(tree.get("local") or []):
                self.component(comp, (1, 1), f"{here}.local[{j}]")
            self.subtree(tree.get("subtree") or [], count * n, f"{here}.subtree")


def read_arch(path: str | Path) -> TimeloopArch:
    """A Timeloop v0.4 architecture file (tree ``nodes`` or flattened ``subtree``)."""
    arch = read_section(path, "architecture")
    if not isinstance(arch, dict):
        raise field_error(path, "architecture", "expected a mapping")
    walk = _ArchWalk(path)
    if "nodes" in arch:
        walk.nodes(arch["nodes"], (1, 1), "architecture.nodes")
    elif "subtree" in arch:
        walk.subtree(arch["subtree"], 1, "architecture.subtree")
    else:
        raise field_error(path, "architecture", "expected nodes: or subtree:")
    levels = _with_flat_constraints(path, walk.levels)
    if walk.compute is None:
        raise field_error(path, "architecture", "no compute component (class *mac*)")
    if not walk.levels:
        raise field_error(path, "architecture", "no storage component")
    name, bits, mesh = walk.compute
    stem = Path(path).name.split(".")[0]
    return TimeloopArch(
        name=stem if stem not in ("arch", "") else Path(path).parent.name or walk.name,
        technology_nm=walk.technology_nm,
        levels=levels,
        compute_name=name,
        mac_bits=bits,
        compute_mesh=mesh,
        container_parent=tuple(walk.container_parent),
    )


def _with_flat_constraints(path: str | Path, levels: list[Storage]) -> tuple[Storage, ...]:
    """Levels with the flattened form's ``architecture_constraints.targets`` dataspace entries
    (the ``nodes`` form carries them on the components)."""
    try:
        targets = (read_section(path, "architecture_constraints") or {}).get("targets") or []
    except InputError:
        return tuple(levels)
    by_name = {level.name: level for level in levels}
    for target in targets:
        level = by_name.get(str(target.get("target")))
        if level is None or target.get("type") not in ("dataspace", "datatype", "bypass"):
            continue
        keep = target.get("keep")
        by_name[level.name] = replace(
            level,
            keep=level.keep if keep is None else tuple(keep),
            bypass=tuple(target.get("bypass") or level.bypass),
        )
    return tuple(by_name[level.name] for level in levels)
