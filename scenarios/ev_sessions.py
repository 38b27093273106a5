"""EV charging sessions: a seeded generator and a loader for ACN-Data-style JSON records.

A session is an EV's visit to a station: arrival and departure (hours from the start of
the modelled day), the energy it must receive (kWh) and its maximum charging rate (kW).
:func:`evcs_data` turns a station's sessions into the private data of an
:class:`agents.evcs.EVCSAgent`.

**Generator** (:func:`generate_station_sessions`, defaults in :class:`EVSessionConfig`).
Per station and day, all draws from the ``numpy.random.Generator`` handed in:

* number of sessions ~ Poisson(``sessions_per_station_mean`` = 40);
* kind: workplace with probability ``workplace_share`` = 0.65, else visitor;
* workplace: arrival ~ Normal(8.5 h, 1.25 h) clipped to [5, 13] h, stay ~ Normal(8 h,
  1.75 h) clipped to [3, 12] h;
* visitor: arrival ~ Uniform(9, 21) h, stay ~ Normal(2.5 h, 1 h) clipped to [0.75, 6] h;
* departure = min(arrival + stay, horizon); both rounded to ``time_step_h`` = 0.25 h;
* maximum rate: 3.3, 6.6 or 7.2 kW with probabilities 0.15, 0.65, 0.20 (single-phase
  Level-2 chargers and on-board chargers);
* energy ~ LogNormal(median 9 kWh, log-std 0.55), then clipped to
  [0.5 kWh, ``max_energy_share`` x rate x stay] with ``max_energy_share`` = 0.85, so that
  every EV leaves the station some slack (laxity) to shift its charging.

The shape follows published summaries of the Caltech ACN-Data workplace site (morning
arrivals, stays of about a working day, about 10 kWh per session; Lee, Li and Low,
"ACN-Data", ACM e-Energy 2019); the numbers are the project's own choice, not a fit.
docs/evcs.md lists the statistics measured on 2,000 generated stations.

**ACN-Data loader** (:func:`load_acn_sessions`). Accepts the JSON that the ACN-Data API
returns for sessions: an object with an ``"_items"`` list, or a bare list of records.
Each record needs ``connectionTime`` and ``disconnectTime`` (RFC 1123 as the API writes
them, ``"Wed, 25 Apr 2018 11:08:04 GMT"``, or ISO 8601 with an offset) and
``kWhDelivered`` (kWh >= 0). The maximum rate is read from an optional ``"maxRateKW"``
(kW): ACN-Data session records carry no rate field (the rate belongs to the charger), so
records without one get ``default_max_rate_kw`` (6.6 kW: 32 A at 208 V, the Caltech
Level-2 chargers). Times are converted to the record's ``"timezone"`` (an IANA name;
UTC when absent) and counted in hours from local midnight of ``day`` (default: the
local date of the earliest connection). A session that reaches outside ``[0, horizon]``
is clipped to it and its energy scaled by the share of its stay inside (charging spread
evenly over the stay); one entirely outside is left out and listed. Malformed records
raise :class:`scenarios.errors.ScenarioError` naming the source, the record index and
sessionID, the field, and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import numbers
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from agents.evcs import EVCSConfig, EVCSData, EVCSInputError, check_sessions

from .errors import ScenarioError


@dataclass(frozen=True)
class EVSession:
    """One EV's visit: hours from the day's start, energy to deliver, maximum rate."""

    arrival_h: float
    departure_h: float
    energy_kwh: float
    max_rate_kw: float
    session_id: str = ""


@dataclass(frozen=True)
class EVSessionConfig:
    """Statistics of the session generator; every default is set once here."""

    horizon_h: int = 24  #: hours in the modelled day; departures are clipped to it
    sessions_per_station_mean: float = 40.0  #: mean of the Poisson number of sessions per station and day
    workplace_share: float = 0.65  #: probability that a session is of the workplace kind (else visitor)
    workplace_arrival_mean_h: float = 8.5  #: mean arrival of workplace sessions (h)
    workplace_arrival_std_h: float = 1.25  #: standard deviation of workplace arrivals (h)
    workplace_arrival_range_h: tuple[float, float] = (5.0, 13.0)  #: workplace arrivals are clipped to this range
    workplace_stay_mean_h: float = 8.0  #: mean stay of workplace sessions (h)
    workplace_stay_std_h: float = 1.75  #: standard deviation of workplace stays (h)
    workplace_stay_range_h: tuple[float, float] = (3.0, 12.0)  #: workplace stays are clipped to this range
    visitor_arrival_range_h: tuple[float, float] = (9.0, 21.0)  #: visitor arrivals are uniform on this range
    visitor_stay_mean_h: float = 2.5  #: mean stay of visitor sessions (h)
    visitor_stay_std_h: float = 1.0  #: standard deviation of visitor stays (h)
    visitor_stay_range_h: tuple[float, float] = (0.75, 6.0)  #: visitor stays are clipped to this range
    rate_choices_kw: tuple[float, ...] = (3.3, 6.6, 7.2)  #: maximum charging rates an EV may have (kW)
    rate_weights: tuple[float, ...] = (0.15, 0.65, 0.20)  #: probability of each rate
    energy_median_kwh: float = 9.0  #: median of the log-normal energy draw (kWh)
    energy_log_std: float = 0.55  #: standard deviation of log(energy)
    energy_min_kwh: float = 0.5  #: smallest energy of a session (kWh)
    max_energy_share: float = 0.85  #: energy is capped at this share of rate x stay (leaves the EV slack)
    time_step_h: float = 0.25  #: arrivals and departures are rounded to this step (h)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ScenarioError(f"EVSessionConfig.{name} = {getattr(self, name)!r}; {what}")

        need(isinstance(self.horizon_h, (int, np.integer)) and self.horizon_h >= 1, "horizon_h", "give a whole number of hours >= 1")
        need(self.sessions_per_station_mean >= 0, "sessions_per_station_mean", "give a mean >= 0")
        need(0 <= self.workplace_share <= 1, "workplace_share", "give a probability in [0, 1]")
        for name in ("workplace_arrival_range_h", "workplace_stay_range_h", "visitor_arrival_range_h", "visitor_stay_range_h"):
            lo, hi = getattr(self, name)
            need(0 <= lo <= hi, name, "give (low, high) with 0 <= low <= high")
        need(self.workplace_stay_range_h[0] > 0 and self.visitor_stay_range_h[0] > 0, "visitor_stay_range_h",
             "stays must be positive (check workplace_stay_range_h too)")
        need(self.visitor_arrival_range_h[0] < self.horizon_h and self.workplace_arrival_range_h[0] < self.horizon_h,
             "visitor_arrival_range_h", "arrivals must start inside the horizon (check workplace_arrival_range_h too)")
        for name in ("workplace_arrival_std_h", "workplace_stay_std_h", "visitor_stay_std_h", "energy_log_std"):
            need(getattr(self, name) >= 0, name, "give a standard deviation >= 0")
        need(len(self.rate_choices_kw) > 0 and all(r > 0 for r in self.rate_choices_kw), "rate_choices_kw",
             "give positive rates in kW")
        need(len(self.rate_weights) == len(self.rate_choices_kw) and all(w >= 0 for w in self.rate_weights)
             and sum(self.rate_weights) > 0, "rate_weights", "give one weight >= 0 per rate, not all zero")
        need(self.energy_median_kwh > 0 and self.energy_min_kwh >= 0, "energy_median_kwh", "energies must be positive")
        need(0 < self.max_energy_share <= 1, "max_energy_share", "give a share in (0, 1]")
        need(0 < self.time_step_h <= 1, "time_step_h", "give a step in (0, 1] h")


def generate_station_sessions(rng: np.random.Generator, config: EVSessionConfig = EVSessionConfig()) -> tuple[EVSession, ...]:
    """One station's sessions for one day (statistics in the module docstring)."""
    c = config
    n = int(rng.poisson(c.sessions_per_station_mean))
    work = rng.random(n) < c.workplace_share
    arr_w = np.clip(rng.normal(c.workplace_arrival_mean_h, c.workplace_arrival_std_h, n), *c.workplace_arrival_range_h)
    stay_w = np.clip(rng.normal(c.workplace_stay_mean_h, c.workplace_stay_std_h, n), *c.workplace_stay_range_h)
    arr_v = rng.uniform(*c.visitor_arrival_range_h, n)
    stay_v = np.clip(rng.normal(c.visitor_stay_mean_h, c.visitor_stay_std_h, n), *c.visitor_stay_range_h)
    weights = np.asarray(c.rate_weights, dtype=float)
    rate = rng.choice(np.asarray(c.rate_choices_kw, dtype=float), size=n, p=weights / weights.sum())
    energy = c.energy_median_kwh * np.exp(rng.normal(0.0, c.energy_log_std, n))

    step = c.time_step_h
    last_arrival = c.horizon_h - step
    arrival = np.clip(np.round(np.where(work, arr_w, arr_v) / step) * step, 0.0, last_arrival)
    stay = np.maximum(np.round(np.where(work, stay_w, stay_v) / step) * step, step)
    departure = np.minimum(arrival + stay, float(c.horizon_h))
    cap = c.max_energy_share * rate * (departure - arrival)
    energy = np.minimum(np.maximum(energy, c.energy_min_kwh), cap)
    return tuple(
        EVSession(float(a), float(d), float(e), float(r), f"gen-{k}")
        for k, (a, d, e, r) in enumerate(zip(arrival, departure, energy, rate))
    )


