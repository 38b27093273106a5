"""The TSO's intraday recourse (re-dispatch) for one wind scenario, and its exact value.

MODELS.md section 1 / issue 3 spec (paper: tso-dso-evcs-admm-ccg-dro-aro). Given the
first stage (thermal schedule ``p``, thermal reserves ``ru``/``rd``, boundary power
``P`` and boundary reserves ``Rup``/``Rdn``) and the available wind ``xi_j`` of scenario
j, the TSO re-dispatches:

* thermal deployment ``dp`` in [-rd, ru] (the spec's ``dp_up - dp_dn``: with a linear
  cost, deploying up and down at one unit together never pays, so one signed variable per
  unit and hour is the same model with fewer variables);
* boundary deployment ``f_j`` (K, T) in [-Rdn, Rup]: the feeder then draws ``P - f_j``;
* wind ``w_j`` in [0, xi_j] (curtailment ``xi_j - w_j``);
* load shedding ``s_j`` in [0, load] at the buses with load;
* realized DC balance ``C_g (p + dp) + C_w w_j + s_j - C_b (P - f_j) - D
  = A^T flow_j`` with ``flow_j = b (A theta_j - shift)`` and the line ratings.

Recourse cost ``Q_j = c1 @ dp + c_curt sum(xi_j - w_j) + VOLL sum(s_j)``.

:func:`recourse_copy` builds one copy, with the first stage given as cvxpy Variables
(the master holds all K copies) or Parameters (:class:`RecourseEvaluator`, the exact
``Q_j`` at a fixed first stage: one LP with K independent copies, compiled once and
re-solved with new first-stage values).

Glossary: ``dp_mw`` -> thermal reserve deployment (up positive); ``deploy_mw`` -> f
(the TSO's boundary requirement); ``wind_mw`` -> P^W_j; ``shed_mw`` -> load shedding;
``theta_rad`` -> bus angles of scenario j; ``values_usd`` -> Q_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.common import incidence_columns
from agents.solver import CompiledModel
from agents.tso import TSOData
from networks.dcpf import branch_incidence, branch_susceptance_pu

#: Solver of the exact recourse LP (HiGHS is fast on LPs; the master keeps Clarabel for its QP).
RECOURSE_SOLVER = "HIGHS"


@dataclass(frozen=True)
class TSOGrid:
    """Constant matrices of the TSO's DC network, built once from :class:`TSOData`."""

    gen_map: sp.csr_matrix  #: (n_bus, n_gen)
    wind_map: sp.csr_matrix  #: (n_bus, n_wind)
    boundary_map: sp.csr_matrix  #: (n_bus, K)
    shed_map: sp.csr_matrix  #: (n_bus, n_load): the buses with load
    incidence: sp.csr_matrix  #: A (n_branch, n_bus)
    susceptance_mw: sp.dia_matrix  #: diag(b * base_mva)
    shift_flow_mw: np.ndarray  #: (n_branch,) b * base * shift
    net_load_mw: np.ndarray  #: (n_bus, T) load minus fixed injections
    shed_max_mw: np.ndarray  #: (n_load, T) load at the buses with load
    rated: np.ndarray  #: positions of the rated branches
    rating_mw: np.ndarray  #: (n_rated,)
    slack_bus: int


def tso_grid(data: TSOData) -> TSOGrid:
    net = data.network
    n_bus = net.n_bus
    load = np.maximum(np.asarray(data.load_p_mw, dtype=float), 0.0)
    load_bus = np.flatnonzero(load.max(axis=1) > 0)
    fixed = np.zeros(n_bus) if net.fixed_injection_p_mw is None else np.asarray(net.fixed_injection_p_mw)
    shift = np.zeros(net.n_branch) if net.branch_shift_rad is None else np.asarray(net.branch_shift_rad)
    b_mw = branch_susceptance_pu(net) * net.base_mva
    rated = np.flatnonzero(np.isfinite(net.branch_rating_mw))
    return TSOGrid(
        gen_map=incidence_columns(net.gen_bus, n_bus),
        wind_map=incidence_columns(data.wind_bus, n_bus),
        boundary_map=incidence_columns(data.boundary_bus, n_bus),
        shed_map=incidence_columns(load_bus, n_bus),
        incidence=branch_incidence(net),
        susceptance_mw=sp.diags(b_mw),
        shift_flow_mw=b_mw * shift,
        net_load_mw=np.asarray(data.load_p_mw, dtype=float) - fixed[:, None],
        shed_max_mw=load[load_bus],
        rated=rated,
        rating_mw=np.asarray(net.branch_rating_mw, dtype=float)[rated],
        slack_bus=int(net.slack_bus),
    )


def dc_flow_constraints(grid: TSOGrid, theta: cp.Variable, injection: cp.Expression) -> tuple[list, cp.Expression]:
    """``A^T flow == injection``, slack angle 0 and the ratings; returns (constraints, flow_mw)."""
    flow = grid.susceptance_mw @ (grid.incidence @ theta) - grid.shift_flow_mw[:, None]
    cons = [grid.incidence.T @ flow == injection, theta[grid.slack_bus, :] == 0]
    if grid.rated.size:
        limit = grid.rating_mw[:, None]
        cons += [flow[grid.rated, :] <= limit, flow[grid.rated, :] >= -limit]
    return cons, flow


