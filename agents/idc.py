"""Data-center agent: spatial-temporal migration of delay-tolerant data load, the paper's (8)-(14).

One agent runs the computation network of the data centers (the paper's IDCs DC_1..DC_rho)
and keeps their workload private; it meets the feeder operator only through the data
centers' power, which it re-plans in answer to prices (ADMM, :mod:`coordination.cpds_operation`).

Model (one day, periods t; ``r`` = data center, one front-end server per data center):

* (8) ``L_{S_k,t} = sum_r D_{DC_r,S_k,t}``: each front-end server's demand goes to its own
  data center (``alloc`` fixed to the demand); moving work elsewhere is the spatial migration;
* (13) ``mig[r, s, t]`` >= 0, the data load sent from r to s, with
  ``sum_s mig[r, s, t] <= D_{DC_r,max}``;
* (14) ``mig[r, s, t] * mig[s, r, t] <= 0``: not both ways at once; this bilinear constraint is
  not convex, so it is left out and enforced at the optimum by a small bandwidth cost per unit
  moved (a two-way exchange only adds cost); :func:`two_way_violation` checks it;
* (9)-(10) processed load ``D[r, t] = L[r, t] + sum_s mig[s, r, t] - sum_s mig[r, s, t] - defer[r, t]``
  with ``defer[r, t]`` = Delta D_{DC_r,t} the temporal migration into the data-load storage
  (negative: taken back out), ``defer <= delay_tolerant_share * L``;
* (11)-(12) the stored backlog ``S[t+1] = S[t] + sum_r defer[r, t] dt`` within ``[0, D_max]``,
  empty at the start and at the end of the day (every deferred task is done within the day);
* ``0 <= D[r, t] <= idc_capacity_factor * peak_r``; power ``p_idc = P_IDC * D`` (kW);
* cost (19): ``sum_t MP_t * P_IDC * D[r, t] dt`` plus the bandwidth cost.

Without migration, ``mig = defer = 0`` and ``D = L``.

Glossary: ``demand_units`` = L_{S_k,t}; ``processed_units`` = D_{DC_r,t}; ``mig_units`` =
Delta D_{DC_r,DC_r*,t}; ``defer_units`` = Delta D_{DC_r,t}; ``backlog_units`` = stored data load;
``p_idc_mw`` = D_{r,t} P_IDC^t.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from agents.solver import CompiledModel


@dataclass(frozen=True)
class IDCData:
    """The data centers' private data."""

    name: str
    operator: str  #: the feeder operator agent it trades power with
    demand_units: np.ndarray  #: (n_idc, T) L_{S_k,t}
    price_cny_per_kwh: np.ndarray  #: (T,) MP_t
    kw_per_unit: float  #: P_IDC
    capacity_units: np.ndarray  #: (n_idc,) processing capacity
    delay_tolerant_share: float
    storage_max_units: float  #: D_max
    spatial_max_units: float  #: D_DCr,max
    migration_cost_cny_per_unit: float
    dt_h: float
    migration: bool
    rho_cny_per_mw2: float  #: ADMM penalty


@dataclass
class IDCBlock:
    """cvxpy pieces of the data-center model (shared by the agent and the centralized solve)."""

    processed_units: cp.Variable
    mig_units: cp.Variable | None
    defer_units: cp.Variable | None
    backlog_units: cp.Variable | None
    p_idc_mw: cp.Expression
    cost_cny: cp.Expression  #: one day's energy purchase (19) plus the bandwidth cost
    constraints: list


