"""Inputs of the robust DSO: data validation, the stations' messages, the stage-1 feeder check.

Split from agents/dso_robust.py (MODELS.md section 1, "DSO", stages 1 and 2). Every bad
field gets one message naming it and what to do; a feeder that cannot carry the forecast
raises :class:`agents.dso_recourse.DSOInfeasibleError` naming the DSO, the hour (period) and
the bus.
"""

from __future__ import annotations

import numpy as np

from agents.common import incidence_columns
from agents.dso_recourse import Declarations, DSOInfeasibleError
from agents.robust_data import DSORobustData
from coordination.evcs_messages import DeclaredCapacity


def declarations_from_messages(data: DSORobustData, messages: list) -> Declarations:
    """The stations' declarations as (E, T) arrays, in ``data.evcs_names`` order; checks them."""
    T, names = data.horizon_h, data.evcs_names
    by_sender = {m.sender: m for m in messages if isinstance(m, DeclaredCapacity)}
    missing = [n for n in names if n not in by_sender]
    if missing:
        raise ValueError(f"DSO {data.name!r}: no DeclaredCapacity from station(s) {missing}; every station on the feeder must answer")
    arrays = {}
    for field_name in ("up_mw", "dn_mw", "cum_up_mwh", "cum_dn_mwh"):
        rows = []
        for n in names:
            a = np.asarray(getattr(by_sender[n], field_name), dtype=float).reshape(-1)
            if a.size != T:
                raise ValueError(
                    f"DSO {data.name!r}: DeclaredCapacity.{field_name} from {n!r} has {a.size} values; send one per hour ({T})"
                )
            bad = np.flatnonzero(~np.isfinite(a) | (a < 0))
            if bad.size:
                raise ValueError(
                    f"DSO {data.name!r}: DeclaredCapacity.{field_name}[{bad[0]}] from {n!r} is {a[bad[0]]!r}; "
                    "declared capacities and cumulative limits must be finite and >= 0"
                )
            rows.append(a)
        arrays[field_name] = np.vstack(rows) if rows else np.zeros((0, T))
    if data.flexibility == "none":
        return Declarations.zeros(len(names), T)
    return Declarations(arrays["up_mw"], arrays["dn_mw"], arrays["cum_up_mwh"], arrays["cum_dn_mwh"])


def boundary_baseline_mw(data: DSORobustData, baselines_mw: np.ndarray) -> np.ndarray:
    """P0_t = sum loads + sum EV baselines - sum wind forecast (lossless root injection)."""
    return data.load_p_mw.sum(axis=0) + np.asarray(baselines_mw).sum(axis=0) - data.wind_forecast_mw.sum(axis=0)


