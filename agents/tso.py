"""The transmission system operator (TSO): deterministic day-ahead DC dispatch.

Model (one hour t = 0..T-1; sets: buses n, branches l, thermal units g, wind farms w,
feeders k):

* thermal output ``p_g`` in [Pmin_g, Pmax_g], ramp ``|p_g,t - p_g,t-1| <= R_g``;
  cost ``c2_g p^2 + c1_g p`` (the case's polynomial cost; no-load cost c0 omitted,
  since every unit stays on);
* wind ``w_w,t`` in [0, W_w,t] (forecast); curtailment costs ``c_curt`` per MWh;
* load shedding ``s_n,t`` in [0, D_n,t] at value of lost load ``VOLL``;
* boundary power ``x^T_k,t`` (MW drawn by feeder k at its transmission bus), the
  TSO's copy of the shared variable, within +-``boundary_limit_mw``;
* DC power flow: injections ``A^T f = C_g p + C_w w + s - D - C_b x^T``, flows
  ``f = base * b (A theta - shift)``, ``|f| <= F``, slack angle 0.

Glossary to the TSO-DSO paper: ``p_mw`` = P^G, ``wind_mw`` = P^W, ``shed_mw`` =
load shedding, ``boundary_mw`` = P^B (TSO copy), ``theta_rad`` = theta.

The agent adds the ADMM terms (:mod:`coordination.admm_math`) with cvxpy Parameters
so that its model is compiled once and re-solved every iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.common import ReportsOutcome, incidence_columns
from agents.solver import CompiledModel
from coordination.admm_math import (
    ADMMSettings,
    MomentumState,
    consensus_step,
    disagreement_tolerance_usd,
    disagreement_usd,
    linear_coefficient,
    momentum_extrapolate,
    residual_balance,
    residual_balance_per_value,
)
from coordination.messages import BoundaryProposal, BoundaryUpdate, ConvergenceReport
from coordination.privacy import NoiseSettings
from coordination.runtime import COORDINATOR
from networks.dcpf import branch_incidence, branch_susceptance_pu
from networks.transmission import TransmissionNetwork


@dataclass(frozen=True)
class TSOData:
    """The TSO's private data."""

    name: str
    network: TransmissionNetwork
    load_p_mw: np.ndarray  #: (n_bus, T) demand per bus and hour
    gen_ramp_mw_per_h: np.ndarray  #: (n_gen,) ramp limit of each unit
    wind_bus: np.ndarray  #: (n_wind,) bus positions of the wind farms
    wind_forecast_mw: np.ndarray  #: (n_wind, T) available wind power
    feeder_names: tuple[str, ...]  #: the DSO agents' names, in feeder order
    boundary_bus: np.ndarray  #: (K,) bus position where each feeder is attached
    boundary_limit_mw: np.ndarray  #: (K,) substation limit of each feeder
    voll_usd_per_mwh: float
    curtailment_usd_per_mwh: float

    @property
    def horizon_h(self) -> int:
        return int(self.load_p_mw.shape[1])


@dataclass
class TSOModel:
    """cvxpy variables, constraints and cost of the TSO's own problem."""

    p_mw: cp.Variable
    wind_mw: cp.Variable
    shed_mw: cp.Variable
    boundary_mw: cp.Variable
    theta_rad: cp.Variable
    constraints: list
    cost: cp.Expression
    flow_mw: cp.Expression


