"""An EV charging station (EVCS) agent: virtual storage, baseline, capacity declaration.

MODELS.md section 1, stages 1 and 2, for one station. Periods are hours ``t = 0..T-1``;
a power is the hour's average, so ``p_kw[t]`` kW in hour t is ``p_kw[t]`` kWh.

**Sessions.** Session i (arrival ``a_i`` h, departure ``d_i`` h, energy ``E_i`` kWh,
maximum rate ``rbar_i`` kW) may charge in hour t at most
``u_it = rbar_i * |[a_i, d_i] ∩ [t, t+1]|`` (kW, hour average), never discharges, and
must receive exactly ``E_i`` before it leaves. Its set of schedules is
``X_i = {x : 0 <= x_it <= u_it, sum_t x_it = E_i}``.

**Virtual storage** (:class:`VirtualStorage`). The station's feasible aggregate schedules
are the Minkowski sum ``X_1 + ... + X_n``. The project uses its standard *outer
approximation*: per-hour power bounds and cumulative-energy bounds, each the sum of the
sessions' own bounds,

* ``p_min[t] = sum_i max(0, E_i - (U_i - u_it))`` (what session i must charge in hour t,
  ``U_i = sum_t u_it``) and ``p_max[t] = min(station limit, sum_i min(u_it, E_i))``;
* ``e_min[t] = sum_i max(0, E_i - sum_{tau>t} u_i,tau)`` and
  ``e_max[t] = sum_i min(E_i, sum_{tau<=t} u_i,tau)`` bound the cumulative energy
  ``sum_{tau<=t} P_tau`` at the end of hour t; ``e_min[T-1] = e_max[T-1] = sum_i E_i``.

Every sum of session-feasible schedules satisfies these (tested); the converse fails in
general (docs/evcs.md gives a two-session counterexample), so the virtual storage can
hold aggregate schedules that no split among the sessions delivers. :func:`disaggregate`
tells which (a max-flow), and :func:`session_deliverable_share` measures how often.

**Baseline** (stage 1). The station minimizes its energy bill at the time-of-use price,
``min sum_t lambda_t P_t`` (plus a tiny tilt towards earlier hours that makes the
optimum unique). By default it solves the session-level LP (``EVCSConfig.baseline_model
= "sessions"``), whose aggregate lies in the exact Minkowski sum; ``"virtual_storage"``
solves the same LP on the outer approximation (a lower bound on the bill).

**Capacity declaration** (stage 2). Given up/down incentive prices ``pi_up[t], pi_dn[t]``
($/MW per hour), the station declares ``R_up[t], R_dn[t] >= 0`` (kW) maximizing
``sum_t (pi_up[t] - c_up) R_up[t] + (pi_dn[t] - c_dn) R_dn[t]`` (``c_*``: its cost of
holding capacity), together with cumulative-energy limits. The declared set of
adjustments ``delta = P - P0`` (actual minus baseline) is

    A(R) = {delta : -R_up[t] <= delta[t] <= R_dn[t],
                    -cum_up[t] <= sum_{tau<=t} delta[tau] <= cum_dn[t]}

with ``cum_up[t] = s (C0[t] - e_min[t])``, ``cum_dn[t] = s (e_max[t] - C0[t])``
(``C0`` the baseline's cumulative energy, ``s`` the offered share; both limits are 0 in
the last hour, so every EV still gets its energy), and ``R_up[t] <= s (P0[t] - p_min[t])``,
``R_dn[t] <= s (p_max[t] - P0[t])``.

*Property (deliverability).* Every ``delta`` in ``A(R)``, and in the cleared set
``A(R_c)`` for any cleared ``0 <= R_c <= R``, gives ``P0 + delta`` inside the virtual
storage. (Proof: the hour bounds and the cumulative bounds of the virtual storage hold
term by term.) *Property (no empty promises).* Each declared bound is reached: for every
hour t some ``delta`` in ``A(R)`` has ``delta[t] = R_dn[t]`` and some has
``delta[t] = -R_up[t]``. Charging-only sessions with fixed energy cannot move energy one
way only, so a down offer in one hour needs room to charge less elsewhere; the
declaration LP expresses reachability with the forward/backward reachable intervals of
the cumulative adjustment (exact, see :func:`reachable_intervals`), so the prices of all
hours shape each hour's offer. Both properties are tested in tests/test_evcs.py.

Glossary (code -> symbol; the paper's glyphs were lost from its text, the symbols follow
its prose): ``arrival_h``/``departure_h``/``energy_kwh``/``max_rate_kw`` -> a_i, d_i,
E_i, rbar_i; ``VirtualStorage.p_min_kw``/``p_max_kw`` -> P^min_t / P^max_t;
``e_min_kwh``/``e_max_kwh`` -> E^min_t / E^max_t; ``baseline_kw`` -> P^EV_t (the
day-ahead charging power); ``tou_price_usd_per_mwh`` -> the time-of-use price lambda_t;
``declared.up_kw``/``dn_kw`` -> R^up_t / R^dn_t (declared maxima);
``cleared.up_kw``/``dn_kw`` -> R^up,c_t / R^dn,c_t; ``delta`` -> Delta P_t,s,f (the
intraday adjustment); ``cum_up_kwh``/``cum_dn_kwh`` -> the cumulative regulation limits.

No Ray here: the agent is a plain object, run through ``coordination.runtime.Runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from agents.solver import CompiledModel, SolveError, SolveStatus
from agents.virtual_storage import (  # noqa: F401  (re-exported)
    AdjustmentSet,
    Intervals,
    VirtualStorage,
    disaggregate,
    reachable_intervals,
    sample_paths,
    session_power_caps_kw,
)
from coordination.evcs_messages import ClearedCapacity, DeclaredCapacity, EVCSBandReport, EVCSBaseline, IncentivePrices
from coordination.runtime import COORDINATOR

#: Time-of-use tariff, $/MWh, hour 0 = 0:00-1:00: off-peak 0-7 h and 23-24 h, peak 17-21 h.
DEFAULT_TOU_USD_PER_MWH = (
    45.0, 45.0, 45.0, 45.0, 45.0, 45.0, 45.0,
    85.0, 85.0, 85.0, 85.0, 85.0, 85.0, 85.0, 85.0, 85.0, 85.0,
    160.0, 160.0, 160.0, 160.0,
    85.0, 85.0,
    45.0,
)

KW_PER_MW = 1000.0


class EVCSInputError(ValueError):
    """Bad EVCS data or a bad message value; the text names the field, the index and what to do."""


class EVCSInfeasibleError(SolveError):
    """The station's sessions cannot all be served; names the agent, the hour and the cause."""

    def __init__(self, agent: str, period: int, cause: str):
        super().__init__(agent, SolveStatus.INFEASIBLE, cause, period)
        self.cause = cause


