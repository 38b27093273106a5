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
import scipy.sparse as sp

from agents.common import incidence_columns
from agents.solver import CompiledModel, SolveError

from coordination.expansion import (
    AggregatedFlexModel,
    BoundaryForecast,
    ExpansionSettings,
    FixedRegulation,
    FlexScopeRequest,
    InterfaceProposal,
    InterfaceUpdate,
    PlanReport,
    RoundReport,
    ZoneRegulation,
)
from coordination.runtime import COORDINATOR
from networks.dcpf import branch_incidence

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


@dataclass
class FlexInput:
    """An aggregated model (4)-(9) as the planner keeps it (from an AggregatedFlexModel)."""

    zone_system: np.ndarray
    zone_bus: np.ndarray
    baseline_mw: np.ndarray
    lower_mw: np.ndarray
    upper_mw: np.ndarray
    weight: np.ndarray
    cost_usd_per_mwh: np.ndarray
    has_zone0: bool
    zone0_lower_mw: np.ndarray
    zone0_upper_mw: np.ndarray
    zone0_weight: float
    zone0_cost_usd_per_mwh: float

    @classmethod
    def from_message(cls, m) -> "FlexInput":
        return cls(**{k: getattr(m, k) for k in cls.__dataclass_fields__})


class FlexBlock:
    """One aggregator's zone variables, bounds (Parameters), (12)-(14) and the cost (15) terms."""

    def __init__(self, flex: FlexInput, weight_h: np.ndarray, cost_weight: np.ndarray, name: str):
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

    def set_model(self, flex: FlexInput) -> None:
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
        self.rho_w = cp.Parameter(self.n_x, nonneg=True, name="rho_times_omega")
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
        milp_obj = cost_milp + self.lin @ x + self.prox_w @ dev
        dev2 = cp.Variable(self.n_x, nonneg=True, name="prox_abs_lp")
        qp_obj = cost_qp + self.lin @ x + self.prox_w @ dev2
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

    def _price_only(self) -> None:
        self.lin.value = np.zeros(self.n_x)
        self.rho_w.value = np.zeros(self.n_x)
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
        self.rho_w.value = np.zeros(self.n_x)
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
                self.blocks[m.sender].set_model(FlexInput.from_message(m))

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
            flex = FlexInput.from_message(models[a])
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
        return self._update(multiplier=self.prices, center=self.x_d, rho=0.0, fix=False, fix_round=-1)

    def _update(self, multiplier, center, rho, fix, fix_round) -> InterfaceUpdate:
        S = len(self.weight_h)
        A = len(self.aggregators)
        return InterfaceUpdate(
            self.name, self.data.distribution_planner, iteration=self.iteration,
            consensus_draw_mw=center[:S], consensus_coupled_mw=center[S:].reshape(A, S),
            multiplier_draw_usd_per_mwh=multiplier[:S], multiplier_coupled_usd_per_mwh=multiplier[S:].reshape(A, S),
            rho_usd_per_mw2h=rho, prox_usd_per_mwh=self.settings.prox_usd_per_mwh, fix_investments=fix,
            fix_round=fix_round,
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
            changed = int(prop.investments_changed) + int(sum(np.sum(a != b) for a, b in zip(y_t, self.y_round)))
            if self.best is None or total < self.best[0] - 1e-9 * abs(total):
                self.best = (total, self.iteration, x_d.copy(), prices.copy(), y_t)
            self.stable = self.stable + 1 if (changed == 0 and moved <= s.stable_tolerance_mw) else 0
            self.x_d, self.prices, self.y_round = x_d, prices, y_t
            done = (self.iteration >= s.min_investment_rounds and self.stable >= s.stable_rounds) or \
                self.iteration >= s.max_investment_rounds
            report = RoundReport(
                self.name, COORDINATOR, iteration=self.iteration, phase=1, primal_residual_mw=moved,
                dual_residual_usd_per_mwh=0.0, primal_tolerance_mw=s.stable_tolerance_mw, dual_tolerance_usd_per_mwh=0.0,
                rho_usd_per_mw2h=0.0, investments_changed=changed, converged=False,
            )
            if not done:
                return [self._update(prices, x_d, 0.0, False, -1), report]
            # Switch: keep the cheapest round's binaries; continue from its interface and prices.
            _, best_round, best_x, best_prices, best_y = self.best
            self.last_y = best_y
            self.fix_investments()
            self.phase = 2
            self.stable = 0
            self.x_d, self.prices = best_x, best_prices
            self.best = None
            return [self._update(best_prices, best_x, 0.0, True, best_round), report]
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
            flex = FlexInput.from_message(models[a])
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
        self._solve()
        self.has_plan = True
        x = self.x_value()
        rnd = self.iteration + 1  # the transmission planner numbers this round iteration + 1
        if not self.fixed_investments:
            self.y_history[rnd] = self.last_y
        return InterfaceProposal(self.name, self.data.transmission_planner, iteration=rnd,
                                 draw_mw=x[:S], coupled_mw=x[S:].reshape(A, S),
                                 investments_changed=0 if self.fixed_investments else self.investment_changes,
                                 own_cost_usd=float(self.own_cost(*self._y_expr()).value))
