"""An EVCS's flexibility as sets: the virtual storage of its sessions and the adjustment band.

* :class:`VirtualStorage`: per-hour power bounds and cumulative-energy bounds, each summed
  over the sessions (the standard outer approximation of the sessions' Minkowski sum);
* :class:`Intervals`, :func:`reachable_intervals`, :func:`sample_paths`: what the
  cumulative-energy limits leave reachable hour by hour;
* :class:`AdjustmentSet`: the declared up/down band with its cumulative-energy limits;
* :func:`disaggregate`: split a station schedule among its EVs (max-flow), or None.

The EVCS agent (agents/evcs.py) builds and uses them; see docs/evcs.md. Plain NumPy and
networkx, no solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np


def session_power_caps_kw(arrival_h: np.ndarray, departure_h: np.ndarray, max_rate_kw: np.ndarray, horizon_h: int) -> np.ndarray:
    """(n, T) ``u_it``: the most session i can charge in hour t (kW, hour average)."""
    t = np.arange(horizon_h, dtype=float)
    a = np.asarray(arrival_h, dtype=float)[:, None]
    d = np.asarray(departure_h, dtype=float)[:, None]
    overlap = np.clip(np.minimum(d, t + 1.0) - np.maximum(a, t), 0.0, 1.0)
    return np.asarray(max_rate_kw, dtype=float)[:, None] * overlap


@dataclass(frozen=True)
class Intervals:
    """Forward (``f_*``) and backward (``b_*``) reachable intervals of a running sum S_t."""

    f_lo: np.ndarray
    f_hi: np.ndarray
    b_lo: np.ndarray
    b_hi: np.ndarray
    first_empty: int | None  #: first hour whose forward interval is empty (None: feasible)

    def step_range(self, step_lo: np.ndarray, step_hi: np.ndarray, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Per hour, the smallest and largest step ``S_t - S_{t-1}`` on some feasible path."""
        prev_lo = np.r_[start, self.f_lo[:-1]]
        prev_hi = np.r_[start, self.f_hi[:-1]]
        return np.maximum(step_lo, self.b_lo - prev_hi), np.minimum(step_hi, self.b_hi - prev_lo)


def reachable_intervals(
    step_lo: np.ndarray, step_hi: np.ndarray, level_lo: np.ndarray, level_hi: np.ndarray,
    start: float = 0.0, tol: float = 1e-9,
) -> Intervals:
    """Paths ``S_{-1} = start``, ``S_t - S_{t-1}`` in [step_lo, step_hi], ``S_t`` in [level_lo, level_hi].

    The set of values S_t takes on paths from the start is an interval F_t (forward
    recursion); the set from which the end is still reachable is an interval B_t
    (backward recursion). A step from S_{t-1} in F_{t-1} to S_t in B_t lies on a feasible
    path, which makes :meth:`Intervals.step_range` exact.
    """
    T = len(step_lo)
    f_lo, f_hi = np.empty(T), np.empty(T)
    lo = hi = float(start)
    first_empty = None
    for t in range(T):
        lo, hi = max(lo + step_lo[t], level_lo[t]), min(hi + step_hi[t], level_hi[t])
        if lo > hi + tol and first_empty is None:
            first_empty = t
        f_lo[t], f_hi[t] = lo, hi
    b_lo, b_hi = np.empty(T), np.empty(T)
    b_lo[-1], b_hi[-1] = level_lo[-1], level_hi[-1]
    for t in range(T - 2, -1, -1):
        b_lo[t] = max(b_lo[t + 1] - step_hi[t + 1], level_lo[t])
        b_hi[t] = min(b_hi[t + 1] - step_lo[t + 1], level_hi[t])
    return Intervals(f_lo, f_hi, b_lo, b_hi, first_empty)


