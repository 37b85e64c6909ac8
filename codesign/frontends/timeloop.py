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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codesign.frontends.timeloop_arch import (
    TimeloopArch,
    field_error,
    read_arch,
    read_section,
    split_range,
)
from codesign.ir.builder import CascadeBuilder
from codesign.ir.cascade import Cascade, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Binary, BinaryOp, ReduceOp
from codesign.ir.index import Affine


@dataclass(frozen=True, slots=True)
class TimeloopImport:
    """A Timeloop design as codesign inputs: YAML texts for the card, its energy table (file
    ``ert.yaml`` next to the card) and the mapping, and the problem as a Cascade."""

    card_yaml: str
    ert_yaml: str
    mapping_yaml: str
    cascade: Cascade


# -- problem ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dataspace:
    name: str
    projection: tuple[tuple[tuple[str, int], ...], ...]  # per tensor dim: (dim, coefficient)
    output: bool


def _problem_parts(path: str | Path) -> tuple[str, dict[str, int], tuple[Dataspace, ...]]:
    problem = read_section(path, "problem")
    shape, instance = problem.get("shape") or {}, problem.get("instance") or {}
    dims = [str(d) for d in shape.get("dimensions") or []]
    if not dims:
        raise field_error(path, "problem.shape.dimensions", "no dimensions")
    if len({d.lower() for d in dims}) != len(dims):
        raise field_error(path, "problem.shape.dimensions", f"dims differ only by case: {dims}")
    coefficients = {
        str(c["name"]): int(c.get("default", 1)) for c in shape.get("coefficients") or []
    }
    bounds: dict[str, int] = {}
    for dim in dims:
        value = instance.get(dim, 1)
        if not isinstance(value, int) or value < 1:
            raise field_error(
                path, f"problem.instance.{dim}", f"bound must be a positive int: {value!r}"
            )
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
                    raise field_error(path, where, f"unknown dimension {dim!r}")
                if isinstance(coef, str):
                    coef = instance.get(coef, coefficients.get(coef))
                if not isinstance(coef, int) or coef < 0:
                    raise field_error(
                        path, where, f"coefficient of {dim} must be a non-negative int"
                    )
                parsed.append((dim.lower(), coef))
            terms_per_dim.append(tuple(parsed))
        spaces.append(
            Dataspace(str(space["name"]), tuple(terms_per_dim), bool(space.get("read_write")))
        )
    if len(spaces) != 3 or sum(s.output for s in spaces) != 1:
        raise field_error(path, "problem.shape.data_spaces",
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
            raise field_error(
                path, "problem.shape.data_spaces", f"bad dataspace name {space.name!r}"
            )
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
            raise field_error(path, where, f"bad factor {item!r} (expected like C3 or C=3)")
        out[match[1].lower()] = int(match[2])
    return out


def _permutation(text: Any, dims: list[str]) -> list[str]:
    """Dims innermost first (Timeloop's order), completed with the unlisted dims outermost."""
    text = text if isinstance(text, list) or " " not in str(text) else str(text).split()
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
            raise field_error(
                path, where, f"unknown target {target!r} (levels: {', '.join(names)})"
            )
        factors = _factors(path, f"{where}.factors", entry.get("factors"))
        unknown = set(factors) - set(dims)
        if unknown:
            raise field_error(path, f"{where}.factors", f"unknown dims {sorted(unknown)}")
        order = _permutation(entry.get("permutation"), dims)
        level = levels[at]
        if kind == "temporal":
            loops = [[d, factors[d]] for d in reversed(order) if factors.get(d, 1) > 1]
            if target not in names and loops:
                raise field_error(path, where, f"temporal loops at container {target!r}")
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
                    raise field_error(path, where, f"container {target!r} cannot keep dataspaces")
                continue
            if "keep" in entry:  # a bypass-only entry leaves the rest to the default
                level["keep"] = sorted(set(entry["keep"] or []) | set(level["keep"] or []))
            level.setdefault("bypass", [])
            level["bypass"] = sorted(set(level["bypass"]) | set(entry.get("bypass") or []))
        else:
            raise field_error(path, f"{where}.type", f"unknown type {kind!r}")
    for level, hw in zip(levels, arch.levels, strict=True):
        bypass = set(level.pop("bypass", None) or ())
        if level["keep"] is None:
            listed = set(hw.keep) if hw.keep is not None else set(tensors) - set(hw.bypass)
            level["keep"] = sorted(listed - bypass)
        unknown = (set(level["keep"]) | bypass) - set(tensors)
        if unknown:
            raise field_error(path, level["level"], f"unknown dataspaces {sorted(unknown)}")
    return levels


# -- ERT -------------------------------------------------------------------------------------
_ACTIONS = {"read": "read", "write": "write", "update": "update", "leak": "leak", "compute": "mac"}


def read_ert(path: str | Path) -> dict[str, dict[str, float]]:
    """Component name -> codesign action -> pJ per action (per block access for storage).
    Several entries for one action (argument variants) keep the largest, as the ERT's worst
    case; actions codesign does not model (idle, metadata, ...) are dropped."""
    ert = read_section(path, "ERT")
    out: dict[str, dict[str, float]] = {}
    for index, table in enumerate(ert.get("tables") or []):
        full = str(table.get("name", ""))
        name = split_range(full)[0].rsplit(".", 1)[-1]
        actions = out.setdefault(name, {})
        for action in table.get("actions") or []:
            kind = _ACTIONS.get(str(action.get("name")))
            energy = action.get("energy")
            if kind is None:
                continue
            if not isinstance(energy, (int, float)):
                raise field_error(path, f"ERT.tables[{index}]", f"{full}: energy must be a number")
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
    entries = read_section(map_path, "mapping")
    if not isinstance(entries, list):
        raise field_error(map_path, "mapping", "expected a list of target/type entries")
    levels = _mapping_levels(map_path, entries, arch, dims, tensors)
    energies = read_ert(ert_path)
    source = f"imported from Timeloop: {Path(arch_path).name}, {Path(ert_path).name}"
    components = []
    clusters = {level.name: level.cluster_size for level in arch.levels}
    for name in [level.name for level in arch.levels] + [arch.compute_name]:
        if name not in energies:
            raise field_error(ert_path, "ERT.tables", f"no entry for component {name!r}")
        actions = energies[name]
        if name == arch.compute_name:
            if "mac" not in actions:
                raise field_error(ert_path, "ERT.tables", f"{name}: no compute action")
        elif "read" not in actions or "write" not in actions:
            raise field_error(ert_path, "ERT.tables", f"{name}: needs read and write actions")
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
            raise field_error(
                arch_path, level.name, f"mesh {cx}x{cy} below {mx}x{my} is not a fan-out"
            )
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
