"""The transmission planner of td-expansion: the paper's F1 (11) with (12)-(15); see agents/planner_base.py."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.common import incidence_columns
from agents.planner_base import (
    FREE_DRAW_LIMIT_MW,
    FlexBlock,
    TransmissionPlannerData,
    ZONE_FEEDER,
    ZONE_T_BUS,
    _PlannerBase,
)
from coordination.expansion import (
    BoundaryForecast,
    InterfaceProposal,
    InterfaceUpdate,
    RoundReport,
)
from coordination.runtime import COORDINATOR
from networks.dcpf import branch_incidence


class TransmissionPlannerAgent(_PlannerBase):
    """The transmission planner; in the coordinated plan it also runs the consensus updates."""

    role = "transmission_planner"
    hint = ("check that the candidate generators and circuits can serve the grown load (curtailment is allowed "
            "at VOLL, so infeasibility points to inconsistent flexibility bounds or a fixed feeder draw)")

    def __init__(self, data: TransmissionPlannerData):
        self.data = data
        self.weight_h = np.asarray(data.snapshot_weight_h, dtype=float)
        self.n_gen_cand = len(data.gen_candidates)
        self.n_line_cand = len(data.line_candidates)
        self._init_common(data.name, data.aggregators, data.settings, len(self.weight_h))
        S = len(self.weight_h)
        self.draw_lo = cp.Parameter(S, name="draw_lower_mw")
        self.draw_hi = cp.Parameter(S, name="draw_upper_mw")
        self.draw_lo.value = -FREE_DRAW_LIMIT_MW * np.ones(S)
        self.draw_hi.value = FREE_DRAW_LIMIT_MW * np.ones(S)
        self.feeder_zone_cost = cp.Parameter(nonneg=True, name="pays_feeder_zone")
        self.feeder_zone_cost.value = 0.0
        self.rho = data.settings.admm.rho_usd_per_mw2h
        self.phase = 1
        self.stable = 0

    def scope_zones(self):
        ids = np.asarray(self.data.network.bus_ids, dtype=int)
        zs = np.r_[np.full(len(ids), ZONE_T_BUS), ZONE_FEEDER]
        zb = np.r_[ids, self.data.feeder_bus_id]
        return zs, zb

    def build(self, models: dict) -> None:
        net = self.data.network
        S = len(self.weight_h)
        nb, nl, ng = net.n_bus, net.n_branch, net.n_gen
        self.theta = cp.Variable((nb, S), name="theta_rad")
        self.flow = cp.Variable((nl, S), name="flow_mw")
        self.flow_c = cp.Variable((self.n_line_cand, S), name="flow_candidate_mw")
        self.gen = cp.Variable((ng, S), nonneg=True, name="gen_mw")
        self.gen_c = cp.Variable((self.n_gen_cand, S), nonneg=True, name="gen_candidate_mw")
        self.shed = cp.Variable((nb, S), nonneg=True, name="shed_mw")
        self.draw = cp.Variable(S, name="draw_mw")
        zs, zb = self.scope_zones()
        feeder_zone = len(zs) - 1
        for a in self.aggregators:
            flex = models[a]
            cw = cp.hstack([np.ones(feeder_zone), cp.reshape(self.feeder_zone_cost, (1,), order="C")])
            self.blocks[a] = FlexBlock(flex, self.weight_h, cw, f"{a}")
        self.feeder_zone = feeder_zone
        self.n_bus_zones = nb

    def continuous_constraints(self) -> list:
        d, net = self.data, self.data.network
        S = len(self.weight_h)
        A = branch_incidence(net)
        b = 1.0 / np.asarray(net.branch_x_pu)
        load = d.load_mw
        # Bus load: ordinary + flexible zones (baseline - tau) + the feeder (draw - tau_feeder).
        bus_load = load - self.shed
        for blk in self.blocks.values():
            bus_load = bus_load + blk.flex.baseline_mw[: self.n_bus_zones] - blk.tau[: self.n_bus_zones, :]
        e_f = np.zeros((net.n_bus, 1))
        e_f[d.feeder_bus_pos, 0] = 1.0
        feeder_tau = sum(blk.tau[self.feeder_zone: self.feeder_zone + 1, :] for blk in self.blocks.values())
        bus_load = bus_load + e_f @ (cp.reshape(self.draw, (1, S), order="C") - feeder_tau)
        Cg = incidence_columns(net.gen_bus, net.n_bus)
        cand_bus = np.array([net.bus_index(int(g.bus)) for g in d.gen_candidates], dtype=int)
        Cc = incidence_columns(cand_bus, net.n_bus)
        fr = np.array([c[1] for c in d.line_candidates], dtype=int)
        to = np.array([c[2] for c in d.line_candidates], dtype=int)
        k = np.arange(len(fr))
        Ac = sp.csr_matrix((np.r_[np.ones(len(k)), -np.ones(len(k))], (np.r_[k, k], np.r_[fr, to])),
                           shape=(len(k), net.n_bus))
        self._Ac = Ac
        rating = np.asarray(net.branch_rating_mw)[:, None]
        cons = [
            A.T @ self.flow + Ac.T @ self.flow_c == Cg @ self.gen + Cc @ self.gen_c - bus_load,
            self.flow == net.base_mva * sp.diags(b) @ (A @ self.theta),
            self.flow <= rating, self.flow >= -rating,
            self.theta[net.slack_bus, :] == 0,
            self.gen <= np.asarray(net.gen_pmax_mw)[:, None] * np.ones((1, S)),
            self.shed <= np.maximum(load, 0.0),
        ]
        self.c_draw_lo = self.draw >= self.draw_lo
        self.c_draw_hi = self.draw <= self.draw_hi
        return cons + [self.c_draw_lo, self.c_draw_hi]

    def investment_constraints(self, y_gen, y_line) -> list:
        d, net = self.data, self.data.network
        S = len(self.weight_h)
        pmax = np.array([g.p_max_mw for g in d.gen_candidates])
        F = np.array([c[4] for c in d.line_candidates])
        bc = net.base_mva / np.array([c[3] for c in d.line_candidates])
        ones = np.ones((1, S))
        cap_g = cp.reshape(cp.multiply(pmax, y_gen), (self.n_gen_cand, 1), order="C") @ ones
        cap_l = cp.reshape(cp.multiply(F, y_line), (self.n_line_cand, 1), order="C") @ ones
        slack = cp.reshape(cp.multiply(2 * F, 1 - y_line), (self.n_line_cand, 1), order="C") @ ones
        angle_flow = sp.diags(bc) @ (self._Ac @ self.theta)
        return [self.gen_c <= cap_g, self.flow_c <= cap_l, self.flow_c >= -cap_l,
                self.flow_c - angle_flow <= slack, angle_flow - self.flow_c <= slack]

    def own_cost(self, y_gen, y_line):
        return sum(self._cost_parts(y_gen, y_line).values())

    def _cost_parts(self, y_gen, y_line) -> dict:
        d, net = self.data, self.data.network
        w = self.weight_h
        capex_g = np.array([g.capex_usd_per_mw_yr * g.p_max_mw for g in d.gen_candidates])
        capex_l = np.array([d.line_capex_usd_per_mw_km_yr * c[4] * c[5] for c in d.line_candidates])
        opc = np.array([g.op_cost_usd_per_mwh for g in d.gen_candidates])
        return {
            "investment_generators_usd": capex_g @ y_gen,
            "investment_lines_usd": capex_l @ y_line,
            "generation_usd": np.asarray(net.gen_cost_c1_usd_per_mwh) @ self.gen @ w + opc @ self.gen_c @ w,
            "curtailment_usd": d.voll_usd_per_mwh * cp.sum(self.shed @ w),
            "regulation_usd": sum(b.cost for b in self.blocks.values()),
        }

    def cost_parts(self) -> dict:
        return self._cost_parts(*self._y_values())

    def interface_expr(self):
        parts = [self.draw]
        for a in self.aggregators:
            blk = self.blocks[a]
            parts.append(blk.flex.weight[self.feeder_zone] * blk.tau[self.feeder_zone, :])
        return cp.hstack(parts)

    # --- stand-alone plan (case 2) ---------------------------------------------------------------
    def solve_alone(self, inbox: tuple) -> list:
        (fc,) = [m for m in inbox if isinstance(m, BoundaryForecast)]
        self.draw_lo.value = np.asarray(fc.draw_mw, dtype=float)
        self.draw_hi.value = np.asarray(fc.draw_mw, dtype=float)
        self.feeder_zone_cost.value = 1.0
        self._price_only()
        self._solve()
        out = [self.plan_report(stage=0), *self.zone_regulations()]
        self.draw_lo.value = -FREE_DRAW_LIMIT_MW * np.ones(len(self.weight_h))
        self.draw_hi.value = FREE_DRAW_LIMIT_MW * np.ones(len(self.weight_h))
        self.feeder_zone_cost.value = 0.0
        self.last_y = None
        return out

    # --- coordination ------------------------------------------------------------------------------
    def _pin_interface(self, x_d: np.ndarray) -> None:
        """Fix the interface at the distribution planner's proposal (draw and (21) per aggregator)."""
        S = len(self.weight_h)
        x_d = np.round(x_d, 6)  # solver noise (1e-10) would make a pinned zero infeasible for an LP solver
        self.draw_lo.value = x_d[:S]
        self.draw_hi.value = x_d[:S]
        for i, a in enumerate(self.aggregators):
            blk = self.blocks[a]
            blk.pin_zone(self.feeder_zone, x_d[(1 + i) * S:(2 + i) * S] / blk.flex.weight[self.feeder_zone])

    def _unpin_interface(self) -> None:
        S = len(self.weight_h)
        self.draw_lo.value = -FREE_DRAW_LIMIT_MW * np.ones(S)
        self.draw_hi.value = FREE_DRAW_LIMIT_MW * np.ones(S)
        for blk in self.blocks.values():
            blk.unpin()

    def _interface_prices(self) -> np.ndarray:
        """Marginal cost of the pinned interface ($/MWh per snapshot), from the LP at the current binaries."""
        was_fixed = self.fixed_investments
        if not was_fixed:
            self.fix_investments()
        self._price_only()
        self._solve()
        self.lp_cost = float(self.qp.problem.value)  # V_T at the pinned interface, binaries fixed
        S = len(self.weight_h)
        w = self.weight_h
        prices = [(np.asarray(self.c_draw_lo.dual_value) - np.asarray(self.c_draw_hi.dual_value)) / w]
        for a in self.aggregators:
            blk = self.blocks[a]
            d = np.asarray(blk.c_lower.dual_value)[self.feeder_zone] - np.asarray(blk.c_upper.dual_value)[self.feeder_zone]
            prices.append(d / w / blk.flex.weight[self.feeder_zone])
        self.fixed_investments = was_fixed
        return np.concatenate(prices).reshape(-1)[: (1 + len(self.aggregators)) * S]

    def _respond(self, x_d: np.ndarray) -> tuple[float, np.ndarray]:
        """Investment phase: the MILP with the interface pinned at ``x_d``; its own cost and prices."""
        self._pin_interface(x_d)
        self._price_only()
        self._solve()
        cost = float(self.own_cost(*self._y_expr()).value)
        y = self._y_values()
        prices = self._interface_prices()
        self._unpin_interface()
        return cost, prices, y

    def initialize(self, inbox: tuple) -> InterfaceUpdate:
        (fc,) = [m for m in inbox if isinstance(m, BoundaryForecast)]
        S = len(self.weight_h)
        self.fixed_investments = False
        self.x_d = np.r_[np.asarray(fc.draw_mw, dtype=float), np.zeros(self.n_x - S)]
        self.iteration = 0
        self.phase, self.stable = 1, 0
        self.last_y = None
        self.best = None  # (total cost, round, x_d, prices, T binaries)
        _, self.prices, self.y_round = self._respond(self.x_d)
        return self._update(multiplier=self.prices, center=self.x_d, rho=0.0, fix=False, fix_round=-1, reset=True)

    def _update(self, multiplier, center, rho, fix, fix_round, reset=False) -> InterfaceUpdate:
        S = len(self.weight_h)
        A = len(self.aggregators)
        cuts = self.settings.cuts
        return InterfaceUpdate(
            self.name, self.data.distribution_planner, iteration=self.iteration,
            consensus_draw_mw=center[:S], consensus_coupled_mw=center[S:].reshape(A, S),
            multiplier_draw_usd_per_mwh=multiplier[:S], multiplier_coupled_usd_per_mwh=multiplier[S:].reshape(A, S),
            rho_usd_per_mw2h=rho, prox_usd_per_mwh=0.0 if cuts else self.settings.prox_usd_per_mwh,
            fix_investments=fix, fix_round=fix_round, cut_cost_usd=self.lp_cost if cuts else float("nan"),
            cut_reset=bool(reset and cuts),
        )

    def coordinate(self, inbox: tuple) -> list:
        (prop,) = [m for m in inbox if isinstance(m, InterfaceProposal)]
        x_d = np.r_[np.asarray(prop.draw_mw), np.asarray(prop.coupled_mw).ravel()]
        self.iteration += 1
        s = self.settings
        if self.phase == 1:
            moved = float(np.abs(x_d - self.x_d).max())
            cost_t, prices, y_t = self._respond(x_d)
            total = cost_t + float(prop.own_cost_usd)
            t_changed = int(sum(np.sum(a != b) for a, b in zip(y_t, self.y_round)))
            changed = int(prop.investments_changed) + t_changed
            if self.best is None or total < self.best[0] - 1e-9 * abs(total):
                self.best = (total, self.iteration, x_d.copy(), prices.copy(), y_t)
            self.stable = self.stable + 1 if (changed == 0 and moved <= s.stable_tolerance_mw) else 0
            self.x_d, self.prices, self.y_round = x_d, prices, y_t
            # Benders bounds (cuts in use): the master's lower bound holds for the transmission binaries the
            # cuts came from; stop once the cheapest round is within bound_tolerance of it.
            self.bound_gap_usd = self.best[0] - float(prop.bound_usd)
            bounded = t_changed == 0 and self.bound_gap_usd <= s.bound_tolerance * abs(self.best[0])
            done = (self.iteration >= s.min_investment_rounds and (self.stable >= s.stable_rounds or bounded)) or \
                self.iteration >= s.max_investment_rounds
            report = RoundReport(
                self.name, COORDINATOR, iteration=self.iteration, phase=1, primal_residual_mw=moved,
                dual_residual_usd_per_mwh=0.0, primal_tolerance_mw=s.stable_tolerance_mw, dual_tolerance_usd_per_mwh=0.0,
                rho_usd_per_mw2h=0.0, investments_changed=changed, converged=False,
            )
            if not done:
                return [self._update(prices, x_d, 0.0, False, -1, reset=t_changed > 0), report]
            # Switch: keep the cheapest round's binaries; continue from its interface and prices.
            _, best_round, best_x, best_prices, best_y = self.best
            self.last_y = best_y
            self.fix_investments()
            self.phase = 2
            self.stable = 0
            _, best_prices, _ = self._respond(best_x)  # cut and prices at the kept binaries
            self.x_d, self.prices = best_x, best_prices
            self.best = None
            return [self._update(best_prices, best_x, 0.0, True, best_round, reset=t_changed > 0 or
                                 any(np.any(a != b) for a, b in zip(best_y, y_t))), report]
        # Continuous phase: the same rounds with the binaries fixed (LPs); stop when the proposal rests.
        moved = float(np.abs(x_d - self.x_d).max())
        cost_t, prices, _ = self._respond(x_d)
        total = cost_t + float(prop.own_cost_usd)
        self.x_d, self.prices = x_d, prices
        converged = moved <= s.stable_tolerance_mw
        report = RoundReport(
            self.name, COORDINATOR, iteration=self.iteration, phase=2, primal_residual_mw=moved,
            dual_residual_usd_per_mwh=0.0, primal_tolerance_mw=s.stable_tolerance_mw, dual_tolerance_usd_per_mwh=0.0,
            rho_usd_per_mw2h=0.0, investments_changed=0, converged=converged,
        )
        self.total_usd = total
        return [self._update(prices, x_d, 0.0, False, -1), report]