def generate_sessions(
    rng: np.random.Generator, n_stations: int, config: EVSessionConfig = EVSessionConfig()
) -> tuple[tuple[EVSession, ...], ...]:
    """Sessions of ``n_stations`` stations, drawn one station after another from ``rng``."""
    if n_stations < 0:
        raise ScenarioError(f"n_stations = {n_stations}; give a count >= 0")
    return tuple(generate_station_sessions(rng, config) for _ in range(n_stations))


def session_statistics(sessions: Sequence[EVSession], horizon_h: int = 24) -> dict:
    """Summary numbers of a set of sessions (used by the tests and docs/evcs.md)."""
    if not sessions:
        return {"sessions": 0}
    a = np.array([s.arrival_h for s in sessions])
    d = np.array([s.departure_h for s in sessions])
    e = np.array([s.energy_kwh for s in sessions])
    r = np.array([s.max_rate_kw for s in sessions])
    from agents.evcs import session_power_caps_kw

    caps = session_power_caps_kw(a, d, r, horizon_h)
    return {
        "sessions": len(sessions),
        "arrival_mean_h": float(a.mean()),
        "stay_mean_h": float((d - a).mean()),
        "energy_mean_kwh": float(e.mean()),
        "energy_median_kwh": float(np.median(e)),
        "rate_mean_kw": float(r.mean()),
        "laxity_mean": float(np.mean(1.0 - e / (r * (d - a)))),
        "plugged_in_peak_kw": float(caps.sum(axis=0).max()),
    }


