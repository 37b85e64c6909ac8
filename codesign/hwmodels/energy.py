"""Energy tables (ERT/ART) and technology scaling between process nodes.

Scaling rule: dynamic energy per action scales with the node's energy factor relative to 45 nm
(``ENERGY_FACTOR_VS_45NM``), area with the square of the feature-size ratio. The factors are the
rounded dynamic-energy trend of Stillmaker & Baas, "Scaling equations for the accurate prediction
of CMOS device performance from 180 nm to 7 nm", Integration, the VLSI Journal 58 (2017); between
listed nodes the factor is interpolated log-linearly in the feature size. Components marked
``scales_with_technology: false`` (off-chip DRAM) are never scaled.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from codesign.hwmodels.arch import (
    Action,
    ActionEnergy,
    ComponentEnergy,
    EnergyTable,
)

if TYPE_CHECKING:
    from codesign.hwmodels.schema import EnergyTableSpec  # pydantic: for type checks only

# Dynamic energy per operation relative to 45 nm (Stillmaker & Baas 2017, rounded).
ENERGY_FACTOR_VS_45NM: tuple[tuple[float, float], ...] = (
    (180.0, 8.6),
    (130.0, 4.4),
    (90.0, 2.6),
    (65.0, 1.6),
    (45.0, 1.0),
    (32.0, 0.62),
    (28.0, 0.52),
    (22.0, 0.40),
    (16.0, 0.30),
    (14.0, 0.27),
    (10.0, 0.20),
    (7.0, 0.15),
)


def energy_factor(technology_nm: float) -> float:
    """Energy of a node relative to 45 nm, log-linear between the tabulated nodes."""
    nodes = ENERGY_FACTOR_VS_45NM
    if technology_nm >= nodes[0][0]:
        return nodes[0][1]
    if technology_nm <= nodes[-1][0]:
        return nodes[-1][1]
    for (big_nm, big_f), (small_nm, small_f) in zip(nodes, nodes[1:], strict=False):
        if small_nm <= technology_nm <= big_nm:
            t = math.log(technology_nm / small_nm) / math.log(big_nm / small_nm)
            return math.exp(math.log(small_f) + t * (math.log(big_f) - math.log(small_f)))
    raise AssertionError("unreachable")


def energy_scale(from_nm: float, to_nm: float) -> float:
    """Multiplier taking an energy at ``from_nm`` to ``to_nm``."""
    return energy_factor(to_nm) / energy_factor(from_nm)


def build_energy_table(spec: EnergyTableSpec, target_nm: float) -> EnergyTable:
    """Freeze an ERT spec, scaling every scalable number from its node to ``target_nm``."""
    e_scale = energy_scale(spec.technology_nm, target_nm)
    a_scale = (target_nm / spec.technology_nm) ** 2
    scaled = target_nm != spec.technology_nm
    components = []
    for component in spec.components:
        factor = e_scale if component.scales_with_technology else 1.0
        source = component.source or spec.source
        if scaled and component.scales_with_technology:
            source += f"; scaled {spec.technology_nm:g}->{target_nm:g} nm x{factor:.3f}"
        actions = tuple(
            ActionEnergy(
                action=Action(entry.name),
                energy_pj=entry.energy_pj * factor,
                source=entry.source or source,
                bits=entry.bits,
            )
            for entry in component.actions
        )
        area = component.area_um2 * (a_scale if component.scales_with_technology else 1.0)
        components.append(ComponentEnergy(component.name, actions, area, source))
    return EnergyTable(spec.name, target_nm, tuple(components), spec.source)
