"""Data of the TSO-DSO-EVCS DRO-ARO scenarios (MODELS.md section 1; issue 3): cases 1-7.

:func:`build_robust_scenario` starts from the deterministic scenario (``t30d2`` or
``t118d10``: networks, loads, wind forecasts, feeders; :mod:`scenarios.build`) and adds
what the robust agents need: K wind scenarios per agent (:mod:`scenarios.wind_scenarios`),
thermal reserve costs, EV charging stations with seeded sessions, the DSOs' incentive
prices and penalties, and each case's uncertainty model. Every input is checked first;
bad input raises one :class:`scenarios.errors.ScenarioError` naming the field and what
to do.

Parameters (:class:`RobustSettings` in :mod:`scenarios.robust_settings`, re-exported here; each default is set once there)

==============================  ========  ==================================================
field                           default   meaning, and why this value
==============================  ========  ==================================================
n_wind_scenarios_tso            10        K of the TSO's empirical distribution
n_wind_scenarios_dso            5         K of each DSO's empirical distribution
wind_error_std                  0.15      sigma: forecast error, share of installed capacity
                                          (day-ahead single-farm RMSE is typically 10-20 %)
wind_error_ar1                  0.9       phi: hour-to-hour correlation of the error
                                          (day-ahead errors persist for hours)
wind_farm_correlation_tso       0.6       rho between two TSO farms (one region)
wind_farm_correlation_dso       0.9       rho between two farms of one 33-bus feeder (a few km)
wind_penetration                None      target forecast wind energy / load energy; None = as built
wind_scaling                    "all"     which farms a penetration target scales: "all" or
                                          "transmission" (feeder wind as built)
radius_tso, radius_dso          10, 1     Wasserstein radii (MW, the papers' values)
requirement_budget_h            6         Gamma of the DSOs' requirement sets (hours at a band edge)
reserve_up/dn_cost_usd_per_mw_h None      one holding cost for every unit; None = the rule below
reserve_up_share, _dn_share     .25, .15  rule: share x (c1 + c2 Pmax) + floor, per unit
reserve_floor_usd_per_mw_h      0.5       rule's floor
incentive_up/dn_usd_per_mw_h    12, 8     DSO -> EVCS incentive prices (every hour)
violation_usd_per_mwh           2000      boundary violation penalty, above VOLL (1000): with a lower
                                          penalty a DSO promised boundary power it did not have (at
                                          300 $/MWh D1 offered -10 MW in an hour where the TSO's
                                          price was VOLL, planning to "violate" it); above VOLL it
                                          sheds its own load before it fails the TSO
voltage_slack_usd_per_pu2       1e4       penalty on squared-voltage limit slack
evcs_sessions_per_station       40        mean (Poisson) number of EV sessions per station-day
evcs_offer_cost_usd_per_mw_h    3         the stations' cost of holding 1 MW up or down for 1 h
ccg                             None      C&CG settings of every agent; None = the scenario's own
                                          (ROBUST_CCG): the paper's C&CG criterion, 0.5 % of the
                                          agent's objective (``tol_rel``), one network-free column
                                          per wind scenario in the DSO masters
                                          (``aggregate_slots``), on t30d2 the DSOs' inexact floor
                                          g = 0.2 (``inexact_floor_fraction``), on t118d10 at most 5 masters per
                                          C&CG run in an uncertified ADMM round
                                          (``uncertified_max_iterations``); the other fields as
                                          in CCGSettings
tso_recourse                    None      the TSO master's recourse: "copies" (every wind scenario's
                                          re-dispatch in the master, exact in one solve) or
                                          "benders" (hourly Benders cuts per scenario from warm
                                          HiGHS LPs, agents/tso_benders.py); None = "copies" up to
                                          100 buses (t30d2), "benders" above (t118d10)
centralized_form                None      how the centralized reference is solved: "conic" (the
                                          quadratic costs as they are, Clarabel's interior point) or
                                          "lp" (the quadratic costs as tangent cuts, HiGHS's simplex,
                                          agents/tangent_cuts.py); None = "conic" up to 100 buses
                                          (t30d2), "lp" above (t118d10, where Clarabel stalls)
centralized_gap_tol_rel         1e-5      the centralized C&CG also stops when the summed gap of all
                                          agents is within this share of the joint objective (0:
                                          only the agents' own tolerances, which kept T118D10's
                                          run adding cuts over a 16 $ gap on 2.2 M$); a lower
                                          bound is solved after the stop either way
centralized_max_masters         None      master solves of the centralized C&CG before it stops
                                          unconverged (None: 4 x the agents' largest
                                          ``ccg.max_iterations``); its lower bound is still
                                          solved, so a reference that stalls (T118D10 case 5)
                                          still bounds the distributed plan's gap
seed                            0         one seed for everything (profiles, wind, sessions)
==============================  ========  ==================================================

Thermal reserve holding costs. pandapower's case30 has tiny energy costs (c1 = 1.75-3.25
$/MWh, c2 = 0.008-0.02 $/MW^2h, average cost at full output 2.8-3.7 $/MWh) and case118 has
c1 = 20 or 40 $/MWh. A fixed market price of reserve (ISO reserve prices of 5-15 $/MW-h)
would cost more than the energy itself in case30, so the default ties each unit's holding
cost to its own energy cost: ``share x (c1 + c2 Pmax) + floor``, i.e. a share of its average
energy cost at full output, the common practice in unit-commitment studies of pricing
reserve at 10-30 % of the energy offer. Up reserve 25 %; down reserve 15 % (holding down
reserve burns no fuel, and ISO down-regulation prices sit below up-regulation prices); a
floor of 0.5 $/MW-h (standby and wear) keeps reserve from being free. case30 gets up 1.2-1.4,
down 0.9-1.05 $/MW-h; case118 (c1 = 20 or 40 $/MWh) 8.4-10.9 up, 5.3-6.8 down for most
units and up to 70 / 43 for its few dear ones. These are the project's choices, set once
and not tuned to any result.

Wind penetration = available (forecast) wind energy over the day, TSO and feeder farms, /
load energy over the day, transmission loads + feeder loads + the EV sessions' energy.
By default (seed 0): t30d2 26.0 %, t118d10 8.3 %. A target (the paper's Figure 9 sweeps
45-70 %) scales the farms' capacity, forecast and scenarios by one factor, so the achieved
share equals the target and the error draws stay the same (clipping commutes with
scaling). ``wind_scaling = "all"`` (default) scales every farm, TSO and feeders;
``"transmission"`` scales only the TSO's farms and keeps the feeders' wind as built. With
"all", feeder wind grows too: t30d2 is refused somewhere between 40 and 50 % (the 1-MVA
branch to feeder bus 32 would carry the wind back towards the substation at the forecast
even with every EV at its peak, which the DSO's day-ahead check cannot pass), and t118d10
(8.3 % by default) much earlier; "transmission" reaches the whole 45-70 % range in both.

Wasserstein radii vs the scenario distances (:func:`scenarios.wind_scenarios.distance_statistics`,
defaults, seed 0, t30d2): TSO median pairwise distance 73 MW, point masses reached from
59 MW, every distribution from 101 MW (radius 10 = 0.14 of the median: the ball moves some
mass towards dear scenarios but reaches no point mass); DSO D1 median 2.6 MW, point masses
from 1.7 MW (radius 1 = 0.38 of the median), D2 3.2 and 2.2 MW. Over 20 error seeds on the
seed-0 forecast: TSO median 94 MW, min_j mean_i d 73 MW; DSO 2.6 and 1.8 MW, the smallest
1.3 MW > radius 1. With sigma = 0.1 that smallest DSO threshold fell to 0.87 MW (< 1: the
ball would reach a point mass for some seeds), with sigma = 0.05 to 0.43 MW; sigma = 0.15
keeps both radii meaningful. (t118d10's five 150-MW farms: TSO median about 445 MW, so its
radius 10 is small, 0.02 of the median; the DSOs' are as in t30d2.)

Cases (:data:`CASES`): uncertainty per agent (TSO Gamma 0 always; DSO Gamma from the
settings, 0 in case 7; every DSO evaluates its plan with the settings' Gamma), wind model
("ro" case 5, "so" case 6, else "dro"), flexibility ("dso" case 2, "none" case 3, else
"both"); cases 2 and 3 fix the boundary at its baseline and buy no boundary reserve (the
paper: without EVCS service to the TSO, TSO and DSO operate in isolation).

EVCS: one station per ``FeederSpec.evcs_buses`` entry (11 per 33-bus feeder, buses 6, 9,
12, 15, 17, 20, 22, 23, 28, 30, 32), named ``"<DSO name>.evcs<bus>"`` (``"D1.evcs6"``),
sessions from :func:`scenarios.ev_sessions.generate_station_sessions` with one generator per
station. A station whose peak possible draw (its virtual storage's largest hourly power)
exceeds the rating of the branch feeding its bus, or the feeder's boundary limit, is refused.
Seed 0, t30d2: 39 sessions per station on average (27-51), station peak possible draw
0.16 MW on average (at most 0.24 MW), EV energy 4.4 and 4.1 MWh per feeder and day (feeder
load 74 MWh); t118d10's 110 stations: 39.4 sessions, peak 0.17 MW (at most 0.24 MW), 3.9-4.5
MWh per feeder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from agents.evcs import KW_PER_MW, EVCSConfig, EVCSData, EVCSInputError, validate_bus_limit
from agents.robust_data import DSORobustData, TSORobustData, UncertaintySettings
from agents.virtual_storage import VirtualStorage
from coordination.admm_math import ADMMSettings
from networks.feeder import Feeder

from .build import build_scenario
from .errors import ScenarioError
from .ev_sessions import EVSessionConfig, evcs_data, generate_station_sessions
from .library import get_scenario
from .robust_settings import (  # noqa: F401  (re-exported: the settings are part of this module's API)
    CASES,
    CENTRALIZED_FORMS,
    PAPER_ADMM_TOL,
    PAPER_CCG_TOL_REL,
    ROBUST_ADMM,
    ROBUST_CCG,
    ROBUST_COST_TOL_REL,
    ROBUST_RELAXATION,
    TSO_COPIES_MAX_BUSES,
    TSO_RECOURSE,
    RobustSettings,
    centralized_form,
    tso_recourse,
)
from .wind_scenarios import (
    DistanceStats,
    check_feeder_export,
    distance_statistics,
    penetration_scale,
    wind_scenarios_mw,
)



@dataclass(frozen=True)
class RobustScenario:
    """Every agent's data for one robust case, plus what the reports need."""

    name: str
    case: str
    settings: RobustSettings
    tso: TSORobustData
    dsos: tuple[DSORobustData, ...]
    evcs: tuple[EVCSData, ...]  #: every station, ``dso_name`` set to its feeder's DSO
    admm: ADMMSettings  #: ROBUST_ADMM over the scenario's own (t30d2: fixed rho 250 with momentum; t118d10: adaptive from 20)
    wind_penetration: float  #: achieved forecast wind energy / load energy (TSO system incl. feeders and EVs)
    tso_wind_capacity_mw: np.ndarray = field(default_factory=lambda: np.zeros(0))  #: (n_wind,) after scaling
    dso_wind_capacity_mw: tuple[np.ndarray, ...] = ()  #: per DSO (n_wind,) after scaling

    def evcs_of(self, dso_name: str) -> tuple[EVCSData, ...]:
        """The stations on ``dso_name``'s feeder, in its ``evcs_names`` order."""
        return tuple(e for e in self.evcs if e.dso_name == dso_name)


