"""Data-center and fast-charging aggregators: private site data, the one-set model (1)-(3),
and the aggregated multi-zone model (4)-(9) they send to a planner for its scope.

An aggregator holds one *set* s of spatially coupled sites (the DC aggregator: the data
centers of one company; the FCS aggregator: the stations one driver population chooses
among). Its private data are each site's baseline, regulation capacities, weight and cost.

One-set model (paper (1)-(3)), site m, snapshot t::

    -beta^U_smt <= tau_smt <= beta^D_smt                    (1)
    sum_m eta_sm tau_smt = 0                                (2)
    varpi_st = alpha_s sum_m |tau_smt|                      (3)

tau > 0 is a load *reduction* (downward regulation), tau < 0 an increase.

Aggregated multi-zone model for a scope Pi (a planner's zones n, everything else is zone 0)::

    sum_{sm in n} -beta^U <= tau^A_nt <= sum_{sm in n} beta^D    (4)
    sum_{sm in 0} -beta^U <= tau^A_0t <= sum_{sm in 0} beta^D    (5)
    eta_0 tau^A_0t + sum_n eta_n tau^A_nt = 0                    (6)
    tau^A_nt = sum_{sm in n} tau_smt,  tau^A_0t = sum_{sm in 0} tau_smt     (7), (8)
    varpi_t = alpha_0 |tau^A_0t| + sum_n alpha_n |tau^A_nt|      (9)

with eta_n, alpha_n the averages over the zone's sites. Only (4)-(6), (9) leave the agent,
as an :class:`~coordination.expansion.AggregatedFlexModel` message: zone totals, never a
site's data. When all sites of a zone have the same weight the aggregated set is exactly
the projection of the detailed one (each zone's total can be split over its sites inside
their boxes, and (2) is the sum of (6)); otherwise (6) is an approximation, which
:func:`support_gap` measures.

Zones are named by (system code, bus): ``ZONE_TRANSMISSION_BUS`` (sites directly at a
transmission bus), ``ZONE_FEEDER_BUS`` (sites at a feeder bus) and ``ZONE_FEEDER`` (a whole
feeder seen from transmission, at its transmission bus; it covers every feeder site).

Glossary: ``tau_mw`` = tau_smt / tau^A_nt, ``lower_mw`` = -sum beta^U, ``upper_mw`` = sum beta^D,
``weight`` = eta, ``cost_usd_per_mwh`` = alpha, ``zone0_*`` = the zone-0 terms (5), (6), (9).
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from agents.solver import CompiledModel
from coordination.expansion import (
    AggregatedFlexModel,
    DisaggregationReport,
    FixedRegulation,
    FlexScopeRequest,
    ZoneRegulation,
)
from coordination.runtime import COORDINATOR
from scenarios.td_expansion import DISTRIBUTION, TRANSMISSION, SiteData

ZONE_TRANSMISSION_BUS, ZONE_FEEDER_BUS, ZONE_FEEDER = 0, 1, 2
#: Penalty per MWh of mismatch between a planned zone total and the sites' sum in disaggregation.
MISMATCH_PENALTY_USD_PER_MWH = 1.0e4


@dataclass(frozen=True)
class AggregatorData:
    """An aggregator's private data."""

    name: str
    sites: SiteData
    feeder_attach_bus: int  #: transmission bus of the feeder that hosts the distribution sites
    snapshot_weight_h: np.ndarray  #: (S,) hours per year per snapshot (public)


def site_zones(sites: SiteData, zone_system: np.ndarray, zone_bus: np.ndarray, feeder_attach_bus: int) -> np.ndarray:
    """Zone index of each site for a scope's zone list; -1 = zone 0 (outside the scope).

    A site belongs to exactly one zone: a feeder site to its feeder-bus zone if the scope has
    it, else to the zone covering the whole feeder; a transmission site to its bus zone.
    """
    lookup = {(int(s), int(b)): k for k, (s, b) in enumerate(zip(zone_system, zone_bus))}
    out = np.full(len(sites.names), -1, dtype=int)
    for i, (system, bus) in enumerate(zip(sites.system, sites.bus)):
        if system == TRANSMISSION:
            out[i] = lookup.get((ZONE_TRANSMISSION_BUS, int(bus)), -1)
        elif system == DISTRIBUTION:
            k = lookup.get((ZONE_FEEDER_BUS, int(bus)), -1)
            out[i] = k if k >= 0 else lookup.get((ZONE_FEEDER, int(feeder_attach_bus)), -1)
    return out


