"""The robust TSO: energy and reserve scheduling with Wasserstein-DRO wind, solved by C&CG.

MODELS.md section 1 and the issue 3 specification (paper: tso-dso-evcs-admm-ccg-dro-aro).

First stage, per thermal unit g and hour t (code -> symbol):

* ``p_mw`` -> P^G_gt in [Pmin + rd, Pmax - ru]; ramp ``|p_t - p_{t-1}| <= R_g``;
* ``ru_mw``/``rd_mw`` -> R^up_gt / R^dn_gt >= 0, each <= R_g (deliverable within the hour);
* ``wind_da_mw`` -> the day-ahead scheduled wind w0 in [0, forecast];
* ``shared["p_mw"]`` -> P^B (K, T) in [-limit, limit]; ``shared["up_mw"]``/``shared["dn_mw"]``
  -> R^B,up / R^B,dn >= 0 (== 0 when ``data.boundary_reserves`` is False); P^B ==
  ``fixed_p`` (a Parameter) when ``data.boundary_fixed`` (case 2). Project decision (a
  standard one): the reserve band fits the substation limit, ``P - Rup >= -limit`` and
  ``P + Rdn <= limit``, so a deployed requirement never asks a feeder past its limit;
* day-ahead DC balance at the forecast with line ratings:
  ``C_g p + C_w w0 + C_s s0 - C_b P - D = A^T flow``, with planned shedding ``shed_da_mw``
  -> s0 in [0, load] at VOLL. Without it a boundary held at the feeders' baselines (case 2)
  was infeasible on T30D2 (case30's line ratings bind), and in the coupled cases the TSO
  could only relieve congestion by asking the feeders for boundary power they do not have.
  The recourse re-dispatches from ``p`` with its own shedding (it does not read s0), so a
  planned shortfall is paid at VOLL in the schedule and again where it remains at real time;
* cost ``sum c2 p^2 + c1 p + c_ru ru + c_rd rd + VOLL s0`` (``first_stage_cost``).

Recourse (agents/tso_recourse.py): one copy per wind scenario j in the master, with cost
``Q_j``; ``recourse_usd[j]`` -> theta_j >= Q_j(copy j). Worst-case expected recourse
``eta`` >= ``q_l @ theta`` for each distribution slot l (cvxpy Parameter (L, K), rows
initialised to 1/K). ``separate`` computes the exact Q_j at the master's first stage, the
worst distribution q* in the ball (agents/wasserstein.py) and, when its expectation
exceeds eta by more than the tolerance, writes q* into the next slot (when the slots are
full, into the one with the smallest ``q_l @ theta``). Because the master holds every
scenario's recourse copy, each recourse is feasible at every first stage the master
returns (relatively complete recourse by construction); C&CG only searches for the worst
distribution.

Benders form (``data.ccg.recourse == "benders"``, agents/tso_benders.py): instead of the
copies, ``recourse_hourly_usd`` -> theta_jt with ``recourse_usd[j] = sum_t theta_jt`` and
hourly optimality / feasibility cuts from the K x T hourly recourse LPs; ``separate`` writes
them until the worst expectation is within ``BENDERS_TOL_REL`` of eta. The master is then
about a fifth of the size (T118D10: 15,046 variables, 4,848 of them the cut rows' copies of x and
theta, against 78,838) and is solved by
:class:`agents.solver.CutAugmentedModel` (:meth:`TSOProblem.compile`).

:class:`TSORobustAgent` wraps the problem as the ADMM coordinator of the consensus on the
stacked (3, K, T) arrays (boundary power, up and down reserve), see
:mod:`coordination.admm_math`.
"""

from __future__ import annotations


import cvxpy as cp
import numpy as np

from agents.ccg import CCGRun, CutReport, fill_slot, solve_with_cuts
from agents.robust_data import TSORobustData
from agents.solver import DEFAULT_SOLVER_OPTIONS, CompiledModel, CutAugmentedModel
from agents.tso import TSOAgent, consensus_round
from agents.tso_benders import BendersRows, HourlyRecourse, recourse_lower_bound_usd
from agents.tso_recourse import FirstStage, RecourseEvaluator, RecourseResult, dc_flow_constraints, recourse_copy, tso_grid
from agents.wasserstein import ball_constraints, scenario_distances_mw, worst_case_distribution
from coordination.admm_math import ADMMSettings, MomentumState, linear_coefficient
from coordination.messages import (
    BoundaryPlanReport,
    LineLoadingReport,
    ReserveProposal,
    ReserveUpdate,
    RobustCostReport,
)
from coordination.runtime import COORDINATOR

