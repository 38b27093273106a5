"""A distribution system operator (DSO): deterministic day-ahead feeder dispatch.

Model on a radial feeder (LinDistFlow, :mod:`networks.lindistflow`), one hour t:

* net bus demand ``p_j = D_j - s_j + sum_{EVCS at j} e_i - sum_{wind at j} w_m`` (MW),
  ``q_j = Q_j - s_j tan(phi_j)`` (Mvar; shedding keeps the bus power factor);
* wind ``w_m,t`` in [0, W_m,t], curtailment at ``c_curt`` per MWh;
* load shedding ``s_j,t`` in [0, D_j,t] at ``VOLL``;
* EV charging stations: charging ``e_i,t`` in [0, Ebar_i,t] (plugged-in capacity in
  hour t) with the day's energy ``sum_t e_i,t = E_i`` (a deterministic, aggregate
  stand-in for the EVCS agents of the full framework);
* branch flows ``P = Dm p``, ``Q = Dm q``; the octagon ``|P|, |Q| <= S`` and
  ``|P| + |Q| <= sqrt(2) S`` approximates ``P^2 + Q^2 <= S^2``;
* voltages ``v^2 = v_0^2 - 2 (R p + X q)`` in [Vmin^2, Vmax^2];
* boundary power ``x^D_t = sum_j p_j,t`` (lossless), the DSO's copy of the shared
  variable, within +-``boundary_limit_mw``.

Glossary: ``boundary_mw`` = P^B (DSO copy), ``ev_mw`` = EVCS charging, ``wind_mw`` =
DSO wind P^W, ``shed_mw`` = load shedding, ``v2_pu`` = squared voltage.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.common import ReportsOutcome, incidence_columns
from agents.solver import CompiledModel
from coordination.admm_math import linear_coefficient
from coordination.messages import BoundaryProposal, BoundaryUpdate
from coordination.privacy import NoiseSettings
from networks.feeder import Feeder


@dataclass(frozen=True)
class DSOData:
    """A DSO's private data."""

    name: str
    tso_name: str
    feeder: Feeder
    load_p_mw: np.ndarray  #: (n_bus, T)
    load_q_mvar: np.ndarray  #: (n_bus, T)
    wind_bus: np.ndarray  #: (n_wind,) feeder bus positions
    wind_forecast_mw: np.ndarray  #: (n_wind, T)
    ev_bus: np.ndarray  #: (n_ev,) feeder bus positions of the charging stations
    ev_max_mw: np.ndarray  #: (n_ev, T) charging capacity plugged in per hour
    ev_energy_mwh: np.ndarray  #: (n_ev,) energy the station must deliver over the horizon
    boundary_limit_mw: float
    voll_usd_per_mwh: float
    curtailment_usd_per_mwh: float
    v_root_pu: float = 1.0  #: substation voltage

    @property
    def horizon_h(self) -> int:
        return int(self.load_p_mw.shape[1])


@dataclass
class DSOModel:
    wind_mw: cp.Variable
    shed_mw: cp.Variable
    ev_mw: cp.Variable
    boundary_mw: cp.Variable
    constraints: list
    cost: cp.Expression
    v2_pu: cp.Expression
    p_branch_mw: cp.Expression


