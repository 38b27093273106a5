"""The robust DSO's master problem and its nested C&CG separation (MODELS.md section 1).

The agent that runs the three stages around it is agents/dso_robust.py.

Stage 1 (:meth:`DSORobustAgent.collect_baselines`): the EVCS baselines ``b_i`` arrive; the
boundary baseline is ``P0_t = sum loads + sum_i b_i - sum wind forecast`` (lossless
LinDistFlow: the root injection is the sum of the net bus demands), and the feeder is
checked at the forecast (:func:`agents.dso_recourse.check_forecast`). Stage 2: incentive
prices out, :class:`DeclaredCapacity` in (``U_i, D_i`` per hour, ``CU_i, CD_i``
cumulative); flexibility ``"none"`` treats every declaration as zero.

The DSO's problem (:class:`DSOProblem`, a :class:`agents.ccg.RobustProblem`)::

    min  sum_t pi_up_t sum_i u_it + pi_dn_t sum_i d_it                 (first stage)
         + max_{q in Wasserstein ball} sum_j q_j max_{f in F(Rup, Rdn)} Q(x, xi_j, f)
    s.t. u_i = s_up U_i, d_i = s_dn D_i with shares 0 <= s_up_t, s_dn_t <= 1 (pro-rata
         clearing: 5T first-stage values whatever the number of stations),
         Rup <= sum_i u_i, Rdn <= sum_i d_i, -limit <= P - Rup, P + Rdn <= limit (the
         deployed draw stays within the substation limit); flexibility "dso": P = P0
         (``p_fixed``), Rup = Rdn = 0

with the requirement set ``F = {f_t = Rup_t a_up_t - Rdn_t a_dn_t : a binary,
a_up + a_dn <= 1, sum(a_up + a_dn) <= Gamma}`` and the recourse ``Q`` of
:mod:`agents.dso_recourse`. The master keeps, per wind scenario j: ``ccg.aggregate_slots``
patterns each with a network-free copy of the recourse (:func:`aggregate_recourse`, a
relaxation) whose cost bounds ``theta_j`` from below; optionally ``requirement_slots``
patterns with a full recourse copy; dual cuts (below); and the Wasserstein ball's exact
LP dual (or ``distribution_slots`` distribution cuts). A pattern enters a copy as
``f = a_up * Rup - a_dn * Rdn``, affine in the first stage, so it stays valid whatever
Rup/Rdn become (across ADMM iterations too). :meth:`DSOProblem.separate` runs the inner
loop (:class:`agents.dso_requirements.RequirementOracle`: the linearization ascent; the
exact dual MILP only to certify) and then the outer loop
(:func:`agents.wasserstein.worst_case_distribution`). A proximal term on the shares
(``stabilizer``, centre moved only where the cut model is exact) keeps the master from
zig-zagging; docs/tso_dso_evcs.md has the measurements behind each of these choices.

Addition to the lead's design (MODELS.md fixes only the column slots): every inner solve
also yields a dual solution (lam, mu) of the recourse LP at the worst pattern, and
``theta_j >= -r_ub(x) @ lam + r_eq(x, pattern) @ mu`` is a valid, x-affine lower bound for
that pattern at *every* first stage (a Benders cut, tight where it was computed). By
default (``ccg.cut_pool`` "rows") these cuts are plain data rows over (first stage, theta)
that :class:`agents.solver.CutAugmentedModel` appends at each solve, every one kept; with
"parameters" they live in one pool of ``BENDERS_SLOTS`` x K Parameter rows shared by the
scenarios (a row's one-hot ``cut_owner`` says whose theta_j it bounds), the slackest
replaced when it is full (that pool took cvxpy 10.8 s to compile on a T30D2 feeder, against
0.4 s for the rows). Without them, a few column slots per scenario made C&CG cycle (evicted patterns
came back) on the 11-station, K = 5 feeder; with them an evicted pattern keeps its cuts.
With 96 rows per scenario instead of the pool, the binding scenario's rows were full by ADMM
iteration 2-5 on T30D2 case 4 while the others used 1-27, and every later cut there replaced
one; at radius 5 / 0.5 that churn held the ADMM's last 0.04 MW for over 100 iterations
(docs/tso_dso_evcs.md, ninth-session status).

Glossary: ``p_mw`` -> P^D_t, ``up_mw``/``dn_mw`` -> R^up,D_t / R^dn,D_t,
``share_up``/``share_dn`` -> the cleared share s_t, so that u_i,t = s_t U_i,t / d_i,t = s_t D_i,t
(R^up,c / R^dn,c of the EVCS),
``theta`` -> theta_j, ``eta`` -> eta (the outer estimate), ``a_up``/``a_dn`` -> the
pattern of the requirement f, ``incentive_*`` -> pi^up_t / pi^dn_t.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.ccg import CutReport, fill_slot
from agents.dso_inputs import boundary_baseline_mw, declarations_from_messages, validate_dso_robust_data
from agents.dso_recourse import Declarations, aggregate_recourse, build_recourse
from agents.dso_requirements import CHECKS, RequirementOracle
from agents.robust_data import CUT_POOLS, DSORobustData  # noqa: F401  (CUT_POOLS re-exported)
from agents.solver import DEFAULT_SOLVER_OPTIONS, CutRows
from agents.wasserstein import ball_constraints, scenario_distances_mw, worst_case_distribution
from coordination.evcs_messages import DeclaredCapacity

#: Master solver. HiGHS through cvxpy fails on this QP (its active-set QP solver stops on
#: degeneracy), so the master is solved with Clarabel (interior point).
MASTER_SOLVER = "CLARABEL"
#: Clarabel options of the master: the project's tight tolerances; iterative refinement off
#: (it doubled the time per iteration on the K = 5, 11-station master; objective within 1e-9).
MASTER_SOLVER_OPTIONS = {**DEFAULT_SOLVER_OPTIONS, "iterative_refinement_enable": False}
#: cut_pool "parameters" only: dual (Benders) cut rows per wind scenario, in one pool of BENDERS_SLOTS x K rows that the
#: scenarios share; see DSOProblem. (384 per scenario made a master solve about 10 times slower:
#: cvxpy refills every parameter entry.)
BENDERS_SLOTS = 96
#: Proximal weights use at least this capacity (MW), so hours without declarations keep a strictly convex term.
PROX_FLOOR_MW = 0.01
#: Dual cuts per violated scenario and separation beyond the worst pattern's, from the other
#: patterns the ascent evaluated above the estimate (more cuts per master solve, fewer rounds).
EXTRA_BENDERS_CUTS = 3
#: Two patterns / distributions closer than this are the same cut.
SAME_CUT_TOL = 1e-9


def _spread(declared_mw: np.ndarray) -> sp.csr_matrix:
    """(E*T, T): maps an hourly share to the stations' F-order capacities ``U_it * share_t``."""
    E, T = declared_mw.shape
    rows = (np.arange(E)[:, None] + E * np.arange(T)[None, :]).ravel()
    cols = np.broadcast_to(np.arange(T)[None, :], (E, T)).ravel()
    return sp.csr_matrix((np.asarray(declared_mw, float).ravel(), (rows, cols)), shape=(E * T, T))


