"""Seeded wind scenarios around a day-ahead forecast, and their Wasserstein distances.

Error model (one agent's farms ``w = 1..n``, hours ``t = 0..T-1``). The available wind
of scenario ``k`` is

    xi_k[w, t] = clip(W[w, t] + C_w e_k[w, t], 0, C_w)

with ``W`` the forecast (MW), ``C_w`` the installed capacity (MW) and ``e`` a forecast
error in shares of capacity, a stationary Gaussian AR(1) path per farm:

    e[., 0] ~ N(0, S),   e[., t] = phi e[., t-1] + sqrt(1 - phi^2) eta_t,   eta_t ~ N(0, S),
    S = sigma^2 ((1 - rho) I + rho 1 1')

so every hour's error has standard deviation ``sigma`` (``error_std``), the hour-to-hour
correlation is ``phi`` (``error_ar1``) and any two farms of the same agent are correlated
with ``rho`` (``farm_correlation``: one common weather factor plus an independent
part per farm, ``eta = sigma (sqrt(rho) z_common + sqrt(1 - rho) z_farm)``). Clipping at
0 and at capacity makes the realised error smaller than ``sigma`` where the forecast sits
near either bound. Scenarios of different agents come from different generators, so the
TSO's and each DSO's scenarios (and ambiguity sets) are independent (MODELS.md section 1).

The distance between scenarios is :func:`agents.wasserstein.scenario_distances_mw`: the
2-norm over hours of the difference of the agent's total available wind (MW). For two
independent unclipped paths it is about ``sqrt(2 T) sigma sqrt(c' R c)`` with ``c`` the
capacities and ``R`` the farm correlation matrix. :func:`distance_statistics` reports the
median pairwise distance and ``mean_i d(i, j)``, the transport cost from the empirical
distribution to the point mass on scenario ``j``: a ball of radius ``eps`` contains that
point mass exactly when ``eps >= mean_i d(i, j)``, and contains every distribution on the
scenarios when ``eps >= max_j mean_i d(i, j)`` (Wasserstein distance is convex in the
second distribution). A radius is meaningful between 0 and those thresholds.

Penetration (:func:`penetration_scale`): the factors that bring the forecast wind energy
to a target share of the load energy, scaling every farm ("all") or only the TSO's
("transmission"). :func:`check_feeder_export` refuses feeder wind that must overload a
feeder branch at the forecast whatever the EVs do.

Glossary: ``forecast_mw`` -> W (the day-ahead forecast), ``capacity_mw`` -> C,
``scenarios_mw`` -> xi_k (the K empirical scenarios), ``error_std`` -> sigma,
``error_ar1`` -> phi, ``farm_correlation`` -> rho.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.wasserstein import scenario_distances_mw
from networks.feeder import Feeder

from .errors import ScenarioError

#: Which farms a wind-penetration target scales (scenarios.tso_dso_evcs.RobustSettings.wind_scaling).
WIND_SCALING = ("all", "transmission")


def ar1_errors(
    rng: np.random.Generator,
    n_scenarios: int,
    n_farms: int,
    horizon_h: int,
    error_std: float,
    error_ar1: float,
    farm_correlation: float,
) -> np.ndarray:
    """(K, n_farms, T) stationary AR(1) errors in shares of capacity (model in the module docstring)."""
    K, n, T = n_scenarios, n_farms, horizon_h

    def innovation() -> np.ndarray:  # (K, n): common factor plus farm part, std error_std
        common = rng.standard_normal((K, 1))
        own = rng.standard_normal((K, n))
        return error_std * (np.sqrt(farm_correlation) * common + np.sqrt(1.0 - farm_correlation) * own)

    e = np.empty((K, n, T))
    e[:, :, 0] = innovation()
    scale = np.sqrt(1.0 - error_ar1**2)
    for t in range(1, T):
        e[:, :, t] = error_ar1 * e[:, :, t - 1] + scale * innovation()
    return e


def wind_scenarios_mw(
    rng: np.random.Generator,
    forecast_mw: np.ndarray,
    capacity_mw: np.ndarray,
    n_scenarios: int,
    error_std: float,
    error_ar1: float,
    farm_correlation: float,
) -> np.ndarray:
    """(K, n_farms, T) available wind: ``clip(forecast + capacity * e, 0, capacity)``."""
    W = np.asarray(forecast_mw, dtype=float)
    C = np.asarray(capacity_mw, dtype=float).reshape(-1)
    n, T = W.shape
    if C.size != n:
        raise ValueError(f"capacity_mw has {C.size} farms but forecast_mw has {n}; give one capacity per farm")
    if n == 0:
        return np.zeros((n_scenarios, 0, T))
    e = ar1_errors(rng, n_scenarios, n, T, error_std, error_ar1, farm_correlation)
    cap = C[None, :, None]
    return np.clip(W[None, :, :] + cap * e, 0.0, cap)


@dataclass(frozen=True)
class DistanceStats:
    """Scenario distances of one agent (MW, :func:`agents.wasserstein.scenario_distances_mw`)."""

    median_mw: float  #: median over pairs i < j of d(i, j)
    point_mass_min_mw: float  #: min_j mean_i d(i, j): smallest radius whose ball holds some point mass
    point_mass_max_mw: float  #: max_j mean_i d(i, j): radius from which the ball holds every distribution

    def describe(self, radius: float) -> str:
        share = radius / self.median_mw if self.median_mw > 0 else float("inf")
        return (
            f"median pairwise distance {self.median_mw:.3g} MW (radius {radius:g} = {share:.2f} of it); "
            f"point masses reached from {self.point_mass_min_mw:.3g} MW, every distribution from "
            f"{self.point_mass_max_mw:.3g} MW"
        )


def distance_statistics(scenarios_mw: np.ndarray) -> DistanceStats:
    """Median pairwise distance and the point-mass thresholds of a scenario set (K >= 2)."""
    d = scenario_distances_mw(scenarios_mw)
    K = d.shape[0]
    iu = np.triu_indices(K, 1)
    reach = d.mean(axis=0)  # mean_i d(i, j), d(j, j) = 0 included with weight 1/K
    return DistanceStats(float(np.median(d[iu])) if K > 1 else 0.0, float(reach.min()), float(reach.max()))


def penetration_scale(
    target: float | None, scaling: str, name: str, load_mwh: float, wind_tso_mwh: float, wind_dso_mwh: float
) -> tuple[float, float]:
    """Factors (TSO farms, feeder farms) that bring forecast wind / load energy to ``target`` (None: 1, 1)."""
    if target is None:
        return 1.0, 1.0
    target_mwh = target * load_mwh
    if scaling == "all":
        if wind_tso_mwh + wind_dso_mwh <= 0:
            raise ScenarioError(
                f"RobustSettings.wind_penetration = {target!r}: scenario {name!r} has no wind to scale; "
                "leave wind_penetration None"
            )
        f = target_mwh / (wind_tso_mwh + wind_dso_mwh)
        return f, f
    if wind_tso_mwh <= 0 or target_mwh <= wind_dso_mwh:
        raise ScenarioError(
            f"RobustSettings.wind_penetration = {target!r} with wind_scaling 'transmission': scenario {name!r}'s "
            f"feeder wind alone gives {wind_dso_mwh / load_mwh:.3g} of the load energy and its TSO has "
            f"{wind_tso_mwh:.4g} MWh of wind to scale; give a larger target or wind_scaling 'all'"
        )
    return (target_mwh - wind_dso_mwh) / wind_tso_mwh, 1.0


def subtree_matrix(feeder: Feeder) -> np.ndarray:
    """(n_branch, n_bus): 1 where the bus lies below the branch (its end bus included)."""
    m = np.zeros((feeder.n_branch, feeder.n_bus))
    parent_branch = feeder.parent_branch
    for b in range(feeder.n_bus):
        k = b
        while parent_branch[k] >= 0:
            m[parent_branch[k], b] = 1.0
            k = int(feeder.branch_from[parent_branch[k]])
    return m


def check_feeder_export(
    dso_name: str, i: int, feeder: Feeder, load_p_mw: np.ndarray, wind_bus: np.ndarray, forecast_mw: np.ndarray,
    ev_bus: list[int], ev_peak_mw: list[np.ndarray], target: float | None,
) -> None:
    """Refuse feeder wind that must overload a branch at the forecast even with every EV at its peak.

    Lossless LinDistFlow: a branch carries the net demand of the buses below it, so
    ``sum below (wind - load - EV peak) > rating`` overloads it whatever the EVs do (the
    apparent power is at least the active power). ``ev_bus`` are bus positions,
    ``ev_peak_mw`` each station's (T,) peak possible draw.
    """
    export = -np.asarray(load_p_mw, dtype=float).copy()
    np.add.at(export, np.asarray(wind_bus, dtype=int), np.asarray(forecast_mw, dtype=float))
    for b, peak in zip(ev_bus, ev_peak_mw):
        export[b] -= peak
    flow = subtree_matrix(feeder) @ export  # (n_branch, T) MW towards the substation
    over = flow - feeder.branch_rating_mva[:, None]
    if np.all(over <= 1e-9):
        return
    l, t = np.unravel_index(int(np.argmax(over)), over.shape)
    bus = int(feeder.bus_ids[feeder.branch_to[l]])
    field_name = (f"RobustSettings.wind_penetration = {target!r}" if target is not None
                  else f"feeders[{i}].wind (the scenario's own wind)")
    raise ScenarioError(
        f"{field_name}: on feeder {dso_name} the branch to bus {bus} would carry {flow[l, t]:.3g} MW back towards "
        f"the substation in hour {t} at the wind forecast (feeder wind minus load minus every EV at its peak), "
        f"above its rating of {feeder.branch_rating_mva[l]:.3g} MVA; choose a lower wind_penetration, or "
        "wind_scaling 'transmission' to keep the feeders' wind as built"
    )
