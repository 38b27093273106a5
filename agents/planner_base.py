"""Transmission and distribution planners: binary investments over representative snapshots.

Transmission planner, the paper's F1 (11) with (12)-(15) (DC power flow, snapshot s with
``omega_s`` hours per year)::

    F1 = sum_g C^G_g P^max_g Y^G_g + sum_l C^L_l P^max_l L_l Y^L_l
         + sum_s omega_s ( sum_g O^G_g P^G_gs + O^D sum_d P^D_ds + varpi^T_s )
    A^T f_s + A_c^T f^c_s = P^G_s - (D_s - P^D_s) + tau-terms            (bus balance)
    f_s = base b (A theta_s),  |f_s| <= F                                 (existing branches)
    |f^c_s| <= F_c Y^L,  |f^c_s - base b_c (A_c theta_s)| <= 2 F_c (1 - Y^L)  (candidate circuits)
    0 <= P^G_gs <= P^max_g (Y^G_g for candidates),  0 <= P^D_ds <= D_ds
    (12)-(15): per aggregator, zone bounds, eta_0 tau_0 + sum_n eta_n tau_n = 0, cost alpha |tau|

Distribution planner, the paper's F2 (16) with (17)-(20) (LinDistFlow, octagon limits)::

    F2 = sum_g C^G P^max Y^G + sum_l C^L P^max L Y^L
         + sum_s omega_s ( lambda P^L_s + sum_g O^G P^G_gs + O^D sum_d P^D_ds + varpi^D_s )

with candidate parallel lines that carry flow only when built (their voltage-drop equation
is relaxed by a big-M otherwise) and candidate distributed generators. ``lambda`` (the
purchase price) is used only when the feeder plans alone (case 2b); in the coordinated plan
the interface is priced by the coordination's multipliers instead, since in the joint
problem the purchase is an internal transfer.

Regulation of aggregator a in zone n: ``tau`` (positive = load reduction). A transmission
bus zone's load is ``baseline - tau``; the zone covering the feeder enters the bus balance
as ``draw - tau`` (draw = the feeder's pre-regulation draw, see
:mod:`coordination.expansion`); a feeder bus zone's load is ``baseline - tau``. Costs:
the transmission planner pays alpha|tau| for its zones except the feeder zone when the
distribution planner resolves it (coordinated plan), the distribution planner for its
feeder zones, never for its zone 0 (which stands for transmission's zones).

Each planner builds two problems once, sharing the continuous variables: the MILP (binary
investments, HiGHS) for stand-alone plans and the investment phase, and the LP with the
investments as Parameters for the continuous phase and the interface prices (LP duals). Everything that changes between solves
(bounds of the flexibility, fixed schedules, prices, consensus, penalties, investments) is a
``cvxpy.Parameter``; the solver is called only in :meth:`_PlannerBase._solve`.

Glossary (code -> paper): ``y_gen``/``y_line`` = Y^G / Y^L, ``gen_mw`` = P^G, ``shed_mw`` = P^D,
``draw_mw`` = P^L at the root (pre-regulation), ``tau`` = tau^A_n, ``tau0`` = tau^A_0,
``flow_mw`` = f, ``theta_rad`` = theta, ``v2_pu`` = squared voltage.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from agents.solver import CompiledModel, SolveError
from coordination.expansion import (
    AggregatedFlexModel,
    ExpansionSettings,
    FixedRegulation,
    FlexScopeRequest,
    PlanReport,
    ZoneRegulation,
)
from coordination.runtime import COORDINATOR

ZONE_T_BUS, ZONE_D_BUS, ZONE_FEEDER = 0, 1, 2
#: Largest |draw| the interface variable may take when it is not fixed (MW).
FREE_DRAW_LIMIT_MW = 1.0e3


@dataclass(frozen=True)
class TransmissionPlannerData:
    """The transmission planner's private data."""

    name: str
    network: object  #: TransmissionNetwork (grown)
    load_mw: np.ndarray  #: (n_bus, S) ordinary loads
    snapshot_weight_h: np.ndarray  #: (S,) omega_s
    gen_candidates: tuple  #: CandidateGenerator
    line_candidates: tuple  #: (name, from_pos, to_pos, x_pu, rating_mw, length_km)
    line_capex_usd_per_mw_km_yr: float
    voll_usd_per_mwh: float
    feeder_bus_pos: int  #: position of the bus where the feeder is attached
    feeder_bus_id: int
    distribution_planner: str
    aggregators: tuple[str, ...]
    settings: ExpansionSettings = ExpansionSettings()


