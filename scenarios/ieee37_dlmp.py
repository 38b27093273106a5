"""Scenario ``ieee37-dlmp``: the data-center aggregator / DSO game on the IEEE 37-bus feeder.

Everything the game needs, as frozen dataclasses with every default stated once:

* :class:`DataCenterSite` -- one data center of the aggregator (bus, IT capacity, idle
  share, PUE, power factor);
* :class:`DistributedGenerator` -- a DSO-owned three-phase DG (capacity, quadratic cost);
* :class:`GameSettings` -- the message-passing rule (proximal step and its damping) and the
  reference MILP's discretization and big-M bounds;
* :class:`DLMPCaseConfig` -- the case (``no-svg`` or ``svg``), the day's profiles, the
  sites and DGs; :func:`dlmp_case` builds it, :func:`validate` checks it.

Data chosen by the project (the paper names neither sites nor sizes; see docs/ieee37_dlmp.md):

* three data centers: ``dc_near`` at bus 712 (electrically close to the regulator),
  ``dc_mid`` at 724 (end of the 703-727 lateral) and ``dc_far`` at 740 (the far end, lowest
  phase-a voltage of the base case), each 500 kW of IT capacity (sized so that at the
  day's peak the far site cannot be spared and the lower voltage limit binds there), idle 30 %, PUE 1.4, power
  factor 0.90 lagging: 210-700 kW and 102-339 kvar per site;
* three DGs at 738 (300 kW), 744 and 711 (150 kW each), cost 0.06 $/kWh + 2e-4 $/kW^2h;
* the spot loads of the feeder times the IEEE RTS hourly load shape (peak 1.0 at hour 17),
  times a seeded +-3 % noise per hour;
* an SVG per site in the ``svg`` case: delta-connected, 400 kvar (133 kvar per branch); it
  corrects the site's power factor, and the DSO dispatches its per-branch split to lower the
  unbalance at the site buses (agents/dlmp_dso.py);
* substation energy price: 0.045 $/kWh (0-7 h), 0.075 (7-17 h, 21-24 h), 0.110 (17-21 h);
* workload (in kW of IT capacity kept busy): interactive ``I_t`` = 900 kW x a diurnal shape
  (busy 9-22 h), deferrable arrivals ``A_t`` = 450 kW x the same shape, each to be served
  within ``deferral_window_h`` (6 h) of arrival and by the end of the day.

Glossary (code -> paper): ``it_capacity_kw`` = C_s, ``idle_fraction`` = P^idle/P^peak,
``pue`` = PUE_s, ``power_factor`` = cos(phi_s), ``work_kw[s, t]`` = workload placed at s
(utilization x C_s), ``p_kw[s, t] = PUE (idle C + (1 - idle) work)`` = P^DC_s,t,
``q_kvar = p tan(phi)`` = Q^DC_s,t, ``price_usd_per_kwh`` = lambda^sub_t (substation price),
``dlmp_usd_per_kwh`` = DLMP_i,phi,t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from networks.errors import UnknownBusError
from networks.ieee37 import ThreePhaseFeeder, load_ieee37

from .errors import ScenarioError
from .profiles import RTS_LOAD_SHAPE_PCT

CASES = ("no-svg", "svg")

#: Substation energy price per hour ($/kWh): night, day, evening peak.
PRICE_USD_PER_KWH = tuple([0.045] * 7 + [0.075] * 10 + [0.110] * 4 + [0.075] * 3)

#: Busy share of the interactive and deferrable workload per hour (peak 1.0).
WORKLOAD_SHAPE = (
    0.45, 0.40, 0.35, 0.35, 0.35, 0.40, 0.50, 0.60, 0.75, 0.90, 0.95, 1.00,
    1.00, 0.95, 0.95, 0.95, 1.00, 1.00, 0.95, 0.90, 0.85, 0.75, 0.60, 0.50,
)


@dataclass(frozen=True)
class DataCenterSite:
    """One data center of the aggregator (private to the aggregator)."""

    name: str
    bus: str  #: IEEE 37 bus name, e.g. "740"; the site is a balanced three-phase load
    it_capacity_kw: float = 500.0  #: C_s, IT power at full utilization
    idle_fraction: float = 0.30  #: idle IT power as a share of C_s (servers stay on)
    pue: float = 1.4  #: power usage effectiveness (facility / IT power)
    power_factor: float = 0.90  #: lagging; reactive power = P tan(acos(pf))

    @property
    def p_min_kw(self) -> float:
        return self.pue * self.idle_fraction * self.it_capacity_kw

    @property
    def p_max_kw(self) -> float:
        return self.pue * self.it_capacity_kw

    @property
    def kw_per_work_kw(self) -> float:
        """Facility kW per kW of IT capacity kept busy: PUE (1 - idle)."""
        return self.pue * (1.0 - self.idle_fraction)

    @property
    def tan_phi(self) -> float:
        return float(np.tan(np.arccos(self.power_factor)))


@dataclass(frozen=True)
class DistributedGenerator:
    """A DSO-owned three-phase DG (balanced output, unity power factor)."""

    name: str
    bus: str
    p_max_kw: float = 150.0
    cost_usd_per_kwh: float = 0.06  #: linear cost b_g
    cost_usd_per_kw2h: float = 2e-4  #: quadratic cost a_g (cost = a P^2 + b P per hour)


@dataclass(frozen=True)
class GameSettings:
    """The message-passing rule and the reference MILP's parameters."""

    max_rounds: int = 200  #: round limit of the message-passing game
    prox_usd_per_kw2h: float = 1e-4  #: rho_0, weight of the proximal term (rho/2)||P - P_prev||^2
    prox_growth: float = 2.0  #: rho is multiplied by this when the schedule's change reverses direction
    prox_max_usd_per_kw2h: float = 1e-1  #: rho never exceeds this (the damping is bounded)
    gap_tol_rel: float = 1e-4  #: stop when the equilibrium gap is below this share of the bill
    milp_bits: int = 6  #: binary expansion bits of each site's hourly workload (2^bits levels)
    milp_time_limit_s: float = 300.0  #: HiGHS time limit for the reference MILP
    milp_gap_rel: float = 1e-4  #: HiGHS relative MIP gap
    dual_bound_usd_per_kwh: float = 2.0  #: big-M: bound on every dual, in $/kWh of its constraint's kW
    dlmp_bounds_usd_per_kwh: tuple[float, float] = (-1.0, 2.0)  #: McCormick bounds on the site DLMPs