def aggregate(sites: SiteData, zone_system, zone_bus, feeder_attach_bus: int) -> dict:
    """The aggregated multi-zone model (4)-(9) of one set for a scope, as arrays.

    Empty zones get zero bounds, weight 1 and cost 0 (they carry nothing).
    """
    zone_system = np.asarray(zone_system, dtype=int)
    zone_bus = np.asarray(zone_bus, dtype=int)
    z_of = site_zones(sites, zone_system, zone_bus, feeder_attach_bus)
    Z, S = len(zone_system), sites.baseline_mw.shape[1]
    member = np.zeros((Z, len(z_of)))
    member[z_of[z_of >= 0], np.flatnonzero(z_of >= 0)] = 1.0
    count = member.sum(axis=1)
    weight = np.where(count > 0, (member @ sites.weight) / np.maximum(count, 1), 1.0)
    cost = np.where(count > 0, (member @ sites.cost_usd_per_mwh) / np.maximum(count, 1), 0.0)
    outside = z_of < 0
    n0 = int(outside.sum())
    return {
        "baseline_mw": member @ sites.baseline_mw,
        "lower_mw": -(member @ sites.beta_up_mw),
        "upper_mw": member @ sites.beta_down_mw,
        "weight": weight,
        "cost_usd_per_mwh": cost,
        "has_zone0": n0 > 0,
        "zone0_lower_mw": -sites.beta_up_mw[outside].sum(axis=0) if n0 else np.zeros(S),
        "zone0_upper_mw": sites.beta_down_mw[outside].sum(axis=0) if n0 else np.zeros(S),
        "zone0_weight": float(sites.weight[outside].mean()) if n0 else 1.0,
        "zone0_cost_usd_per_mwh": float(sites.cost_usd_per_mwh[outside].mean()) if n0 else 0.0,
        "membership": member,
        "zone0_members": outside,
    }


def detailed_support(sites: SiteData, direction_site: np.ndarray, snapshot: int) -> tuple[float, np.ndarray]:
    """max c'tau over the one-set model (1)-(2) in one snapshot; returns (value, tau)."""
    tau = cp.Variable(len(sites.names))
    b = snapshot
    cons = [tau >= -sites.beta_up_mw[:, b], tau <= sites.beta_down_mw[:, b], sites.weight @ tau == 0]
    prob = cp.Problem(cp.Maximize(direction_site @ tau), cons)
    prob.solve(solver="HIGHS")
    return float(prob.value), np.asarray(tau.value)


def aggregated_support(model: dict, direction_zone: np.ndarray, direction_zone0: float, snapshot: int) -> tuple[float, np.ndarray]:
    """max c'tau^A over the aggregated model (4)-(6) in one snapshot; returns (value, tau^A incl. zone 0 last)."""
    Z = len(model["weight"])
    x = cp.Variable(Z)
    x0 = cp.Variable()
    b = snapshot
    cons = [x >= model["lower_mw"][:, b], x <= model["upper_mw"][:, b],
            x0 >= model["zone0_lower_mw"][b], x0 <= model["zone0_upper_mw"][b],
            model["weight"] @ x + model["zone0_weight"] * x0 == 0]
    prob = cp.Problem(cp.Maximize(direction_zone @ x + direction_zone0 * x0), cons)
    prob.solve(solver="HIGHS")
    return float(prob.value), np.r_[np.asarray(x.value), float(x0.value)]