SHARED_KEYS = ("p_mw", "up_mw", "dn_mw")
#: Benders form: the cuts must bring eta within this share of the TSO's objective of the worst
#: case (or within ``ccg.tol_rel`` where that is tighter). The copies form is exact at every
#: master solve, so the Benders form is held near that rather than at the C&CG tolerance.
BENDERS_TOL_REL = 1e-5
#: Benders form: Clarabel on the conic (SOC) form of the quadratic objective. With cvxpy's
#: quadratic-objective path the T118D10 master with 1,655 cut rows needed 653 Clarabel
#: iterations (128 s) and stopped AlmostSolved; in SOC form 41 iterations (11 s), same optimum
#: within 0.003 %. (The KKT solver: QDLDL, ``DEFAULT_SOLVER_OPTIONS``.)
BENDERS_SOLVER_OPTIONS = {**DEFAULT_SOLVER_OPTIONS, "use_quad_obj": False}

#: How the master bounds the worst-case expectation eta.
BALL_FORMS = {
    "cuts": "C&CG: eta >= q_l @ theta for the worst distributions found so far (fixed-size slots)",
    "dual": "the slots plus the exact LP dual of the worst expectation over the ball (one master solve)",
}
#: The default is ``CCGSettings.ball`` = "dual". Measured on T30D2 (24 h, K = 10): "cuts" needs 17
#: master solves alone and did not converge in 30 with the ADMM terms (Kelley-type tail), "dual"
#: needs one (2.6 s first solve).


def validate_tso_robust_data(data: TSORobustData) -> None:
    """Refuse bad input with one message naming the field and what to do."""
    base = data.base
    T, n_gen, n_wind = base.horizon_h, base.network.n_gen, len(base.wind_bus)
    where = f"TSORobustData({data.name!r})"
    data.uncertainty.validate(f"{where}.uncertainty", T)
    data.ccg.validate(f"{where}.ccg")
    xi = np.asarray(data.wind_scenarios_mw)
    if xi.ndim != 3 or xi.shape[1:] != (n_wind, T) or xi.shape[0] < 1:
        raise ValueError(
            f"{where}.wind_scenarios_mw has shape {xi.shape}; give (K, n_wind, T) = (K, {n_wind}, {T}) "
            "with K >= 1 scenarios of available wind (MW)"
        )
    if not np.all(np.isfinite(xi)) or np.any(xi < 0):
        raise ValueError(f"{where}.wind_scenarios_mw holds negative or non-finite values; give available wind >= 0 MW")
    for field in ("reserve_up_cost_usd_per_mw_h", "reserve_dn_cost_usd_per_mw_h"):
        c = np.asarray(getattr(data, field), dtype=float)
        if c.shape != (n_gen,) or not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"{where}.{field} must be {n_gen} finite costs >= 0 ($/MW-h), one per unit; got shape {c.shape}")
    # Hour by hour: can thermal capacity, forecast wind and the feeders' export cover the load?
    supply = base.network.gen_pmax_mw.sum() + base.wind_forecast_mw.sum(axis=0) + base.boundary_limit_mw.sum()
    net_load = base.load_p_mw.sum(axis=0)
    if base.network.fixed_injection_p_mw is not None:
        net_load = net_load - base.network.fixed_injection_p_mw.sum()
    short = np.flatnonzero(supply < net_load)
    if short.size:
        t = int(short[0])
        raise ValueError(
            f"TSO {data.name!r}, hour {t}: load {net_load[t]:.1f} MW exceeds thermal capacity + forecast wind + "
            f"feeder export ({supply[t]:.1f} MW); the plan would shed load in every scenario: check the load and capacity data"
        )