@dataclass(frozen=True)
class DLMPCaseConfig:
    """One case of the ieee37-dlmp scenario."""

    case: str = "no-svg"  #: "no-svg" or "svg" (an SVG compensates each site's reactive power)
    name: str = "ieee37-dlmp"
    seed: int = 0  #: seed of the +-3 % base-load noise
    horizon_h: int = 24
    sites: tuple[DataCenterSite, ...] = (
        DataCenterSite("dc_near", "712"),
        DataCenterSite("dc_mid", "724"),
        DataCenterSite("dc_far", "740"),
    )
    dgs: tuple[DistributedGenerator, ...] = (
        DistributedGenerator("dg738", "738", p_max_kw=300.0),
        DistributedGenerator("dg744", "744"),
        DistributedGenerator("dg711", "711"),
    )
    price_usd_per_kwh: tuple[float, ...] = PRICE_USD_PER_KWH
    load_noise: float = 0.03  #: half-width of the uniform base-load noise per hour
    interactive_kw: float = 900.0  #: peak interactive workload (kW of IT capacity)
    deferrable_kw: float = 450.0  #: peak deferrable arrivals (kW of IT capacity per hour)
    deferral_window_h: int = 6  #: deferrable work is served within this many hours of arrival
    workload_shape: tuple[float, ...] = WORKLOAD_SHAPE
    svg_kvar: float = 400.0  #: rating of each site's SVG (svg case), kvar over its three delta branches (rating/3 each)
    game: GameSettings = field(default_factory=GameSettings)

    @property
    def svg(self) -> bool:
        return self.case == "svg"