def support_gap(sites: SiteData, model: dict, rng: np.random.Generator, n_directions: int = 200,
                snapshot: int = 0) -> dict:
    """How far apart the aggregated set and the projection of the detailed set are.

    For random directions c over the zones (and zone 0), compares the support functions
    h_agg(c) = max c'tau^A over (4)-(6) and h_det(c) = max c'(M tau) over (1)-(2) (M: the
    zone membership (7)-(8)). ``contains`` is True when h_agg >= h_det - tol in every
    direction (the aggregated set contains the projection); ``max_excess_mw`` is the largest
    h_agg - h_det over unit directions (how much the aggregated set sticks out) and
    ``max_shortfall_mw`` the largest h_det - h_agg (how much of the projection it misses).
    """
    member = np.vstack([model["membership"], model["zone0_members"].astype(float)[None, :]])
    excess, shortfall = [], []
    for _ in range(n_directions):
        c = rng.normal(size=member.shape[0])
        c /= np.linalg.norm(c)
        h_det, _ = detailed_support(sites, member.T @ c, snapshot)
        h_agg, _ = aggregated_support(model, c[:-1], c[-1], snapshot)
        excess.append(h_agg - h_det)
        shortfall.append(h_det - h_agg)
    tol = 1e-6 * max(1.0, float(np.abs(sites.beta_down_mw[:, snapshot]).sum()))
    return {
        "directions": n_directions,
        "contains": bool(max(shortfall) <= tol),
        "max_excess_mw": float(max(0.0, max(excess))),
        "mean_excess_mw": float(np.mean(np.maximum(excess, 0.0))),
        "max_shortfall_mw": float(max(0.0, max(shortfall))),
    }


