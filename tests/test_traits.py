"""Einsum op traits are answered once in `codesign.ir.traits`, and the rooms import only down
the floors (ir <- frontends/passes <- hwmodels <- mapper <- sim <- api/cli)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import codesign
from codesign.frontends.llm import build_llm
from codesign.frontends.llm_config import LLMConfig, Workload
from codesign.ir.stats import einsum_stats
from codesign.ir.traits import EinsumClass
from codesign.mapper.from_ir import problem_from_einsum

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "codesign"
FLOOR = {"errors": 0, "ir": 1, "frontends": 2, "passes": 2, "hwmodels": 3, "mapper": 4,
         "sim": 5, "codegen": 5, "dse": 6, "api": 7, "cli": 8}  # fmt: skip


def _cascades():
    yield codesign.load(str(ROOT / "examples" / "models" / "cnn.onnx"))
    yield build_llm(LLMConfig("tiny", 1, 64, 128, 4, 4, 100), Workload(1, 16))


@pytest.mark.parametrize("cascade", list(_cascades()), ids=["cnn", "llm"])
def test_every_einsum_has_one_class_consistent_with_stats_and_mapper(cascade) -> None:
    for e in cascade.einsums:
        cls = e.einsum_class
        stats = einsum_stats(e, cascade)
        assert (cls is EinsumClass.CONTRACTION) == (stats.macs > 0), e.name
        assert (cls is EinsumClass.VIEW) == e.is_view
        assert (cls in (EinsumClass.CONTRACTION, EinsumClass.REDUCTION)) == (e.reduce is not None)
        if problem_from_einsum(e, cascade) is not None:
            assert cls is EinsumClass.CONTRACTION and e.mac_operands is not None


def test_an_llm_has_every_class() -> None:
    cascade = build_llm(LLMConfig("tiny", 1, 64, 128, 4, 4, 100), Workload(1, 16))
    assert {e.einsum_class for e in cascade.einsums} == set(EinsumClass)


def _upward_imports() -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        room = rel.parts[0].removesuffix(".py")
        if room not in FLOOR:
            continue
        for node in ast.parse(path.read_text()).body:  # module level: what loads on import
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("codesign."):
                target = (node.module or "").split(".")[1]
                if FLOOR.get(target, -1) > FLOOR[room]:
                    found.append(f"{rel} -> {node.module}")
    return found


def test_rooms_import_only_down_the_floors() -> None:
    assert _upward_imports() == []


def test_the_mapper_and_hwmodels_do_not_import_sim_or_frontends() -> None:
    for room, banned in (("mapper", ("codesign.sim",)),
                         ("hwmodels", ("codesign.sim", "codesign.frontends"))):  # fmt: skip
        for path in (PACKAGE / room).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    if node.module.startswith(banned) and not _type_only(tree, node):
                        # the registry names each family's model factory lazily, by design
                        assert path.name == "registry.py", f"{path.name} imports {node.module}"


def _type_only(tree: ast.Module, node: ast.ImportFrom) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            if any(n is node for n in ast.walk(stmt)):
                return True
    return False


def test_argparse_namespaces_stay_in_the_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] != "cli":
            assert "Namespace" not in path.read_text(), path