class TSOProblem:
    """The robust TSO master (first stage, K recourse copies, distribution slots) as a RobustProblem."""

    def __init__(self, data: TSORobustData, ball: str | None = None):
        validate_tso_robust_data(data)
        ball = data.ccg.ball if ball is None else ball
        if ball not in BALL_FORMS:
            raise ValueError(f"ball = {ball!r}; choose one of {', '.join(BALL_FORMS)}")
        self.ball = ball
        self.data = data
        base, net = data.base, data.base.network
        T, K, n_gen = base.horizon_h, len(base.feeder_names), net.n_gen
        self.grid = grid = tso_grid(base)
        self.scenarios_mw = np.asarray(data.wind_scenarios_mw, dtype=float)
        n_scen = self.scenarios_mw.shape[0]
        self.distances_mw = scenario_distances_mw(self.scenarios_mw)

        p = cp.Variable((n_gen, T), name="p_mw")
        ru = cp.Variable((n_gen, T), nonneg=True, name="ru_mw")
        rd = cp.Variable((n_gen, T), nonneg=True, name="rd_mw")
        w0 = cp.Variable((len(base.wind_bus), T), nonneg=True, name="wind_da_mw")
        xb = cp.Variable((K, T), name="boundary_p_mw")
        up = cp.Variable((K, T), nonneg=True, name="boundary_up_mw")
        dn = cp.Variable((K, T), nonneg=True, name="boundary_dn_mw")
        theta0 = cp.Variable((net.n_bus, T), name="theta_da_rad")
        s0 = cp.Variable(grid.shed_max_mw.shape, nonneg=True, name="shed_da_mw")
        self.shed_da_mw = s0
        self.shared = {"p_mw": xb, "up_mw": up, "dn_mw": dn}
        self.first = FirstStage(p, ru, rd, xb, up, dn)
        self.wind_da_mw = w0
        self.fixed_p = cp.Parameter((K, T), name="fixed_boundary_p_mw")
        self.fixed_p.value = np.zeros((K, T))

        ramp = np.asarray(base.gen_ramp_mw_per_h, dtype=float)[:, None]
        limit = np.asarray(base.boundary_limit_mw, dtype=float)[:, None]
        injection0 = grid.gen_map @ p + grid.wind_map @ w0 + grid.shed_map @ s0 - grid.boundary_map @ xb - grid.net_load_mw
        flow_cons, self.flow_da_mw = dc_flow_constraints(grid, theta0, injection0)
        cons = [
            p + ru <= net.gen_pmax_mw[:, None],
            p - rd >= net.gen_pmin_mw[:, None],
            ru <= ramp,
            rd <= ramp,
            w0 <= base.wind_forecast_mw,
            s0 <= grid.shed_max_mw,
            xb <= limit,
            xb >= -limit,
            xb - up >= -limit,
            xb + dn <= limit,
            *flow_cons,
        ]
        if T > 1:
            cons += [p[:, 1:] - p[:, :-1] <= ramp, p[:, :-1] - p[:, 1:] <= ramp]
        if not data.boundary_reserves:
            cons += [up == 0, dn == 0]
        if data.boundary_fixed:
            cons += [xb == self.fixed_p]
        #: the quadratic part of the generation cost, sum c2 p^2: (p, c2 per entry); the rest
        #: of the first-stage cost is linear (``first_stage_linear_usd``)
        self.quadratic = (p, np.repeat(net.gen_cost_c2_usd_per_mw2h[:, None], T, axis=1))
        self.gen_bounds_mw = (np.repeat(net.gen_pmin_mw[:, None], T, axis=1), np.repeat(net.gen_pmax_mw[:, None], T, axis=1))
        self.first_stage_linear_usd = (
            cp.sum(net.gen_cost_c1_usd_per_mwh @ p)
            + cp.sum(np.asarray(data.reserve_up_cost_usd_per_mw_h, dtype=float) @ ru)
            + cp.sum(np.asarray(data.reserve_dn_cost_usd_per_mw_h, dtype=float) @ rd)
            + base.voll_usd_per_mwh * cp.sum(s0)
        )
        self.first_stage_cost = cp.sum(cp.multiply(self.quadratic[1], cp.square(p))) + self.first_stage_linear_usd

        # Recourse (copies or hourly Benders cuts), scenario estimates theta_j and distribution slots.
        self.recourse_usd = cp.Variable(n_scen, name="recourse_usd")
        self.eta_usd = cp.Variable(name="eta_usd")
        L = data.ccg.distribution_slots
        self.slots = cp.Parameter((L, n_scen), nonneg=True, name="distribution_slots")
        self.slots.value = np.full((L, n_scen), 1.0 / n_scen)
        self.slots_used = 0
        self.copies = []
        self.cut_rows: BendersRows | None = None
        if data.ccg.recourse == "benders":
            self.recourse_hourly_usd = theta_h = cp.Variable((n_scen, T), name="recourse_hourly_usd")
            self.cut_rows = BendersRows(self.first, theta_h, n_scen, T)
            lower = recourse_lower_bound_usd(self.first, net.gen_cost_c1_usd_per_mwh)
            cons += [theta_h[j, :] >= lower for j in range(n_scen)]
            cons.append(self.recourse_usd == cp.sum(theta_h, axis=1))
            cons += self.cut_rows.constraints
            self.hourly = HourlyRecourse(data.name, base, grid, self.scenarios_mw)
        else:
            self.copies = [recourse_copy(base, grid, self.first, xi, f"s{j}") for j, xi in enumerate(self.scenarios_mw)]
            for j, copy in enumerate(self.copies):
                cons += copy.constraints
                cons.append(self.recourse_usd[j] >= copy.cost_usd)
        cons.append(self.eta_usd >= self.slots @ self.recourse_usd)
        if ball == "dual":
            u = data.uncertainty
            cons += ball_constraints(self.eta_usd, self.recourse_usd, self.distances_mw, u.wind_model, u.radius)
        self.constraints = cons
        self.cost = self.first_stage_cost + self.eta_usd

        self.evaluator = None if self.benders else RecourseEvaluator(data.name, base, grid, self.scenarios_mw)
        self.cuts_added = 0
        self.last_recourse: RecourseResult | None = None
        self.last_worst_usd = float("nan")
        self.last_distribution = np.full(n_scen, 1.0 / n_scen)

    @property
    def benders(self) -> bool:
        """True in the Benders form (``data.ccg.recourse``): the master holds cut rows, not copies."""
        return self.cut_rows is not None

    # -- the first stage at the master's current solution ----------------------------------
    def first_stage_values(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v.value, dtype=float) for k, v in vars(self.first).items()}

    def exact_recourse(self) -> RecourseResult:
        """Q_j, curtailment and shedding of every scenario at the master's current first stage."""
        if self.benders:
            self.last_recourse = self.hourly.evaluate(self.first_stage_values()).result()
        else:
            self.last_recourse = self.evaluator.evaluate(self.first_stage_values())
        return self.last_recourse

    def worst_expectation(self, result: RecourseResult) -> tuple[np.ndarray, float]:
        u = self.data.uncertainty
        return worst_case_distribution(result.values_usd, self.distances_mw, u.radius, u.wind_model)

    def separate(self) -> CutReport:
        """Exact Q_j, the worst distribution, and a cut when it beats the master's estimate."""
        if self.benders:
            return self._separate_hourly()
        result = self.exact_recourse()
        q, worst = self.worst_expectation(result)
        self.last_worst_usd, self.last_distribution = worst, q
        eta = float(self.eta_usd.value)
        tol = max(self.data.ccg.tol_abs_usd, self.data.ccg.tol_rel * abs(float(self.cost.value)))
        added = 0
        if worst > eta + tol:
            self.slots_used = fill_slot(self.slots, self.slots_used, q, self.recourse_usd.value)
            self.cuts_added += 1
            added = 1
        return CutReport(added, eta, worst, inner_solves=1, outer_solves=1)

    def _separate_hourly(self) -> CutReport:
        """Benders form: exact Q_jt; feasibility cuts where an hour has no re-dispatch, else the
        worst distribution and, when it beats eta, optimality cuts on every theta_jt that falls
        short of Q_jt by more than tol / (K_s T) (some must, since worst - eta <= max_j
        sum_t (Q_jt - theta_jt))."""
        ev = self.hourly.evaluate(self.first_stage_values())
        eta = float(self.eta_usd.value)
        infeasible = np.argwhere(~ev.feasible)
        if infeasible.size:
            for j, t in infeasible:
                self.cut_rows.add(int(t), ev.alpha[j, t], ev.beta[j, t])
            self.cuts_added += len(infeasible)
            self.last_recourse = None
            return CutReport(len(infeasible), eta, float("inf"), inner_solves=ev.values_usd.size, outer_solves=0)
        result = self.last_recourse = ev.result()
        q, worst = self.worst_expectation(result)
        self.last_worst_usd, self.last_distribution = worst, q
        rel = min(self.data.ccg.tol_rel, BENDERS_TOL_REL)
        tol = max(self.data.ccg.tol_abs_usd, rel * abs(float(self.cost.value)))
        added = 0
        if worst > eta + tol:
            short = ev.values_usd - np.asarray(self.recourse_hourly_usd.value, dtype=float)
            rows = np.argwhere(short > tol / short.size)
            if not rows.size:
                rows = np.argwhere(short == short.max())[:1]
            for j, t in rows:
                self.cut_rows.add(int(t), ev.alpha[j, t], ev.beta[j, t], scenario=int(j))
            added = len(rows)
            self.cuts_added += added
        return CutReport(added, eta, worst, inner_solves=ev.values_usd.size, outer_solves=1)

    def compile(self, problem: cp.Problem, agent: str, infeasible_hint: str, soc_objective: bool = True,
                extra_rows: tuple = (), recompile: bool = False, solver: str = "CLARABEL") -> CompiledModel:
        """The compiled model of a problem that holds this master's constraints (the agent's,
        the centralized one): in the Benders form it appends the cut rows at each solve, with
        ``extra_rows`` (:class:`agents.solver.CutRows` of other problems in it: the
        centralized model's DSO pools) beside them.

        ``soc_objective``: hand the quadratic objective to Clarabel in SOC form
        (``BENDERS_SOLVER_OPTIONS``) whenever rows are appended. False keeps cvxpy's QP path
        (653 Clarabel iterations and 128 s on the T118D10 TSO master against 10-13 s in SOC form).
        ``recompile``: compile at every solve (:class:`agents.solver.CompiledModel`), for a model
        whose parametric compilation does not fit in memory. ``solver``: "CLARABEL", or "HIGHS" for
        an LP (the centralized model's LP form, :mod:`agents.tangent_cuts`)."""
        sources = ([self.cut_rows] if self.cut_rows is not None else []) + list(extra_rows)
        if solver != "CLARABEL":  # HiGHS: its own defaults (the project's options are Clarabel's)
            options = {}
        else:
            options = BENDERS_SOLVER_OPTIONS if sources and soc_objective else None
        if sources:
            return CutAugmentedModel(agent, problem, sources, solver=solver, solver_options=options,
                                     infeasible_hint=infeasible_hint, recompile=recompile)
        return CompiledModel(agent, problem, solver=solver, solver_options=options, infeasible_hint=infeasible_hint,
                             recompile=recompile)

    # -- cut state for checkpoints ---------------------------------------------------------
    def cut_state(self) -> dict:
        state = {"slots": np.array(self.slots.value), "slots_used": self.slots_used, "cuts_added": self.cuts_added}
        if self.cut_rows is not None:
            state["benders_rows"] = self.cut_rows.state()
        return state

    def set_cut_state(self, state: dict) -> None:
        self.slots.value = np.array(state["slots"])
        self.slots_used = int(state["slots_used"])
        self.cuts_added = int(state["cuts_added"])
        if self.cut_rows is not None and "benders_rows" in state:
            self.cut_rows.set_state(state["benders_rows"])

    # -- outcome ---------------------------------------------------------------------------
    def line_loading(self) -> dict:
        """|day-ahead flow| / rating over the rated lines (zeros when no line is rated)."""
        T = self.data.horizon_h
        if not self.grid.rated.size:
            return {"line_max_loading": 0.0, "line_avg_loading": 0.0, "most_loaded_line": -1,
                    "most_loaded_line_hourly": np.zeros(T)}
        flow = np.asarray(self.flow_da_mw.value, dtype=float)[self.grid.rated]
        loading = np.abs(flow) / self.grid.rating_mw[:, None]
        line = int(np.argmax(loading.max(axis=1)))
        return {
            "line_max_loading": float(loading.max()),
            "line_avg_loading": float(loading.mean()),
            "most_loaded_line": int(self.grid.rated[line]),
            "most_loaded_line_hourly": loading[line].copy(),
        }

    def evaluate(self) -> dict:
        """Outcome at the master's current first stage (re-evaluates the exact recourse)."""
        result = self.exact_recourse()
        _, worst = self.worst_expectation(result)
        return {
            "first_stage_usd": float(self.first_stage_cost.value),
            "worst_expected_recourse_usd": worst,
            "curtailment_expected_mwh": float(result.curtailment_mwh.mean()),
            "shedding_expected_mwh": float(result.shedding_mwh.mean()),
            "curtailment_worst_mwh": float(result.curtailment_mwh.max()),
            "shedding_worst_mwh": float(result.shedding_mwh.max()),
            "recourse_usd": result.values_usd.copy(),
            **self.line_loading(),
        }

    def master_size(self) -> dict:
        """Variables and scalar constraints of the master (for reports)."""
        n_var = sum(v.size for v in cp.Problem(cp.Minimize(self.cost), self.constraints).variables())
        n_con = sum(c.size for c in self.constraints)
        return {"variables": int(n_var), "constraints": int(n_con)}


