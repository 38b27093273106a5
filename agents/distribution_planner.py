"""The distribution planner of td-expansion: the paper's F2 (16) with (17)-(20); see agents/planner_base.py."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.common import incidence_columns
from agents.planner_base import (
    DistributionPlannerData,
    FlexBlock,
    ZONE_D_BUS,
    _PlannerBase,
)
from coordination.expansion import (
    BoundaryForecast,
    InterfaceProposal,
    InterfaceUpdate,
)


class DistributionPlannerAgent(_PlannerBase):
    """The distribution planner (feeder expansion with LinDistFlow)."""

    role = "distribution_planner"
    hint = ("check the feeder's voltage limits and the substation voltage against the candidate lines and "
            "generators, and that fixed regulation schedules lie within the sites' capacities")

    def __init__(self, data: DistributionPlannerData):
        self.data = data
        self.weight_h = np.asarray(data.snapshot_weight_h, dtype=float)
        self.n_gen_cand = len(data.gen_candidates)
        self.n_line_cand = len(data.line_candidates)
        self._init_common(data.name, data.aggregators, data.settings, len(self.weight_h))
        # One parallel-line row per (section, branch); row r belongs to section sec_of_row[r].
        self.row_branch = np.array([b for c in data.line_candidates for b in c[1]], dtype=int)
        self.row_length_km = np.array([l for c in data.line_candidates for l in c[2]], dtype=float)
        self.sec_of_row = np.array([i for i, c in enumerate(data.line_candidates) for _ in c[1]], dtype=int)
        self.n_rows = len(self.row_branch)
        S = len(self.weight_h)
        self.purchase = cp.Parameter(S, name="purchase_usd_per_mwh_times_omega")
        self.purchase.value = np.zeros(S)
        self.has_plan = False
        self.y_history: dict[int, tuple] = {}
        self.cuts: list[tuple[float, np.ndarray]] = []  # (intercept relative to cut_ref, gradient) per cut
        self.cut_ref = None

    def coordination_terms(self, x):
        """theta >= a_k + g_k x: the transmission planner's Benders cuts (coordination.expansion).

        theta is V_T - cut_ref (the first cut's cost), which keeps the 1e9 $/yr constant out
        of the model; unused slots repeat a used one (all zero before the first cut).
        """
        K = self.settings.max_cuts
        self.theta = cp.Variable(name="theta_t_cost_usd")
        self.cut_a = cp.Parameter(K, name="cut_intercept_usd")
        self.cut_g = cp.Parameter((K, self.n_x), name="cut_gradient_usd_per_mw")
        self.cut_a.value = np.zeros(K)
        self.cut_g.value = np.zeros((K, self.n_x))
        return self.theta, [self.theta >= self.cut_a + self.cut_g @ x]

    def _add_cut(self, u: InterfaceUpdate, center: np.ndarray, lam: np.ndarray) -> None:
        if u.cut_reset:
            self.cuts, self.cut_ref = [], None
        if not np.isfinite(u.cut_cost_usd):
            return
        if self.cut_ref is None:
            self.cut_ref = float(u.cut_cost_usd)
        g = self.w_x * lam  # $/yr per MW of the interface
        self.cuts = (self.cuts + [(float(u.cut_cost_usd) - self.cut_ref - float(g @ center), g)])[-self.settings.max_cuts:]
        K = self.settings.max_cuts
        rows = [self.cuts[min(k, len(self.cuts) - 1)] for k in range(K)]
        self.cut_a.value = np.array([a for a, _ in rows])
        self.cut_g.value = np.array([g for _, g in rows])

    def bound_usd(self) -> float:
        """The master problem's lower bound on the joint cost (cuts in use and MILP), else -inf."""
        if self.cut_ref is None or self.fixed_investments:
            return float("-inf")
        value = self.milp.problem.value
        gap = self.settings.mip_rel_gap * max(1.0, abs(float(value)))
        return float(value) - gap + self.cut_ref

    def scope_zones(self):
        ids = np.asarray(self.data.feeder.bus_ids, dtype=int)
        return np.full(len(ids), ZONE_D_BUS), ids

    def build(self, models: dict) -> None:
        f = self.data.feeder
        S = len(self.weight_h)
        n, nb = f.n_bus, f.n_branch
        self.P = cp.Variable((nb, S), name="p_branch_mw")
        self.Q = cp.Variable((nb, S), name="q_branch_mvar")
        self.Pc = cp.Variable((self.n_rows, S), name="p_candidate_mw")
        self.Qc = cp.Variable((self.n_rows, S), name="q_candidate_mvar")
        self.v2 = cp.Variable((n, S), name="v2_pu")
        self.gen_c = cp.Variable((self.n_gen_cand, S), nonneg=True, name="dg_mw")
        self.shed = cp.Variable((n, S), nonneg=True, name="shed_mw")
        self.actual_draw = cp.Variable(S, name="actual_draw_mw")
        for a in self.aggregators:
            flex = models[a]
            self.blocks[a] = FlexBlock(flex, self.weight_h, np.ones(n), f"{a}")

    def continuous_constraints(self) -> list:
        d, f = self.data, self.data.feeder
        n, nb = f.n_bus, f.n_branch
        load_p, load_q = d.load_p_mw, d.load_q_mvar
        with np.errstate(divide="ignore", invalid="ignore"):
            tan_phi = np.where(load_p > 0, load_q / load_p, 0.0)
        dg_bus = np.array([f.bus_index(int(g.bus)) for g in d.gen_candidates], dtype=int)
        p_net = load_p - self.shed - incidence_columns(dg_bus, n) @ self.gen_c
        for blk in self.blocks.values():
            p_net = p_net + blk.flex.baseline_mw - blk.tau
        q_net = load_q - cp.multiply(tan_phi, self.shed)
        k = np.arange(nb)
        A = sp.csr_matrix((np.r_[np.ones(nb), -np.ones(nb)], (np.r_[f.branch_to, f.branch_from], np.r_[k, k])), shape=(n, nb))
        br = self.row_branch
        kc = np.arange(len(br))
        Ac = sp.csr_matrix((np.r_[np.ones(len(br)), -np.ones(len(br))],
                            (np.r_[f.branch_to[br], f.branch_from[br]], np.r_[kc, kc])), shape=(n, len(br)))
        r = np.asarray(f.branch_r_pu) / f.base_mva
        x = np.asarray(f.branch_x_pu) / f.base_mva
        rating = np.asarray(f.branch_rating_mva)[:, None]
        cons = [
            A[1:, :] @ self.P + Ac[1:, :] @ self.Pc == p_net[1:, :],
            A[1:, :] @ self.Q + Ac[1:, :] @ self.Qc == q_net[1:, :],
            self.actual_draw == -(A[0, :] @ self.P) - (Ac[0, :] @ self.Pc) + p_net[0, :],
            self.v2[0, :] == d.v_root_pu**2,
            self.v2[f.branch_to, :] == self.v2[f.branch_from, :] - 2 * (sp.diags(r) @ self.P + sp.diags(x) @ self.Q),
            self.v2[1:, :] >= f.v_min_pu**2, self.v2[1:, :] <= f.v_max_pu**2,
            self.shed <= np.maximum(load_p, 0.0),
        ]
        for expr, lim in ((self.P, rating), (self.Q, rating), (self.P + self.Q, np.sqrt(2) * rating),
                          (self.P - self.Q, np.sqrt(2) * rating)):
            cons += [expr <= lim, expr >= -lim]
        self._line_geo = (br, r, x)
        return cons

    def investment_constraints(self, y_gen, y_line) -> list:
        d, f = self.data, self.data.feeder
        S = len(self.weight_h)
        br, r, x = self._line_geo
        rc, xc = r[br], x[br]  # a parallel line has the existing branch's impedance and rating
        Sc = np.asarray(f.branch_rating_mva)[br]
        big_m = 4.0 * (rc + xc) * Sc * 1.5 + 1e-6
        to_rows = sp.csr_matrix((np.ones(self.n_rows), (np.arange(self.n_rows), self.sec_of_row)),
                                shape=(self.n_rows, self.n_line_cand))
        y_rows = to_rows @ y_line
        ones = np.ones((1, S))
        col = lambda v, m: cp.reshape(v, (m, 1), order="C") @ ones  # noqa: E731
        cap = col(cp.multiply(Sc, y_rows), self.n_rows)
        slack = col(cp.multiply(big_m, 1 - y_rows), self.n_rows)
        pmax = np.array([g.p_max_mw for g in d.gen_candidates])
        drop = self.v2[f.branch_from[br], :] - self.v2[f.branch_to[br], :] - 2 * (sp.diags(rc) @ self.Pc + sp.diags(xc) @ self.Qc)
        cons = [self.gen_c <= col(cp.multiply(pmax, y_gen), len(pmax)), drop <= slack, drop >= -slack]
        for expr, k in ((self.Pc, 1.0), (self.Qc, 1.0), (self.Pc + self.Qc, np.sqrt(2)), (self.Pc - self.Qc, np.sqrt(2))):
            cons += [expr <= k * cap, expr >= -k * cap]
        return cons

    def _cost_parts(self, y_gen, y_line) -> dict:
        d = self.data
        w = self.weight_h
        capex_g = np.array([g.capex_usd_per_mw_yr * g.p_max_mw for g in d.gen_candidates])
        row_cost = d.line_capex_usd_per_mw_km_yr * np.asarray(d.feeder.branch_rating_mva)[self.row_branch] * self.row_length_km
        capex_l = np.bincount(self.sec_of_row, weights=row_cost, minlength=self.n_line_cand)
        opc = np.array([g.op_cost_usd_per_mwh for g in d.gen_candidates])
        return {
            "investment_generators_usd": capex_g @ y_gen,
            "investment_lines_usd": capex_l @ y_line,
            "generation_usd": opc @ self.gen_c @ w,
            "purchase_usd": self.purchase @ self.actual_draw,
            "curtailment_usd": d.voll_usd_per_mwh * cp.sum(self.shed @ w),
            "regulation_usd": sum(b.cost for b in self.blocks.values()),
        }

    def own_cost(self, y_gen, y_line):
        return sum(self._cost_parts(y_gen, y_line).values())

    def cost_parts(self) -> dict:
        return self._cost_parts(*self._y_values())

    def interface_expr(self):
        # Pre-regulation draw = actual draw + the regulation inside the feeder (all zones but 0).
        draw = self.actual_draw + sum(cp.sum(b.tau, axis=0) for b in self.blocks.values())
        self.draw = draw
        parts = [draw] + [self.blocks[a].flex.weight @ self.blocks[a].tau for a in self.aggregators]
        return cp.hstack(parts)

    # --- stand-alone plan and forecast ----------------------------------------------------------------
    def forecast_boundary(self, inbox: tuple = ()) -> BoundaryForecast:
        """The pre-regulation draw of the last plan, or (no plan yet) of the loads alone."""
        if self.has_plan:
            S = len(self.weight_h)
            draw = self.x_value()[:S]
        else:
            draw = self.data.load_p_mw.sum(axis=0) + sum(b.flex.baseline_mw.sum(axis=0) for b in self.blocks.values())
        return BoundaryForecast(self.name, self.data.transmission_planner, draw_mw=draw)

    def solve_alone(self, inbox: tuple = ()) -> list:
        self._price_only()
        self.purchase.value = self.data.purchase_price_usd_per_mwh * self.weight_h
        self._solve()
        self.has_plan = True
        out = [self.plan_report(stage=0), *self.zone_regulations()]
        self.purchase.value = np.zeros(len(self.weight_h))
        self.last_y = None
        return out

    def solve_local(self, inbox: tuple = ()) -> InterfaceProposal:
        S = len(self.weight_h)
        A = len(self.aggregators)
        upd = [m for m in inbox if isinstance(m, InterfaceUpdate)]
        if upd:
            u = upd[0]
            if u.fix_investments and not self.fixed_investments:
                self.last_y = self.y_history[int(u.fix_round)]
                self.fix_investments()
            self.iteration = u.iteration
            lam = np.r_[np.asarray(u.multiplier_draw_usd_per_mwh), np.asarray(u.multiplier_coupled_usd_per_mwh).ravel()]
            z = np.r_[np.asarray(u.consensus_draw_mw), np.asarray(u.consensus_coupled_mw).ravel()]
            self._set_admm_terms(lam, z, u.rho_usd_per_mw2h, u.prox_usd_per_mwh)
            if self.settings.cuts:
                self.lin.value = np.zeros(self.n_x)  # the cuts carry the prices
                self._add_cut(u, z, lam)
        self._solve()
        self.has_plan = True
        x = self.x_value()
        rnd = self.iteration + 1  # the transmission planner numbers this round iteration + 1
        if not self.fixed_investments:
            self.y_history[rnd] = self.last_y
        return InterfaceProposal(self.name, self.data.transmission_planner, iteration=rnd,
                                 draw_mw=x[:S], coupled_mw=x[S:].reshape(A, S),
                                 investments_changed=0 if self.fixed_investments else self.investment_changes,
                                 own_cost_usd=float(self.own_cost(*self._y_expr()).value), bound_usd=self.bound_usd())