class AdjustmentOutsideBandError(ValueError):
    """An adjustment asked of the station lies outside its cleared set; names the hour."""


@dataclass(frozen=True)
class EVCSConfig:
    """An EVCS's settings; every default is set once here."""

    tou_price_usd_per_mwh: tuple[float, ...] = DEFAULT_TOU_USD_PER_MWH  #: TOU tariff per hour (repeats past 24 h)
    up_offer_cost_usd_per_mw_h: float = 3.0  #: the station's cost of holding 1 MW of up capacity for an hour
    dn_offer_cost_usd_per_mw_h: float = 3.0  #: the station's cost of holding 1 MW of down capacity for an hour
    offer_share: float = 1.0  #: share of its power and energy headroom the station is willing to offer, in [0, 1]
    station_limit_kw: float = float("inf")  #: the station's grid connection (kW); inf = sum of the session rates
    baseline_model: str = "sessions"  #: "sessions" (exact, per-session LP) or "virtual_storage" (outer approximation)
    early_tilt_usd_per_mwh_h: float = 1e-3  #: price tilt per hour that makes the baseline prefer earlier hours on ties
    tol_kw: float = 1e-6  #: feasibility tolerance (kW, kWh) for membership checks


@dataclass(frozen=True)
class EVCSData:
    """An EVCS's private data: its sessions (one array entry each) and settings.

    ``bus`` is the 1-based feeder bus the station sits at (for messages and checks).
    """

    name: str
    dso_name: str
    bus: int
    arrival_h: np.ndarray  #: (n,) hours from the horizon start
    departure_h: np.ndarray  #: (n,) hours from the horizon start, <= horizon_h
    energy_kwh: np.ndarray  #: (n,) energy each EV must receive
    max_rate_kw: np.ndarray  #: (n,) maximum charging rate of each EV (and its charger)
    horizon_h: int = 24
    config: EVCSConfig = field(default_factory=EVCSConfig)

    def __post_init__(self) -> None:
        arrays = {}
        for name in ("arrival_h", "departure_h", "energy_kwh", "max_rate_kw"):
            try:
                arr = np.array(getattr(self, name), dtype=float).reshape(-1)
            except (TypeError, ValueError):
                raise EVCSInputError(f"EVCS {self.name!r}: {name} must be numbers, one per session") from None
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
            arrays[name] = arr
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise EVCSInputError(
                f"EVCS {self.name!r}: session arrays differ in length {lengths}; give one entry per session in each"
            )
        if not isinstance(self.horizon_h, (int, np.integer)) or self.horizon_h < 1:
            raise EVCSInputError(f"EVCS {self.name!r}: horizon_h must be a positive whole number of hours, got {self.horizon_h!r}")
        check_sessions(
            self.arrival_h, self.departure_h, self.energy_kwh, self.max_rate_kw, self.horizon_h,
            where=f"EVCS {self.name!r}", tol=self.config.tol_kw,
        )
        _check_config(self.config, f"EVCS {self.name!r}")

    @property
    def n_sessions(self) -> int:
        return len(self.energy_kwh)

    def tou_price_usd_per_mwh(self) -> np.ndarray:
        """(T,) the tariff for this horizon (the configured day repeats)."""
        return np.resize(np.asarray(self.config.tou_price_usd_per_mwh, dtype=float), self.horizon_h)


