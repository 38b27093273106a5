"""Network data and linear power-flow models for the TSO-DSO coordination simulator.

* :mod:`networks.transmission` / :mod:`networks.feeder`: immutable network
  data loaded from ``pandapower.networks`` cases.
* :mod:`networks.dcpf` (transmission) and :mod:`networks.lindistflow`
  (radial feeders): vectorized linear power flows and the matrices that
  optimizers need.
* :mod:`networks.compose`: transmission + feeders (``t30d2``, ``t118d10``).
* :mod:`networks.ac_check`: validation against pandapower's AC power flow.
* :mod:`networks.ratings`: the project's rating rules for cases without ratings.
"""

from networks.compose import FeederAttachment, TDSystem, compose, t30d2, t118d10
from networks.dcpf import (
    DCFlowResult,
    DCSolver,
    balance_at_slack,
    branch_incidence,
    bus_susceptance,
    dc_power_flow,
    ptdf_matrix,
)
from networks.errors import NetworkDataError, UnknownBusError, UnknownCaseError
from networks.feeder import Feeder, load_feeder
from networks.lindistflow import (
    LinDistFlowResult,
    VoltageSensitivity,
    downstream_matrix,
    lindistflow,
    voltage_sensitivity,
)
from networks.transmission import TransmissionNetwork, available_transmission_cases, load_transmission

# pandapower is imported only by the loaders and the AC checks, on first use, so that a
# Ray actor unpickling a network does not pay for it.


def __getattr__(name: str):
    if name in ("feeder_ac_comparison", "transmission_ac_comparison"):
        from networks import ac_check

        return getattr(ac_check, name)
    raise AttributeError(f"module 'networks' has no attribute {name!r}")


__all__ = [
    "DCFlowResult",
    "DCSolver",
    "Feeder",
    "FeederAttachment",
    "LinDistFlowResult",
    "NetworkDataError",
    "TDSystem",
    "TransmissionNetwork",
    "UnknownBusError",
    "UnknownCaseError",
    "VoltageSensitivity",
    "available_transmission_cases",
    "balance_at_slack",
    "branch_incidence",
    "bus_susceptance",
    "compose",
    "dc_power_flow",
    "downstream_matrix",
    "feeder_ac_comparison",
    "lindistflow",
    "load_feeder",
    "load_transmission",
    "ptdf_matrix",
    "t118d10",
    "t30d2",
    "transmission_ac_comparison",
    "voltage_sensitivity",
]