def build_tso_problem(data: TSORobustData, ball: str | None = None) -> TSOProblem:
    """The TSO's RobustProblem, constructible without the agent (centralized solve).

    ``ball`` (see BALL_FORMS): "cuts" is the C&CG of the specification; "dual" adds the
    exact dual statement of the worst expectation, so C&CG stops after one master solve.
    """
    return TSOProblem(data, ball)



#: Boundary reserve (MW) at which the warm start reads the TSO's marginal value of reserve.
WARM_RESERVE_MW = 0.01

class TSORobustAgent:
    """The robust TSO as an ADMM agent; it also performs the consensus update (z, lambda, rho).

    Shared arrays are stacked as (3, K, T): index 0 boundary power, 1 up reserve, 2 down
    reserve (``SHARED_KEYS``), K feeders in ``data.base.feeder_names`` order. The local
    model is ``first stage + eta + sum_i (lambda_i - rho z_i) . x_i + rho/2 ||x_i||^2``
    (rho elementwise with ``settings.rho_per_value``), compiled once; each :meth:`solve_local` runs C&CG on it, keeping the distribution
    cuts across ADMM iterations (each cut is a member of the ball, so it stays valid).
    """

    role = "tso"

    def __init__(self, data: TSORobustData, settings: ADMMSettings, ball: str | None = None):
        settings.validate()
        self.name = data.name
        self.data = data
        self.settings = settings
        self.problem = build_tso_problem(data, ball=ball)
        K, T = len(data.base.feeder_names), data.horizon_h
        self.rho_params = {k: cp.Parameter((K, T), nonneg=True, name=f"rho_{k}") for k in SHARED_KEYS}
        self.linear_params = {k: cp.Parameter((K, T), name=f"linear_{k}") for k in SHARED_KEYS}
        shared = self.problem.shared
        objective = (
            self.problem.cost
            + sum(cp.sum(cp.multiply(self.linear_params[k], shared[k])) for k in SHARED_KEYS)
            + 0.5 * sum(cp.sum(cp.multiply(self.rho_params[k], cp.square(shared[k]))) for k in SHARED_KEYS)
        )
        self.model = self.problem.compile(
            cp.Problem(cp.Minimize(objective), self.problem.constraints),
            self.name,
            infeasible_hint="check that thermal capacity, reserves and forecast wind can cover the load in every "
            "hour and that the line ratings admit a dispatch (and, in case 2, the DSOs' fixed boundary power)",
        )
        #: rho: a float, or (3, K, T) with one rho per shared value (settings.rho_per_value)
        self.rho = np.full((3, K, T), settings.rho_usd_per_mw2h) if settings.rho_per_value else settings.rho_usd_per_mw2h
        self.z = np.zeros((3, K, T))
        self.lam_tso = np.zeros((3, K, T))
        self.lam_dso = np.zeros((3, K, T))
        self.x_tso = np.zeros((3, K, T))
        #: sum lambda^D (x^D - x^T) over the shared values at the last consensus step ($)
        self.disagreement_usd = 0.0
        #: rho fixed for the rest of the run (the residuals were met once; settings.cost_tol_rel)
        self.rho_held = False
        #: fast ADMM's memory (settings.momentum); None: no momentum yet
        self.momentum: MomentumState | None = None
        #: the next updates ask the DSOs for certified proposals (consensus_round)
        self.certify_requested = False
        self.iteration = 0
        self.last_run: CCGRun | None = None
        self.totals = {"master": 0, "inner": 0, "outer": 0}
        self.ccg_history: list[tuple[int, int, int]] = []  #: (master, inner, outer) solves of each C&CG run

    # -- state ------------------------------------------------------------------------------
    def get_state(self) -> dict:
        keys = ("rho", "rho_held", "momentum", "certify_requested", "z", "lam_tso", "lam_dso", "x_tso", "disagreement_usd", "iteration", "totals", "ccg_history")
        state = {k: getattr(self, k) for k in keys}
        state["totals"] = dict(self.totals)
        state["ccg_history"] = list(self.ccg_history)
        state["cuts"] = self.problem.cut_state()
        state["fixed_p"] = np.array(self.problem.fixed_p.value)
        return state

    def set_state(self, state: dict) -> None:
        for k, v in state.items():
            if k == "cuts":
                self.problem.set_cut_state(v)
            elif k == "fixed_p":
                self.problem.fixed_p.value = np.array(v)
            else:
                setattr(self, k, v)

    # -- messages ---------------------------------------------------------------------------
    def _stack(self, inbox: tuple) -> np.ndarray:
        """(3, K, T) from the DSOs' ReserveProposals, in feeder order."""
        return self._proposals(inbox)[0]

    def _proposals(self, inbox: tuple) -> tuple[np.ndarray, bool]:
        """(3, K, T) from the DSOs' ReserveProposals, in feeder order, and whether all are certified."""
        by_sender = {m.sender: m for m in inbox if isinstance(m, ReserveProposal)}
        missing = [d for d in self.data.base.feeder_names if d not in by_sender]
        if missing:
            raise ValueError(f"TSO {self.name!r}: no ReserveProposal from {', '.join(missing)}")
        K, T = len(self.data.base.feeder_names), self.data.horizon_h
        out = np.zeros((3, K, T))
        for k, dso in enumerate(self.data.base.feeder_names):
            m = by_sender[dso]
            for i, field in enumerate(SHARED_KEYS):
                v = np.asarray(getattr(m, field), dtype=float)
                if v.shape != (T,):
                    raise ValueError(f"TSO {self.name!r}: ReserveProposal from {dso!r} has {field} of shape {v.shape}; expected ({T},)")
                out[i, k] = v
        return out, all(by_sender[d].certified for d in self.data.base.feeder_names)

    def _updates(self) -> list[ReserveUpdate]:
        z, lam, rho = self.z, self.lam_dso, np.broadcast_to(self.rho, self.z.shape)
        return [
            ReserveUpdate(
                self.name, dso, self.iteration, z[0, k], z[1, k], z[2, k], lam[0, k], lam[1, k], lam[2, k],
                float(np.max(rho)), rho[:, k], self.certify_requested,
            )
            for k, dso in enumerate(self.data.base.feeder_names)
        ]

    # -- protocol steps ---------------------------------------------------------------------
    def initialize(self, inbox: tuple) -> list[ReserveUpdate]:
        """z = (P0, 0, 0) from the DSOs' baselines; power multipliers at the TSO's marginal prices,
        reserve multipliers at its marginal values of boundary reserve there (cases with reserves)."""
        x = self._stack(inbox)
        self.z = np.zeros_like(x)
        self.z[0] = x[0]
        self.x_tso = self.z.copy()
        self.lam_tso = np.zeros_like(x)
        self.lam_dso = np.zeros_like(x)
        if self.settings.warm_start_multipliers:
            lmp = TSOAgent(self.data.base, self.settings).boundary_prices_usd_per_mwh(self.z[0])
            self.lam_tso[0], self.lam_dso[0] = -lmp, lmp
            if self.data.boundary_reserves:
                values = self.boundary_reserve_values_usd_per_mw_h(self.z)
                for i, v in zip((1, 2), values):
                    self.lam_tso[i], self.lam_dso[i] = -v, v
        return self._updates()

    def boundary_reserve_values_usd_per_mw_h(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, T) each: how the TSO's robust cost changes with 1 MW more up / down boundary
        reserve when the boundary is held at ``z`` (3, K, T), reserves at ``WARM_RESERVE_MW`` - the
        reserve analogue of the
        LMPs that start the power multipliers (<= 0: reserve saves the TSO money). Solved once,
        by C&CG, with the boundary fixed by equalities whose duals give the values."""
        fixed = {k: cp.Parameter(z.shape[1:], name=f"warm_{k}") for k in SHARED_KEYS}
        rows = {k: self.problem.shared[k] == fixed[k] for k in SHARED_KEYS}
        model = self.problem.compile(
            cp.Problem(cp.Minimize(self.problem.cost), self.problem.constraints + list(rows.values())), self.name,
            infeasible_hint="the TSO has no robust plan with the boundary at the DSOs' baselines and no boundary "
            "reserve; check thermal capacity and reserves against load and wind",
        )
        for i, k in enumerate(SHARED_KEYS):
            # reserves held just above 0: at exactly 0 the bound R >= 0 is active too and the
            # split of the multiplier between it and the equality is arbitrary (degenerate)
            fixed[k].value = np.asarray(z[i], dtype=float) + (WARM_RESERVE_MW if k != "p_mw" else 0.0)
        solve_with_cuts(model, [self.problem], self.data.ccg.max_iterations)
        # p*(z) = min_x max_nu cost + nu (x - z): d p* / d z = -nu
        return -np.asarray(rows["up_mw"].dual_value, float), -np.asarray(rows["dn_mw"].dual_value, float)

    def _run_ccg(self) -> None:
        self.last_run = solve_with_cuts(self.model, [self.problem], self.data.ccg.max_iterations)
        self.totals["master"] += self.last_run.master_solves
        self.totals["inner"] += self.last_run.inner_solves
        self.totals["outer"] += self.last_run.outer_solves
        self.ccg_history.append((self.last_run.master_solves, self.last_run.inner_solves, self.last_run.outer_solves))
        self.x_tso = np.stack([np.asarray(self.problem.shared[k].value, dtype=float) for k in SHARED_KEYS])

    def solve_local(self, inbox: tuple = ()) -> None:
        """Own cost + ADMM terms against the last consensus, by C&CG."""
        rho = np.broadcast_to(self.rho, self.z.shape)
        lin = linear_coefficient(self.lam_tso, self.z, rho)
        for i, k in enumerate(SHARED_KEYS):
            self.linear_params[k].value = lin[i]
            self.rho_params[k].value = np.array(rho[i])
        self._run_ccg()

    def solve_alone(self, inbox: tuple) -> None:
        """Case 2: boundary power fixed at the DSOs' proposals, no boundary reserves, no ADMM terms."""
        if not self.data.boundary_fixed or self.data.boundary_reserves:
            raise ValueError(
                f"TSO {self.name!r}: solve_alone needs data.boundary_fixed = True and data.boundary_reserves = False "
                f"(case 2); got boundary_fixed = {self.data.boundary_fixed}, boundary_reserves = {self.data.boundary_reserves}"
            )
        x = self._stack(inbox)
        self.problem.fixed_p.value = x[0]
        self.z = np.zeros_like(x)
        self.z[0] = x[0]
        for k in SHARED_KEYS:
            self.linear_params[k].value = np.zeros(x.shape[1:])
            self.rho_params[k].value = np.zeros(x.shape[1:])
        self._run_ccg()

    def coordinate(self, inbox: tuple) -> list:
        """Consensus over the stacked (3, K, T) arrays; residual balancing of rho, and the cost
        criterion on ``disagreement_usd`` = sum lambda^D (x^D - x^T) (:func:`consensus_round`):
        at the ADMM's stopping point the copies still differ by up to the primal tolerance, and
        where the boundary price is near VOLL that difference is worth hundreds of dollars. The
        scale is the TSO's own cost (first stage + worst-case expected recourse eta) at its last
        master solve. The run ends only on a round of certified proposals (the DSOs certify when
        the updates ask them to: ``certify_requested``)."""
        x_dso, certified = self._proposals(inbox)
        return consensus_round(self, x_dso, float(self.problem.cost.value), certified)

    def report_cost(self, inbox: tuple = ()) -> list:
        """[RobustCostReport, LineLoadingReport, BoundaryPlanReport] at the current plan.

        C&CG counts are totals over the agent's life (every solve_local / solve_alone).
        """
        ev = self.problem.evaluate()
        first, worst = ev["first_stage_usd"], ev["worst_expected_recourse_usd"]
        cost = RobustCostReport(
            self.name, COORDINATOR, first + worst, first, worst,
            ev["curtailment_expected_mwh"], ev["shedding_expected_mwh"],
            ev["curtailment_worst_mwh"], ev["shedding_worst_mwh"], 0.0,
            self.totals["master"], self.totals["inner"], self.totals["outer"],
            np.array(self.ccg_history, dtype=float).reshape(-1, 3),
        )
        lines = LineLoadingReport(
            self.name, COORDINATOR, ev["line_max_loading"], ev["line_avg_loading"],
            ev["most_loaded_line"], ev["most_loaded_line_hourly"],
        )
        plan = BoundaryPlanReport(
            self.name, COORDINATOR, self.z[0], self.z[1], self.z[2], float(np.max(self.rho)), self.disagreement_usd
        )
        return [cost, lines, plan]