def build_robust_scenario(
    name: str, case: str, settings: RobustSettings = RobustSettings(), admm: ADMMSettings | None = None
) -> RobustScenario:
    """The robust scenario ``name`` ("t30d2", "t118d10") in ``case`` ("1".."7"); see the module docstring."""
    case = _check_case(name, case)
    if not isinstance(settings, RobustSettings):
        raise ScenarioError(f"settings is a {type(settings).__name__}; give a RobustSettings")
    seed = settings.seed
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ScenarioError(f"RobustSettings.seed = {settings.seed!r}; give a whole number >= 0")
    config, _ = get_scenario(name, seed=int(settings.seed))
    settings.validate(config.horizon_h)
    if settings.ccg is None:
        settings = replace(settings, ccg=ROBUST_CCG[name])
    admm = admm if admm is not None else replace(
        config.admm, cost_tol_rel=ROBUST_COST_TOL_REL, **PAPER_ADMM_TOL, **ROBUST_ADMM[name]
    )
    try:
        admm.validate()
    except ValueError as exc:
        raise ScenarioError(f"admm: {exc}") from None
    built = build_scenario(config)
    T = config.horizon_h

    wind_seeds, ev_seeds = np.random.SeedSequence(int(settings.seed)).spawn(2)
    wind_rngs = [np.random.default_rng(s) for s in wind_seeds.spawn(1 + len(built.dsos))]
    feeder_ev_seeds = ev_seeds.spawn(len(built.dsos))

    # EV charging stations (checked against their bus before anything else is built)
    evcs, ev_peak_mw = [], []
    for i, (spec, dso) in enumerate(zip(config.feeders, built.dsos)):
        stations, peaks = _stations(settings, i, spec.evcs_buses, dso.name, dso.feeder, dso.boundary_limit_mw,
                                    feeder_ev_seeds[i], T)
        evcs.append(stations)
        ev_peak_mw.append(peaks)
    ev_energy_mwh = sum(float(e.energy_kwh.sum()) for st in evcs for e in st) / KW_PER_MW

    # wind: capacities, scenarios (independent per agent), penetration scaling
    cap_t = np.array([w.capacity_mw for w in config.wind], dtype=float)
    cap_d = [np.array([w.capacity_mw for w in spec.wind], dtype=float) for spec in config.feeders]
    s = settings
    scen_t = wind_scenarios_mw(wind_rngs[0], built.tso.wind_forecast_mw, cap_t, s.n_wind_scenarios_tso,
                               s.wind_error_std, s.wind_error_ar1, s.wind_farm_correlation_tso)
    scen_d = [
        wind_scenarios_mw(wind_rngs[1 + i], d.wind_forecast_mw, cap_d[i], s.n_wind_scenarios_dso,
                          s.wind_error_std, s.wind_error_ar1, s.wind_farm_correlation_dso)
        for i, d in enumerate(built.dsos)
    ]
    load_mwh = float(built.tso.load_p_mw.sum()) + sum(float(d.load_p_mw.sum()) for d in built.dsos) + ev_energy_mwh
    wind_mwh = float(built.tso.wind_forecast_mw.sum()) + sum(float(d.wind_forecast_mw.sum()) for d in built.dsos)
    wind_t = float(built.tso.wind_forecast_mw.sum())
    scale_t, scale_d = penetration_scale(s.wind_penetration, s.wind_scaling, name, load_mwh, wind_t, wind_mwh - wind_t)
    penetration = (scale_t * wind_t + scale_d * (wind_mwh - wind_t)) / load_mwh
    tso_forecast = scale_t * built.tso.wind_forecast_mw
    dso_forecasts = [scale_d * d.wind_forecast_mw for d in built.dsos]
    for i, d in enumerate(built.dsos):
        ev_bus = [d.feeder.bus_index(e.bus) for e in evcs[i]]
        check_feeder_export(d.name, i, d.feeder, d.load_p_mw, d.wind_bus, dso_forecasts[i], ev_bus, ev_peak_mw[i],
                            s.wind_penetration)

    net = built.tso.network
    tso = TSORobustData(
        base=replace(built.tso, wind_forecast_mw=tso_forecast),
        wind_scenarios_mw=scale_t * scen_t,
        reserve_up_cost_usd_per_mw_h=_reserve_cost(net, s.reserve_up_cost_usd_per_mw_h, s.reserve_up_share, s),
        reserve_dn_cost_usd_per_mw_h=_reserve_cost(net, s.reserve_dn_cost_usd_per_mw_h, s.reserve_dn_share, s),
        uncertainty=UncertaintySettings(),  # set by with_case
        ccg=replace(s.ccg, recourse=tso_recourse(s, net.n_bus)),
    )
    dsos = tuple(
        DSORobustData(
            name=d.name,
            tso_name=d.tso_name,
            feeder=d.feeder,
            load_p_mw=d.load_p_mw,
            load_q_mvar=d.load_q_mvar,
            wind_bus=d.wind_bus,
            wind_forecast_mw=dso_forecasts[i],
            wind_scenarios_mw=scale_d * scen_d[i],
            evcs_names=tuple(e.name for e in evcs[i]),
            evcs_bus=np.array([d.feeder.bus_index(e.bus) for e in evcs[i]], dtype=int),
            incentive_up_usd_per_mw_h=np.full(T, float(s.incentive_up_usd_per_mw_h)),
            incentive_dn_usd_per_mw_h=np.full(T, float(s.incentive_dn_usd_per_mw_h)),
            boundary_limit_mw=d.boundary_limit_mw,
            voll_usd_per_mwh=d.voll_usd_per_mwh,
            curtailment_usd_per_mwh=d.curtailment_usd_per_mwh,
            violation_usd_per_mwh=float(s.violation_usd_per_mwh),
            voltage_slack_usd_per_pu2=float(s.voltage_slack_usd_per_pu2),
            uncertainty=UncertaintySettings(),  # set by with_case
            evaluation_budget_h=int(s.requirement_budget_h),
            v_root_pu=d.v_root_pu,
            ccg=s.ccg,
        )
        for i, d in enumerate(built.dsos)
    )
    rs = RobustScenario(
        name=name,
        case=case,
        settings=settings,
        tso=tso,
        dsos=dsos,
        evcs=tuple(e for st in evcs for e in st),
        admm=admm,
        wind_penetration=float(penetration),
        tso_wind_capacity_mw=scale_t * cap_t,
        dso_wind_capacity_mw=tuple(scale_d * c for c in cap_d),
    )
    return with_case(rs, case)


