"""Coordinated T&D expansion planning (issue 6): messages, protocol and driver.

Agents (roles): the transmission planner (``transmission_planner``), the distribution
planner (``distribution_planner``) and two flexibility aggregators (``aggregator``: data
centers, fast-charging stations). The planners share, per snapshot s (scenario k, hour t),
the interface quantities

* ``draw_mw[s]``: the feeder's draw from transmission bus 2 with its flexible loads at
  baseline (its *pre-regulation* draw; the feeder's regulation reaches the transmission
  side through (21), so the physical draw is ``draw - tau^A_{feeder}``), and
* ``coupled_mw[a, s]``: for each aggregator a, both sides of the consistency constraint (21):
  ``eta_{n^T} tau^A_{n^T,t}`` for the transmission zone that covers the feeder (transmission
  side) and ``sum_{n^D} eta_{n^D} tau^A_{n^D,t}`` (distribution side).

Method (binary investments make plain ADMM a heuristic; this is the documented alternative):

1. *Investment phase* (price-response rounds with value-function cuts): the transmission
   planner solves its MILP with the interface pinned at the distribution planner's proposal,
   which makes every round a *consistent* joint plan whose total cost is known, and answers
   with its cost V_T(x_k) and the LP duals pi_k at its binaries (its marginal costs of the
   interface). For fixed transmission binaries V_T is a convex piecewise-linear function of
   the interface x, and ``V_T(x_k) + omega pi_k (x - x_k)`` is a lower bound of it (a Benders
   cut). The distribution planner keeps every cut of the current transmission binaries and
   solves its MILP with ``theta >= cut_k(x)`` added to its cost: the master problem of a
   Benders decomposition whose subproblem is the transmission planner's LP. Its optimum is
   a lower bound of the joint plan for those transmission binaries; the cheapest round found
   so far is an upper bound. The phase ends when the bounds meet (relative ``bound_tolerance``),
   when the proposal and the binaries stop changing, or after ``max_investment_rounds``; the
   binaries of the cheapest round are kept. If the transmission binaries change, the cuts of
   the old binaries are dropped (they bound another function).
2. *Continuous phase*: the binaries are fixed; the same rounds run on the LPs until the
   proposal moves less than ``stable_tolerance_mw``. The final plan is consistent by
   construction (the transmission side always matches the distribution side's proposal).

With ``cuts=False`` the distribution planner sees only the last round's prices (plus an L1
proximal term ``rho1 |x - x_prev|``): the first version of this method. It settled on a
feeder plan 35 % dearer than the joint MILP's in cases 2a and 3, because a single marginal
price at a kink of V_T (the regulation cost alpha |tau| at tau = 0) does not show the feeder
what moving its data-center hall out of the feeder is worth; the cuts do.

A plain two-block ADMM with a quadratic penalty on the continuous part was tried first: with
HiGHS (the only solver here that reads these 1e9 $/yr LPs reliably; Clarabel reports them
unbounded) its QP solves did not finish in minutes, so it was replaced by the LP rounds above.
The gap to the joint MILP (:mod:`coordination.expansion_centralized`) is reported for every
run; it is zero exactly when the rounds find the joint MILP's binaries.

The case sequences (which flexibility is optimized where, and in which order) are in
:func:`run_case`.

Glossary: ``multiplier_*`` = pi (the transmission side's marginal cost of the interface, $/MWh),
``cut_cost_usd`` = V_T(x_k), ``bound_usd`` = the master problem's lower bound,
``consensus_*`` = the proximal centre (the last proposal), ``prox`` = rho1 (L1 proximal
weight, $/MWh); every interface term is multiplied by the snapshot's hours per year (omega).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .admm_math import ADMMSettings
from .messages import Message, ProtocolSpec, routes
from .runtime import COORDINATOR, Call, Runtime

T_ROLE, D_ROLE, AGG_ROLE = "transmission_planner", "distribution_planner", "aggregator"


# --- messages --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlexScopeRequest(Message):
    """Planner -> aggregator: the zones of the planner's scope (zone 0 is everything else).

    ``zone_system[i]``: 0 a transmission bus, 1 a feeder bus, 2 a whole feeder (at its
    transmission bus); ``zone_bus[i]``: that bus's number.
    """

    zone_system: np.ndarray
    zone_bus: np.ndarray


@dataclass(frozen=True)
class AggregatedFlexModel(Message):
    """Aggregator -> planner: the aggregated model (4)-(9) for the planner's scope.

    Per zone n and snapshot s: the zone's baseline load, bounds ``-sum beta^U`` and ``sum beta^D``
    (4), weight eta_n and unit cost alpha_n; zone 0's bounds (5), weight eta_0 and cost alpha_0.
    """

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


@dataclass(frozen=True)
class FixedRegulation(Message):
    """Aggregator -> planner: a fixed schedule (zone regulation per snapshot, and zone 0's)."""

    tau_mw: np.ndarray
    zone0_tau_mw: np.ndarray


@dataclass(frozen=True)
class ZoneRegulation(Message):
    """Planner -> aggregator: the zone regulation the planner's plan uses (its scope's zones)."""

    tau_mw: np.ndarray
    zone0_tau_mw: np.ndarray


@dataclass(frozen=True)
class DisaggregationReport(Message):
    """Aggregator -> coordinator: how its sites can carry a plan (totals only, no site data).

    ``mismatch_*``: planned zone totals the one-set model (1)-(2) cannot meet;
    ``regulated_mwh_per_yr``: sum of |tau| over sites and hours (for the FCS aggregator the
    redirected charging energy); ``regulation_cost_usd_per_yr``: (3) summed over the year (for
    the FCS aggregator the travel-cost proxy).
    """

    stage: int
    mismatch_max_mw: float
    mismatch_mwh_per_yr: float
    regulated_mwh_per_yr: float
    regulation_cost_usd_per_yr: float
    weighted_balance_max_mw: float


@dataclass(frozen=True)
class BoundaryForecast(Message):
    """Distribution -> transmission planner: the feeder's pre-regulation draw per snapshot."""

    draw_mw: np.ndarray


@dataclass(frozen=True)
class InterfaceProposal(Message):
    """Distribution -> transmission planner: its copy of the interface quantities."""

    iteration: int
    draw_mw: np.ndarray
    coupled_mw: np.ndarray
    investments_changed: int
    own_cost_usd: float
    bound_usd: float = float("-inf")  #: master lower bound on the joint cost (cuts in use), else -inf


@dataclass(frozen=True)
class InterfaceUpdate(Message):
    """Transmission -> distribution planner: consensus, the distribution side's multipliers, rho.

    ``fix_investments``: from now on, keep the binaries of the MILP solved in round
    ``fix_round`` and solve the continuous part only (phase 2). ``cut_cost_usd`` with the
    consensus point and the multipliers is one Benders cut of the transmission planner's cost.
    """

    iteration: int
    consensus_draw_mw: np.ndarray
    consensus_coupled_mw: np.ndarray
    multiplier_draw_usd_per_mwh: np.ndarray
    multiplier_coupled_usd_per_mwh: np.ndarray
    rho_usd_per_mw2h: float
    prox_usd_per_mwh: float
    fix_investments: bool
    fix_round: int
    cut_cost_usd: float = float("nan")  #: V_T at the consensus point with the current T binaries (nan: no cut)
    cut_reset: bool = False  #: the transmission binaries changed: drop the cuts received so far


@dataclass(frozen=True)
class RoundReport(Message):
    """Transmission planner -> coordinator: residuals of one round and the phase."""

    iteration: int
    phase: int
    primal_residual_mw: float
    dual_residual_usd_per_mwh: float
    primal_tolerance_mw: float
    dual_tolerance_usd_per_mwh: float
    rho_usd_per_mw2h: float
    investments_changed: int
    converged: bool


@dataclass(frozen=True)
class PlanReport(Message):
    """Planner -> coordinator: its plan's costs (annualized, USD/yr), investments and operation.

    ``tau_mw[a, n, s]``: regulation of aggregator a in zone n of the planner's scope.
    ``stage``: 0 a planner alone (case 2's first steps), 1 the final coordinated plan.
    """

    stage: int
    investment_generators_usd: float
    investment_lines_usd: float
    generation_usd: float
    purchase_usd: float
    curtailment_usd: float
    regulation_usd: float
    own_cost_usd: float
    built_generators: np.ndarray
    built_lines: np.ndarray
    curtailed_mwh_per_yr: float
    draw_mw: np.ndarray
    coupled_mw: np.ndarray
    tau_mw: np.ndarray


PROTOCOL = ProtocolSpec(
    name="td-expansion",
    routes=routes(
        (FlexScopeRequest, T_ROLE, AGG_ROLE),
        (FlexScopeRequest, D_ROLE, AGG_ROLE),
        (AggregatedFlexModel, AGG_ROLE, T_ROLE),
        (AggregatedFlexModel, AGG_ROLE, D_ROLE),
        (FixedRegulation, AGG_ROLE, T_ROLE),
        (FixedRegulation, AGG_ROLE, D_ROLE),
        (ZoneRegulation, T_ROLE, AGG_ROLE),
        (ZoneRegulation, D_ROLE, AGG_ROLE),
        (DisaggregationReport, AGG_ROLE, COORDINATOR),
        (BoundaryForecast, D_ROLE, T_ROLE),
        (InterfaceProposal, D_ROLE, T_ROLE),
        (InterfaceUpdate, T_ROLE, D_ROLE),
        (RoundReport, T_ROLE, COORDINATOR),
        (PlanReport, T_ROLE, COORDINATOR),
        (PlanReport, D_ROLE, COORDINATOR),
    ),
)


@dataclass(frozen=True)
class ExpansionSettings:
    """Coordination settings; every default is set once here."""

    admm: ADMMSettings = ADMMSettings(max_iterations=60)  #: only max_iterations is used: the round limit
    prox_usd_per_mwh: float = 2.0  #: rho1: L1 proximal weight of the investment phase
    stable_rounds: int = 1  #: investment phase ends after this many rounds without a change
    min_investment_rounds: int = 2  #: ... but not before this many rounds
    max_investment_rounds: int = 25  #: ... and at the latest after this many (then the cheapest round wins)
    cuts: bool = True  #: the distribution planner keeps the transmission side's value-function cuts (Benders)
    max_cuts: int = 20  #: cut slots in the distribution planner's models (the oldest is replaced when full)
    bound_tolerance: float = 1e-8  #: investment phase ends when (best total - lower bound) <= this x |best total|
    stable_tolerance_mw: float = 1e-3  #: a proposal that moves less than this counts as unchanged
    mip_rel_gap: float = 1e-5  #: HiGHS relative MIP gap for every MILP (planners and joint)


@dataclass(frozen=True)
class AgentNames:
    transmission: str
    distribution: str
    aggregators: tuple[str, ...]  #: in the order of ``coupled_mw``'s first axis
    dc: str
    fcs: str


@dataclass
class CaseOutcome:
    case: str
    converged: bool
    iterations: int
    history: list = field(default_factory=list)  #: RoundReport per round
    plans: dict = field(default_factory=dict)  #: planner -> final PlanReport
    stage_plans: list = field(default_factory=list)  #: PlanReports of planners alone (case 2)
    checks: dict = field(default_factory=dict)  #: aggregator -> final DisaggregationReport
    fixes: list = field(default_factory=list)  #: DisaggregationReports of fixed schedules
    loop_wall_s: float = 0.0


def _for(messages: list, receiver: str) -> tuple:
    return tuple(m for m in messages if m.receiver == receiver)


def _apply(runtime: Runtime, names: AgentNames, messages: list) -> None:
    planners = [names.transmission, names.distribution]
    calls = [Call(p, "apply_flex", _for(messages, p)) for p in planners if _for(messages, p)]
    if calls:
        runtime.run_phase("apply", calls)


def _fix(runtime: Runtime, names: AgentNames, regs: list, aggregator: str, out: CaseOutcome) -> None:
    """Fix ``aggregator``'s schedule from the planner's regulation; drop the others' messages."""
    mine = _for(regs, aggregator)
    runtime.discard([m for m in regs if m.receiver != aggregator])
    replies = runtime.run_phase("fix", [Call(aggregator, "fix_schedule", mine)])
    out.fixes += [m for m in replies if isinstance(m, DisaggregationReport)]
    _apply(runtime, names, [m for m in replies if isinstance(m, FixedRegulation)])


def _alone(runtime: Runtime, planner: str, phase: str, inbox: tuple, out: CaseOutcome) -> list:
    replies = runtime.run_phase(phase, [Call(planner, "solve_alone", inbox)])
    out.stage_plans += [m for m in replies if isinstance(m, PlanReport)]
    return [m for m in replies if isinstance(m, ZoneRegulation)]


def run_coordination(runtime: Runtime, names: AgentNames, max_rounds: int, out: CaseOutcome,
                     progress: Callable[[str], None] | None = None) -> None:
    """The two-phase coordination between the planners (module docstring)."""
    t_name, d_name = names.transmission, names.distribution
    forecast = runtime.run_phase("forecast", [Call(d_name, "forecast_boundary")])
    updates = runtime.run_phase("initialize", [Call(t_name, "initialize", tuple(forecast))])
    for _ in range(max_rounds):
        runtime.next_round()
        proposals = runtime.run_phase("local", [Call(d_name, "solve_local", tuple(updates))])
        replies = runtime.run_phase("coordinate", [Call(t_name, "coordinate", tuple(proposals))])
        (report,) = [m for m in replies if isinstance(m, RoundReport)]
        updates = [m for m in replies if isinstance(m, InterfaceUpdate)]
        out.history.append(report)
        out.iterations = report.iteration
        if progress is not None:
            progress(f"round {report.iteration:4d} phase {report.phase}  primal {report.primal_residual_mw:9.3e} MW "
                     f"(tol {report.primal_tolerance_mw:.1e})  dual {report.dual_residual_usd_per_mwh:9.3e} $/MWh "
                     f"(tol {report.dual_tolerance_usd_per_mwh:.1e})  rho {report.rho_usd_per_mw2h:8.3g}  "
                     f"binaries changed {report.investments_changed}")
        if report.converged:
            out.converged = True
            break
    runtime.discard(updates)


CASES = {
    "1": "no flexibility: coordinated T&D plan with every regulation at zero",
    "2a": "individual, DC first: transmission alone schedules DC flexibility, then the coordinated plan with FCS flexibility",
    "2b": "individual, FCS first: distribution alone schedules FCS flexibility, then transmission alone DC, then the plan",
    "3": "joint: coordinated T&D plan with both aggregated models, consistency (21) between the planners",
}


def run_case(runtime: Runtime, names: AgentNames, case: str, settings: ExpansionSettings,
             progress: Callable[[str], None] | None = None) -> CaseOutcome:
    """Run one case end to end on ``runtime`` and return what the agents reported."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; cases: {', '.join(CASES)}")
    t0 = time.time()
    out = CaseOutcome(case, converged=False, iterations=0)
    T, D = names.transmission, names.distribution
    requests = runtime.run_phase("scope", [Call(T, "request_flex"), Call(D, "request_flex")])
    models = runtime.run_phase("aggregate", [Call(a, "describe_scope", _for(requests, a)) for a in names.aggregators])
    runtime.run_phase("setup", [Call(T, "setup", _for(models, T)), Call(D, "setup", _for(models, D))])
    if case == "1":
        withheld = runtime.run_phase("withhold", [Call(a, "withhold") for a in names.aggregators])
        _apply(runtime, names, withheld)
    elif case == "2a":
        forecast = runtime.run_phase("forecast", [Call(D, "forecast_boundary")])
        regs = _alone(runtime, T, "dc-first", tuple(forecast), out)
        _fix(runtime, names, regs, names.dc, out)
    elif case == "2b":
        _apply(runtime, names, runtime.run_phase("withhold", [Call(names.dc, "withhold")]))
        regs = _alone(runtime, D, "fcs-first", (), out)
        _fix(runtime, names, regs, names.fcs, out)
        _apply(runtime, names, runtime.run_phase("release", [Call(names.dc, "release")]))
        forecast = runtime.run_phase("forecast", [Call(D, "forecast_boundary")])
        regs = _alone(runtime, T, "dc-second", tuple(forecast), out)
        _fix(runtime, names, regs, names.dc, out)
    run_coordination(runtime, names, settings.admm.max_iterations, out, progress)
    runtime.next_round()
    finals = runtime.run_phase("report", [Call(T, "final_report"), Call(D, "final_report")])
    out.plans = {m.sender: m for m in finals if isinstance(m, PlanReport)}
    regs = [m for m in finals if isinstance(m, ZoneRegulation)]
    checks = runtime.run_phase("check", [Call(a, "check_plan", _for(regs, a)) for a in names.aggregators])
    out.checks = {m.sender: m for m in checks if isinstance(m, DisaggregationReport)}
    out.loop_wall_s = time.time() - t0
    return out
