"""A SCALE-Sim-style systolic array: R x C MAC PEs running one dataflow (a hardware value the
cycle-level model in `codesign.sim.systolic` simulates and SCALE-Sim ``.cfg`` files describe)."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from codesign.hwmodels.arch import Dataflow


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class SystolicArray:
    """An R×C array of MAC PEs (``rows`` = R, ``cols`` = C) running one dataflow."""

    rows: int
    cols: int
    dataflow: Dataflow

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", check_positive_int("rows", self.rows))
        object.__setattr__(self, "cols", check_positive_int("cols", self.cols))
        if not isinstance(self.dataflow, Dataflow):
            raise ValueError(f"dataflow must be a Dataflow, got {self.dataflow!r}")

    @property
    def num_pes(self) -> int:
        return self.rows * self.cols