class DSOProblem:
    """The robust DSO master (first stage, pattern and distribution slots, recourse copies)."""

    def __init__(self, data: DSORobustData, baselines_mw: np.ndarray, declared: Declarations, cut_pool: str | None = None):
        validate_dso_robust_data(data)
        cut_pool = data.ccg.cut_pool if cut_pool is None else cut_pool
        if cut_pool not in CUT_POOLS:
            raise ValueError(f"DSO {data.name!r}: cut_pool = {cut_pool!r}; give one of {CUT_POOLS}")
        self.data = data
        self.name = data.name
        T, E = data.horizon_h, len(data.evcs_names)
        self.baselines_mw = np.asarray(baselines_mw, dtype=float)
        self.declared = declared
        self.scenarios_mw = np.asarray(data.wind_scenarios_mw, dtype=float)
        K = self.scenarios_mw.shape[0]
        self.distances_mw = scenario_distances_mw(self.scenarios_mw)
        self.recourse = rec = build_recourse(data, self.baselines_mw, declared)
        self.p0_mw = boundary_baseline_mw(data, self.baselines_mw)
        flex, budget = data.flexibility, data.uncertainty.requirement_budget_h
        self.requirements_possible = flex == "both" and budget > 0 and bool(np.any(declared.up_mw + declared.dn_mw > 0))

        p = cp.Variable(T, name="dso_p_mw")
        up = cp.Variable(T, nonneg=True, name="dso_up_mw")
        dn = cp.Variable(T, nonneg=True, name="dso_dn_mw")
        # pro-rata clearing: station i gets u_it = share_up_t * U_it (and d likewise), so the
        # first stage has 5T values whatever the number of stations
        share_up = cp.Variable(T, nonneg=True, name="cleared_share_up")
        share_dn = cp.Variable(T, nonneg=True, name="cleared_share_dn")
        self.share_up, self.share_dn = share_up, share_dn
        self.spread_up = _spread(declared.up_mw)
        self.spread_dn = _spread(declared.dn_mw)
        u = cp.reshape(self.spread_up @ share_up, (E, T), order="F")
        d = cp.reshape(self.spread_dn @ share_dn, (E, T), order="F")
        self.shared = {"p_mw": p, "up_mw": up, "dn_mw": dn}
        self.p_fixed = cp.Parameter(T, name="dso_p_fixed_mw", value=self.p0_mw.copy())
        lim = float(data.boundary_limit_mw)
        total_up, total_dn = declared.up_mw.sum(axis=0), declared.dn_mw.sum(axis=0)
        cons = [
            share_up <= 1, share_dn <= 1,
            up <= cp.multiply(total_up, share_up), dn <= cp.multiply(total_dn, share_dn),
            p - up >= -lim, p + dn <= lim,
        ]
        if flex in ("dso", "none"):  # cases 2 and 3: TSO and DSO apart, boundary at its baseline
            cons += [p == self.p_fixed, up == 0, dn == 0]
        self.first_stage_cost = (
            np.asarray(data.incentive_up_usd_per_mw_h, float) * total_up) @ share_up + (
            np.asarray(data.incentive_dn_usd_per_mw_h, float) * total_dn) @ share_dn
        x = {"p_mw": p, "up_mw": up, "dn_mw": dn, "u_mw": u, "d_mw": d}

        # slots: distributions (outer) and requirement patterns per scenario (inner)
        L = 1 if data.uncertainty.wind_model == "so" else data.ccg.distribution_slots
        M = data.ccg.requirement_slots if self.requirements_possible else min(1, data.ccg.requirement_slots)
        self.theta = cp.Variable(K, name="dso_theta_usd")
        self.eta = cp.Variable(name="dso_eta_usd")
        self.dist_slots = cp.Parameter((L, K), nonneg=True, name="dso_distribution_slots", value=np.full((L, K), 1.0 / K))
        self.dist_used = 0
        cons.append(self.dist_slots @ self.theta <= self.eta)
        if data.ccg.ball == "dual":
            u_set = data.uncertainty
            cons += ball_constraints(self.eta, self.theta, self.distances_mw, u_set.wind_model, u_set.radius)
        lp = rec.lp
        nonneg_idx = np.flatnonzero(lp.nonneg)
        hourly_cost = rec.hourly_cost_matrix()
        m_eq = lp.a_eq.shape[0]
        req_map = sp.csr_matrix(
            (np.full(T, lp.requirement_coef), (lp.requirement_rows, np.arange(T))), shape=(m_eq, T)
        )  # places requirement_coef * f_t in the boundary rows
        self.a_up = [[cp.Parameter(T, name=f"a_up_{j}_{m}", value=np.zeros(T)) for m in range(M)] for j in range(K)]
        self.a_dn = [[cp.Parameter(T, name=f"a_dn_{j}_{m}", value=np.zeros(T)) for m in range(M)] for j in range(K)]
        self.req_used = [0] * K
        #: the inner loop's worst-requirement oracle (ascent, certifying MILPs, their memo)
        self.oracle = RequirementOracle(self.name, rec, self.scenarios_mw, use_rule=data.ccg.requirement_rule)
        # dual (Benders) cuts, one shared pool: row l bounds theta_j(l), j(l) = its one-hot owner,
        # alpha_l + beta_l @ xvec <= theta_j(l) (unused: 0 <= 0, Q_j >= 0)
        xvec = cp.hstack([p, up, dn, share_up, share_dn])
        nx = xvec.size
        B = BENDERS_SLOTS * K
        self.cut_alpha = self.cut_beta = self.cut_owner = None
        if cut_pool == "parameters":
            self.cut_alpha = cp.Parameter(B, name="dso_cut_alpha", value=np.zeros(B))
            self.cut_beta = cp.Parameter((B, nx), name="dso_cut_beta", value=np.zeros((B, nx)))
            self.cut_owner = cp.Parameter((B, K), nonneg=True, name="dso_cut_owner", value=np.zeros((B, K)))
        self.cut_used = 0  #: pool rows in use
        #: cuts written over an older one because the pool was full (the replaced cut is the one
        #: with the most slack at the current solution)
        self.cuts_replaced = 0
        self._xvec = xvec
        cons.append(self.theta >= 0)  # every recourse cost term is a penalty >= 0 (kept when cut slots are reused)
        #: cut_pool "rows": the cuts as plain data rows over (xvec, theta), no cap and no
        #: replacement; the model must then be a CutAugmentedModel over them (cut_rows)
        self.cut_rows: CutRows | None = None
        if cut_pool == "parameters":
            cons.append(self.cut_alpha + self.cut_beta @ xvec <= self.cut_owner @ self.theta)
        else:
            self.cut_rows = CutRows(cp.Variable(nx + K, name=f"dso_cut_vars_{data.name}"))
            cons += [self.cut_rows.variable[:nx] == xvec, self.cut_rows.variable[nx:] == self.theta]
        # network-free columns (agents.dso_recourse.aggregate_recourse): per scenario ccg.aggregate_slots
        # patterns, each a relaxation of the recourse without branch and voltage rows that bounds
        # theta_j from below; they give the master the stations' hour-by-hour energy limits exactly
        totals = {"p_mw": p, "u_mw": u, "d_mw": d}
        A = data.ccg.aggregate_slots if self.requirements_possible else 1
        self.g_up = [[cp.Parameter(T, name=f"g_up_{j}_{m}", value=np.zeros(T)) for m in range(A)] for j in range(K)]
        self.g_dn = [[cp.Parameter(T, name=f"g_dn_{j}_{m}", value=np.zeros(T)) for m in range(A)] for j in range(K)]
        self.g_used = [0] * K
        self.g_cost: list[list[cp.Expression]] = []
        for j in range(K):
            row = []
            for m in range(A):
                f_jm = cp.multiply(self.g_up[j][m], up) - cp.multiply(self.g_dn[j][m], dn)
                agg_cons, agg_cost = aggregate_recourse(data, self.baselines_mw, declared, totals, self.scenarios_mw[j], f_jm)
                cons += agg_cons + [agg_cost <= self.theta[j]]
                row.append(agg_cost)
            self.g_cost.append(row)
        self.copies: list[list[cp.Variable]] = []
        self.copy_cost: list[list[cp.Expression]] = []
        for j in range(K):
            ub_expr, eq_expr = rec.rhs_expr(x, self.scenarios_mw[j])
            const = rec.cost_constant_usd(self.scenarios_mw[j])
            ys, costs = [], []
            for m in range(M):
                y = cp.Variable(lp.n_y, name=f"dso_y_{j}_{m}")
                hourly = cp.Variable(T, name=f"dso_cost_{j}_{m}_usd")
                f = cp.multiply(self.a_up[j][m], up) - cp.multiply(self.a_dn[j][m], dn)
                cost_jm = cp.sum(hourly) + const
                # the hourly split keeps the KKT system sparse (one dense cost row would fill it)
                cons += [
                    lp.a_ub @ y <= ub_expr,
                    lp.a_eq @ y == eq_expr + req_map @ f,
                    y[nonneg_idx] >= 0,
                    hourly_cost @ y == hourly,
                    cost_jm <= self.theta[j],
                ]
                ys.append(y)
                costs.append(cost_jm)
            self.copies.append(ys)
            self.copy_cost.append(costs)
        self.constraints = cons
        self.cost = self.first_stage_cost + self.eta
        # proximal point on the cleared capacity: (sigma/2) sum_t (U_t (s_t - c_t))^2
        #   = (1/2) sum w s^2 - (w c) @ s + const, w_t = sigma U_t^2 (U_t: the hour's total declared MW)
        shares = cp.hstack([share_up, share_dn])
        self.prox_weight = float(data.ccg.prox_weight_usd) * np.maximum(np.r_[total_up, total_dn], PROX_FLOOR_MW) ** 2
        self.center = np.full(2 * T, 0.5)
        self.prox_linear = cp.Parameter(2 * T, name="dso_prox_linear", value=-self.prox_weight * self.center)
        self.center_value_usd = float("inf")  #: objective at the center (inf: not yet known in this run)
        #: first-stage cost + worst expectation at the last point where the model was exact (``new_run``)
        self.point_cost_usd = float("inf")
        self.extra_cost: cp.Expression | None = None  #: terms the agent adds to the objective (ADMM's)
        self.shares = shares
        #: (1/2) sum w s^2, the stabilizer's quadratic part (the centralized bound solve scales it to 0)
        self.prox_quadratic = 0.5 * cp.sum_squares(cp.multiply(np.sqrt(self.prox_weight), shares))
        self.stabilizer = self.prox_quadratic + self.prox_linear @ shares
        self.cuts_added = 0
        self.extra_cuts = EXTRA_BENDERS_CUTS
        self.certify = True  #: run the exact MILP check when the ascent finds nothing (else trust the ascent)
        self.tol_cap_usd = float("inf")  #: the agent's cap on the C&CG tolerance (inexact ADMM), $
        self.tol_floor_usd = 0.0  #: the agent's floor under the C&CG tolerance (inexact ADMM, early rounds), $

    # -- the master's current first stage ---------------------------------------------------
    def first_stage_values(self) -> dict[str, np.ndarray]:
        vals = {k: np.asarray(v.value, dtype=float) for k, v in self.shared.items()}
        vals["up_mw"] = np.clip(vals["up_mw"], 0.0, None)
        vals["dn_mw"] = np.clip(vals["dn_mw"], 0.0, None)
        vals["share_up"] = np.clip(np.asarray(self.share_up.value, dtype=float), 0.0, 1.0)
        vals["share_dn"] = np.clip(np.asarray(self.share_dn.value, dtype=float), 0.0, 1.0)
        vals["u_mw"] = self.declared.up_mw * vals["share_up"][None, :]
        vals["d_mw"] = self.declared.dn_mw * vals["share_dn"][None, :]
        return vals

    def exact_worst(self, x: dict | None = None, budget: int | None = None) -> tuple[np.ndarray, list]:
        """Q_j (the worst requirement's recourse cost, $) per scenario and the worst requirements."""
        x = self.first_stage_values() if x is None else x
        budget = self.data.uncertainty.requirement_budget_h if budget is None else budget
        if self.data.flexibility != "both":
            budget = 0
        out = [self.oracle.worst(x, j, budget)[0] for j in range(len(self.scenarios_mw))]
        Q = np.array([w.value_usd + self.recourse.cost_constant_usd(xi) for w, xi in zip(out, self.scenarios_mw)])
        return Q, out

    def worst_expectation(self, Q: np.ndarray) -> tuple[np.ndarray, float]:
        u = self.data.uncertainty
        return worst_case_distribution(Q, self.distances_mw, u.radius, u.wind_model)

    # -- C&CG separation ---------------------------------------------------------------------
    @staticmethod
    def _write_column(ups: list, dns: list, used: list, j: int, costs: list, a_up: np.ndarray, a_dn: np.ndarray) -> bool:
        """Write a pattern into scenario j's column slots (``ups``/``dns`` Parameters, ``used[j]``
        filled); a pattern already there is skipped, and when all are full the column with the
        lowest cost at the current first stage is overwritten. True if written."""
        for m in range(used[j]):
            if (np.abs(ups[m].value - a_up).max() < SAME_CUT_TOL
                    and np.abs(dns[m].value - a_dn).max() < SAME_CUT_TOL):
                return False
        if used[j] < len(ups):
            slot = used[j]
            used[j] += 1
        else:
            slot = int(np.argmin([float(c.value) for c in costs]))
        ups[slot].value = np.asarray(a_up, dtype=float)
        dns[slot].value = np.asarray(a_dn, dtype=float)
        return True

    def _write_pattern(self, j: int, a_up: np.ndarray, a_dn: np.ndarray) -> bool:
        """Full recourse columns (``requirement_slots``)."""
        return self._write_column(self.a_up[j], self.a_dn[j], self.req_used, j, self.copy_cost[j], a_up, a_dn)

    def _write_aggregate(self, j: int, a_up: np.ndarray, a_dn: np.ndarray) -> bool:
        """Network-free columns (``ccg.aggregate_slots``)."""
        return self._write_column(self.g_up[j], self.g_dn[j], self.g_used, j, self.g_cost[j], a_up, a_dn)

    def _write_benders(self, j: int, w, xi: np.ndarray) -> None:
        alpha, beta_full = self.recourse.benders_cut(w.dual_ub, w.dual_eq, w.a_up, w.a_dn, xi)
        T, ET = self.data.horizon_h, self.spread_up.shape[0]
        bu, bd = beta_full[3 * T: 3 * T + ET], beta_full[3 * T + ET:]
        beta = np.r_[beta_full[: 3 * T], self.spread_up.T @ bu, self.spread_dn.T @ bd]  # chain rule through u = U * share
        if self.cut_rows is not None:  # alpha + beta @ xvec - theta_j <= 0
            nx = beta.size
            self.cut_rows.append(np.r_[np.arange(nx), nx + j], np.r_[beta, -1.0], -alpha, j)
            self.cut_used += 1
            return
        a, b, owner = np.array(self.cut_alpha.value), np.array(self.cut_beta.value), np.array(self.cut_owner.value)
        if self.cut_used < a.size:
            slot = self.cut_used
            self.cut_used += 1
        else:  # the cut with the most slack at the current solution, whichever scenario it bounds
            theta = np.asarray(self.theta.value, dtype=float)
            slot = int(np.argmax(owner @ theta - a - b @ np.asarray(self._xvec.value, dtype=float)))
            self.cuts_replaced += 1
        a[slot], b[slot] = alpha, beta
        owner[slot] = 0.0
        owner[slot, j] = 1.0
        self.cut_alpha.value, self.cut_beta.value, self.cut_owner.value = a, b, owner

    def cuts_by_scenario(self) -> np.ndarray:
        """(K,) pool rows in use per scenario."""
        if self.cut_rows is not None:
            return np.bincount(np.asarray(self.cut_rows.owner, dtype=int), minlength=self.theta.size)
        return np.asarray(self.cut_owner.value, dtype=float).sum(axis=0).round().astype(int)

    def _write_distribution(self, q: np.ndarray) -> bool:
        slots = np.array(self.dist_slots.value)
        if np.any(np.abs(slots[: max(self.dist_used, 1)] - q).max(axis=1) < SAME_CUT_TOL):
            return False
        self.dist_used = fill_slot(self.dist_slots, self.dist_used, q, self.theta.value)
        return True

    def separate(self) -> CutReport:
        """Inner loop (worst requirement per scenario), then outer loop (worst distribution).

        The inner loop first runs the linearization ascent (:meth:`RequirementOracle.ascend`,
        a few LPs) from the patterns found before; only when it finds no violated cut in
        any scenario (and the proximal centre has settled) does it solve the exact MILPs,
        which then confirm convergence or give the missing cuts (only when ``certify`` is set;
        otherwise the ascent's answer ends the run): each MILP stops at the first pattern
        above the bar (``theta_j + tol``; ``max(theta_j, eta) + tol`` under "ro") or ends with
        the scenario's worst pattern; one stopped by ``MIP_TIME_LIMIT_S`` confirms
        convergence only as far as that search went.
        The MILPs of a round run lazily (:meth:`RequirementOracle.certify_round`): the round stops at the
        first scenario with a pattern above its bar. Under dro / so wind the check is on the
        worst-case expectation (:meth:`RequirementOracle.certify_expectation`: after a pattern is
        found the bars take the slack that keeps the expectation within tol of eta); under "ro"
        the per-scenario bars bound the maximum exactly.
        """
        x = self.first_stage_values()
        theta = np.asarray(self.theta.value, dtype=float)
        eta = float(self.eta.value)
        tol = max(self.data.ccg.tol_abs_usd, self.tol_floor_usd,
                  min(self.tol_cap_usd, self.data.ccg.tol_rel * abs(float(self.first_stage_cost.value) + eta)))
        budget = self.data.uncertainty.requirement_budget_h if self.data.flexibility == "both" else 0
        K = len(self.scenarios_mw)
        consts = np.array([self.recourse.cost_constant_usd(xi) for xi in self.scenarios_mw])
        # the value each scenario's worst case may reach before the run must go on: theta_j + tol
        # (then sup(Q) <= sup(theta) + tol <= eta + tol); under "ro" only the largest counts
        # (eta >= theta_j for every j), so Q_j <= eta + tol is enough, and a scenario below eta
        # neither keeps the run going nor sends the MILP looking for patterns that cannot matter
        bar = theta + tol
        if self.data.uncertainty.wind_model == "ro":
            bar = np.maximum(bar, eta + tol)

        def violated(ws) -> bool:
            return any(w.value_usd + consts[j] > bar[j] for j, w in enumerate(ws))

        counts = None  # which scenarios' cuts keep the run going (None: those above their bar)

        if self.requirements_possible:  # cheap ascent first; the exact MILPs only to certify
            worst, exact = [self.oracle.ascend(x, j, budget) for j in range(K)], False
        else:  # f = 0 only: the exact worst case is one LP per scenario
            worst, exact = [self.oracle.worst(x, j, budget)[0] for j in range(K)], True
        solves = K
        if not violated(worst):
            shares = np.r_[x["share_up"], x["share_dn"]]
            Q = np.array([w.value_usd for w in worst]) + consts
            sup = self.worst_expectation(Q)[1]
            extra = 0.0 if self.extra_cost is None else float(self.extra_cost.value)
            self.point_cost_usd = float(self.first_stage_cost.value) + sup
            value = self.point_cost_usd + extra  # the objective here (model exact)
            gain = self.center_value_usd - value
            if np.abs(shares - self.center).max() > self.data.ccg.prox_move_tol and gain > tol:
                # a proximal-point step: the model is exact here and the objective fell by more
                # than the tolerance since the last center; the exact check comes later
                self.recenter(shares)
                self.center_value_usd = value
                self.last_added = (0, 0)
                return CutReport(0, eta, sup, inner_solves=solves, outer_solves=1, moved=True)
            if not exact and self.certify and self.data.uncertainty.wind_model == "ro":
                # the per-scenario bars max(theta_j, eta) + tol bound the objective (a maximum) exactly
                worst, milps = self.oracle.certify_round(x, budget, worst, bar - consts)
                solves += milps
            elif not exact and self.certify:  # the exact check on the worst-case expectation
                worst, milps, counts = self.oracle.certify_expectation(
                    x, budget, worst, theta, eta, tol, consts, lambda values: self.worst_expectation(values)[1])
                solves += milps
        Q = np.array([w.value_usd for w in worst]) + consts
        if counts is None:
            counts = Q > bar
        added = 0
        for j, w in enumerate(worst):
            if Q[j] > theta[j] + tol or counts[j]:  # a valid cut either way; it counts only where ``counts`` says
                self._write_benders(j, w, self.scenarios_mw[j])
                added += int(counts[j])
                for alt in [o for o in w.others if o.value_usd + consts[j] > theta[j] + tol][:self.extra_cuts]:
                    self._write_benders(j, alt, self.scenarios_mw[j])
                if self.requirements_possible and w.milp:
                    self.oracle.remember(j, w)
                    self._write_aggregate(j, w.a_up, w.a_dn)
                    if self.a_up[j]:
                        self._write_pattern(j, w.a_up, w.a_dn)
        inner_added = added
        q, sup = self.worst_expectation(Q)
        if sup > eta + tol and self._write_distribution(q):
            added += 1
        self.last_added = (inner_added, added - inner_added)
        self.cuts_added += added
        self.last_worst_usd, self.last_distribution, self.last_q_usd = sup, q, Q
        return CutReport(added, eta, sup, inner_solves=solves, outer_solves=1)

    def new_run(self, revalue: bool = False) -> None:
        """A new C&CG run (new ADMM terms): the center stays. Its objective is unknown again
        (inf: the first point where the model is exact moves the center, and one more master
        follows), unless ``revalue``: then the center is valued at the last run's final first
        stage, which the master's constraints still admit (ADMM changes only the objective's
        Parameters): its first-stage cost plus worst expectation ``point_cost_usd``, both
        unchanged, plus the ADMM terms read at the new Parameters (``extra_cost``). The first
        exact point of the new run then moves the center only where it lowers that objective
        by more than the tolerance (the proximal-point test); in the ADMM's tail, where the
        consensus hardly moves, the run ends on its first master instead of two."""
        self.center_value_usd = float("inf")
        if revalue and np.isfinite(self.point_cost_usd):  # finite only once a master was solved
            extra = 0.0 if self.extra_cost is None else float(self.extra_cost.value)
            self.center_value_usd = self.point_cost_usd + extra

    def recenter(self, shares: np.ndarray) -> None:
        """Move the proximal center (the shares the stabilized master is drawn to)."""
        self.center = np.clip(np.asarray(shares, dtype=float), 0.0, 1.0)
        self.prox_linear.value = -self.prox_weight * self.center

    # -- outcome -----------------------------------------------------------------------------
    def evaluate(self) -> dict:
        """Outcome at the current first stage: expected figures at f = 0 under the empirical
        distribution, worst figures at the worst requirement of ``evaluation_budget_h``."""
        x = self.first_stage_values()
        lp, rec = self.recourse.lp, self.recourse
        K, T = len(self.scenarios_mw), self.data.horizon_h
        plan_budget = self.data.uncertainty.requirement_budget_h if self.data.flexibility == "both" else 0
        eval_budget = self.data.evaluation_budget_h if self.data.flexibility == "both" else 0
        curt0, shed0, curt_w, shed_w, viol_w, Q = (np.zeros(K) for _ in range(6))
        for j, xi in enumerate(self.scenarios_mw):
            w_plan, r_ub, r_eq0 = self.oracle.worst(x, j, plan_budget)
            Q[j] = w_plan.value_usd + rec.cost_constant_usd(xi)
            sol0 = self.oracle.lp_solvers[j].solve(r_ub, lp.r_eq(r_eq0, np.zeros(T)))
            curt0[j], shed0[j] = rec.curtailment_mwh(sol0.y, xi), rec.shedding_mwh(sol0.y)
            w_eval = w_plan if eval_budget == plan_budget else self.oracle.worst(x, j, eval_budget)[0]
            solw = self.oracle.lp_solvers[j].solve(r_ub, lp.r_eq(r_eq0, w_eval.f_mw))
            curt_w[j], shed_w[j], viol_w[j] = rec.curtailment_mwh(solw.y, xi), rec.shedding_mwh(solw.y), rec.violation_mwh(solw.y)
        _, sup = self.worst_expectation(Q)
        return {
            "first_stage_usd": float(self.first_stage_cost.value),
            "worst_expected_recourse_usd": sup,
            "curtailment_expected_mwh": float(curt0.mean()),
            "shedding_expected_mwh": float(shed0.mean()),
            "curtailment_worst_mwh": float(curt_w.max()),
            "shedding_worst_mwh": float(shed_w.max()),
            "violation_worst_mwh": float(viol_w.max()),
            "recourse_usd": Q,
        }

    # -- cut state for checkpoints -------------------------------------------------------------
    def cut_state(self) -> dict:
        if self.cut_rows is not None:
            pool = {"cut_rows": self.cut_rows.state()}
        else:
            pool = {"cut_alpha": np.array(self.cut_alpha.value), "cut_beta": np.array(self.cut_beta.value),
                    "cut_owner": np.array(self.cut_owner.value)}
        return pool | {
            "dist_slots": np.array(self.dist_slots.value), "dist_used": self.dist_used,
            "a_up": [[np.array(p.value) for p in row] for row in self.a_up],
            "a_dn": [[np.array(p.value) for p in row] for row in self.a_dn],
            "req_used": list(self.req_used), "cuts_added": self.cuts_added,
            "cut_used": self.cut_used,
            "cuts_replaced": self.cuts_replaced,
            "found": [[(a.copy(), b.copy()) for a, b in f] for f in self.oracle.found],
            "last_found_round": self.oracle.last_found_round.copy(), "certify_rounds": self.oracle.rounds,
            "requirement_checks": dict(self.oracle.checks),
            "center": self.center.copy(),
            "g_up": [[np.array(p.value) for p in row] for row in self.g_up],
            "g_dn": [[np.array(p.value) for p in row] for row in self.g_dn],
            "g_used": list(self.g_used),
        }

    def set_cut_state(self, state: dict) -> None:
        self.dist_slots.value = np.array(state["dist_slots"])
        self.dist_used = int(state["dist_used"])
        for rows, key in ((self.a_up, "a_up"), (self.a_dn, "a_dn")):
            for params, vals in zip(rows, state[key]):
                for p, v in zip(params, vals):
                    p.value = np.array(v)
        self.req_used = list(state["req_used"])
        self.cuts_added = int(state["cuts_added"])
        if self.cut_rows is not None:
            self.cut_rows.set_state(state["cut_rows"])
        else:
            self.cut_alpha.value = np.array(state["cut_alpha"])
            self.cut_beta.value = np.array(state["cut_beta"])
            self.cut_owner.value = np.array(state["cut_owner"])
        self.cut_used = int(state["cut_used"])
        self.cuts_replaced = int(state.get("cuts_replaced", 0))
        self.oracle.found = [[(np.array(a), np.array(b)) for a, b in f] for f in state.get("found", self.oracle.found)]
        self.oracle.last_found_round = np.array(state.get("last_found_round", self.oracle.last_found_round))
        self.oracle.rounds = int(state.get("certify_rounds", self.oracle.rounds))
        self.oracle.checks.update({k: n for k, n in state.get("requirement_checks", {}).items() if k in CHECKS})
        self.recenter(state.get("center", self.center))
        for rows, key in ((self.g_up, "g_up"), (self.g_dn, "g_dn")):
            for params, vals in zip(rows, state.get(key, [])):
                for p, v in zip(params, vals):
                    p.value = np.array(v)
        self.g_used = list(state.get("g_used", self.g_used))

    def master_size(self) -> dict:
        n_var = sum(v.size for v in cp.Problem(cp.Minimize(self.cost), self.constraints).variables())
        n_con = sum(c.size for c in self.constraints)
        return {"variables": int(n_var), "constraints": int(n_con), "recourse_variables": self.recourse.lp.n_y,
                "copies": sum(len(c) for c in self.copies)}


def build_dso_problem(data: DSORobustData, baselines_mw: np.ndarray, declared: list[DeclaredCapacity],
                      cut_pool: str | None = None) -> DSOProblem:
    """The DSO's RobustProblem from its data, the EVCS baselines (E, T) and declarations
    (``cut_pool``: see ``CUT_POOLS``; None = ``data.ccg.cut_pool``)."""
    b = np.asarray(baselines_mw, dtype=float)
    shape = (len(data.evcs_names), data.horizon_h)
    if b.shape != shape:
        raise ValueError(f"DSO {data.name!r}: baselines_mw has shape {b.shape}; give one row per station and one column per hour {shape}")
    return DSOProblem(data, b, declarations_from_messages(data, list(declared)), cut_pool)