def sample_paths(
    rng: np.random.Generator, n: int, step_lo: np.ndarray, step_hi: np.ndarray,
    level_lo: np.ndarray, level_hi: np.ndarray, vertex_share: float = 0.3,
) -> np.ndarray:
    """(n, T) random steps of feasible paths (see :func:`reachable_intervals`), start 0.

    Hour by hour, S_t is drawn uniformly from the values that keep the end reachable;
    with probability ``vertex_share`` it takes an end of that range instead, so that
    extreme schedules are drawn too. Every row is feasible by construction of B_t.
    """
    iv = reachable_intervals(step_lo, step_hi, level_lo, level_hi)
    if iv.first_empty is not None:
        raise ValueError(f"no feasible path: hour {iv.first_empty} is unreachable")
    T = len(step_lo)
    out = np.empty((n, T))
    for k in range(n):
        s = 0.0
        for t in range(T):
            lo = max(s + step_lo[t], iv.b_lo[t])
            hi = min(s + step_hi[t], iv.b_hi[t])
            hi = max(hi, lo)
            u = rng.random()
            if u < vertex_share / 2:
                nxt = lo
            elif u < vertex_share:
                nxt = hi
            else:
                nxt = rng.uniform(lo, hi)
            out[k, t] = nxt - s
            s = nxt
    return out


