"""Device-to-device links for multi-device (tensor / pipeline parallel) analysis.

A link is a per-device bandwidth in one direction and a per-message latency.  A GPU card names
its own under ``interconnect:`` (NVLink on SXM parts, PCIe otherwise); chiplets of a spatial
accelerator, whose YAML has no such field, take one on the command line (``--interconnect``,
or ``--link-gbps/--link-latency-us`` for a custom die-to-die link).  Units: ``bandwidth_gbps``
in GB/s (10^9 bytes/s) per device per direction, ``latency_us`` in microseconds per message
(the fixed cost of one step of a ring collective).

A link also names the collective library model that prices its all-reduces and all-gathers
(``collectives:``): ``ring`` is the textbook ring with ``latency_us`` per step; ``nccl-nvlink``
and ``nccl-pcie`` are NCCL's own cost model (NVIDIA/nccl ``src/graph/tuning.cc``, NCCL 2.18,
the version of 2023's TensorRT-LLM/NeMo containers): for each protocol (LL, LL128, Simple) a
fixed ``baseLat`` per call plus ``hwLat`` per ring step, and a share of the link bandwidth (LL
moves 4 data bytes in 8, and NCCL prices a ring all-reduce on LL at 1/4 of the bus bandwidth,
an all-gather at 1/3; LL128 at 0.92); NCCL takes the protocol with the least predicted time,
and so does `codesign.sim.parallel`.  The ring algorithm is used: on one node NCCL's tree has
the same per-step latency and a larger base (6.8 vs 6.6 us on LL), and NVLink SHARP (NVLS)
needs third-generation NVSwitch (Hopper), so on A100 the ring is NCCL's small-message choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from codesign.errors import InputError


class InterconnectSpec(BaseModel):
    """The ``interconnect:`` block of a device card (validation only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    bandwidth_gbps: Annotated[float, Field(gt=0)]
    latency_us: Annotated[float, Field(ge=0)] = 0.0
    collectives: Literal["ring", "nccl-nvlink", "nccl-pcie"] = "ring"
    source: str = ""


@dataclass(frozen=True, slots=True)
class CollectiveProtocol:
    """One way to run a ring collective: a fixed cost per call, a cost per ring step, and the
    share of the link bandwidth it reaches for an all-reduce and for an all-gather."""

    name: str
    base_s: float
    step_s: float
    allreduce_bandwidth_share: float
    allgather_bandwidth_share: float


# NCCL 2.18 src/graph/tuning.cc: baseLat (Ring: LL 6.6, LL128 14.0, Simple 8.4 us), hwLat
# NVLINK Ring (LL .6, LL128 1.9, Simple 3.4 us per step), PCI Ring (1.0, 2.5, 5.7 us); bus
# bandwidth x 1/4 (LL all-reduce), x 1/3 (LL all-gather), x 0.92 (LL128), x 1 (Simple).
_NCCL_SHARES = {"LL": (1 / 4, 1 / 3), "LL128": (0.92, 0.92), "Simple": (1.0, 1.0)}
_NCCL_BASE_US = {"LL": 6.6, "LL128": 14.0, "Simple": 8.4}
_NCCL_STEP_US = {"nvlink": {"LL": 0.6, "LL128": 1.9, "Simple": 3.4},
                 "pcie": {"LL": 1.0, "LL128": 2.5, "Simple": 5.7}}  # fmt: skip


def _nccl(hw: str) -> tuple[CollectiveProtocol, ...]:
    return tuple(
        CollectiveProtocol(
            f"nccl-ring-{p}", _NCCL_BASE_US[p] * 1e-6, _NCCL_STEP_US[hw][p] * 1e-6, *_NCCL_SHARES[p]
        )
        for p in ("LL", "LL128", "Simple")
    )


COLLECTIVE_MODELS: dict[str, tuple[CollectiveProtocol, ...]] = {
    "ring": (),  # the textbook ring: `latency_s` per step, the full bandwidth
    "nccl-nvlink": _nccl("nvlink"),
    "nccl-pcie": _nccl("pcie"),
}


@dataclass(frozen=True, slots=True)
class Interconnect:
    name: str
    bandwidth_bytes_per_s: float  # per device, one direction
    latency_s: float  # per message / ring step
    source: str = ""
    collectives: str = "ring"  # a COLLECTIVE_MODELS key

    @property
    def protocols(self) -> tuple[CollectiveProtocol, ...]:
        """The ways a collective may run; the cheapest is taken per call."""
        return COLLECTIVE_MODELS[self.collectives] or (
            CollectiveProtocol("ring", 0.0, self.latency_s, 1.0, 1.0),
        )


def interconnect_from_spec(spec: InterconnectSpec) -> Interconnect:
    return Interconnect(spec.name, spec.bandwidth_gbps * 1e9, spec.latency_us * 1e-6, spec.source,
                        spec.collectives)  # fmt: skip


# Per-direction bandwidths as published; collectives priced by NCCL's model (above), whose
# per-step NVLink/PCIe latencies replace `latency_s` (kept for point-to-point sends: NCCL's
# Simple-protocol ring step on that link).
PRESETS: dict[str, Interconnect] = {
    link.name: link
    for link in (
        Interconnect("nvlink3", 300e9, 3.4e-6, "A100 whitepaper: 12 NVLink3 links, 600 GB/s total "
                     "(300 GB/s per direction)", "nccl-nvlink"),
        Interconnect("nvlink4", 450e9, 3.4e-6, "H100 whitepaper: 18 NVLink4 links, 900 GB/s total "
                     "(450 GB/s per direction)", "nccl-nvlink"),
        Interconnect("pcie4", 32e9, 5.7e-6, "PCIe 4.0 x16: 16 GT/s x 16 lanes, 128b/130b, ~32 GB/s "
                     "per direction", "nccl-pcie"),
        Interconnect("pcie5", 64e9, 5.7e-6, "PCIe 5.0 x16: ~64 GB/s per direction", "nccl-pcie"),
    )
}  # fmt: skip


def interconnect_preset(name: str) -> Interconnect:
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in PRESETS:
        raise InputError(f"unknown interconnect {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[key]


def custom_link(bandwidth_gbps: float, latency_us: float) -> Interconnect:
    """A link given on the command line (die-to-die, custom fabric)."""
    if not (math.isfinite(bandwidth_gbps) and bandwidth_gbps > 0):
        raise InputError(f"--link-gbps {bandwidth_gbps}: must be a finite bandwidth > 0")
    if not (math.isfinite(latency_us) and latency_us >= 0):
        raise InputError(f"--link-latency-us {latency_us}: must be a finite latency >= 0")
    return Interconnect("custom", bandwidth_gbps * 1e9, latency_us * 1e-6, "command line")