def build_tso_model(data: TSOData) -> TSOModel:
    """Variables, constraints and cost of the TSO problem (no ADMM terms)."""
    net = data.network
    T = data.horizon_h
    n_gen, n_wind, n_bus, K = net.n_gen, len(data.wind_bus), net.n_bus, len(data.feeder_names)
    p = cp.Variable((n_gen, T), name="p_mw")
    w = cp.Variable((n_wind, T), name="wind_mw")
    s = cp.Variable((n_bus, T), name="shed_mw")
    xb = cp.Variable((K, T), name="boundary_mw")
    theta = cp.Variable((n_bus, T), name="theta_rad")

    gen_map = incidence_columns(net.gen_bus, n_bus)
    wind_map = incidence_columns(data.wind_bus, n_bus)
    boundary_map = incidence_columns(data.boundary_bus, n_bus)
    A = branch_incidence(net)
    b_mw = sp.diags(branch_susceptance_pu(net) * net.base_mva)
    shift = np.zeros(net.n_branch) if net.branch_shift_rad is None else net.branch_shift_rad
    fixed = np.zeros(n_bus) if net.fixed_injection_p_mw is None else net.fixed_injection_p_mw
    flow = b_mw @ (A @ theta) - (b_mw @ shift)[:, None]
    injection = gen_map @ p + wind_map @ w + s - boundary_map @ xb - data.load_p_mw + fixed[:, None]

    cons = [
        A.T @ flow == injection,
        theta[net.slack_bus, :] == 0,
        p >= net.gen_pmin_mw[:, None],
        p <= net.gen_pmax_mw[:, None],
        w >= 0,
        w <= data.wind_forecast_mw,
        s >= 0,
        s <= np.maximum(data.load_p_mw, 0.0),
        xb <= data.boundary_limit_mw[:, None],
        xb >= -data.boundary_limit_mw[:, None],
    ]
    rated = np.isfinite(net.branch_rating_mw)
    if rated.any():
        limit = net.branch_rating_mw[rated][:, None]
        cons += [flow[np.flatnonzero(rated), :] <= limit, flow[np.flatnonzero(rated), :] >= -limit]
    if T > 1:
        ramp = data.gen_ramp_mw_per_h[:, None]
        cons += [p[:, 1:] - p[:, :-1] <= ramp, p[:, :-1] - p[:, 1:] <= ramp]

    cost = (
        cp.sum(cp.multiply(net.gen_cost_c2_usd_per_mw2h[:, None], cp.square(p)))
        + cp.sum(net.gen_cost_c1_usd_per_mwh @ p)
        + data.voll_usd_per_mwh * cp.sum(s)
        + data.curtailment_usd_per_mwh * cp.sum(data.wind_forecast_mw - w)
    )
    return TSOModel(p, w, s, xb, theta, cons, cost, flow)