class FlexAggregatorAgent:
    """A DC or FCS aggregator: answers scope requests with (4)-(9), fixes and checks schedules.

    * :meth:`describe_scope`: for each :class:`FlexScopeRequest`, the aggregated model for that
      scope (an :class:`AggregatedFlexModel` to the planner that asked);
    * :meth:`withhold`: offers no flexibility (case 1, or a set that waits its turn): a
      :class:`FixedRegulation` of zeros to every planner;
    * :meth:`release`: offers its aggregated models again;
    * :meth:`fix_schedule`: takes a planner's planned zone regulation, splits it over its sites
      with the one-set model (1)-(3) and fixes it: a :class:`FixedRegulation` to every planner
      (each at its own scope) and a :class:`DisaggregationReport` to the coordinator;
    * :meth:`check_plan`: the same split for the final plan, reported only.

    The disaggregation LP (minimum regulation cost plus a large penalty on any mismatch with
    the planned zone totals) is built once per set of planners' scopes and re-solved with new
    targets; its solver is called only in :meth:`_disaggregate`.
    """

    role = "aggregator"

    def __init__(self, data: AggregatorData):
        self.name = data.name
        self.data = data
        self.scopes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # planner -> (zone_system, zone_bus)
        self._split_model = None
        self.last_tau_mw: np.ndarray | None = None

    # --- scope -------------------------------------------------------------------------------
    def _model(self, planner: str) -> dict:
        zs, zb = self.scopes[planner]
        return aggregate(self.data.sites, zs, zb, self.data.feeder_attach_bus)

    def _message(self, planner: str) -> AggregatedFlexModel:
        m = self._model(planner)
        zs, zb = self.scopes[planner]
        return AggregatedFlexModel(
            self.name, planner, zone_system=zs, zone_bus=zb, baseline_mw=m["baseline_mw"], lower_mw=m["lower_mw"],
            upper_mw=m["upper_mw"], weight=m["weight"], cost_usd_per_mwh=m["cost_usd_per_mwh"],
            has_zone0=m["has_zone0"], zone0_lower_mw=m["zone0_lower_mw"], zone0_upper_mw=m["zone0_upper_mw"],
            zone0_weight=m["zone0_weight"], zone0_cost_usd_per_mwh=m["zone0_cost_usd_per_mwh"],
        )

    def describe_scope(self, inbox: tuple) -> list:
        out = []
        for req in inbox:
            if isinstance(req, FlexScopeRequest):
                self.scopes[req.sender] = (np.asarray(req.zone_system, dtype=int), np.asarray(req.zone_bus, dtype=int))
                out.append(self._message(req.sender))
        self._split_model = None
        return out

    def release(self, inbox: tuple = ()) -> list:
        return [self._message(p) for p in self.scopes]

    def withhold(self, inbox: tuple = ()) -> list:
        S = self.data.sites.baseline_mw.shape[1]
        return [FixedRegulation(self.name, p, tau_mw=np.zeros((len(zs), S)), zone0_tau_mw=np.zeros(S))
                for p, (zs, _) in self.scopes.items()]

    # --- disaggregation ---------------------------------------------------------------------
    def _build_split(self):
        sites = self.data.sites
        n, S = sites.baseline_mw.shape
        groups = []  # rows of membership, one per (planner, zone) and per planner's zone 0
        for planner in self.scopes:
            m = self._model(planner)
            for row in m["membership"]:
                groups.append(row)
            groups.append(m["zone0_members"].astype(float))
        G = np.array(groups) if groups else np.zeros((0, n))
        tau = cp.Variable((n, S), name="tau_mw")
        absval = cp.Variable((n, S), nonneg=True)
        dev = cp.Variable((len(G), S), nonneg=True)
        target = cp.Parameter((len(G), S), name="zone_target_mw")
        use = cp.Parameter((len(G), S), nonneg=True, name="target_in_use")
        w = self.data.snapshot_weight_h
        cons = [tau >= -sites.beta_up_mw, tau <= sites.beta_down_mw, sites.weight @ tau == 0,
                absval >= tau, absval >= -tau, dev >= G @ tau - target, dev >= target - G @ tau]
        cost = cp.sum(cp.multiply(sites.cost_usd_per_mwh[:, None] * w[None, :], absval))
        penalty = MISMATCH_PENALTY_USD_PER_MWH * cp.sum(cp.multiply(use, dev) @ w)
        problem = cp.Problem(cp.Minimize(cost + penalty), cons)
        solver = CompiledModel(self.name, problem, solver="HIGHS", solver_options={},
                               infeasible_hint="the one-set model (1)-(2) is empty: check the sites' weights and capacities")
        self._split_model = (G, tau, absval, dev, target, use, solver)

    def _disaggregate(self, inbox: tuple) -> tuple[np.ndarray, float, float]:
        """Split planned zone totals over the sites; returns (tau per site, max and annual mismatch)."""
        if self._split_model is None:
            self._build_split()
        G, tau, absval, dev, target, use, solver = self._split_model
        S = self.data.sites.baseline_mw.shape[1]
        tgt = np.zeros((len(G), S))
        flag = np.zeros((len(G), S))
        row = 0
        regs = {m.sender: m for m in inbox if isinstance(m, ZoneRegulation)}
        for planner in self.scopes:
            Z = len(self.scopes[planner][0])
            if planner in regs:
                tgt[row:row + Z] = regs[planner].tau_mw
                tgt[row + Z] = regs[planner].zone0_tau_mw
                flag[row:row + Z + 1] = 1.0
            row += Z + 1
        # Empty groups (zones without a site of this set) carry no information.
        flag[G.sum(axis=1) == 0] = 0.0
        target.value = tgt
        use.value = flag
        solver.solve()
        mismatch = np.abs(G @ tau.value - tgt) * flag
        self.last_tau_mw = np.asarray(tau.value)
        return self.last_tau_mw, float(mismatch.max(initial=0.0)), float((mismatch @ self.data.snapshot_weight_h).sum())

    def _report(self, tau: np.ndarray, mismatch_max: float, mismatch_mwh: float, stage: int) -> DisaggregationReport:
        w = self.data.snapshot_weight_h
        regulated = np.abs(tau) @ w
        return DisaggregationReport(
            self.name, COORDINATOR, stage=stage, mismatch_max_mw=mismatch_max, mismatch_mwh_per_yr=mismatch_mwh,
            regulated_mwh_per_yr=float(regulated.sum()),
            regulation_cost_usd_per_yr=float(self.data.sites.cost_usd_per_mwh @ regulated),
            weighted_balance_max_mw=float(np.abs(self.data.sites.weight @ tau).max(initial=0.0)),
        )

    def fix_schedule(self, inbox: tuple) -> list:
        """Fix the sites' schedule and send each planner its zone totals.

        Zone 0 (the sites outside the planner's system) gets the value the planner's own
        coupling row (14) / (19) implies, ``-(eta_z . tau_z) / eta_0`` with the zone weights
        and the averaged eta_0 of (6); with unequal weights among the outside sites their
        plain sum differs from it and the planner's model would be infeasible. With equal
        weights the two are the same.
        """
        tau, mmax, mmwh = self._disaggregate(inbox)
        out: list = [self._report(tau, mmax, mmwh, stage=0)]
        for planner in self.scopes:
            m = self._model(planner)
            zones = m["membership"] @ tau
            zone0 = -(m["weight"] @ zones) / m["zone0_weight"] if m["has_zone0"] else np.zeros(tau.shape[1])
            out.append(FixedRegulation(self.name, planner, tau_mw=zones, zone0_tau_mw=zone0))
        return out

    def check_plan(self, inbox: tuple) -> DisaggregationReport:
        tau, mmax, mmwh = self._disaggregate(inbox)
        return self._report(tau, mmax, mmwh, stage=1)