def _check_config(cfg: EVCSConfig, where: str) -> None:
    def bad(field_name: str, value: object, need: str) -> EVCSInputError:
        return EVCSInputError(f"{where}: EVCSConfig.{field_name} = {value!r}; {need}")

    tou = np.asarray(cfg.tou_price_usd_per_mwh, dtype=float)
    if tou.ndim != 1 or tou.size == 0 or not np.all(np.isfinite(tou)):
        raise bad("tou_price_usd_per_mwh", cfg.tou_price_usd_per_mwh, "give one finite price per hour")
    for name in ("up_offer_cost_usd_per_mw_h", "dn_offer_cost_usd_per_mw_h", "early_tilt_usd_per_mwh_h"):
        v = getattr(cfg, name)
        if not np.isfinite(v) or v < 0:
            raise bad(name, v, "give a finite number >= 0")
    if not 0.0 <= cfg.offer_share <= 1.0:
        raise bad("offer_share", cfg.offer_share, "give a share in [0, 1]")
    if not cfg.station_limit_kw > 0:
        raise bad("station_limit_kw", cfg.station_limit_kw, "give a positive limit in kW (inf for none)")
    if cfg.baseline_model not in ("sessions", "virtual_storage"):
        raise bad("baseline_model", cfg.baseline_model, "use 'sessions' or 'virtual_storage'")
    if not cfg.tol_kw > 0:
        raise bad("tol_kw", cfg.tol_kw, "give a small positive tolerance")


def check_sessions(
    arrival_h: np.ndarray,
    departure_h: np.ndarray,
    energy_kwh: np.ndarray,
    max_rate_kw: np.ndarray,
    horizon_h: int,
    where: str = "sessions",
    tol: float = 1e-6,
) -> None:
    """Raise :class:`EVCSInputError` at the first bad session, naming it and what to do."""
    for i, (a, d, e, r) in enumerate(zip(arrival_h, departure_h, energy_kwh, max_rate_kw)):
        at = f"{where}: session {i}"
        for name, v in (("arrival_h", a), ("departure_h", d), ("energy_kwh", e), ("max_rate_kw", r)):
            if not np.isfinite(v):
                raise EVCSInputError(f"{at}: {name} is {v}; give a finite number")
        if e < 0:
            raise EVCSInputError(f"{at}: energy_kwh is {e:g} kWh (negative); an EV must receive energy >= 0")
        if r <= 0:
            raise EVCSInputError(f"{at}: max_rate_kw is {r:g}; give the charger's positive rate in kW")
        if a < 0 or a >= horizon_h:
            raise EVCSInputError(
                f"{at}: arrival_h is {a:g} h, outside the horizon [0, {horizon_h}); "
                "drop the session or clip it to the horizon (scenarios.ev_sessions does this for ACN records)"
            )
        if d <= a:
            raise EVCSInputError(
                f"{at}: departure_h {d:g} h is not after arrival_h {a:g} h; the departure must come after the arrival"
            )
        if d > horizon_h + tol:
            raise EVCSInputError(
                f"{at}: departure_h is {d:g} h, after the horizon's end {horizon_h} h; clip it to the horizon "
                "and scale its energy to the stay left (scenarios.ev_sessions.clip_to_horizon)"
            )
        most = r * (d - a)
        if e > most + tol:
            raise EVCSInputError(
                f"{at}: energy_kwh {e:g} kWh is more than max_rate_kw x stay = {r:g} kW x {d - a:g} h = "
                f"{most:g} kWh; lower the energy or raise the rate"
            )