def with_case(rs: RobustScenario, case: str) -> RobustScenario:
    """The same data with case ``case``'s uncertainty, flexibility and boundary settings.

    TSO: Gamma 0, boundary reserves except in cases 2 and 3, boundary fixed in cases 2 and 3;
    DSOs: Gamma from the settings (0 in case 7), evaluated with the settings' Gamma,
    flexibility "dso" (case 2), "none" (case 3) or "both"; wind model "ro" (case 5),
    "so" (case 6) or "dro" for every agent.
    """
    case = _check_case(rs.name, case)
    s, T = rs.settings, rs.tso.horizon_h
    wind_model = {"5": "ro", "6": "so"}.get(case, "dro")
    tso = replace(
        rs.tso,
        uncertainty=UncertaintySettings(wind_model=wind_model, radius=float(s.radius_tso), requirement_budget_h=0),
        boundary_reserves=case not in ("2", "3"),
        boundary_fixed=case in ("2", "3"),
    )
    budget = 0 if case == "7" else int(s.requirement_budget_h)
    dsos = tuple(
        replace(
            d,
            uncertainty=UncertaintySettings(
                wind_model=wind_model, radius=float(s.radius_dso), requirement_budget_h=budget
            ),
            evaluation_budget_h=int(s.requirement_budget_h),
            flexibility={"2": "dso", "3": "none"}.get(case, "both"),
        )
        for d in rs.dsos
    )
    try:
        tso.uncertainty.validate(f"{tso.name}.uncertainty", T)
        for d in dsos:
            d.uncertainty.validate(f"{d.name}.uncertainty", T)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return replace(rs, case=case, tso=tso, dsos=dsos)