class TSOAgent(ReportsOutcome):
    """The TSO as an ADMM agent; it also performs the consensus (z, lambda) update.

    Methods, called by :mod:`coordination.admm`:

    * :meth:`initialize`: take the DSOs' baseline proposals as the first consensus.
    * :meth:`solve_local`: minimize own cost plus ADMM terms against the last consensus.
    * :meth:`coordinate`: from the DSOs' proposals, update z, the multipliers and rho;
      answer each DSO with a :class:`BoundaryUpdate` and the coordinator with a
      :class:`ConvergenceReport`.
    * :meth:`report_cost`: the TSO's own cost at its current solution.
    """

    role = "tso"

    def __init__(self, data: TSOData, settings: ADMMSettings, noise: NoiseSettings = NoiseSettings()):
        if settings.rho_per_value:
            raise ValueError("admm.rho_per_value: the deterministic TSO keeps one rho; use it with the robust TSO")
        self.name = data.name
        self.noise = noise
        self.noise_rng = noise.generator(data.name)
        self.data = data
        self.settings = settings
        self.model = build_tso_model(data)
        K, T = len(data.feeder_names), data.horizon_h
        self.rho_param = cp.Parameter(nonneg=True, name="rho")
        self.linear_param = cp.Parameter((K, T), name="lambda_minus_rho_z")
        xb = self.model.boundary_mw
        objective = (
            self.model.cost
            + cp.sum(cp.multiply(self.linear_param, xb))
            + 0.5 * self.rho_param * cp.sum_squares(xb)
        )
        self.solver = CompiledModel(
            self.name,
            cp.Problem(cp.Minimize(objective), self.model.constraints),
            infeasible_hint="check that thermal capacity, wind and shedding can cover the load "
            "and that the line ratings admit a dispatch",
        )
        # Pricing model: own cost with the boundary fixed at a given schedule; the duals of
        # that constraint are the TSO's marginal prices of boundary power (LMPs at the
        # attachment buses), used to start the multipliers (ADMMSettings.warm_start_multipliers).
        self.fixed_boundary_param = cp.Parameter((K, T), name="fixed_boundary_mw")
        self.pricing_link = xb == self.fixed_boundary_param
        self.pricing = CompiledModel(
            self.name,
            cp.Problem(cp.Minimize(self.model.cost), [*self.model.constraints, self.pricing_link]),
            infeasible_hint="the DSOs' baseline boundary power is infeasible for the transmission system",
        )
        self.rho = settings.rho_usd_per_mw2h
        #: rho fixed for the rest of the run (the residuals were met once; settings.cost_tol_rel)
        self.rho_held = False
        #: fast ADMM's memory (settings.momentum); None: no momentum yet
        self.momentum: MomentumState | None = None
        #: always False here: the deterministic DSOs' proposals are exact (see consensus_round)
        self.certify_requested = False
        #: sum lambda^D (x^D - x^T) over the shared values at the last consensus step ($)
        self.disagreement_usd = 0.0
        self.z = np.zeros((K, T))
        self.lam_tso = np.zeros((K, T))
        self.lam_dso = np.zeros((K, T))
        self.x_tso = np.zeros((K, T))
        self.iteration = 0
        self.outcome = (0.0, 0.0, 0.0)

    def get_state(self) -> dict:
        """The ADMM state, for checkpoints (the model is rebuilt from the data)."""
        keys = ("rho", "rho_held", "momentum", "z", "lam_tso", "lam_dso", "x_tso", "disagreement_usd", "iteration", "outcome")
        return {**{k: getattr(self, k) for k in keys}, "noise": self.noise_rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        for k, v in state.items():
            if k == "noise":
                self.noise_rng.bit_generator.state = v
            else:
                setattr(self, k, v)

    def _updates(self) -> list[BoundaryUpdate]:
        return [
            BoundaryUpdate(
                self.name, dso, self.iteration, self.noise.perturb(self.z[k], self.noise_rng), self.lam_dso[k], self.rho
            )
            for k, dso in enumerate(self.data.feeder_names)
        ]

    def _stack(self, inbox: tuple) -> np.ndarray:
        by_sender = {m.sender: m.p_mw for m in inbox if isinstance(m, BoundaryProposal)}
        missing = [d for d in self.data.feeder_names if d not in by_sender]
        if missing:
            raise ValueError(f"TSO {self.name!r}: no boundary proposal from {', '.join(missing)}")
        return np.vstack([by_sender[d] for d in self.data.feeder_names])

    def initialize(self, inbox: tuple) -> list[BoundaryUpdate]:
        """Start the consensus at the DSOs' baseline boundary power (stage 1 of the paper)."""
        self.z = self._stack(inbox)
        if self.settings.warm_start_multipliers:
            lmp = self.boundary_prices_usd_per_mwh(self.z)
            self.lam_tso, self.lam_dso = -lmp, lmp.copy()
        return self._updates()

    def boundary_prices_usd_per_mwh(self, boundary_mw: np.ndarray) -> np.ndarray:
        """(K, T) marginal cost to the TSO of each feeder's boundary power at ``boundary_mw``.

        With the multipliers started at these prices, lambda^T = -price and lambda^D = price
        already satisfy the TSO's optimality condition at the baseline.
        """
        self.fixed_boundary_param.value = boundary_mw
        self.pricing.solve()
        return -np.asarray(self.pricing_link.dual_value, dtype=float)

    def solve_local(self, inbox: tuple = ()) -> None:
        self.rho_param.value = self.rho
        self.linear_param.value = linear_coefficient(self.lam_tso, self.z, self.rho)
        self.solver.solve()
        self.x_tso = np.asarray(self.model.boundary_mw.value, dtype=float)
        self._record_outcome()

    def coordinate(self, inbox: tuple) -> list:
        return consensus_round(self, self._stack(inbox), float(self.model.cost.value))


def consensus_round(agent, x_dso: np.ndarray, own_cost_usd: float, certified: bool = True) -> list:
    """The coordinating TSO's step, shared by the deterministic and the robust TSO: update z and
    the multipliers from the DSOs' copies ``x_dso``, report the residuals and the copies'
    price-weighted disagreement to the coordinator and, unless converged, rebalance rho;
    returns [ConvergenceReport, the agent's updates].

    ``own_cost_usd`` is the TSO's own cost at its last solve (f^T), the scale of the cost
    criterion (``settings.cost_tol_rel``). Once the residuals meet their tolerances but the
    disagreement does not, ``agent.rho_held`` is set and rho stays fixed for the rest of the run.

    ``certified``: every DSO copy came from a C&CG run that ended with its exact check (robust
    DSOs; see ReserveProposal.certified). A round that meets both tests with an uncertified
    copy does not end the run: ``agent.certify_requested`` is set, and the next updates ask
    the DSOs to certify. Those updates repeat this round's inputs (z, the multipliers, rho): the
    step is rolled back, so the next round solves the same local problems with the check, and
    when the certified copies are the ones just proposed, it takes the same step and stops.
    A check that changes a copy turns the repeat into an ordinary ADMM step from the same
    point, with the more exact copy. (Moving z first and certifying the next round's copies
    made the stop wait for z to land inside every test again: 10 rounds on T30D2 case 4.)

    With ``settings.momentum`` the values sent next are the step's carried on by the momentum
    (:func:`coordination.admm_math.momentum_extrapolate`; ``agent.momentum`` is its memory), except
    after a round that asks for certification, changes rho or already meets the primal tolerance,
    which start the momentum afresh."""
    z_prev, lam_prev = agent.z, (agent.lam_tso, agent.lam_dso)
    step = consensus_step(agent.x_tso, x_dso, agent.lam_tso, agent.lam_dso, z_prev, agent.rho, agent.settings)
    agent.z, agent.lam_tso, agent.lam_dso = step.z, step.lam_tso, step.lam_dso
    agent.iteration += 1
    agent.disagreement_usd = disagreement_usd(agent.lam_dso, agent.x_tso, x_dso)
    tolerance = disagreement_tolerance_usd(own_cost_usd, agent.settings)
    tests_met = step.converged and abs(agent.disagreement_usd) <= tolerance
    converged = tests_met and certified
    agent.certify_requested = tests_met and not certified
    if agent.certify_requested:  # certify in place: the next round repeats this one's inputs
        agent.z, (agent.lam_tso, agent.lam_dso) = z_prev, lam_prev
    report = ConvergenceReport(
        agent.name, COORDINATOR, agent.iteration, step.primal_residual, step.dual_residual,
        step.primal_tolerance, step.dual_tolerance, float(np.max(agent.rho)), converged,
        agent.disagreement_usd, tolerance, certified,
    )
    if step.converged:
        agent.rho_held = True  # only the cost criterion is left: keep rho fixed from here on
    rho_before = agent.rho
    if not converged and not agent.rho_held:
        if agent.settings.rho_per_value:  # agent.rho holds one rho per shared value
            agent.rho = residual_balance_per_value(agent.rho, agent.x_tso, x_dso, z_prev, step, agent.settings)
        else:
            agent.rho = residual_balance(agent.rho, step, agent.settings)
    if agent.settings.momentum and not converged:
        if (agent.certify_requested or not np.array_equal(agent.rho, rho_before)
                or step.primal_residual <= step.primal_tolerance):
            # a repeat round, a new rho, or copies that already agree (the tail, where momentum
            # only amplifies the noise of inexact local solves): start the momentum afresh
            agent.momentum = None
        else:
            ext = momentum_extrapolate(step, z_prev, *lam_prev, agent.momentum)
            agent.z, agent.lam_tso, agent.lam_dso, agent.momentum = ext.z, ext.lam_tso, ext.lam_dso, ext.state
    return [report, *agent._updates()]