# --- virtual storage -------------------------------------------------------------------


def session_deliverable_share(agent: "EVCSAgent", rng: np.random.Generator, n: int = 200, cleared: bool = False) -> float:
    """Share of adjustments drawn from the declared (or cleared) set that the sessions can deliver.

    The virtual storage always holds them (the deliverability property); this measures
    how often the outer approximation also splits among the actual sessions.
    """
    band = agent.cleared if cleared else agent.declared
    if band is None:
        raise RuntimeError(f"EVCS {agent.name!r}: nothing declared/cleared yet")
    deltas = band.sample(rng, n)
    ok = sum(disaggregate(agent.baseline_kw + d, agent.caps_kw, agent.data.energy_kwh) is not None for d in deltas)
    return ok / n


def validate_bus_limit(data: EVCSData, bus_limit_mw: float, what: str = "feeder bus limit") -> None:
    """Raise :class:`EVCSInputError` if the station can draw more than ``bus_limit_mw`` in some hour.

    The DSO calls this when it places a station: the station's peak is its virtual
    storage's largest hourly power (the sessions' rates, capped by the station limit).
    """
    if not np.isfinite(bus_limit_mw) or bus_limit_mw < 0:
        raise EVCSInputError(f"EVCS {data.name!r}: {what} is {bus_limit_mw!r} MW; give a finite limit >= 0")
    vs = VirtualStorage.from_sessions(
        data.arrival_h, data.departure_h, data.energy_kwh, data.max_rate_kw, data.horizon_h,
        data.config.station_limit_kw,
    )
    t = int(np.argmax(vs.p_max_kw))
    peak_mw = float(vs.p_max_kw[t]) / KW_PER_MW
    if peak_mw > bus_limit_mw + data.config.tol_kw / KW_PER_MW:
        raise EVCSInputError(
            f"EVCS {data.name!r} at feeder bus {data.bus} can draw {peak_mw:.4g} MW in hour {t} "
            f"(its sessions' rates), above the {what} of {bus_limit_mw:.4g} MW; set "
            f"EVCSConfig.station_limit_kw to at most {bus_limit_mw * KW_PER_MW:.4g} kW, "
            "move sessions to another station, or raise the limit"
        )


# --- the agent ---------------------------------------------------------------------------


