"""The schema of a mapping YAML (`codesign.mapper.mapping.load_mapping` validates against it).

Its own module so that importing the mapping value types does not import pydantic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

LoopSpec = tuple[str, Annotated[int, Field(gt=0)]]


class LevelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    level: str
    temporal: tuple[LoopSpec, ...] = ()
    spatial_x: tuple[LoopSpec, ...] = ()
    spatial_y: tuple[LoopSpec, ...] = ()
    keep: tuple[str, ...] | None = None
    bypass: tuple[str, ...] = ()


class MappingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    problem: str
    levels: tuple[LevelSpec, ...] = Field(min_length=1)
