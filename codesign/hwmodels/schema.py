"""Pydantic schema of the hardware and energy-table YAML files (validation only, no behaviour)."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codesign.hwmodels.arch import Action, Dataflow, MemoryKind, TensorRole
from codesign.hwmodels.sparse_support import SparseAction

Positive = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FanoutSpec(_Strict):
    """Spatial fan-out below a level: an X by Y mesh of instances of the next level."""

    x: Positive = 1
    y: Positive = 1


class LevelSpec(_Strict):
    name: str = Field(min_length=1)
    kind: MemoryKind
    component: str | None = None  # ERT component; defaults to the level name
    size_words: Positive | None = None
    size_bytes: Positive | None = None
    word_bits: Positive = 8
    block_words: Positive = 1
    banks: Positive = 1
    ports: Positive = 1  # read-write ports; used by the estimators when there is no energy_table
    dram_kind: str = "lpddr4"  # DRAM pJ/bit kind for the estimators (hwmodels.estimators)
    read_bandwidth_words_per_cycle: PositiveFloat | None = None
    write_bandwidth_words_per_cycle: PositiveFloat | None = None
    bandwidth_gbps: PositiveFloat | None = None
    keeps: tuple[TensorRole, ...] = (TensorRole.INPUT, TensorRole.WEIGHT, TensorRole.OUTPUT)
    bypasses: tuple[TensorRole, ...] = ()
    fanout: FanoutSpec = FanoutSpec()

    @model_validator(mode="after")
    def _check(self) -> LevelSpec:
        if self.size_words is not None and self.size_bytes is not None:
            raise ValueError("give size_words or size_bytes, not both")
        if self.kind is not MemoryKind.DRAM and self.size_words is None and self.size_bytes is None:
            raise ValueError(f"on-chip level {self.name} needs size_words or size_bytes")
        if set(self.keeps) & set(self.bypasses):
            raise ValueError("a tensor cannot be both kept and bypassed")
        if self.bandwidth_gbps is not None and self.read_bandwidth_words_per_cycle is not None:
            raise ValueError("give bandwidth_gbps or read/write bandwidth in words, not both")
        return self

    @property
    def words(self) -> int | None:
        if self.size_bytes is not None:
            return self.size_bytes * 8 // self.word_bits
        return self.size_words


class ComputeSpec(_Strict):
    name: str = Field(min_length=1)
    component: str | None = None
    mac_bits: Positive = 8
    count: Positive | None = None  # derived from the level fan-outs when omitted


class SparseSpec(_Strict):
    """What the array does with zeros (Sparseloop): ``compute`` gates or skips ineffectual MACs,
    ``compressed_weights`` moves weights in their recorded format, ``nm`` limits skipping to
    N:M groups."""

    compute: SparseAction = SparseAction.NONE
    compressed_weights: bool = False
    nm: tuple[Positive, Positive] | None = None
    gated_energy_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1

    @model_validator(mode="after")
    def _check(self) -> SparseSpec:
        if self.nm is not None and self.nm[0] > self.nm[1]:
            raise ValueError(f"impossible N:M {self.nm[0]}:{self.nm[1]} (need N <= M)")
        return self


class ArchSpec(_Strict):
    """Topology only; energies and areas come from ``energy_table`` (relative to the file) or,
    without one, from the estimators (``hwmodels.estimators``)."""

    name: str = Field(min_length=1)
    clock_ghz: PositiveFloat
    technology_nm: PositiveFloat
    energy_table: str | None = None
    dataflow: Dataflow | None = None
    source: str = ""
    levels: tuple[LevelSpec, ...] = Field(min_length=1)
    compute: ComputeSpec
    sparse: SparseSpec = SparseSpec()

    def semantic_errors(self) -> list[tuple[tuple[int | str, ...], str]]:
        """Cross-field problems as (field location, message), checked by the loader."""
        errors: list[tuple[tuple[int | str, ...], str]] = []
        names = [level.name for level in self.levels]
        for index, name in enumerate(names):
            if names.index(name) != index:
                errors.append((("levels", index, "name"), f"duplicate level name {name!r}"))
        if self.levels[0].kind is not MemoryKind.DRAM:
            errors.append((("levels", 0, "kind"), "the outermost level must be of kind dram"))
        for index, level in enumerate(self.levels[1:], start=1):
            if level.kind is MemoryKind.DRAM:
                errors.append((("levels", index, "kind"), "only the outermost level may be dram"))
        missing = set(TensorRole) - set(self.levels[0].keeps)
        if missing:
            roles = sorted(role.value for role in missing)
            errors.append((("levels", 0, "keeps"), f"DRAM must keep every tensor; missing {roles}"))
        for index, level in enumerate(self.levels):
            if level.words is not None and level.words < len(level.keeps):
                field = "size_bytes" if level.size_bytes is not None else "size_words"
                errors.append(
                    (
                        ("levels", index, field),
                        f"level {level.name} is too small for any mapping: {level.words} words "
                        f"cannot hold one word of each of its {len(level.keeps)} kept tensors",
                    )
                )
        fanout = math.prod(level.fanout.x * level.fanout.y for level in self.levels)
        if self.compute.count is not None and fanout != self.compute.count:
            errors.append(
                (
                    ("compute", "count"),
                    f"{self.compute.count} != product of level fan-outs {fanout}",
                )
            )
        return errors

    @property
    def pe_count(self) -> int:
        """MAC units: the product of the level fan-outs (``compute.count`` may only repeat it)."""
        return math.prod(level.fanout.x * level.fanout.y for level in self.levels)


class ActionSpec(_Strict):
    name: Action
    energy_pj: Annotated[float, Field(ge=0)]
    bits: Positive | None = None
    source: str | None = None


class ComponentSpec(_Strict):
    name: str = Field(min_length=1)
    actions: tuple[ActionSpec, ...] = Field(min_length=1)
    area_um2: Annotated[float, Field(ge=0)] = 0.0
    scales_with_technology: bool = True
    source: str | None = None


class EnergyTableSpec(_Strict):
    """Accelergy-style ERT+ART: components x actions, each number with its source."""

    name: str = Field(min_length=1)
    technology_nm: PositiveFloat
    source: str = Field(min_length=1)
    components: tuple[ComponentSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> EnergyTableSpec:
        names = [component.name for component in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique: {names}")
        return self