def build_dso_model(data: DSOData) -> DSOModel:
    """Variables, constraints and cost of the DSO problem (no ADMM terms).

    Branch flows and squared voltages are variables tied by the sparse LinDistFlow
    recursion (one row per bus or branch), which keeps the model sparse.
    """
    f = data.feeder
    T, n, nb = data.horizon_h, f.n_bus, f.n_branch
    w = cp.Variable((len(data.wind_bus), T), name="wind_mw")
    s = cp.Variable((n, T), name="shed_mw")
    e = cp.Variable((len(data.ev_bus), T), name="ev_mw")
    xb = cp.Variable(T, name="boundary_mw")
    P = cp.Variable((nb, T), name="p_branch_mw")
    Q = cp.Variable((nb, T), name="q_branch_mvar")
    v2 = cp.Variable((n, T), name="v2_pu")

    load_p = data.load_p_mw
    with np.errstate(divide="ignore", invalid="ignore"):
        tan_phi = np.where(load_p > 0, data.load_q_mvar / load_p, 0.0)
    p_net = load_p - s + incidence_columns(data.ev_bus, n) @ e - incidence_columns(data.wind_bus, n) @ w
    q_net = data.load_q_mvar - cp.multiply(tan_phi, s)
    # Bus balance: flow into a bus from its parent branch minus flows to its children = net demand.
    # A[j, k] = +1 if branch k ends at bus j, -1 if it starts there; the root row gives the boundary.
    k = np.arange(nb)
    A = sp.csr_matrix(
        (np.r_[np.ones(nb), -np.ones(nb)], (np.r_[f.branch_to, f.branch_from], np.r_[k, k])), shape=(n, nb)
    )
    r = f.branch_r_pu / f.base_mva
    x = f.branch_x_pu / f.base_mva
    rating = f.branch_rating_mva[:, None]
    finite = np.flatnonzero(np.isfinite(f.branch_rating_mva))
    cons = [
        A[1:, :] @ P == p_net[1:, :],
        A[1:, :] @ Q == q_net[1:, :],
        xb == -(A[0, :] @ P) + p_net[0, :],
        v2[0, :] == data.v_root_pu**2,
        v2[f.branch_to, :] == v2[f.branch_from, :] - 2 * (sp.diags(r) @ P + sp.diags(x) @ Q),
        v2[1:, :] >= f.v_min_pu**2,
        v2[1:, :] <= f.v_max_pu**2,
        xb <= data.boundary_limit_mw,
        xb >= -data.boundary_limit_mw,
        w >= 0,
        w <= data.wind_forecast_mw,
        s >= 0,
        s <= np.maximum(load_p, 0.0),
        e >= 0,
        e <= data.ev_max_mw,
        cp.sum(e, axis=1) == data.ev_energy_mwh,
    ]
    if finite.size:
        Pf, Qf, S = P[finite, :], Q[finite, :], rating[finite]
        for expr, limit in ((Pf, S), (Qf, S), (Pf + Qf, np.sqrt(2) * S), (Pf - Qf, np.sqrt(2) * S)):
            cons += [expr <= limit, expr >= -limit]
    cost = data.voll_usd_per_mwh * cp.sum(s) + data.curtailment_usd_per_mwh * cp.sum(data.wind_forecast_mw - w)
    return DSOModel(w, s, e, xb, cons, cost, v2, P)


class DSOAgent(ReportsOutcome):
    """A DSO as an ADMM agent.

    * :meth:`baseline`: its own optimum with no coupling, sent as the first proposal.
    * :meth:`solve_local`: apply the TSO's :class:`BoundaryUpdate`, minimize own cost
      plus ADMM terms, answer with a :class:`BoundaryProposal`.
    * :meth:`report_cost`: its own cost at the current solution.
    """

    role = "dso"

    def __init__(self, data: DSOData, noise: NoiseSettings = NoiseSettings()):
        self.name = data.name
        self.noise = noise
        self.noise_rng = noise.generator(data.name)
        self.data = data
        self.model = build_dso_model(data)
        T = data.horizon_h
        self.rho_param = cp.Parameter(nonneg=True, name="rho")
        self.linear_param = cp.Parameter(T, name="lambda_minus_rho_z")
        xb = self.model.boundary_mw
        objective = self.model.cost + self.linear_param @ xb + 0.5 * self.rho_param * cp.sum_squares(xb)
        self.solver = CompiledModel(
            self.name,
            cp.Problem(cp.Minimize(objective), self.model.constraints),
            infeasible_hint="check the EV energy against the plugged-in capacity, the voltage and "
            "branch limits and the substation limit",
        )
        self.iteration = 0
        self.outcome = (0.0, 0.0, 0.0)

    def get_state(self) -> dict:
        """What a restarted DSO needs besides its data: the iteration and its last outcome."""
        return {"iteration": self.iteration, "outcome": self.outcome, "noise": self.noise_rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.iteration, self.outcome = state["iteration"], state["outcome"]
        self.noise_rng.bit_generator.state = state["noise"]

    def _proposal(self) -> BoundaryProposal:
        p_mw = self.noise.perturb(np.asarray(self.model.boundary_mw.value), self.noise_rng)
        return BoundaryProposal(self.name, self.data.tso_name, self.iteration, p_mw)

    def baseline(self, inbox: tuple = ()) -> BoundaryProposal:
        """Solve without coupling terms (stage 1: the boundary baseline)."""
        self.rho_param.value = 0.0
        self.linear_param.value = np.zeros(self.data.horizon_h)
        self.solver.solve()
        self._record_outcome()
        return self._proposal()

    def solve_local(self, inbox: tuple) -> BoundaryProposal:
        (update,) = [m for m in inbox if isinstance(m, BoundaryUpdate)]
        self.iteration = update.iteration
        self.rho_param.value = update.rho_usd_per_mw2h
        self.linear_param.value = linear_coefficient(
            update.multiplier_usd_per_mwh, update.consensus_p_mw, update.rho_usd_per_mw2h
        )
        self.solver.solve()
        self._record_outcome()
        return self._proposal()