@dataclass(frozen=True)
class DistributionPlannerData:
    """The distribution planner's private data."""

    name: str
    feeder: object  #: Feeder (grown)
    load_p_mw: np.ndarray  #: (n_bus, S)
    load_q_mvar: np.ndarray  #: (n_bus, S)
    snapshot_weight_h: np.ndarray
    gen_candidates: tuple
    line_candidates: tuple  #: sections: (name, branch indices, lengths_km); one binary per section
    line_capex_usd_per_mw_km_yr: float
    voll_usd_per_mwh: float
    purchase_price_usd_per_mwh: float
    v_root_pu: float
    transmission_planner: str
    aggregators: tuple[str, ...]
    settings: ExpansionSettings = ExpansionSettings()


class FlexBlock:
    """One aggregator's zone variables, bounds (Parameters), (12)-(14) and the cost (15) terms."""

    def __init__(self, flex: AggregatedFlexModel, weight_h: np.ndarray, cost_weight: np.ndarray, name: str):
        Z, S = flex.baseline_mw.shape
        self.flex = flex
        self.tau = cp.Variable((Z, S), name=f"tau_{name}")
        self.tau0 = cp.Variable(S, name=f"tau0_{name}")
        self.abs_tau = cp.Variable((Z, S), nonneg=True)
        self.lower = cp.Parameter((Z, S), name=f"lower_{name}")
        self.upper = cp.Parameter((Z, S), name=f"upper_{name}")
        self.lower0 = cp.Parameter(S, name=f"lower0_{name}")
        self.upper0 = cp.Parameter(S, name=f"upper0_{name}")
        self.cost_weight = cost_weight  # (Z,) Parameter or array: 1 = this planner pays for the zone
        self.set_model(flex)
        self.c_lower = self.tau >= self.lower
        self.c_upper = self.tau <= self.upper
        self.constraints = [
            self.c_lower, self.c_upper, self.tau0 >= self.lower0, self.tau0 <= self.upper0,
            flex.weight @ self.tau + flex.zone0_weight * self.tau0 == 0,  # (14) / (19)
            self.abs_tau >= self.tau, self.abs_tau >= -self.tau,
        ]
        alpha = flex.cost_usd_per_mwh
        self.cost = cp.sum(cp.multiply(self.abs_tau @ weight_h, cp.multiply(cost_weight, alpha)))  # (15) / (20)

    def set_model(self, flex: AggregatedFlexModel) -> None:
        self._set(flex.lower_mw, flex.upper_mw, flex.zone0_lower_mw, flex.zone0_upper_mw)

    def fix(self, m: FixedRegulation) -> None:
        self._set(m.tau_mw, m.tau_mw, m.zone0_tau_mw, m.zone0_tau_mw)

    def _set(self, lo, hi, lo0, hi0) -> None:
        self.base = tuple(np.array(v, dtype=float) for v in (lo, hi))
        self.lower.value, self.upper.value = self.base
        self.lower0.value = np.asarray(lo0, dtype=float)
        self.upper0.value = np.asarray(hi0, dtype=float)

    def pin_zone(self, z: int, tau_mw: np.ndarray) -> None:
        """Fix zone ``z``'s regulation (the interface fixed at the other planner's proposal)."""
        lo, hi = self.base[0].copy(), self.base[1].copy()
        tau_mw = np.clip(tau_mw, lo[z], hi[z])  # a fixed schedule or the zone's own bounds win
        lo[z], hi[z] = tau_mw, tau_mw
        self.lower.value, self.upper.value = lo, hi

    def unpin(self) -> None:
        self.lower.value, self.upper.value = self.base

    def zone(self, system: int, bus: int) -> int:
        hits = np.flatnonzero((self.flex.zone_system == system) & (self.flex.zone_bus == bus))
        return int(hits[0]) if hits.size else -1