@dataclass(frozen=True)
class DLMPCase:
    """A validated case with its arrays; ``sites`` and ``dgs`` carry bus positions."""

    config: DLMPCaseConfig
    feeder: ThreePhaseFeeder
    site_bus: np.ndarray  #: (S,) feeder bus positions of the sites
    dg_bus: np.ndarray  #: (G,) feeder bus positions of the DGs
    base_p_kw: np.ndarray  #: (n_bus, 3, T) spot loads x shape x noise (wye equivalents)
    base_q_kvar: np.ndarray  #: (n_bus, 3, T)
    price_usd_per_kwh: np.ndarray  #: (T,)
    interactive_kw: np.ndarray  #: (T,) I_t
    deferrable_kw: np.ndarray  #: (T,) A_t


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ScenarioError(message)


def _bus_position(feeder: ThreePhaseFeeder, bus: str, label: str) -> int:
    try:
        i = feeder.bus_index(bus)
    except UnknownBusError:
        raise ScenarioError(
            f"{label}: bus {bus!r} is not on the IEEE 37-bus feeder; buses: {', '.join(feeder.bus_names[1:])}"
        ) from None
    _check(i != 0, f"{label}: bus {bus!r} is the substation (fixed-voltage source); pick a feeder bus")
    _check(bool(feeder.phases[i].all()), f"{label}: bus {bus!r} lacks a phase; sites and DGs are three-phase")
    return i


