"""Device-to-device links for multi-device (tensor / pipeline parallel) analysis.

A link is a per-device bandwidth in one direction and a per-message latency.  A GPU card names
its own under ``interconnect:`` (NVLink on SXM parts, PCIe otherwise); chiplets of a spatial
accelerator, whose YAML has no such field, take one on the command line (``--interconnect``,
or ``--link-gbps/--link-latency-us`` for a custom die-to-die link).  Units: ``bandwidth_gbps``
in GB/s (10^9 bytes/s) per device per direction, ``latency_us`` in microseconds per message
(the fixed cost of one step of a ring collective).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from codesign.errors import InputError


class InterconnectSpec(BaseModel):
    """The ``interconnect:`` block of a device card (validation only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    bandwidth_gbps: Annotated[float, Field(gt=0)]
    latency_us: Annotated[float, Field(ge=0)] = 0.0
    source: str = ""


@dataclass(frozen=True, slots=True)
class Interconnect:
    name: str
    bandwidth_bytes_per_s: float  # per device, one direction
    latency_s: float  # per message / ring step
    source: str = ""


def interconnect_from_spec(spec: InterconnectSpec) -> Interconnect:
    return Interconnect(spec.name, spec.bandwidth_gbps * 1e9, spec.latency_us * 1e-6, spec.source)


# Per-direction bandwidths as published; latencies are the small-message step costs NCCL tests
# report on these links (a few microseconds), rounded: assumptions, override them per system.
PRESETS: dict[str, Interconnect] = {
    link.name: link
    for link in (
        Interconnect("nvlink3", 300e9, 5e-6, "A100 whitepaper: 12 NVLink3 links, 600 GB/s total "
                     "(300 GB/s per direction)"),
        Interconnect("nvlink4", 450e9, 5e-6, "H100 whitepaper: 18 NVLink4 links, 900 GB/s total "
                     "(450 GB/s per direction)"),
        Interconnect("pcie4", 32e9, 10e-6, "PCIe 4.0 x16: 16 GT/s x 16 lanes, 128b/130b, ~32 GB/s "
                     "per direction"),
        Interconnect("pcie5", 64e9, 10e-6, "PCIe 5.0 x16: ~64 GB/s per direction"),
    )
}  # fmt: skip


def interconnect_preset(name: str) -> Interconnect:
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in PRESETS:
        raise InputError(f"unknown interconnect {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[key]


def custom_link(bandwidth_gbps: float, latency_us: float) -> Interconnect:
    """A link given on the command line (die-to-die, custom fabric)."""
    if bandwidth_gbps <= 0 or latency_us < 0:
        raise InputError(
            f"link: bandwidth {bandwidth_gbps} GB/s must be > 0 and latency {latency_us} us >= 0"
        )
    return Interconnect("custom", bandwidth_gbps * 1e9, latency_us * 1e-6, "command line")
