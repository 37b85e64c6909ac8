"""Timeloop/Accelergy inputs -> codesign: a problem as a Cascade, and a card, energy table and
mapping as codesign YAML documents (validated by the ordinary loaders, like any hand-written one).

Reads the formats of Accelergy-Project/timeloop-accelergy-exercises:

* architecture v0.4, either the tree of ``nodes`` (``!Container``/``!Component``/``!Parallel``,
  ``spatial: {meshX, meshY}``) or the flattened ``subtree``/``local`` form (instances from
  ``name[1..N]``, mesh from ``meshX``). Storage components become levels outermost first; the
  one component that is not storage (``intmac``, ``fpmac``, ``mac``...: no ``depth``/``width``
  of a memory, classes named *mac*) is the compute.
* block size, as Timeloop's ``BufferLevel::ParseSpecs``: ``block-size``/``block_size``/
  ``n_words`` if given, else ``width / (datawidth * cluster_size)``; capacity ``depth * block``.
  Energies stay per block access (the ERT's numbers); the cost model charges whole blocks.
* problem v0.4 (``shape``: dimensions, data_spaces with projections, coefficients;
  ``instance``): one sum-of-products Einsum. The ``read_write`` dataspace is the output; a
  read-only dataspace named like weights/filter is the weight, else the first one is.
* mapping (a list of ``target``/``type`` entries: ``temporal``/``spatial`` with ``factors``
  ``"C1 M8"`` or ``"R=1 P=16"`` and ``permutation`` innermost first, ``split`` X|Y;
  ``datatype``/``dataspace``/``bypass`` with ``keep``/``bypass``). Spatial entries targeting a
  container (``PE`` or Timeloop's generated ``inter_PE_spatial``) unroll below the storage level
  above that container. Levels without a keep/bypass entry follow the architecture's
  ``constraints.dataspace``, else keep every dataspace (``timeloop-model``'s default).
* ERT (Accelergy's ``ERT.yaml`` output: ``tables`` of ``name: sys.comp[1..N]`` with actions
  read/write/update/leak/compute and ``energy`` in pJ). codesign does not run Accelergy, so the
  ERT the exercise produced is an input.

Dims are lowercased (codesign's loop names); dataspace names are kept, so a mapping may name
them as Timeloop does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from codesign.errors import InputError
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.index import Affine


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


@dataclass(frozen=True, slots=True)
class TimeloopImport:
    """A Timeloop design as codesign inputs: YAML texts for the card, its energy table (file
    ``ert.yaml`` next to the card) and the mapping, and the problem as a Cascade."""

    card_yaml: str
    ert_yaml: str
    mapping_yaml: str
    cascade: Cascade


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


def _read(path: str | Path, key: str) -> Any:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_TaggedLoader)  # noqa: S506 (safe subclass)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or key not in data:
        raise InputError(f"{path}: no top-level '{key}:'")
    return data[key]


def _fail(path: str | Path, where: str, message: str) -> InputError:
    return InputError(f"{path}: {where}: {message}")


# -- architecture ----------------------------------------------------------------------------
_RANGE = re.compile(r"^(?P<name>[^\[]+)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")


def _split_range(name: str) -> tuple[str, int]:
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
        name, count = _split_range(str(comp.get("name", "")))
        if not name:
            raise _fail(self.path, where, "a component needs a name")
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
                raise _fail(self.path, where, f"a second compute component {name!r}")
            bits = _int_attr(attrs, "multiplier_width", "datawidth", "width", "word-bits") or 8
            self.compute = (name, bits, (mx, my))
            return
        if self.compute is not None:
            raise _fail(self.path, where, f"storage {name!r} below the compute")
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
            raise _fail(self.path, where, f"storage {name!r} needs depth (or entries)")
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
                raise _fail(self.path, here, "expected a node mapping")
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
                raise _fail(self.path, here, f"unknown node type !{tag}")
        return mesh

    def subtree(self, trees: list, count: int, where: str) -> None:
        for index, tree in enumerate(trees):
            here = f"{where}[{index}]"
            name, n = _split_range(str(tree.get("name", "")))
            self.technology_nm = _technology_nm(tree.get("attributes") or {}, self.technology_nm)
            self.name = self.name or name
            self.container_parent.append((name, len(self.levels) - 1))
            for j, comp in enumerate(tree.get("local") or []):
                self.component(comp, (1, 1), f"{here}.local[{j}]")
            self.subtree(tree.get("subtree") or [], count * n, f"{here}.subtree")


def read_arch(path: str | Path) -> TimeloopArch:
    """A Timeloop v0.4 architecture file (tree ``nodes`` or flattened ``subtree``)."""
    arch = _read(path, "architecture")
    if not isinstance(arch, dict):
        raise _fail(path, "architecture", "expected a mapping")
    walk = _ArchWalk(path)
    if "nodes" in arch:
        walk.nodes(arch["nodes"], (1, 1), "architecture.nodes")
    elif "subtree" in arch:
        walk.subtree(arch["subtree"], 1, "architecture.subtree")
    else:
        raise _fail(path, "architecture", "expected nodes: or subtree:")
    levels = _with_flat_constraints(path, walk.levels)
    if walk.compute is None:
        raise _fail(path, "architecture", "no compute component (class *mac*)")
    if not walk.levels:
        raise _fail(path, "architecture", "no storage component")
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
        targets = (_read(path, "architecture_constraints") or {}).get("targets") or []
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


# -- problem ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dataspace:
    name: str
    projection: tuple[tuple[tuple[str, int], ...], ...]  # per tensor dim: (dim, coefficient)
    output: bool


def _problem_parts(path: str | Path) -> tuple[str, dict[str, int], tuple[Dataspace, ...]]:
    problem = _read(path, "problem")
    shape, instance = problem.get("shape") or {}, problem.get("instance") or {}
    dims = [str(d) for d in shape.get("dimensions") or []]
    if not dims:
        raise _fail(path, "problem.shape.dimensions", "no dimensions")
    if len({d.lower() for d in dims}) != len(dims):
        raise _fail(path, "problem.shape.dimensions", f"dims differ only by case: {dims}")
    coefficients = {
        str(c["name"]): int(c.get("default", 1)) for c in shape.get("coefficients") or []
    }
    bounds: dict[str, int] = {}
    for dim in dims:
        value = instance.get(dim, 1)
        if not isinstance(value, int) or value < 1:
            raise _fail(path, f"problem.instance.{dim}", f"bound must be a positive int: {value!r}")
        bounds[dim.lower()] = value
    spaces = []
    for index, space in enumerate(shape.get("data_spaces") or []):
        where = f"problem.shape.data_spaces[{index}]"
        terms_per_dim = []
        for terms in space.get("projection") or []:
            # ISPASS form: a tensor dim is [[dim]] or [[R], [P]]; each term [dim] or [dim, coef]
            parsed = []
            for term in terms:
                term = term if isinstance(term, list) else [term]
                dim, coef = str(term[0]), term[1] if len(term) > 1 else 1
                if dim not in dims:
                    raise _fail(path, where, f"unknown dimension {dim!r}")
                if isinstance(coef, str):
                    coef = instance.get(coef, coefficients.get(coef))
                if not isinstance(coef, int) or coef < 0:
                    raise _fail(path, where, f"coefficient of {dim} must be a non-negative int")
                parsed.append((dim.lower(), coef))
            terms_per_dim.append(tuple(parsed))
        spaces.append(
            Dataspace(str(space["name"]), tuple(terms_per_dim), bool(space.get("read_write")))
        )
    if len(spaces) != 3 or sum(s.output for s in spaces) != 1:
        raise _fail(path, "problem.shape.data_spaces",
                    "expected two read-only dataspaces and one read_write output")  # fmt: skip
    return str(shape.get("name", "problem")), bounds, tuple(spaces)


def _weight_first(spaces: tuple[Dataspace, ...]) -> tuple[Dataspace, Dataspace, Dataspace]:
    """(weight, input, output): the weight is named like weights/filter, else the first."""
    reads = [s for s in spaces if not s.output]
    output = next(s for s in spaces if s.output)
    named = [s for s in reads if re.search("weight|filter", s.name, re.IGNORECASE)]
    weight = named[0] if len(named) == 1 else reads[0]
    other = next(s for s in reads if s is not weight)
    return weight, other, output


def read_problem(path: str | Path, word_bits: int = 8) -> Cascade:
    """The problem as one Einsum ``output += weight * input`` over its (lowercased) dims."""
    name, bounds, spaces = _problem_parts(path)
    weight, inp, output = _weight_first(spaces)
    dtype = {4: DType.I4, 8: DType.I8, 16: DType.I16, 32: DType.I32}.get(word_bits, DType.I8)
    b = CascadeBuilder(re.sub(r"\W", "_", name))
    accesses = {}
    for space, role in ((weight, Role.WEIGHT), (inp, Role.INPUT), (output, Role.OUTPUT)):
        shape = tuple(1 + sum(c * (bounds[d] - 1) for d, c in terms) for terms in space.projection)
        tensor = b.tensor(space.name, shape, dtype, role)
        if tensor != space.name:
            raise _fail(path, "problem.shape.data_spaces", f"bad dataspace name {space.name!r}")
        accesses[space.name] = Access(tensor, tuple(Affine.of(list(t)) for t in space.projection))
    out_dims = {d for terms in output.projection for d, _ in terms}
    b.einsum(
        "problem" if name == "problem" else re.sub(r"\W", "_", name).lower(),
        accesses[output.name],
        Binary(BinaryOp.MUL, accesses[inp.name], accesses[weight.name]),
        dict(bounds),
        ReduceOp.SUM,
        tuple(d for d in bounds if d not in out_dims),
        op="Timeloop",
    )
    return b.build()


# -- mapping ---------------------------------------------------------------------------------
_FACTOR = re.compile(r"^([A-Za-z_]+)=?(\d+)$")


def _factors(path: str | Path, where: str, text: Any) -> dict[str, int]:
    items = text if isinstance(text, list) else str(text or "").split()
    out: dict[str, int] = {}
    for item in items:
        match = _FACTOR.match(str(item).strip())
        if match is None:
            raise _fail(path, where, f"bad factor {item!r} (expected like C3 or C=3)")
        out[match[1].lower()] = int(match[2])
    return out


def _permutation(text: Any, dims: list[str]) -> list[str]:
    """Dims innermost first (Timeloop's order), completed with the unlisted dims outermost."""
    items = text if isinstance(text, list) else list(str(text or ""))
    listed = [str(d).lower() for d in items if str(d).strip()]
    return listed + [d for d in dims if d not in listed]


def _mapping_levels(
    path: str | Path, entries: list, arch: TimeloopArch, dims: list[str], tensors: list[str]
) -> list[dict[str, Any]]:
    names = [level.name for level in arch.levels]
    parents = dict(arch.container_parent)
    levels: list[dict[str, Any]] = [
        {"level": n, "temporal": [], "spatial_x": [], "spatial_y": [], "keep": None} for n in names
    ]
    for index, entry in enumerate(entries):
        where = f"mapping[{index}]"
        target, kind = str(entry.get("target", "")), str(entry.get("type", ""))
        container = re.sub(r"^inter_(.*)_spatial$", r"\1", target)
        if target in names:
            at = names.index(target)
        elif target in parents or container in parents:
            at = parents.get(target, parents.get(container, 0))
        else:
            raise _fail(path, where, f"unknown target {target!r} (levels: {', '.join(names)})")
        factors = _factors(path, f"{where}.factors", entry.get("factors"))
        unknown = set(factors) - set(dims)
        if unknown:
            raise _fail(path, f"{where}.factors", f"unknown dims {sorted(unknown)}")
        order = _permutation(entry.get("permutation"), dims)
        level = levels[at]
        if kind == "temporal":
            loops = [[d, factors[d]] for d in reversed(order) if factors.get(d, 1) > 1]
            if target not in names and loops:
                raise _fail(path, where, f"temporal loops at container {target!r}")
            if target in names:
                level["temporal"] = loops
        elif kind == "spatial":
            split = int(entry.get("split", len(order)))
            hw = arch.levels[at]
            below = arch.levels[at + 1] if at + 1 < len(arch.levels) else None
            fan_x = (below.mesh_x if below else arch.compute_mesh[0]) // hw.mesh_x
            if "split" not in entry and fan_x == 1:
                split = 0  # a column-only fan-out: everything unrolls along Y
            for position, dim in enumerate(order):
                if factors.get(dim, 1) > 1:
                    axis = "spatial_x" if position < split else "spatial_y"
                    level[axis].append([dim, factors[dim]])
        elif kind in ("datatype", "dataspace", "bypass"):
            if target not in names:
                if entry.get("keep"):  # a container stores nothing: only "keep: []" is valid
                    raise _fail(path, where, f"container {target!r} cannot keep dataspaces")
                continue
            keep = set(entry.get("keep") or []) | set(level["keep"] or [])
            level["keep"] = sorted(keep)
            level.setdefault("bypass", [])
            level["bypass"] = sorted(set(level["bypass"]) | set(entry.get("bypass") or []))
        else:
            raise _fail(path, f"{where}.type", f"unknown type {kind!r}")
    for level, hw in zip(levels, arch.levels, strict=True):
        bypass = set(level.pop("bypass", None) or ())
        if level["keep"] is None:
            listed = set(hw.keep) if hw.keep is not None else set(tensors) - set(hw.bypass)
            level["keep"] = sorted(listed - bypass)
        unknown = (set(level["keep"]) | bypass) - set(tensors)
        if unknown:
            raise _fail(path, level["level"], f"unknown dataspaces {sorted(unknown)}")
    return levels


# -- ERT -------------------------------------------------------------------------------------
_ACTIONS = {"read": "read", "write": "write", "update": "update", "leak": "leak", "compute": "mac"}


def read_ert(path: str | Path) -> dict[str, dict[str, float]]:
    """Component name -> codesign action -> pJ per action (per block access for storage).
    Several entries for one action (argument variants) keep the largest, as the ERT's worst
    case; actions codesign does not model (idle, metadata, ...) are dropped."""
    ert = _read(path, "ERT")
    out: dict[str, dict[str, float]] = {}
    for index, table in enumerate(ert.get("tables") or []):
        full = str(table.get("name", ""))
        name = _split_range(full)[0].rsplit(".", 1)[-1]
        actions = out.setdefault(name, {})
        for action in table.get("actions") or []:
            kind = _ACTIONS.get(str(action.get("name")))
            energy = action.get("energy")
            if kind is None:
                continue
            if not isinstance(energy, (int, float)):
                raise _fail(path, f"ERT.tables[{index}]", f"{full}: energy must be a number")
            actions[kind] = max(actions.get(kind, 0.0), float(energy))
    return out


# -- the whole design ------------------------------------------------------------------------
def import_timeloop(
    arch_path: str | Path,
    map_path: str | Path,
    problem_path: str | Path,
    ert_path: str | Path,
) -> TimeloopImport:
    """Translate one Timeloop design; every problem is an InputError naming file and field."""
    arch = read_arch(arch_path)
    cascade = read_problem(problem_path, arch.levels[0].word_bits)
    einsum = cascade.einsums[0]
    dims = [d for d, _ in einsum.space]
    tensors = [t.name for t in cascade.tensors]
    entries = _read(map_path, "mapping")
    if not isinstance(entries, list):
        raise _fail(map_path, "mapping", "expected a list of target/type entries")
    levels = _mapping_levels(map_path, entries, arch, dims, tensors)
    energies = read_ert(ert_path)
    source = f"imported from Timeloop: {Path(arch_path).name}, {Path(ert_path).name}"
    components = []
    clusters = {level.name: level.cluster_size for level in arch.levels}
    for name in [level.name for level in arch.levels] + [arch.compute_name]:
        if name not in energies:
            raise _fail(ert_path, "ERT.tables", f"no entry for component {name!r}")
        actions = energies[name]
        if name == arch.compute_name:
            if "mac" not in actions:
                raise _fail(ert_path, "ERT.tables", f"{name}: no compute action")
        elif "read" not in actions or "write" not in actions:
            raise _fail(ert_path, "ERT.tables", f"{name}: needs read and write actions")
        if name == arch.compute_name:
            # Timeloop's arithmetic level charges computes only, no leakage.
            rows = [{"name": "mac", "energy_pj": actions["mac"], "bits": arch.mac_bits}]
        else:
            # One access of a cluster serves cluster_size instances: per-instance energy is
            # the ERT's divided by the cluster (Timeloop divides by the *utilized* instances
            # per utilized cluster, the same when the cluster is fully used). Leak stays.
            cluster = clusters[name]
            rows = [
                {"name": kind, "energy_pj": pj if kind == "leak" else pj / cluster}
                for kind, pj in actions.items()
            ]
        components.append({"name": name, "scales_with_technology": False, "actions": rows})
    ert_doc = {
        "name": f"{arch.name}_ert",
        "technology_nm": arch.technology_nm,
        "source": f"Accelergy ERT {Path(ert_path).name}",
        "components": components,
    }
    role_names = {Role.WEIGHT: "weights", Role.INPUT: "inputs", Role.OUTPUT: "outputs"}
    roles = {t.name: role_names[t.role] for t in cascade.tensors}
    card_levels = []
    meshes = [(lv.mesh_x, lv.mesh_y) for lv in arch.levels] + [arch.compute_mesh]
    for index, level in enumerate(arch.levels):
        (mx, my), (cx, cy) = meshes[index], meshes[index + 1]
        if cx % mx or cy % my:
            raise _fail(arch_path, level.name, f"mesh {cx}x{cy} below {mx}x{my} is not a fan-out")
        entry: dict[str, Any] = {
            "name": level.name,
            # The outermost storage is the backing store (codesign's dram kind) whatever its
            # class, as in Timeloop; an SRAM backing store keeps its capacity.
            "kind": "dram" if index == 0 else "sram",
            "word_bits": level.word_bits,
            "block_words": level.block_words,
        }
        if level.size_words is not None:
            entry["size_words"] = level.size_words
        if index > 0:
            # The card's keeps (used when searching on the imported card): the arch's
            # constraints.dataspace, else what the imported mapping keeps there.
            if level.keep is not None or level.bypass:
                kept = set(level.keep) if level.keep is not None else set(roles) - set(level.bypass)
            else:
                kept = set(levels[index]["keep"])
            entry["keeps"] = sorted({roles[n] for n in kept if n in roles})
            entry["bypasses"] = sorted(set(roles.values()) - set(entry["keeps"]))
        if level.read_bandwidth is not None:
            entry["read_bandwidth_words_per_cycle"] = float(level.read_bandwidth)
        if level.write_bandwidth is not None:
            entry["write_bandwidth_words_per_cycle"] = float(level.write_bandwidth)
        if cx // mx > 1 or cy // my > 1:
            entry["fanout"] = {"x": cx // mx, "y": cy // my}
        card_levels.append(entry)
    card = {
        "name": arch.name,
        "source": source,
        "clock_ghz": 1.0,
        "technology_nm": arch.technology_nm,
        "energy_table": "ert.yaml",
        "levels": card_levels,
        "compute": {
            "name": arch.compute_name,
            "mac_bits": arch.mac_bits,
            "count": math.prod(arch.compute_mesh),
        },
    }
    mapping = {"problem": einsum.name, "levels": levels}
    dump = {"sort_keys": False, "default_flow_style": None}
    return TimeloopImport(
        card_yaml=f"# {source}\n" + yaml.safe_dump(card, **dump),
        ert_yaml=yaml.safe_dump(ert_doc, **dump),
        mapping_yaml=f"# imported from Timeloop: {Path(map_path).name}\n"
        + yaml.safe_dump(mapping, **dump),
        cascade=cascade,
    )