def _check_case(name: str, case: str) -> str:
    case = str(case)
    if case not in CASES:
        raise ScenarioError(f"unknown case {case!r} for the robust scenario {name!r}; choose one of {', '.join(CASES)}")
    return case


def _stations(
    s: RobustSettings, i: int, buses: tuple[int, ...], dso_name: str, feeder: Feeder, boundary_limit_mw: float,
    seeds: np.random.SeedSequence, horizon_h: int,
) -> tuple[list[EVCSData], list[np.ndarray]]:
    """Feeder i's stations and each one's hourly peak possible draw (MW, (T,))."""
    session_cfg = EVSessionConfig(horizon_h=horizon_h, sessions_per_station_mean=float(s.evcs_sessions_per_station))
    evcs_cfg = EVCSConfig(up_offer_cost_usd_per_mw_h=float(s.evcs_offer_cost_usd_per_mw_h),
                          dn_offer_cost_usd_per_mw_h=float(s.evcs_offer_cost_usd_per_mw_h))
    stations, peaks = [], []
    for j, (bus, seed) in enumerate(zip(buses, seeds.spawn(len(buses)))):
        where = f"feeders[{i}].evcs_buses[{j}]"
        try:
            pos = feeder.bus_index(bus)
        except Exception as exc:  # NetworkDataError: the bus is not on the feeder
            raise ScenarioError(f"{where}: {exc}") from None
        sessions = generate_station_sessions(np.random.default_rng(seed), session_cfg)
        data = evcs_data(f"{dso_name}.evcs{bus}", dso_name, bus, sessions, horizon_h, evcs_cfg)
        branch = int(feeder.parent_branch[pos])
        rating = float(feeder.branch_rating_mva[branch]) if branch >= 0 else math.inf
        limit, what = (rating, f"rating of the branch feeding bus {bus}") if rating < boundary_limit_mw else (
            boundary_limit_mw, f"boundary limit of feeder {dso_name}")
        try:
            validate_bus_limit(data, limit, what)
        except EVCSInputError as exc:
            raise ScenarioError(
                f"{where}: {exc}. With RobustSettings.evcs_sessions_per_station = {s.evcs_sessions_per_station!r} "
                "the stations are too large for the feeder: lower evcs_sessions_per_station"
            ) from None
        vs = VirtualStorage.from_sessions(data.arrival_h, data.departure_h, data.energy_kwh, data.max_rate_kw,
                                          horizon_h, evcs_cfg.station_limit_kw)
        stations.append(data)
        peaks.append(vs.p_max_kw / KW_PER_MW)
    return stations, peaks


