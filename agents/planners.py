"""Transmission and distribution planners of td-expansion (the model: agents/planner_base.py).

The shared model pieces and the planners' data are in :mod:`agents.planner_base`; the two
agents in :mod:`agents.transmission_planner` and :mod:`agents.distribution_planner`. This
module gathers them under one name.
"""

from agents.distribution_planner import DistributionPlannerAgent
from agents.planner_base import (
    FREE_DRAW_LIMIT_MW,
    ZONE_D_BUS,
    ZONE_FEEDER,
    ZONE_T_BUS,
    DistributionPlannerData,
    FlexBlock,
    TransmissionPlannerData,
)
from agents.transmission_planner import TransmissionPlannerAgent

__all__ = [
    "FREE_DRAW_LIMIT_MW",
    "ZONE_D_BUS",
    "ZONE_FEEDER",
    "ZONE_T_BUS",
    "DistributionPlannerAgent",
    "DistributionPlannerData",
    "FlexBlock",
    "TransmissionPlannerAgent",
    "TransmissionPlannerData",
]