@dataclass(frozen=True)
class FirstStage:
    """The first-stage quantities a recourse copy reads (Variables or Parameters)."""

    p_mw: cp.Expression  #: (n_gen, T) thermal schedule
    ru_mw: cp.Expression  #: (n_gen, T) thermal up reserve
    rd_mw: cp.Expression  #: (n_gen, T) thermal down reserve
    boundary_mw: cp.Expression  #: (K, T) P^T
    up_mw: cp.Expression  #: (K, T) R^B,up
    dn_mw: cp.Expression  #: (K, T) R^B,dn


@dataclass
class RecourseCopy:
    """One scenario's recourse variables, constraints and cost."""

    dp_mw: cp.Variable
    deploy_mw: cp.Variable
    wind_mw: cp.Variable
    shed_mw: cp.Variable
    theta_rad: cp.Variable
    constraints: list
    cost_usd: cp.Expression
    curtailment_mwh: cp.Expression
    shedding_mwh: cp.Expression


def recourse_copy(data: TSOData, grid: TSOGrid, first: FirstStage, xi_mw: np.ndarray, tag: str) -> RecourseCopy:
    """The recourse of one wind scenario ``xi_mw`` (n_wind, T) at the first stage ``first``."""
    net = data.network
    T = data.horizon_h
    n_gen, K = net.n_gen, len(data.feeder_names)
    dp = cp.Variable((n_gen, T), name=f"dp_mw_{tag}")
    f = cp.Variable((K, T), name=f"deploy_mw_{tag}")
    w = cp.Variable(xi_mw.shape, nonneg=True, name=f"wind_mw_{tag}")
    s = cp.Variable(grid.shed_max_mw.shape, nonneg=True, name=f"shed_mw_{tag}")
    theta = cp.Variable((net.n_bus, T), name=f"theta_rad_{tag}")
    injection = (
        grid.gen_map @ (first.p_mw + dp)
        + grid.wind_map @ w
        + grid.shed_map @ s
        - grid.boundary_map @ (first.boundary_mw - f)
        - grid.net_load_mw
    )
    flow_cons, _ = dc_flow_constraints(grid, theta, injection)
    cons = [
        dp <= first.ru_mw,
        dp >= -first.rd_mw,
        f <= first.up_mw,
        f >= -first.dn_mw,
        w <= xi_mw,
        s <= grid.shed_max_mw,
        *flow_cons,
    ]
    curtailment = float(np.sum(xi_mw)) - cp.sum(w)
    shedding = cp.sum(s)
    # Hourly cost variables keep every constraint row short: one dense row over the copy's
    # whole recourse (theta_j >= cost) makes the interior-point KKT factor fill in badly.
    hourly = cp.Variable(T, name=f"recourse_hourly_usd_{tag}")
    cons.append(
        hourly
        == net.gen_cost_c1_usd_per_mwh @ dp
        + data.curtailment_usd_per_mwh * (np.sum(xi_mw, axis=0) - cp.sum(w, axis=0))
        + data.voll_usd_per_mwh * cp.sum(s, axis=0)
    )
    return RecourseCopy(dp, f, w, s, theta, cons, cp.sum(hourly), curtailment, shedding)


@dataclass(frozen=True)
class RecourseResult:
    """Exact recourse of every scenario at one first stage."""

    values_usd: np.ndarray  #: (K_s,) Q_j
    curtailment_mwh: np.ndarray  #: (K_s,) curtailed wind over the day
    shedding_mwh: np.ndarray  #: (K_s,) shed load over the day


class RecourseEvaluator:
    """Q_j for every scenario at a fixed first stage: one LP (K independent copies), compiled once."""

    def __init__(self, name: str, data: TSOData, grid: TSOGrid, scenarios_mw: np.ndarray):
        net = data.network
        T, K = data.horizon_h, len(data.feeder_names)
        self.params = FirstStage(
            p_mw=cp.Parameter((net.n_gen, T), name="p_mw_fixed"),
            ru_mw=cp.Parameter((net.n_gen, T), nonneg=True, name="ru_mw_fixed"),
            rd_mw=cp.Parameter((net.n_gen, T), nonneg=True, name="rd_mw_fixed"),
            boundary_mw=cp.Parameter((K, T), name="boundary_mw_fixed"),
            up_mw=cp.Parameter((K, T), nonneg=True, name="up_mw_fixed"),
            dn_mw=cp.Parameter((K, T), nonneg=True, name="dn_mw_fixed"),
        )
        self.copies = [recourse_copy(data, grid, self.params, xi, f"eval{j}") for j, xi in enumerate(scenarios_mw)]
        cons = [c for copy in self.copies for c in copy.constraints]
        problem = cp.Problem(cp.Minimize(sum(copy.cost_usd for copy in self.copies)), cons)
        self.model = CompiledModel(
            name,
            problem,
            solver=RECOURSE_SOLVER,
            solver_options={},
            infeasible_hint="the recourse LP at the first stage has no solution: a line rating cannot be met "
            "in some wind scenario; check the line ratings and the wind scenarios",
        )

    def evaluate(self, values: dict[str, np.ndarray]) -> RecourseResult:
        """``values`` maps FirstStage field names to arrays; small negatives from the solver are clipped."""
        for key, param in vars(self.params).items():
            v = np.asarray(values[key], dtype=float)
            param.value = np.maximum(v, 0.0) if param.is_nonneg() else v
        self.model.solve()
        return RecourseResult(
            values_usd=np.array([float(c.cost_usd.value) for c in self.copies]),
            curtailment_mwh=np.array([max(0.0, float(c.curtailment_mwh.value)) for c in self.copies]),
            shedding_mwh=np.array([max(0.0, float(c.shedding_mwh.value)) for c in self.copies]),
        )