class _PlannerBase:
    """What both planners share: the two compiled problems, the coordination state and reports."""

    role = ""

    def _init_common(self, name: str, aggregators: tuple, settings: ExpansionSettings, n_snap: int):
        self.name = name
        self.aggregators = tuple(aggregators)
        self.settings = settings
        S = n_snap
        A = len(self.aggregators)
        self.n_x = (1 + A) * S
        self.lin = cp.Parameter(self.n_x, name="lambda_minus_rho_z")  # already multiplied by omega
        self.prox_w = cp.Parameter(self.n_x, nonneg=True, name="rho1_times_omega")
        self.z_prox = cp.Parameter(self.n_x, name="z")
        self.milp = None
        self.qp = None
        self.blocks: dict[str, FlexBlock] = {}
        self.fixed_investments = False
        self.last_y: tuple[np.ndarray, np.ndarray] | None = None
        self.investment_changes = 0
        self.lam = np.zeros(self.n_x)
        self.z = np.zeros(self.n_x)
        self.iteration = 0

    # --- model assembly (called once, in setup) -----------------------------------------------
    def _assemble(self) -> None:
        x = self.interface_expr()
        w = np.tile(self.weight_h, 1 + len(self.aggregators))
        self.w_x = w
        dev = cp.Variable(self.n_x, nonneg=True, name="prox_abs")
        y_var_g = cp.Variable(self.n_gen_cand, boolean=True, name="y_gen")
        y_var_l = cp.Variable(self.n_line_cand, boolean=True, name="y_line")
        self.y_var = (y_var_g, y_var_l)
        self.y_par = (cp.Parameter(self.n_gen_cand, nonneg=True, name="y_gen_fixed"),
                      cp.Parameter(self.n_line_cand, nonneg=True, name="y_line_fixed"))
        for p in self.y_par:
            p.value = np.zeros(p.shape)
        base = self.continuous_constraints() + [c for b in self.blocks.values() for c in b.constraints]
        cost_milp = self.own_cost(*self.y_var)
        cost_qp = self.own_cost(*self.y_par)
        extra_obj, extra_cons = self.coordination_terms(x)
        base = base + extra_cons
        milp_obj = cost_milp + self.lin @ x + self.prox_w @ dev + extra_obj
        dev2 = cp.Variable(self.n_x, nonneg=True, name="prox_abs_lp")
        qp_obj = cost_qp + self.lin @ x + self.prox_w @ dev2 + extra_obj
        self.milp = CompiledModel(
            self.name, cp.Problem(cp.Minimize(milp_obj), base + self.investment_constraints(*self.y_var)
                                  + [dev >= x - self.z_prox, dev >= self.z_prox - x]),
            solver="HIGHS", solver_options={"mip_rel_gap": self.settings.mip_rel_gap},
            infeasible_hint=self.hint,
        )
        self.qp = CompiledModel(
            self.name, cp.Problem(cp.Minimize(qp_obj), base + self.investment_constraints(*self.y_par)
                                  + [dev2 >= x - self.z_prox, dev2 >= self.z_prox - x]),
            solver="HIGHS", solver_options={},  # an LP once the binaries are fixed
            infeasible_hint=self.hint,
        )
        self.x_expr = x
        self._price_only()

    def coordination_terms(self, x) -> tuple:
        """Extra objective term and constraints of the coordination (the distribution planner's cuts)."""
        return 0.0, []

    def _price_only(self) -> None:
        self.lin.value = np.zeros(self.n_x)
        self.prox_w.value = np.zeros(self.n_x)
        self.z_prox.value = np.zeros(self.n_x)

    def _solve(self) -> None:
        """The one place where this planner's models are solved."""
        model = self.qp if self.fixed_investments else self.milp
        try:
            model.solve()
        except SolveError as exc:
            raise SolveError(self.name, exc.status, f"{self.hint} ({'continuous phase' if self.fixed_investments else 'MILP'})") from None
        if not self.fixed_investments:
            y = tuple(np.round(np.asarray(v.value, dtype=float)) for v in self.y_var)
            if self.last_y is not None:
                self.investment_changes = int(sum(np.sum(a != b) for a, b in zip(y, self.last_y)))
            else:
                self.investment_changes = int(sum(np.sum(a) for a in y))
            self.last_y = y

    def _y_values(self) -> tuple[np.ndarray, np.ndarray]:
        if self.fixed_investments:
            return tuple(np.asarray(p.value) for p in self.y_par)
        return tuple(np.round(np.asarray(v.value, dtype=float)) for v in self.y_var)

    def _y_expr(self):
        return self.y_par if self.fixed_investments else self.y_var

    def fix_investments(self) -> None:
        """Phase 2: keep the last MILP's binaries; from now on solve the continuous problem."""
        for p, v in zip(self.y_par, self.last_y):
            p.value = np.asarray(v, dtype=float)
        self.fixed_investments = True

    def _set_admm_terms(self, lam: np.ndarray, z: np.ndarray, rho: float, prox: float) -> None:
        w = self.w_x
        self.lin.value = w * lam
        self.prox_w.value = w * prox
        self.z_prox.value = z

    # --- messages ----------------------------------------------------------------------------
    def request_flex(self, inbox: tuple = ()) -> list:
        zs, zb = self.scope_zones()
        return [FlexScopeRequest(self.name, a, zone_system=zs, zone_bus=zb) for a in self.aggregators]

    def setup(self, inbox: tuple) -> None:
        models = {m.sender: m for m in inbox if isinstance(m, AggregatedFlexModel)}
        missing = [a for a in self.aggregators if a not in models]
        if missing:
            raise ValueError(f"{self.name}: no aggregated model from {', '.join(missing)}")
        self.build(models)
        self._assemble()

    def apply_flex(self, inbox: tuple) -> None:
        for m in inbox:
            if isinstance(m, FixedRegulation):
                self.blocks[m.sender].fix(m)
            elif isinstance(m, AggregatedFlexModel):
                self.blocks[m.sender].set_model(m)

    def x_value(self) -> np.ndarray:
        return np.asarray(self.x_expr.value, dtype=float)

    def zone_regulations(self) -> list:
        return [ZoneRegulation(self.name, a, tau_mw=np.asarray(b.tau.value), zone0_tau_mw=np.asarray(b.tau0.value))
                for a, b in self.blocks.items()]

    def plan_report(self, stage: int) -> PlanReport:
        parts = {k: float(v.value) if hasattr(v, "value") else float(v) for k, v in self.cost_parts().items()}
        yg, yl = self._y_values()
        S = len(self.weight_h)
        x = self.x_value()
        tau = np.array([np.asarray(self.blocks[a].tau.value) for a in self.aggregators])
        return PlanReport(
            self.name, COORDINATOR, stage=stage,
            investment_generators_usd=parts["investment_generators_usd"], investment_lines_usd=parts["investment_lines_usd"],
            generation_usd=parts["generation_usd"], purchase_usd=parts.get("purchase_usd", 0.0),
            curtailment_usd=parts["curtailment_usd"], regulation_usd=parts["regulation_usd"],
            own_cost_usd=float(sum(parts.values())), built_generators=yg, built_lines=yl,
            curtailed_mwh_per_yr=float(np.asarray(self.shed.value).sum(axis=0) @ self.weight_h),
            draw_mw=x[:S], coupled_mw=x[S:].reshape(len(self.aggregators), S), tau_mw=tau,
        )

    def final_report(self, inbox: tuple = ()) -> list:
        return [self.plan_report(stage=1), *self.zone_regulations()]