class EVCSAgent:
    """An EVCS as a message-passing agent (role ``"evcs"``); see the module docstring.

    * :meth:`baseline` (stage 1) -> :class:`EVCSBaseline` to its DSO;
    * :meth:`declare` (stage 2, inbox: :class:`IncentivePrices`) -> :class:`DeclaredCapacity`;
    * :meth:`accept_clearing` (inbox: :class:`ClearedCapacity`) -> nothing; keeps the cleared set;
    * :meth:`adjusted_schedule`: the schedule after an adjustment inside the cleared set.

    Two compiled models (baseline LP, declaration LP), each built once and re-solved with
    new parameter values through :class:`agents.solver.CompiledModel`.
    """

    role = "evcs"

    def __init__(self, data: EVCSData):
        self.name = data.name
        self.data = data
        cfg = data.config
        T = data.horizon_h
        self.caps_kw = session_power_caps_kw(data.arrival_h, data.departure_h, data.max_rate_kw, T)
        self.vs = VirtualStorage.from_sessions(
            data.arrival_h, data.departure_h, data.energy_kwh, data.max_rate_kw, T, cfg.station_limit_kw
        )
        self._check_feasible()
        self.baseline_kw: np.ndarray | None = None
        self.declared: AdjustmentSet | None = None
        self.cleared: AdjustmentSet | None = None
        self.iteration = -1
        self._build_baseline_model()
        self._build_declaration_model()

    # -- feasibility ----------------------------------------------------------------------

    def _check_feasible(self) -> None:
        """Before any solve: find the first hour in which the sessions cannot be served."""
        vs, lim = self.vs, self.data.config.station_limit_kw
        iv = vs.intervals(tol=self.data.config.tol_kw)
        t = iv.first_empty
        if t is None:
            return
        reach = iv.f_hi[t - 1] + vs.p_max_kw[t] if t > 0 else vs.p_max_kw[t]
        if vs.e_min_kwh[t] > reach:
            cause = (
                f"its EVs need at least {vs.e_min_kwh[t]:.4g} kWh by the end of hour {t} (energy they cannot "
                f"get later), but at most {reach:.4g} kWh can be charged by then"
                + (f" under the station limit of {lim:g} kW; raise EVCSConfig.station_limit_kw or move sessions"
                   if np.isfinite(lim) else "; check the sessions' energy against their rates")
            )
        else:
            cause = "the hour power bounds and cumulative energy bounds do not intersect; check the sessions"
        raise EVCSInfeasibleError(self.name, t, cause)

    # -- stage 1: baseline ----------------------------------------------------------------

    def _build_baseline_model(self) -> None:
        d, cfg, T = self.data, self.data.config, self.data.horizon_h
        self.price_param = cp.Parameter(T, name="tou_price_usd_per_kwh")
        if cfg.baseline_model == "sessions" and d.n_sessions > 0:
            x = cp.Variable(self.caps_kw.shape, name="session_kw", nonneg=True)
            p = cp.sum(x, axis=0)
            cons = [x <= self.caps_kw, cp.sum(x, axis=1) == d.energy_kwh]
            if np.isfinite(cfg.station_limit_kw):
                cons.append(p <= cfg.station_limit_kw)
            self._session_kw = x
        else:
            p = cp.Variable(T, name="p_kw")
            c = cp.cumsum(p)
            cons = [p >= self.vs.p_min_kw, p <= self.vs.p_max_kw, c >= self.vs.e_min_kwh, c <= self.vs.e_max_kwh]
            self._session_kw = None
        self._p_kw = p
        self.baseline_solver = CompiledModel(
            self.name,
            cp.Problem(cp.Minimize(self.price_param @ p), cons),
            solver="HIGHS",
            solver_options={},
            infeasible_hint="the sessions cannot all be served; check their energy against rate x stay "
            "and the station limit",
        )

    def baseline(self, inbox: tuple = ()) -> EVCSBaseline:
        """Stage 1: the cheapest charging at the TOU tariff, sent to the DSO (MW)."""
        d, cfg = self.data, self.data.config
        tilt = cfg.early_tilt_usd_per_mwh_h * np.arange(d.horizon_h)
        self.price_param.value = (d.tou_price_usd_per_mwh() + tilt) / KW_PER_MW
        self.baseline_solver.solve()
        p = np.clip(np.asarray(self._p_kw.value, dtype=float), self.vs.p_min_kw, self.vs.p_max_kw)
        if self._session_kw is not None:
            self.session_schedule_kw = np.clip(np.asarray(self._session_kw.value), 0.0, self.caps_kw)
            p = self.session_schedule_kw.sum(axis=0)
        else:
            self.session_schedule_kw = None
        self.baseline_kw = p
        self._set_declaration_data()
        self.declared = self.cleared = None
        return EVCSBaseline(self.name, d.dso_name, p / KW_PER_MW)

    def energy_cost_usd(self) -> float:
        """The baseline's bill at the TOU tariff."""
        self._need_baseline("energy_cost_usd")
        return float(self.data.tou_price_usd_per_mwh() @ self.baseline_kw) / KW_PER_MW

    # -- stage 2: capacity declaration ----------------------------------------------------

    def _build_declaration_model(self) -> None:
        """The declaration LP; its data (headroom, cumulative limits) and prices are Parameters.

        ``flo``/``fhi`` bound the forward reachable interval of the cumulative adjustment
        from inside, ``glo``/``ghi`` the backward one; ``flo[t-1] + R_dn[t] <= ghi[t]`` and
        ``fhi[t-1] - R_up[t] >= glo[t]`` say that each declared bound is reached by some
        member of the declared set (exact: the true intervals satisfy them when it is).
        """
        T = self.data.horizon_h
        self.pi_up = cp.Parameter(T, name="pi_up_net_usd_per_kw_h")
        self.pi_dn = cp.Parameter(T, name="pi_dn_net_usd_per_kw_h")
        self.head_up = cp.Parameter(T, nonneg=True, name="headroom_up_kw")
        self.head_dn = cp.Parameter(T, nonneg=True, name="headroom_dn_kw")
        self.lev_lo = cp.Parameter(T, nonpos=True, name="cum_lo_kwh")
        self.lev_hi = cp.Parameter(T, nonneg=True, name="cum_hi_kwh")
        r_up = cp.Variable(T, nonneg=True, name="r_up_kw")
        r_dn = cp.Variable(T, nonneg=True, name="r_dn_kw")
        flo, fhi, glo, ghi = (cp.Variable(T, name=n) for n in ("flo", "fhi", "glo", "ghi"))
        cons = [
            r_up <= self.head_up,
            r_dn <= self.head_dn,
            flo >= self.lev_lo, fhi <= self.lev_hi, glo >= self.lev_lo, ghi <= self.lev_hi,
            flo[0] >= -r_up[0], fhi[0] <= r_dn[0],
            r_dn[0] <= ghi[0], -r_up[0] >= glo[0],
        ]
        if T > 1:
            cons += [
                flo[1:] >= flo[:-1] - r_up[1:],
                fhi[1:] <= fhi[:-1] + r_dn[1:],
                ghi[:-1] <= ghi[1:] + r_up[1:],
                glo[:-1] >= glo[1:] - r_dn[1:],
                flo[:-1] + r_dn[1:] <= ghi[1:],
                fhi[:-1] - r_up[1:] >= glo[1:],
            ]
        self._r_up, self._r_dn = r_up, r_dn
        self.declaration_solver = CompiledModel(
            self.name,
            cp.Problem(cp.Maximize(self.pi_up @ r_up + self.pi_dn @ r_dn), cons),
            solver="HIGHS",
            solver_options={},
            infeasible_hint="declaration LP failed; the baseline should always allow a zero offer",
        )

    def _set_declaration_data(self) -> None:
        s, vs, p0 = self.data.config.offer_share, self.vs, self.baseline_kw
        c0 = np.cumsum(p0)
        self.head_up.value = s * np.maximum(p0 - vs.p_min_kw, 0.0)
        self.head_dn.value = s * np.maximum(vs.p_max_kw - p0, 0.0)
        lo, hi = s * np.minimum(vs.e_min_kwh - c0, 0.0), s * np.maximum(vs.e_max_kwh - c0, 0.0)
        lo[-1] = hi[-1] = 0.0  # every EV gets its energy: the adjustments sum to zero
        self.lev_lo.value, self.lev_hi.value = lo, hi

    def declare(self, inbox: tuple) -> DeclaredCapacity:
        """Stage 2: answer the DSO's incentive prices with the declared band (MW, MWh)."""
        self._need_baseline("declare")
        (prices,) = [m for m in inbox if isinstance(m, IncentivePrices)]
        T, cfg = self.data.horizon_h, self.data.config
        up = self._price_array(prices.up_usd_per_mw_h, "up_usd_per_mw_h")
        dn = self._price_array(prices.dn_usd_per_mw_h, "dn_usd_per_mw_h")
        self.iteration = prices.iteration
        self.prices_usd_per_mw_h = (up, dn)
        self.pi_up.value = (up - cfg.up_offer_cost_usd_per_mw_h) / KW_PER_MW
        self.pi_dn.value = (dn - cfg.dn_offer_cost_usd_per_mw_h) / KW_PER_MW
        self.declaration_solver.solve()
        r_up = np.clip(np.asarray(self._r_up.value, dtype=float), 0.0, self.head_up.value)
        r_dn = np.clip(np.asarray(self._r_dn.value, dtype=float), 0.0, self.head_dn.value)
        cum_up, cum_dn = -np.asarray(self.lev_lo.value), np.asarray(self.lev_hi.value)
        self.declared = AdjustmentSet(r_up, r_dn, cum_up, cum_dn)
        self.cleared = None
        assert T == len(r_up)
        return DeclaredCapacity(
            self.name, self.data.dso_name, self.iteration,
            r_up / KW_PER_MW, r_dn / KW_PER_MW, cum_up / KW_PER_MW, cum_dn / KW_PER_MW,
        )

    def _price_array(self, value: np.ndarray, field_name: str) -> np.ndarray:
        arr = np.asarray(value, dtype=float).reshape(-1)
        T = self.data.horizon_h
        if arr.size != T:
            raise EVCSInputError(f"EVCS {self.name!r}: IncentivePrices.{field_name} has {arr.size} values; send one per hour ({T})")
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
        if bad.size:
            t = int(bad[0])
            raise EVCSInputError(
                f"EVCS {self.name!r}: IncentivePrices.{field_name}[{t}] is {arr[t]!r}; incentive prices must be finite and >= 0"
            )
        return arr

    def accept_clearing(self, inbox: tuple) -> None:
        """Keep the DSO's cleared capacities; they must lie within what was declared."""
        if self.declared is None:
            raise RuntimeError(f"EVCS {self.name!r}: a clearing arrived before any declaration; run declare() first")
        (msg,) = [m for m in inbox if isinstance(m, ClearedCapacity)]
        tol = self.data.config.tol_kw
        arrays = []
        for field_name, declared in (("up_mw", self.declared.up_kw), ("dn_mw", self.declared.dn_kw)):
            arr = np.asarray(getattr(msg, field_name), dtype=float).reshape(-1) * KW_PER_MW
            if arr.size != len(declared):
                raise EVCSInputError(f"EVCS {self.name!r}: ClearedCapacity.{field_name} has {arr.size} values; send one per hour")
            bad = np.flatnonzero(~np.isfinite(arr) | (arr < -tol) | (arr > declared + tol))
            if bad.size:
                t = int(bad[0])
                raise EVCSInputError(
                    f"EVCS {self.name!r}: ClearedCapacity.{field_name}[{t}] = {arr[t] / KW_PER_MW:.6g} MW is outside "
                    f"[0, declared {declared[t] / KW_PER_MW:.6g} MW]; clear at most what was declared"
                )
            arrays.append(np.clip(arr, 0.0, declared))
        self.cleared = AdjustmentSet(arrays[0], arrays[1], self.declared.cum_up_kwh, self.declared.cum_dn_kwh)
        return None

    def incentive_revenue_usd(self) -> float:
        """What the DSO pays for the cleared capacities at the prices of the last declaration."""
        if self.cleared is None:
            return 0.0
        up, dn = self.prices_usd_per_mw_h
        return float(up @ self.cleared.up_kw + dn @ self.cleared.dn_kw) / KW_PER_MW

    def report_band(self, inbox: tuple = ()) -> EVCSBandReport:
        """Its baseline and its declared and cleared band, for the coordinator's plots (MW)."""
        self._need_baseline("report_band")
        zero = np.zeros(self.data.horizon_h)
        dec, clr = self.declared, self.cleared
        return EVCSBandReport(
            self.name, COORDINATOR, self.baseline_kw / KW_PER_MW,
            (dec.up_kw if dec else zero) / KW_PER_MW, (dec.dn_kw if dec else zero) / KW_PER_MW,
            (clr.up_kw if clr else zero) / KW_PER_MW, (clr.dn_kw if clr else zero) / KW_PER_MW,
        )

    # -- stage 3 helper -------------------------------------------------------------------

    def adjusted_schedule(self, delta_kw: np.ndarray) -> np.ndarray:
        """The station's schedule after adjustment ``delta_kw``; refused outside the cleared set."""
        if self.cleared is None:
            raise RuntimeError(f"EVCS {self.name!r}: no cleared capacity yet; nothing can be deployed")
        hit = self.cleared.first_violation(delta_kw, self.data.config.tol_kw)
        if hit is not None:
            t, how = hit
            raise AdjustmentOutsideBandError(f"EVCS {self.name!r}, hour {t}: {how}; stay within the cleared band")
        return self.baseline_kw + np.asarray(delta_kw, dtype=float)

    # -- checkpoints ----------------------------------------------------------------------

    def get_state(self) -> dict:
        return {
            "iteration": self.iteration,
            "baseline_kw": self.baseline_kw,
            "declared": self.declared,
            "cleared": self.cleared,
            "prices": getattr(self, "prices_usd_per_mw_h", None),
        }

    def set_state(self, state: dict) -> None:
        self.iteration = state["iteration"]
        self.baseline_kw = state["baseline_kw"]
        if self.baseline_kw is not None:
            self._set_declaration_data()
        self.declared, self.cleared = state["declared"], state["cleared"]
        if state["prices"] is not None:
            self.prices_usd_per_mw_h = state["prices"]

    def _need_baseline(self, what: str) -> None:
        if self.baseline_kw is None:
            raise RuntimeError(f"EVCS {self.name!r}: {what}() before baseline(); the protocol must run stage 1 first")