def build_idc_block(d: IDCData) -> IDCBlock:
    n, T = d.demand_units.shape
    D = cp.Variable((n, T), nonneg=True, name="processed_units")
    cons = [D <= d.capacity_units[:, None] * np.ones((1, T))]
    mig = defer = backlog = None
    bandwidth = 0
    if d.migration:
        mig = cp.Variable((n * n, T), nonneg=True, name="mig_units")  # row r*n + s: from r to s
        defer = cp.Variable((n, T), name="defer_units")
        backlog = cp.Variable(T + 1, nonneg=True, name="backlog_units")
        out_m = np.zeros((n, n * n))
        in_m = np.zeros((n, n * n))
        for r in range(n):
            for s in range(n):
                out_m[r, r * n + s] = 1.0
                in_m[s, r * n + s] = 1.0
        diag = [r * n + r for r in range(n)]
        cons += [
            mig[diag, :] == 0,
            D == d.demand_units + in_m @ mig - out_m @ mig - defer,  # (9)-(10)
            out_m @ mig <= d.spatial_max_units,  # (13)
            defer <= d.delay_tolerant_share * d.demand_units,
            backlog[1:] == backlog[:-1] + cp.sum(defer, axis=0) * d.dt_h,  # (11)
            backlog <= d.storage_max_units,  # (12)
            backlog[0] == 0,
            backlog[T] == 0,
        ]
        bandwidth = d.migration_cost_cny_per_unit * cp.sum(mig)
    else:
        cons.append(D == d.demand_units)
    p_idc_mw = D * (d.kw_per_unit / 1000.0)
    energy_cost = cp.sum(cp.multiply(d.price_cny_per_kwh[None, :] * 1000.0 * d.dt_h, p_idc_mw))  # (19), one day
    return IDCBlock(D, mig, defer, backlog, p_idc_mw, energy_cost + bandwidth, cons)


def two_way_violation(mig_units: np.ndarray | None, n: int) -> float:
    """Largest min(mig[r->s], mig[s->r]) over pairs and periods: 0 when (14) holds."""
    if mig_units is None:
        return 0.0
    worst = 0.0
    for r in range(n):
        for s in range(r + 1, n):
            worst = max(worst, float(np.max(np.minimum(mig_units[r * n + s], mig_units[s * n + r]))))
    return worst


class DataCenterAgent:
    """Shifts data load in space and time in answer to the operator's prices (ADMM x-update).

    Each call of :meth:`respond` takes the operator's :class:`OperatorSignal` (its own copy of
    the data centers' power and the scaled multiplier u, whose price is ``rho * u``), solves

        min  cost(D) + rho/2 || p_idc(D) - (p_operator + u) ||^2   s.t. (8)-(13)

    and sends back its power plan (:class:`IDCPowerPlan`). The model is built once; only
    the parameters change.
    """

    role = "idc"

    def __init__(self, data: IDCData):
        self.data = data
        self.name = data.name
        self.block = build_idc_block(data)
        n, T = data.demand_units.shape
        self.target = cp.Parameter((n, T), name="target_mw")
        obj = self.block.cost_cny + data.rho_cny_per_mw2 / 2 * cp.sum_squares(self.block.p_idc_mw - self.target)
        self.model = CompiledModel(
            data.name, cp.Problem(cp.Minimize(obj), self.block.constraints),
            infeasible_hint="the data load exceeds the data centers' capacity or the storage limits; "
            "raise idc_capacity_factor or data_storage_max_units",
        )
        self.target.value = data.demand_units * data.kw_per_unit / 1000.0
        self.iteration = 0
        self.own_cost = 0.0

    def _solve_and_send(self):
        from coordination.cpds_operation import IDCPowerPlan

        self.model.solve()
        self.own_cost = float(self.block.cost_cny.value)
        return IDCPowerPlan(self.name, self.data.operator, self.iteration, np.asarray(self.block.p_idc_mw.value))

    def propose(self, inbox: tuple = ()):
        """First plan: the data load processed where and when it arrives (no migration)."""
        from coordination.cpds_operation import IDCPowerPlan

        return IDCPowerPlan(self.name, self.data.operator, 0, self.data.demand_units * self.data.kw_per_unit / 1000.0)

    def respond(self, inbox: tuple):
        from coordination.cpds_operation import OperatorSignal

        (sig,) = [m for m in inbox if isinstance(m, OperatorSignal)]
        self.iteration = sig.iteration
        self.target.value = np.asarray(sig.p_operator_mw) + np.asarray(sig.u_mw)
        return self._solve_and_send()

    def report(self, inbox: tuple = ()):
        from coordination.cpds_operation import IDCOutcome

        b = self.block
        mig = None if b.mig_units is None else np.asarray(b.mig_units.value)
        n = self.data.demand_units.shape[0]
        return IDCOutcome(
            self.name, "coordinator", self.own_cost,
            0.0 if mig is None else float(mig.sum()),
            0.0 if b.defer_units is None else float(np.maximum(b.defer_units.value, 0).sum()),
            two_way_violation(mig, n),
            np.asarray(b.processed_units.value),
        )

    def get_state(self) -> dict:
        return {"target": self.target.value, "iteration": self.iteration}

    def set_state(self, state: dict) -> None:
        self.target.value, self.iteration = state["target"], state["iteration"]
