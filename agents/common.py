"""Pieces shared by the operator agents: bus-placement matrices and outcome reports."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coordination.messages import CostReport
from coordination.runtime import COORDINATOR


def incidence_columns(bus_positions: np.ndarray, n_bus: int) -> sp.csr_matrix:
    """(n_bus x n_items) 0/1 matrix placing item i at bus ``bus_positions[i]``."""
    n = len(bus_positions)
    return sp.csr_matrix((np.ones(n), (np.asarray(bus_positions, dtype=int), np.arange(n))), shape=(n_bus, n))


class ReportsOutcome:
    """Mixin for agents whose ``model`` has ``cost``, ``shed_mw`` and ``wind_mw`` and whose
    ``data`` has ``wind_forecast_mw``: keeps the latest outcome and reports it."""

    outcome: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def own_cost_usd(self) -> float:
        return float(self.model.cost.value)

    def _record_outcome(self) -> None:
        """Keep the own cost, shedding and curtailment of the latest solve (for reports and checkpoints)."""
        m = self.model
        self.outcome = (
            self.own_cost_usd(),
            max(0.0, float(np.sum(m.shed_mw.value))),
            max(0.0, float(np.sum(self.data.wind_forecast_mw) - np.sum(m.wind_mw.value))),
        )

    def report_cost(self, inbox: tuple = ()) -> CostReport:
        return CostReport(self.name, COORDINATOR, *self.outcome)