def validate_dso_robust_data(data: DSORobustData) -> None:
    """Shapes and ranges of a DSO's data; one clear message per bad field."""
    where = f"DSORobustData {data.name!r}"
    f, T = data.feeder, data.horizon_h
    n, E, W = f.n_bus, len(data.evcs_bus), len(data.wind_bus)

    def need(ok: bool, field_name: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{where}: {field_name} {what}")

    need(np.shape(data.load_p_mw) == (n, T), "load_p_mw", f"has shape {np.shape(data.load_p_mw)}; give (n_bus={n}, T)")
    need(np.shape(data.load_q_mvar) == (n, T), "load_q_mvar", f"has shape {np.shape(data.load_q_mvar)}; give ({n}, {T})")
    need(np.all(np.isfinite(data.load_p_mw)) and np.all(np.asarray(data.load_p_mw) >= 0), "load_p_mw",
         "must be finite and >= 0")
    need(np.shape(data.wind_forecast_mw) == (W, T), "wind_forecast_mw",
         f"has shape {np.shape(data.wind_forecast_mw)}; give (n_wind={W}, T={T})")
    xi = np.asarray(data.wind_scenarios_mw)
    need(xi.ndim == 3 and xi.shape[1:] == (W, T) and xi.shape[0] >= 1, "wind_scenarios_mw",
         f"has shape {xi.shape}; give (K >= 1, n_wind={W}, T={T})")
    need(bool(np.all(np.isfinite(xi)) and np.all(xi >= 0)), "wind_scenarios_mw", "must be finite and >= 0")
    need(E >= 1 and len(data.evcs_names) == E, "evcs_names/evcs_bus",
         f"give one bus per station and at least one station (got {len(data.evcs_names)} names, {E} buses)")
    for name, pos in (("evcs_bus", data.evcs_bus), ("wind_bus", data.wind_bus)):
        pos = np.asarray(pos)
        need(pos.size == 0 or (pos.min() >= 0 and pos.max() < n), name, f"holds positions outside 0..{n - 1}; use feeder.bus_index(bus)")
    for name in ("incentive_up_usd_per_mw_h", "incentive_dn_usd_per_mw_h"):
        a = np.asarray(getattr(data, name), dtype=float)
        need(a.shape == (T,) and bool(np.all(np.isfinite(a)) and np.all(a >= 0)), name, f"has shape {a.shape}; give {T} finite prices >= 0")
    for name in ("boundary_limit_mw", "voll_usd_per_mwh", "curtailment_usd_per_mwh", "violation_usd_per_mwh",
                 "voltage_slack_usd_per_pu2"):
        v = getattr(data, name)
        need(bool(np.isfinite(v) and v > 0), name, f"= {v!r}; give a finite number > 0")
    need(data.flexibility in ("both", "dso", "none"), "flexibility", f"= {data.flexibility!r}; choose 'both', 'dso' or 'none'")
    data.uncertainty.validate(where + ".uncertainty", T)
    data.ccg.validate(where + ".ccg")
    eb = data.evaluation_budget_h
    need(isinstance(eb, (int, np.integer)) and 0 <= eb <= T, "evaluation_budget_h", f"= {eb!r}; give whole hours 0..{T}")


def check_forecast(data: DSORobustData, baselines_mw: np.ndarray) -> None:
    """Stage 1: LinDistFlow at the wind forecast with the EV baselines; raise at the first
    hour with a voltage or branch limit violated, or a boundary draw beyond the substation limit."""
    from networks.lindistflow import lindistflow

    f, T = data.feeder, data.horizon_h
    n = f.n_bus
    ev = incidence_columns(data.evcs_bus, n) @ np.asarray(baselines_mw, float)
    wind = incidence_columns(data.wind_bus, n) @ np.asarray(data.wind_forecast_mw, float)
    p = np.asarray(data.load_p_mw, float) + ev - wind
    q = np.asarray(data.load_q_mvar, float)
    res = lindistflow(f, p, q, data.v_root_pu)
    v = res.v_pu
    rating = np.asarray(f.branch_rating_mva, float)[:, None]
    P, Q = res.p_branch_mw, res.q_branch_mvar
    over = (np.maximum(np.abs(P), np.abs(Q)) > rating + 1e-9) | (np.abs(P) + np.abs(Q) > np.sqrt(2) * rating + 1e-9)
    for t in range(T):
        demand = f"feeder load {data.load_p_mw[:, t].sum():.3g} MW, EV baselines {np.sum(baselines_mw[:, t]):.3g} MW, " \
                 f"wind forecast {data.wind_forecast_mw[:, t].sum():.3g} MW"
        low = np.flatnonzero(v[1:, t] < f.v_min_pu - 1e-9) + 1
        if low.size:
            b = int(low[np.argmin(v[low, t])])
            raise DSOInfeasibleError(
                data.name, t,
                f"at the wind forecast the LinDistFlow voltage at bus {f.bus_ids[b]} is {v[b, t]:.4f} pu, below "
                f"v_min {f.v_min_pu} pu ({demand}): the loads and EV baselines are too large for this feeder",
                bus=int(f.bus_ids[b]),
            )
        high = np.flatnonzero(v[1:, t] > f.v_max_pu + 1e-9) + 1
        if high.size:
            b = int(high[np.argmax(v[high, t])])
            raise DSOInfeasibleError(
                data.name, t,
                f"at the wind forecast the LinDistFlow voltage at bus {f.bus_ids[b]} is {v[b, t]:.4f} pu, above "
                f"v_max {f.v_max_pu} pu ({demand}): the wind is too large for the load at this hour",
                bus=int(f.bus_ids[b]),
            )
        hot = np.flatnonzero(over[:, t])
        if hot.size:
            k = int(hot[0])
            raise DSOInfeasibleError(
                data.name, t,
                f"at the wind forecast branch {f.bus_ids[f.branch_from[k]]}-{f.bus_ids[f.branch_to[k]]} carries "
                f"P {P[k, t]:.3g} MW, Q {Q[k, t]:.3g} Mvar, beyond its rating {rating[k, 0]:.3g} MVA ({demand})",
                bus=int(f.bus_ids[f.branch_to[k]]),
            )
        p0 = p[:, t].sum()
        if abs(p0) > data.boundary_limit_mw:
            raise DSOInfeasibleError(
                data.name, t,
                f"the boundary baseline {p0:.3g} MW exceeds the substation limit {data.boundary_limit_mw:g} MW ({demand})",
                bus=int(f.bus_ids[0]),
            )