@dataclass(frozen=True)
class VirtualStorage:
    """The station as a virtual storage: hour power bounds and cumulative-energy bounds (kW, kWh).

    The standard outer approximation of the sessions' Minkowski sum (module docstring).
    """

    p_min_kw: np.ndarray
    p_max_kw: np.ndarray
    e_min_kwh: np.ndarray  #: cumulative energy at the end of hour t, lower bound
    e_max_kwh: np.ndarray  #: cumulative energy at the end of hour t, upper bound

    @property
    def horizon_h(self) -> int:
        return len(self.p_min_kw)

    @property
    def energy_kwh(self) -> float:
        return float(self.e_max_kwh[-1])

    @classmethod
    def from_sessions(
        cls, arrival_h, departure_h, energy_kwh, max_rate_kw, horizon_h: int,
        station_limit_kw: float = float("inf"),
    ) -> "VirtualStorage":
        u = session_power_caps_kw(arrival_h, departure_h, max_rate_kw, horizon_h)
        e = np.asarray(energy_kwh, dtype=float)[:, None]
        total = u.sum(axis=1, keepdims=True)
        cum = np.cumsum(u, axis=1)
        p_min = np.maximum(0.0, e - (total - u)).sum(axis=0)
        p_max = np.minimum(np.minimum(u, e).sum(axis=0), station_limit_kw)
        e_max = np.minimum(e, cum).sum(axis=0)
        e_min = np.maximum(0.0, e - (total - cum)).sum(axis=0)
        if u.shape[0] == 0:
            p_min = p_max = e_min = e_max = np.zeros(horizon_h)
        return cls(p_min, p_max, e_min, e_max)

    def intervals(self, tol: float = 1e-9) -> Intervals:
        """Reachable intervals of the cumulative energy (kWh) at the end of each hour."""
        return reachable_intervals(self.p_min_kw, self.p_max_kw, self.e_min_kwh, self.e_max_kwh, tol=tol)

    def first_violation(self, p_kw: np.ndarray, tol: float = 1e-6) -> tuple[int, str] | None:
        """The first hour where ``p_kw`` leaves the virtual storage, and how; None if inside."""
        p = np.asarray(p_kw, dtype=float)
        c = np.cumsum(p)
        for t in range(self.horizon_h):
            if p[t] < self.p_min_kw[t] - tol:
                return t, f"power {p[t]:.6g} kW below the hour's minimum {self.p_min_kw[t]:.6g} kW"
            if p[t] > self.p_max_kw[t] + tol:
                return t, f"power {p[t]:.6g} kW above the hour's maximum {self.p_max_kw[t]:.6g} kW"
            if c[t] < self.e_min_kwh[t] - tol:
                return t, f"cumulative energy {c[t]:.6g} kWh below the minimum {self.e_min_kwh[t]:.6g} kWh"
            if c[t] > self.e_max_kwh[t] + tol:
                return t, f"cumulative energy {c[t]:.6g} kWh above the maximum {self.e_max_kwh[t]:.6g} kWh"
        return None

    def contains(self, p_kw: np.ndarray, tol: float = 1e-6) -> bool:
        return self.first_violation(p_kw, tol) is None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, T) schedules drawn inside the virtual storage (:func:`sample_paths`)."""
        return sample_paths(rng, n, self.p_min_kw, self.p_max_kw, self.e_min_kwh, self.e_max_kwh)


@dataclass(frozen=True)
class AdjustmentSet:
    """A set of adjustments ``delta`` (kW): hour bounds ``[-up_kw, dn_kw]`` and cumulative limits.

    ``sum(delta[:t+1])`` lies in ``[-cum_up_kwh[t], cum_dn_kwh[t]]``.
    """

    up_kw: np.ndarray
    dn_kw: np.ndarray
    cum_up_kwh: np.ndarray
    cum_dn_kwh: np.ndarray

    def first_violation(self, delta_kw: np.ndarray, tol: float = 1e-6) -> tuple[int, str] | None:
        d = np.asarray(delta_kw, dtype=float)
        c = np.cumsum(d)
        for t in range(len(d)):
            if d[t] < -self.up_kw[t] - tol:
                return t, f"adjustment {d[t]:.6g} kW is below -up {-self.up_kw[t]:.6g} kW"
            if d[t] > self.dn_kw[t] + tol:
                return t, f"adjustment {d[t]:.6g} kW is above dn {self.dn_kw[t]:.6g} kW"
            if c[t] < -self.cum_up_kwh[t] - tol:
                return t, f"cumulative adjustment {c[t]:.6g} kWh is below -cum_up {-self.cum_up_kwh[t]:.6g} kWh"
            if c[t] > self.cum_dn_kwh[t] + tol:
                return t, f"cumulative adjustment {c[t]:.6g} kWh is above cum_dn {self.cum_dn_kwh[t]:.6g} kWh"
        return None

    def contains(self, delta_kw: np.ndarray, tol: float = 1e-6) -> bool:
        return self.first_violation(delta_kw, tol) is None

    def hour_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per hour, the smallest and largest adjustment reached by some member (exact)."""
        lo, hi = -self.up_kw, self.dn_kw
        iv = reachable_intervals(lo, hi, -self.cum_up_kwh, self.cum_dn_kwh)
        return iv.step_range(lo, hi)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, T) adjustments drawn inside the set (:func:`sample_paths`)."""
        return sample_paths(rng, n, -self.up_kw, self.dn_kw, -self.cum_up_kwh, self.cum_dn_kwh)


def disaggregate(p_kw: np.ndarray, caps_kw: np.ndarray, energy_kwh: np.ndarray, tol: float = 1e-6) -> np.ndarray | None:
    """Split an aggregate schedule among the sessions, or None when no split exists.

    A max-flow: source -> hour t (capacity ``p_kw[t]``) -> session i (``u_it``) -> sink
    (``E_i``). The schedule is deliverable exactly when the flow saturates every
    session's energy and uses all of ``p_kw``. Returns the (n, T) split (kW).
    """
    p = np.asarray(p_kw, dtype=float)
    e = np.asarray(energy_kwh, dtype=float)
    n, T = caps_kw.shape
    if np.any(p < -tol) or abs(p.sum() - e.sum()) > tol * max(1.0, T):
        return None
    g = nx.DiGraph()
    for t in range(T):
        g.add_edge("src", ("h", t), capacity=max(0.0, float(p[t])))
        for i in np.flatnonzero(caps_kw[:, t] > 0):
            g.add_edge(("h", t), ("s", int(i)), capacity=float(caps_kw[i, t]))
    for i in range(n):
        g.add_edge(("s", i), "snk", capacity=float(e[i]))
    if e.sum() <= tol:
        return np.zeros((n, T))
    value, flow = nx.maximum_flow(g, "src", "snk")
    if value < e.sum() - tol * max(1.0, n):
        return None
    x = np.zeros((n, T))
    for t in range(T):
        for node, f in flow.get(("h", t), {}).items():
            x[node[1], t] = f
    return x