def clip_to_horizon(session: EVSession, horizon_h: float) -> EVSession | None:
    """The part of ``session`` inside ``[0, horizon_h]``, its energy scaled by the share of its stay there."""
    a, d = max(session.arrival_h, 0.0), min(session.departure_h, float(horizon_h))
    if d <= a:
        return None
    if a == session.arrival_h and d == session.departure_h:
        return session
    share = (d - a) / (session.departure_h - session.arrival_h)
    return EVSession(a, d, session.energy_kwh * share, session.max_rate_kw, session.session_id)


@dataclass(frozen=True)
class LoadedSessions:
    """What :func:`load_acn_sessions` read: the sessions, and which records it clipped or left out."""

    sessions: tuple[EVSession, ...]
    day: dt.date  #: the local date whose midnight is hour 0
    clipped: tuple[int, ...]  #: record indices clipped to the horizon (energy scaled)
    outside: tuple[int, ...]  #: record indices entirely outside the horizon (left out)


#: Fields every ACN-Data session record must have.
ACN_REQUIRED_FIELDS = ("connectionTime", "disconnectTime", "kWhDelivered")
#: Optional per-record maximum rate (kW); ACN-Data itself has none.
ACN_RATE_FIELD = "maxRateKW"
#: Maximum rate of a record without ``maxRateKW``: 32 A at 208 V (Caltech ACN Level-2 chargers).
ACN_DEFAULT_MAX_RATE_KW = 6.6