def validate(cfg: DLMPCaseConfig, feeder: ThreePhaseFeeder) -> tuple[np.ndarray, np.ndarray]:
    """Check a configuration; return the site and DG bus positions. Raises ScenarioError."""
    _check(cfg.case in CASES, f"case: unknown case {cfg.case!r}; available: {', '.join(CASES)}")
    T = cfg.horizon_h
    _check(isinstance(T, int) and 1 <= T <= 24 * 7, f"horizon_h must be 1..168 hours, got {T!r}")
    _check(len(cfg.sites) >= 1, "sites: the aggregator needs at least one data center")
    names = [s.name for s in cfg.sites] + [g.name for g in cfg.dgs]
    _check(len(set(names)) == len(names), f"sites/dgs: names must be unique, got {names}")
    site_bus = []
    for k, s in enumerate(cfg.sites):
        label = f"sites[{k}] ({s.name})"
        site_bus.append(_bus_position(feeder, s.bus, f"{label}.bus"))
        _check(s.it_capacity_kw > 0, f"{label}.it_capacity_kw must be positive, got {s.it_capacity_kw}")
        _check(0 <= s.idle_fraction < 1, f"{label}.idle_fraction must be in [0, 1), got {s.idle_fraction}")
        _check(s.pue >= 1, f"{label}.pue must be at least 1, got {s.pue}")
        _check(0 < s.power_factor <= 1, f"{label}.power_factor must be in (0, 1], got {s.power_factor}")
    _check(len(set(site_bus)) == len(site_bus), "sites: two data centers on one bus; merge them into one site")
    dg_bus = []
    for k, g in enumerate(cfg.dgs):
        label = f"dgs[{k}] ({g.name})"
        dg_bus.append(_bus_position(feeder, g.bus, f"{label}.bus"))
        _check(g.p_max_kw >= 0, f"{label}.p_max_kw must be >= 0, got {g.p_max_kw}")
        _check(g.cost_usd_per_kw2h >= 0 and g.cost_usd_per_kwh >= 0, f"{label}: costs must be >= 0")
    for label in ("interactive_kw", "deferrable_kw", "svg_kvar", "load_noise"):
        _check(getattr(cfg, label) >= 0, f"{label} must be >= 0, got {getattr(cfg, label)}")
    _check(cfg.load_noise < 1, f"load_noise must be below 1, got {cfg.load_noise}")
    _check(cfg.deferral_window_h >= 0, f"deferral_window_h must be >= 0, got {cfg.deferral_window_h}")
    _check(len(cfg.price_usd_per_kwh) >= 1 and len(cfg.workload_shape) >= 1, "price and workload profiles need values")
    capacity = sum(s.it_capacity_kw for s in cfg.sites)
    shape = np.resize(np.asarray(cfg.workload_shape, dtype=float), T)
    _check(bool(np.all(shape >= 0)), "workload_shape must be >= 0")
    peak = float(np.max((cfg.interactive_kw + cfg.deferrable_kw) * shape)) if T else 0.0
    _check(
        float(np.max(cfg.interactive_kw * shape)) <= capacity + 1e-9,
        f"interactive_kw: the interactive workload ({float(np.max(cfg.interactive_kw * shape)):.0f} kW at its peak) "
        f"exceeds the sites' IT capacity ({capacity:.0f} kW); lower the workload or add capacity",
    )
    _check(
        float(np.sum((cfg.interactive_kw + cfg.deferrable_kw) * shape)) <= capacity * T + 1e-9,
        f"deferrable_kw: the day's workload ({peak:.0f} kW at its peak) exceeds what the sites can serve in "
        f"{T} h ({capacity:.0f} kW of IT capacity); lower the workload or add capacity",
    )
    g = cfg.game
    _check(g.max_rounds >= 1, f"game.max_rounds must be >= 1, got {g.max_rounds}")
    _check(0 < g.prox_usd_per_kw2h <= g.prox_max_usd_per_kw2h, "game: need 0 < prox_usd_per_kw2h <= prox_max_usd_per_kw2h")
    _check(g.prox_growth >= 1, f"game.prox_growth must be >= 1, got {g.prox_growth}")
    _check(1 <= g.milp_bits <= 12, f"game.milp_bits must be 1..12, got {g.milp_bits}")
    lo, hi = g.dlmp_bounds_usd_per_kwh
    _check(lo < min(cfg.price_usd_per_kwh) and hi > max(cfg.price_usd_per_kwh),
           "game.dlmp_bounds_usd_per_kwh must bracket the substation prices")
    return np.array(site_bus, dtype=int), np.array(dg_bus, dtype=int)


def build_case(cfg: DLMPCaseConfig) -> DLMPCase:
    """Validate ``cfg`` and build its arrays (feeder, loads, prices, workload)."""
    feeder = load_ieee37()
    site_bus, dg_bus = validate(cfg, feeder)
    T = cfg.horizon_h
    rng = np.random.default_rng(cfg.seed)
    shape = np.resize(RTS_LOAD_SHAPE_PCT / 100.0, T) * (1 + rng.uniform(-cfg.load_noise, cfg.load_noise, T))
    work_shape = np.resize(np.asarray(cfg.workload_shape, dtype=float), T)
    return DLMPCase(
        config=cfg,
        feeder=feeder,
        site_bus=site_bus,
        dg_bus=dg_bus,
        base_p_kw=np.asarray(feeder.load_p_kw)[:, :, None] * shape,
        base_q_kvar=np.asarray(feeder.load_q_kvar)[:, :, None] * shape,
        price_usd_per_kwh=np.resize(np.asarray(cfg.price_usd_per_kwh, dtype=float), T),
        interactive_kw=cfg.interactive_kw * work_shape,
        deferrable_kw=cfg.deferrable_kw * work_shape,
    )


def dlmp_case(case: str = "no-svg", seed: int = 0) -> DLMPCaseConfig:
    """The factory of the scenario: the default configuration of ``case``."""
    _check(case in CASES, f"unknown case {case!r} for scenario 'ieee37-dlmp'; available: {', '.join(CASES)}")
    return DLMPCaseConfig(case=case, seed=seed)