def _reserve_cost(net, fixed: float | None, share: float, s: RobustSettings) -> np.ndarray:
    """(n_gen,) holding cost: ``fixed`` for every unit, else share x (c1 + c2 Pmax) + floor."""
    if fixed is not None:
        return np.full(net.n_gen, float(fixed))
    avg = net.gen_cost_c1_usd_per_mwh + net.gen_cost_c2_usd_per_mw2h * net.gen_pmax_mw
    return share * np.maximum(avg, 0.0) + float(s.reserve_floor_usd_per_mw_h)


def achieved_penetration(rs: RobustScenario) -> float:
    """Forecast wind energy / load energy (MWh over the horizon), recomputed from the agents' data."""
    wind = float(rs.tso.base.wind_forecast_mw.sum()) + sum(float(d.wind_forecast_mw.sum()) for d in rs.dsos)
    load = (float(rs.tso.base.load_p_mw.sum()) + sum(float(d.load_p_mw.sum()) for d in rs.dsos)
            + sum(float(e.energy_kwh.sum()) for e in rs.evcs) / KW_PER_MW)
    return wind / load


def distance_report(rs: RobustScenario) -> dict[str, DistanceStats]:
    """Scenario-distance statistics of the TSO and every DSO (agent name -> stats)."""
    out = {rs.tso.name: distance_statistics(rs.tso.wind_scenarios_mw)}
    out.update({d.name: distance_statistics(d.wind_scenarios_mw) for d in rs.dsos})
    return out


