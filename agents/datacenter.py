"""The data-center aggregator (DCA): the leader of the DLMP game.

The aggregator runs several data centers (sites s at buses b_s) and places the day's
workload among them (space) and, for the delay-tolerant part, in time:

* workload placed at site s in hour t: ``w_s,t`` in [0, C_s] (kW of IT capacity kept busy);
* interactive work is served in its hour, deferrable work within ``W`` hours of arrival
  and by the end of the day: with ``y_t`` the deferrable work served in hour t,
  ``sum_s w_s,t >= I_t + y_t``, ``cumsum(y)_t <= cumsum(A)_t``,
  ``cumsum(y)_t >= cumsum(A)_(t-W)``, ``sum_t y_t = sum_t A_t``;
* power follows utilization: ``P_s,t = PUE_s (idle_s C_s + (1 - idle_s) w_s,t)``;
  reactive power follows the power factor: ``Q_s,t = P_s,t tan(phi_s)``; each site is a
  balanced three-phase load (a third per phase);
* its bill: ``sum_s,t pi_s,t P_s,t`` with ``pi_s,t`` the mean over the phases of the
  DLMPs at b_s (a balanced load pays ``sum_phi DLMP_phi P / 3``).

In the game it only sees the DLMPs at its own sites. Each round it answers the last quote
with a proximal best response (:meth:`DataCenterAggregator.respond`)::

    P^(k+1) = argmin_{P feasible} pi^k . P + (rho_k / 2) ||P - P^k||^2

and reports the equilibrium gap ``pi^k . P^k - min_P pi^k . P`` (zero exactly when P^k is
a best response to its own prices, i.e. a price-taking equilibrium). Damping: when the
schedule's change reverses direction (``<dP^(k+1), dP^k> < 0``, an oscillation), rho is
multiplied by ``prox_growth`` up to ``prox_max_usd_per_kw2h``; the step is recomputed with
the larger rho. The model is compiled once (cvxpy Parameters for prices, the proximal
centre and rho); rho = 0 gives the plain best response used for the gap.

Glossary: ``work_kw`` = w, ``served_deferrable_kw`` = y, ``p_kw`` = P^DC, ``q_kvar`` = Q^DC,
``price_usd_per_kwh`` = pi, ``prox_usd_per_kw2h`` = rho.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from agents.solver import CompiledModel
from coordination.messages import DCAGameReport, DemandSchedule, DLMPQuote, GameProgress
from coordination.runtime import COORDINATOR


@dataclass(frozen=True)
class DCAData:
    """The aggregator's private data: its sites and its workload."""

    name: str
    dso_name: str
    it_capacity_kw: np.ndarray  #: (S,) C_s
    idle_fraction: np.ndarray  #: (S,)
    pue: np.ndarray  #: (S,)
    tan_phi: np.ndarray  #: (S,)
    interactive_kw: np.ndarray  #: (T,) I_t
    deferrable_kw: np.ndarray  #: (T,) A_t
    deferral_window_h: int
    prox_usd_per_kw2h: float
    prox_growth: float
    prox_max_usd_per_kw2h: float

    @property
    def horizon_h(self) -> int:
        return len(self.interactive_kw)

    def p_kw(self, work_kw: np.ndarray) -> np.ndarray:
        """Facility power (S, T) of a workload placement (S, T)."""
        c = np.asarray(self.it_capacity_kw, dtype=float)[:, None]
        idle = np.asarray(self.idle_fraction, dtype=float)[:, None]
        return np.asarray(self.pue, dtype=float)[:, None] * (idle * c + (1 - idle) * work_kw)


def workload_constraints(data: DCAData, work_kw, served_kw) -> list:
    """The aggregator's feasible set (cvxpy constraints), shared with the reference MILP."""
    T, W = data.horizon_h, data.deferral_window_h
    arrived = np.cumsum(data.deferrable_kw)
    due = np.concatenate([np.zeros(min(W, T)), arrived[: max(T - W, 0)]])
    cum = cp.cumsum(served_kw)
    return [
        work_kw >= 0,
        work_kw <= np.asarray(data.it_capacity_kw, dtype=float)[:, None],
        served_kw >= 0,
        cp.sum(work_kw, axis=0) >= data.interactive_kw + served_kw,
        cum <= arrived,
        cum >= due,
        cp.sum(served_kw) == float(arrived[-1]),
    ]