def load_acn_sessions(
    source: str | Path | list | dict,
    *,
    horizon_h: int = 24,
    day: dt.date | None = None,
    default_max_rate_kw: float = ACN_DEFAULT_MAX_RATE_KW,
    station_id: str | None = None,
) -> LoadedSessions:
    """Sessions from ACN-Data-style JSON (a file path, or the parsed JSON); see the module docstring.

    ``station_id`` keeps only the records of that ``stationID``.
    """
    label, records = _acn_records(source)
    if not default_max_rate_kw > 0:
        raise ScenarioError(f"default_max_rate_kw = {default_max_rate_kw!r}; give a positive rate in kW")
    parsed = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ScenarioError(f"{label}: record {i} is a {type(rec).__name__}; each record must be a JSON object")
        if station_id is not None and rec.get("stationID") != station_id:
            continue
        parsed.append((i, *_parse_record(label, i, rec, default_max_rate_kw)))
    if not parsed:
        return LoadedSessions((), day or dt.date(1970, 1, 1), (), ())
    if day is None:
        day = min(conn.astimezone(tz).date() for _, conn, _, _, _, tz, _ in parsed)
    sessions, clipped, outside = [], [], []
    for i, conn, disc, energy, rate, tz, sid in parsed:
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
        a = (conn - midnight).total_seconds() / 3600.0
        d = (disc - midnight).total_seconds() / 3600.0
        s = clip_to_horizon(EVSession(a, d, energy, rate, sid), horizon_h)
        if s is None:
            outside.append(i)
            continue
        if s.arrival_h != a or s.departure_h != d:
            clipped.append(i)
        sessions.append(s)
    return LoadedSessions(tuple(sessions), day, tuple(clipped), tuple(outside))


def _acn_records(source: str | Path | list | dict) -> tuple[str, list]:
    if isinstance(source, (str, Path)):
        label = str(source)
        try:
            data = json.loads(Path(source).read_text())
        except OSError as exc:
            raise ScenarioError(f"{label}: cannot read the session file ({exc.strerror}); check the path") from None
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{label}: not valid JSON (line {exc.lineno}: {exc.msg}); fix the file") from None
    else:
        label, data = "ACN records", source
    if isinstance(data, dict):
        if "_items" not in data:
            raise ScenarioError(
                f"{label}: a JSON object without '_items'; give the ACN-Data API response or a list of session records"
            )
        data = data["_items"]
    if not isinstance(data, list):
        raise ScenarioError(f"{label}: expected a list of session records, got {type(data).__name__}")
    return label, data