def scenario_statistics(rs: RobustScenario) -> dict:
    """Numbers for reports and docs: sessions, station peaks, EV energy, penetration, distances."""
    T = rs.tso.horizon_h
    sessions = np.array([e.n_sessions for e in rs.evcs], dtype=float)
    peaks = np.array([
        VirtualStorage.from_sessions(e.arrival_h, e.departure_h, e.energy_kwh, e.max_rate_kw, T,
                                     e.config.station_limit_kw).p_max_kw.max() / KW_PER_MW
        for e in rs.evcs
    ])
    dist = distance_report(rs)
    return {
        "stations": len(rs.evcs),
        "sessions_per_station_mean": float(sessions.mean()) if sessions.size else 0.0,
        "sessions_per_station_range": (int(sessions.min()), int(sessions.max())) if sessions.size else (0, 0),
        "station_peak_mw_mean": float(peaks.mean()) if peaks.size else 0.0,
        "station_peak_mw_max": float(peaks.max()) if peaks.size else 0.0,
        "ev_energy_mwh_per_feeder": {d.name: sum(float(e.energy_kwh.sum()) for e in rs.evcs_of(d.name)) / KW_PER_MW
                                     for d in rs.dsos},
        "wind_penetration": rs.wind_penetration,
        "median_distance_mw": {k: v.median_mw for k, v in dist.items()},
        "point_mass_min_mw": {k: v.point_mass_min_mw for k, v in dist.items()},
        "point_mass_max_mw": {k: v.point_mass_max_mw for k, v in dist.items()},
    }
