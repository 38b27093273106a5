"""The TSO's recourse as hourly Benders cuts per wind scenario (``CCGSettings.recourse = "benders"``).

MODELS.md section 1 / issue 3 (paper: tso-dso-evcs-admm-ccg-dro-aro). The TSO's recourse
(agents/tso_recourse.py) has no constraint across hours: thermal deployment is bounded by
the hour's reserves, the boundary deployment by the hour's boundary band, and there is no
ramping in the re-dispatch. So ``Q_j(x) = sum_t Q_jt(x_t)``, where ``x_t`` stacks the hour's
first stage ``(p, ru, rd, P, Rup, Rdn)`` (``X_ROWS``), and each ``Q_jt`` is a small LP::

    Q_jt(x_t) = c_curt sum(xi_jt) + min  c1 @ dp - c_curt sum(w) + VOLL sum(s)
        s.t.  dp <= ru,  -dp <= rd,  f <= Rup,  -f <= Rdn,  w <= xi_jt,  s <= load_t,
              +-(B A theta)_r <= rating_r +- shift_r                 (rated lines r)
              A^T B A theta - Cg dp - Cw w - Cs s - Cb f = Cg p - Cb P - D_t + A^T shift
              theta_slack = 0;  w, s >= 0

(the same LP as one hour of :func:`agents.tso_recourse.recourse_copy`). Its matrix and costs
are the same for every hour and scenario; only the right-hand side moves, affinely in
``x_t``. One warm HiGHS instance (:class:`agents.requirement_milp.RecourseSolver`) solves
all ``K_s x T`` of them, and each dual solution (lam, mu) gives a cut
``Q_jt(x) >= alpha + beta @ x_t`` valid for every x (the dual feasible set does not depend
on x) and tight at the point it was computed at.

Where the LP has no solution (the master's first stage leaves scenario j no flow within
the ratings in hour t), the phase-1 LP (the same rows with the ratings relaxed by
``overload >= 0``, minimizing the overload) gives a feasibility cut
``alpha + beta @ x_t <= 0`` (L-shaped method). The master then holds the first stage,
``theta_jt`` (``recourse_hourly_usd``) and the cut rows (:class:`BendersRows`, appended to the
compiled master at each solve): 15,046 variables on T118D10 where the full copies need
79,000.

Glossary: ``theta_jt`` -> the master's estimate of scenario j's recourse cost in hour t;
``alpha``/``beta`` -> the cut's constant and slope; ``overload_mw`` -> the phase-1 slack.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.requirement_milp import RecourseInfeasibleError, RecourseLP, RecourseSolver
from agents.solver import CutRows, SolveError, SolveStatus
from agents.tso import TSOData
from agents.tso_recourse import FirstStage, RecourseResult, TSOGrid

#: First-stage blocks of ``x_t`` in order (FirstStage field names).
X_ROWS = ("p_mw", "ru_mw", "rd_mw", "boundary_mw", "up_mw", "dn_mw")


@dataclass(frozen=True)
class HourlyEvaluation:
    """The exact hourly recourse of every scenario at one first stage, with its cuts."""

    values_usd: np.ndarray  #: (K_s, T) Q_jt; +inf where the hour has no feasible re-dispatch
    curtailment_mwh: np.ndarray  #: (K_s, T)
    shedding_mwh: np.ndarray  #: (K_s, T)
    alpha: np.ndarray  #: (K_s, T) optimality (or, where infeasible, feasibility) cut constants
    beta: np.ndarray  #: (K_s, T, n_x) their slopes on x_t
    feasible: np.ndarray  #: (K_s, T) bool

    def result(self) -> RecourseResult:
        """Per-scenario totals over the day, as :class:`agents.tso_recourse.RecourseEvaluator` gives them."""
        return RecourseResult(
            values_usd=self.values_usd.sum(axis=1),
            curtailment_mwh=np.maximum(self.curtailment_mwh.sum(axis=1), 0.0),
            shedding_mwh=np.maximum(self.shedding_mwh.sum(axis=1), 0.0),
        )


class HourlyRecourse:
    """All ``K_s x T`` hourly recourse LPs of the TSO, their values and their Benders cuts."""

    def __init__(self, name: str, data: TSOData, grid: TSOGrid, scenarios_mw: np.ndarray):
        net = data.network
        self.name = name
        self.scenarios_mw = np.asarray(scenarios_mw, dtype=float)  # (K_s, W, T)
        G, K = net.n_gen, len(data.feeder_names)
        W, L, N = grid.wind_map.shape[1], grid.shed_map.shape[1], net.n_bus
        R = grid.rated.size
        self.n_x = 3 * G + 3 * K
        self.grid = grid
        self.curtailment_usd_per_mwh = float(data.curtailment_usd_per_mwh)
        # columns: dp (G), f (K), w (W), s (L), theta (N) [, overload up (R), overload down (R)]
        col = np.cumsum([0, G, K, W, L, N])
        self.cols = {"dp": slice(col[0], col[1]), "f": slice(col[1], col[2]), "w": slice(col[2], col[3]),
                     "s": slice(col[3], col[4])}
        n_y = col[-1]
        flow = (grid.susceptance_mw @ grid.incidence).tocsr()  # (n_branch, N): flow = flow @ theta - shift
        rated = flow[grid.rated]

        def block(m: int, parts: list[tuple[int, sp.spmatrix]], width: int) -> sp.csr_matrix:
            out = sp.lil_matrix((m, width))
            for start, mat in parts:
                out[:, start: start + mat.shape[1]] = mat
            return out.tocsr()

        eye = sp.identity
        ub_parts = [
            [(col[0], eye(G))], [(col[0], -eye(G))], [(col[1], eye(K))], [(col[1], -eye(K))],
            [(col[2], eye(W))], [(col[3], eye(L))], [(col[4], rated)], [(col[4], -rated)],
        ]
        ub_rows = [G, G, K, K, W, L, R, R]
        a_ub = sp.vstack([block(m, p, n_y) for m, p in zip(ub_rows, ub_parts)], format="csr")
        balance = sp.hstack([-grid.gen_map, -grid.boundary_map, -grid.wind_map, -grid.shed_map,
                             grid.incidence.T @ flow], format="csr")
        slack = sp.csr_matrix(([1.0], ([0], [col[4] + grid.slack_bus])), shape=(1, n_y))
        a_eq = sp.vstack([balance, slack], format="csr")
        nonneg = np.zeros(n_y, dtype=bool)
        nonneg[col[2]: col[4]] = True  # w, s
        cost = np.zeros(n_y)
        cost[self.cols["dp"]] = net.gen_cost_c1_usd_per_mwh
        cost[self.cols["w"]] = -self.curtailment_usd_per_mwh
        cost[self.cols["s"]] = data.voll_usd_per_mwh
        none = np.zeros(0, dtype=int)
        self.lp = RecourseLP(cost, a_ub, a_eq, nonneg, none, 0.0, 1.0)
        # phase 1: the rating rows relaxed by overload >= 0, minimize the overload
        over = sp.vstack([sp.csr_matrix((sum(ub_rows[:6]), 2 * R)), -eye(2 * R)], format="csr")
        self.phase1 = RecourseLP(
            np.r_[np.zeros(n_y), np.ones(2 * R)], sp.hstack([a_ub, over], format="csr"),
            sp.hstack([a_eq, sp.csr_matrix((a_eq.shape[0], 2 * R))], format="csr"),
            np.r_[nonneg, np.ones(2 * R, dtype=bool)], none, 0.0, 1.0,
        )
        self.solver = RecourseSolver(self.lp)
        self.phase1_solver: RecourseSolver | None = None  # built at the first infeasible hour
        self.ub_rows = np.cumsum([0, *ub_rows])  # row offsets of the eight ub blocks
        shift = grid.shift_flow_mw
        self._rating_rhs = np.r_[grid.rating_mw + shift[grid.rated], grid.rating_mw - shift[grid.rated]]
        self._balance_const = (grid.incidence.T @ shift)[:, None] - grid.net_load_mw  # (N, T)

    # -- right-hand sides -------------------------------------------------------------------
    def _rhs(self, x: dict[str, np.ndarray], xi_t: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        g = self.grid
        r_ub = np.r_[x["ru_mw"][:, t], x["rd_mw"][:, t], x["up_mw"][:, t], x["dn_mw"][:, t], xi_t,
                     g.shed_max_mw[:, t], self._rating_rhs]
        bal = g.gen_map @ x["p_mw"][:, t] - g.boundary_map @ x["boundary_mw"][:, t] + self._balance_const[:, t]
        return r_ub, np.r_[bal, 0.0]

    def _cut(self, lam: np.ndarray, mu: np.ndarray, xi_t: np.ndarray, t: int, constant: float) -> tuple[float, np.ndarray]:
        """``(alpha, beta)``: ``constant - r_ub(x_t) @ lam + r_eq(x_t) @ mu = alpha + beta @ x_t``."""
        g, o = self.grid, self.ub_rows
        mu_bal = mu[: g.gen_map.shape[0]]
        beta = np.r_[
            g.gen_map.T @ mu_bal,  # p
            -lam[o[0]: o[1]],  # ru
            -lam[o[1]: o[2]],  # rd
            -(g.boundary_map.T @ mu_bal),  # boundary power
            -lam[o[2]: o[3]],  # up
            -lam[o[3]: o[4]],  # dn
        ]
        alpha = (constant - lam[o[4]: o[5]] @ xi_t - lam[o[5]: o[6]] @ g.shed_max_mw[:, t]
                 - lam[o[6]: o[8]] @ self._rating_rhs + mu_bal @ self._balance_const[:, t])
        return float(alpha), beta

    def evaluate(self, x: dict[str, np.ndarray]) -> HourlyEvaluation:
        """Q_jt and its cut for every scenario and hour at the first stage ``x`` (FirstStage names)."""
        x = {k: np.asarray(x[k], dtype=float) for k in X_ROWS}
        for k in ("ru_mw", "rd_mw", "up_mw", "dn_mw"):
            x[k] = np.maximum(x[k], 0.0)
        S, _, T = self.scenarios_mw.shape
        out = {k: np.zeros((S, T)) for k in ("values", "curt", "shed", "alpha")}
        beta = np.zeros((S, T, self.n_x))
        feasible = np.ones((S, T), dtype=bool)
        for j in range(S):
            for t in range(T):
                xi_t = self.scenarios_mw[j, :, t]
                r_ub, r_eq = self._rhs(x, xi_t, t)
                constant = self.curtailment_usd_per_mwh * float(xi_t.sum())
                try:
                    sol = self.solver.solve(r_ub, r_eq)
                except RecourseInfeasibleError:
                    feasible[j, t] = False
                    out["values"][j, t] = np.inf
                    out["alpha"][j, t], beta[j, t] = self._feasibility_cut(r_ub, r_eq, xi_t, t, j)
                    continue
                out["values"][j, t] = constant + sol.value_usd
                out["curt"][j, t] = float(xi_t.sum() - sol.y[self.cols["w"]].sum())
                out["shed"][j, t] = float(sol.y[self.cols["s"]].sum())
                out["alpha"][j, t], beta[j, t] = self._cut(sol.dual_ub, sol.dual_eq, xi_t, t, constant)
        return HourlyEvaluation(out["values"], out["curt"], out["shed"], out["alpha"], beta, feasible)

    def _feasibility_cut(self, r_ub, r_eq, xi_t, t: int, j: int) -> tuple[float, np.ndarray]:
        if self.phase1_solver is None:
            self.phase1_solver = RecourseSolver(self.phase1)
        try:
            sol = self.phase1_solver.solve(r_ub, r_eq)
        except RecourseInfeasibleError:
            raise SolveError(
                self.name, SolveStatus.INFEASIBLE,
                f"wind scenario {j}: no re-dispatch balances the buses even with the line ratings relaxed; check "
                "that load, thermal reserves and the boundary band can absorb the wind scenario's shortfall", t,
            ) from None
        return self._cut(sol.dual_ub, sol.dual_eq, xi_t, t, 0.0)


class BendersRows(CutRows):
    """The master's Benders rows ``C @ cut_vars <= d``, kept as plain data (no Parameters).

    ``cut_vars`` (``variable``) is a plain Variable tied to the first stage and theta by
    equalities: ``cut_vars = (vec_F(X), vec_F(theta))`` with ``X = (p; ru; rd; P; Rup; Rdn)``
    (n_x, T) and theta (K_s, T). An optimality cut on theta_jt reads
    ``alpha + beta @ X[:, t] - theta_jt <= 0``, a feasibility cut ``alpha + beta @ X[:, t] <= 0``.
    :class:`agents.solver.CutAugmentedModel` appends the rows to the compiled master at each
    solve, so the master is compiled once however many cuts it gets (cvxpy Parameters for a
    pool of cut rows would hold n_x = 3 n_gen + 3 K entries per row: about 575,000 on
    T118D10, past what cvxpy's parametric canonicalization can hold in memory).
    ``owner``: the scenario each row bounds (-1: a feasibility cut).
    """

    def __init__(self, first: FirstStage, theta: cp.Variable, n_scen: int, horizon_h: int):
        X = cp.vstack([getattr(first, k) for k in X_ROWS])  # (n_x, T)
        self.n_x, self.n_scen, self.horizon_h = int(X.shape[0]), n_scen, horizon_h
        n_first = self.n_x * horizon_h
        super().__init__(cp.Variable(n_first + n_scen * horizon_h, name="tso_cut_vars"))
        self.constraints = [self.variable[:n_first] == cp.vec(X, order="F"),
                            self.variable[n_first:] == cp.vec(theta, order="F")]

    def add(self, t: int, alpha: float, beta: np.ndarray, scenario: int | None = None) -> None:
        """An optimality cut on theta[scenario, t], or (``scenario`` None) a feasibility cut."""
        cols = t * self.n_x + np.arange(self.n_x)
        vals = np.asarray(beta, dtype=float)
        if scenario is not None:
            cols = np.r_[cols, self.n_x * self.horizon_h + t * self.n_scen + scenario]
            vals = np.r_[vals, -1.0]
        self.append(cols, vals, -float(alpha), -1 if scenario is None else int(scenario))

    @property
    def feasibility_rows(self) -> int:
        return int(np.sum(np.asarray(self.owner, dtype=int) < 0))


def recourse_lower_bound_usd(first: FirstStage, c1_usd_per_mwh: np.ndarray) -> cp.Expression:
    """(T,) a bound ``Q_jt >= -(c1+ @ rd_t + c1- @ ru_t)`` valid at every first stage (curtailment,
    shedding and overload cost >= 0; deployment within [-rd, ru]): keeps theta bounded before any cut."""
    c1 = np.asarray(c1_usd_per_mwh, dtype=float)
    return -(np.maximum(c1, 0.0) @ first.rd_mw + np.maximum(-c1, 0.0) @ first.ru_mw)