def _parse_record(label: str, i: int, rec: dict, default_rate: float):
    sid = str(rec.get("sessionID", ""))
    at = f"{label}: record {i}" + (f" (sessionID {sid!r})" if sid else "")
    for name in ACN_REQUIRED_FIELDS:
        if rec.get(name) is None:
            raise ScenarioError(f"{at}: field {name!r} is missing; every record needs {', '.join(ACN_REQUIRED_FIELDS)}")
    tz_name = rec.get("timezone") or "UTC"
    try:
        tz = ZoneInfo(str(tz_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScenarioError(f"{at}: field 'timezone' is {tz_name!r}, not a known IANA time zone; use e.g. 'America/Los_Angeles'") from None
    conn = _parse_time(at, "connectionTime", rec["connectionTime"])
    disc = _parse_time(at, "disconnectTime", rec["disconnectTime"])
    energy = _number(at, "kWhDelivered", rec["kWhDelivered"])
    if energy < 0:
        raise ScenarioError(f"{at}: field 'kWhDelivered' is {energy:g} (negative); energy must be >= 0: fix or drop the record")
    rate = default_rate
    if rec.get(ACN_RATE_FIELD) is not None:
        rate = _number(at, ACN_RATE_FIELD, rec[ACN_RATE_FIELD])
        if rate <= 0:
            raise ScenarioError(f"{at}: field {ACN_RATE_FIELD!r} is {rate:g}; give the positive maximum rate in kW")
    if disc <= conn:
        raise ScenarioError(
            f"{at}: field 'disconnectTime' ({rec['disconnectTime']}) is not after 'connectionTime' "
            f"({rec['connectionTime']}); the EV must leave after it arrives: fix or drop the record"
        )
    stay_h = (disc - conn).total_seconds() / 3600.0
    if energy > rate * stay_h + 1e-9:
        raise ScenarioError(
            f"{at}: field 'kWhDelivered' = {energy:g} kWh is more than the maximum rate x stay = {rate:g} kW x "
            f"{stay_h:.4g} h = {rate * stay_h:.4g} kWh; give the record a '{ACN_RATE_FIELD}' field (kW) or pass "
            "a larger default_max_rate_kw"
        )
    return conn, disc, energy, rate, tz, sid


def _parse_time(at: str, name: str, value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise ScenarioError(f"{at}: field {name!r} is {value!r}; give a time string such as 'Wed, 25 Apr 2018 11:08:04 GMT'")
    try:
        t = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ScenarioError(
                f"{at}: field {name!r} is {value!r}, not a time; use RFC 1123 ('Wed, 25 Apr 2018 11:08:04 GMT') "
                "or ISO 8601 with an offset"
            ) from None
    if t is None or t.tzinfo is None:
        raise ScenarioError(f"{at}: field {name!r} is {value!r} without a time zone; add 'GMT' or a UTC offset")
    return t


def _number(at: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ScenarioError(f"{at}: field {name!r} is {value!r}; give a finite number")
    return float(value)


def evcs_data(
    name: str,
    dso_name: str,
    bus: int,
    sessions: Sequence[EVSession],
    horizon_h: int = 24,
    config: EVCSConfig = EVCSConfig(),
) -> EVCSData:
    """A station's private agent data from its sessions; bad sessions raise :class:`ScenarioError`."""
    try:
        return EVCSData(
            name=name,
            dso_name=dso_name,
            bus=bus,
            arrival_h=np.array([s.arrival_h for s in sessions], dtype=float),
            departure_h=np.array([s.departure_h for s in sessions], dtype=float),
            energy_kwh=np.array([s.energy_kwh for s in sessions], dtype=float),
            max_rate_kw=np.array([s.max_rate_kw for s in sessions], dtype=float),
            horizon_h=horizon_h,
            config=config,
        )
    except EVCSInputError as exc:
        raise ScenarioError(str(exc)) from None


def validate_sessions(sessions: Sequence[EVSession], horizon_h: int = 24, where: str = "sessions") -> None:
    """Raise :class:`ScenarioError` at the first bad session (negative energy, departure
    before arrival, energy above rate x stay, outside the horizon)."""
    try:
        check_sessions(
            np.array([s.arrival_h for s in sessions], dtype=float),
            np.array([s.departure_h for s in sessions], dtype=float),
            np.array([s.energy_kwh for s in sessions], dtype=float),
            np.array([s.max_rate_kw for s in sessions], dtype=float),
            horizon_h,
            where=where,
        )
    except EVCSInputError as exc:
        raise ScenarioError(str(exc)) from None