class _LeaderModel:
    """min pi . P + rho/2 ||P - P_prev||^2 over the workload constraints, compiled once."""

    def __init__(self, data: DCAData):
        S, T = len(data.it_capacity_kw), data.horizon_h
        self.price = cp.Parameter((S, T), name="price_usd_per_kwh")
        self.rho_center = cp.Parameter((S, T), name="rho_times_p_prev")
        self.rho = cp.Parameter(nonneg=True, name="rho_usd_per_kw2h")
        self.work_kw = cp.Variable((S, T), name="work_kw")
        self.served_kw = cp.Variable(T, name="served_deferrable_kw")
        c = np.asarray(data.it_capacity_kw, dtype=float)[:, None]
        idle = np.asarray(data.idle_fraction, dtype=float)[:, None]
        pue = np.asarray(data.pue, dtype=float)[:, None]
        self.p_kw = cp.multiply(pue * idle * c, np.ones((S, T))) + cp.multiply(pue * (1 - idle), self.work_kw)
        self.bill = cp.sum(cp.multiply(self.price, self.p_kw))
        # rho/2 ||P - P_prev||^2 up to a constant, written so that the problem stays DPP
        objective = self.bill + self.rho / 2 * cp.sum_squares(self.p_kw) - cp.sum(cp.multiply(self.rho_center, self.p_kw))
        self.compiled = CompiledModel(
            data.name,
            cp.Problem(cp.Minimize(objective), workload_constraints(data, self.work_kw, self.served_kw)),
            infeasible_hint="the workload cannot be served by the sites' capacity",
        )

    def solve(self, price: np.ndarray, center: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
        self.price.value = price
        self.rho.value = rho
        self.rho_center.value = rho * np.asarray(center, dtype=float)
        self.compiled.solve()
        return np.asarray(self.p_kw.value), np.asarray(self.work_kw.value)


class DataCenterAggregator:
    """The leader: proposes demand schedules and answers each DLMP quote."""

    role = "dca"

    def __init__(self, data: DCAData):
        self.name = data.name
        self.data = data
        self.model = _LeaderModel(data)
        self.round = 0
        self.rho = data.prox_usd_per_kw2h
        self.work_kw = self._baseline_work()
        self.p_kw = data.p_kw(self.work_kw)  #: the schedule of the last quote
        self.pending_p_kw = self.p_kw  #: the schedule sent and not yet priced
        self.pending_work_kw = self.work_kw
        self.last_step_kw = np.zeros_like(self.p_kw)
        self.bill_usd = 0.0

    def _baseline_work(self) -> np.ndarray:
        """Round 0, before any price: serve work on arrival, split in proportion to capacity."""
        d = self.data
        share = np.asarray(d.it_capacity_kw, dtype=float) / np.sum(d.it_capacity_kw)
        return share[:, None] * (np.asarray(d.interactive_kw) + np.asarray(d.deferrable_kw))[None, :]

    def _schedule(self, p_kw: np.ndarray) -> DemandSchedule:
        q = p_kw * np.asarray(self.data.tan_phi, dtype=float)[:, None]
        return DemandSchedule(self.name, self.data.dso_name, self.round, p_kw, q)

    # -- protocol steps ----------------------------------------------------------------
    def propose(self, inbox: tuple = ()) -> DemandSchedule:
        """Round 0: the baseline schedule."""
        return self._schedule(self.pending_p_kw)

    def respond(self, inbox: tuple) -> tuple[DemandSchedule, GameProgress]:
        """Price the last schedule, report the equilibrium gap, propose the next schedule."""
        (quote,) = [m for m in inbox if isinstance(m, DLMPQuote)]
        self.p_kw, self.work_kw = self.pending_p_kw, self.pending_work_kw
        price = np.asarray(quote.dlmp_usd_per_kwh, dtype=float).mean(axis=1)  # (S, T)
        self.bill_usd = float(np.sum(price * self.p_kw))
        best_p, _ = self.model.solve(price, self.p_kw, 0.0)
        gap = max(0.0, self.bill_usd - float(np.sum(price * best_p)))
        p_next, work_next = self.model.solve(price, self.p_kw, self.rho)
        step = p_next - self.p_kw
        if float(np.sum(step * self.last_step_kw)) < 0 and self.rho < self.data.prox_max_usd_per_kw2h:
            self.rho = min(self.rho * self.data.prox_growth, self.data.prox_max_usd_per_kw2h)
            p_next, work_next = self.model.solve(price, self.p_kw, self.rho)
            step = p_next - self.p_kw
        self.last_step_kw = step
        self.pending_p_kw, self.pending_work_kw = p_next, work_next
        self.round = quote.round + 1
        progress = GameProgress(self.name, COORDINATOR, quote.round, self.bill_usd, gap,
                                float(np.max(np.abs(step))), self.rho)
        return self._schedule(p_next), progress

    def report(self, inbox: tuple = ()) -> DCAGameReport:
        return DCAGameReport(self.name, COORDINATOR, self.bill_usd, self.p_kw, self.work_kw)

    # -- checkpoints --------------------------------------------------------------------
    _STATE = ("round", "rho", "work_kw", "p_kw", "pending_p_kw", "pending_work_kw", "last_step_kw", "bill_usd")

    def get_state(self) -> dict:
        return {k: getattr(self, k) for k in self._STATE}

    def set_state(self, state: dict) -> None:
        for k in self._STATE:
            setattr(self, k, state[k])
