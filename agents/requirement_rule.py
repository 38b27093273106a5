"""An upper bound on the worst TSO requirement from the best pattern-additive recourse rule (an LP).

The requirement MILP (:mod:`agents.requirement_milp`) seldom proves "no pattern beats the bar" on
T118D10 feeders within ``MIP_TIME_LIMIT_S`` (its McCormick big-M is the violation penalty, the bands
are a few kW), and the superposition bound (:mod:`agents.requirement_bound`) takes the single-hour
LP responses as they come, so two hours that lean on the same station's cumulative energy make it
invalid or loose. This module chooses the responses instead, by one LP: the affinely adjustable
robust counterpart of the recourse over the requirement set, with a rule that is additive in the
pattern.

**The rule.** Index the hours with a band and their directions by k = (t, side), each with its
requirement ``f_k = up_t e_t`` or ``-dn_t e_t``. A rule is a response ``y0`` at ``f = 0`` and one
adjustment ``D_k`` per k; the pattern ``a`` gets

    y(a) = y0 + sum_k a_k D_k.

With ``a_eq y0 = r_eq0`` and ``a_eq D_k = coef * f_k`` on the requirement row of hour t, every
equality row holds for every pattern. Each inequality row (and each sign ``y_j >= 0``), written
``g_i y <= h_i``, must hold for every pattern of the set ``F = {a_up + a_dn <= 1, sum a <= Gamma}``:

    g_i y0 + max_{a in F} sum_k a_k (g_i D_k) <= h_i.

The set's LP relaxation is integral (its matrix is an interval matrix), so by LP duality the max
is ``min Gamma pi_i + sum_t rho_it`` over ``pi_i, rho_it >= 0`` with ``pi_i + rho_it >= g_i D_k``
for each k of hour t. The cost is bounded the same way: ``U = cost @ y0 + Gamma pi_0 + sum_t
rho_0t`` with ``pi_0 + rho_0t >= cost @ D_k``. Minimizing U over the rules is one LP, and every
feasible rule gives, for every pattern, a feasible recourse that costs at most U:

    max_{a in F} Q(f(a)) <= U.

Where ``U`` is at or below C&CG's bar, nothing lies above it (proven, up to the LP solver's
tolerances); where it is at most a known pattern's value, that pattern is the worst.

**Supports.** ``D_k`` may move only: the columns of hour t that share no row with another hour
(``column_hour``); the linking columns (those that do: a station's adjustment and its running
sum); and the columns the free single-hour response of k moved (``SuperpositionBound.moved``),
so that the rule can at least repeat it. A row that only the adjustments of one hour can move
needs no dual variables (``g_i (y0 + D_k) <= h_i`` per k of that hour and ``g_i y0 <= h_i``). Any
support gives a valid bound; a wider one a lower bound and a larger LP. Without the moved
columns (the first try) the bound on T118D10 feeders stayed 9-10 $ above the worst patterns: the
single-hour responses shift station energy to hours whose own balancing (wind, shedding, the
boundary) then moves too.

Solved by HiGHS's interior point method with crossover (``highs-ipm``): on captured T118D10
certification questions 0.5-3.4 s, where the dual simplex took 0.3-1.1 s on some (it saved
0.3 s on one, lost 0.05 s on another, timed side by side) and 4-75 s on others (single-hour
responses of a few hundred columns or more); :data:`RULE_TIME_LIMIT_S` stops it (no bound, the MILP runs).

Glossary: ``y0``, ``D_k`` -> the rule; ``budget_h`` -> Gamma; ``upper_usd`` -> U (an upper bound
on the worst pattern's recourse value less the scenario's constant); ``up_mw``/``dn_mw`` ->
R^up_t / R^dn_t.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from agents.requirement_milp import RecourseLP, _active_band

#: Wall-clock seconds HiGHS may spend on the rule LP; past it there is no bound (the MILP decides).
RULE_TIME_LIMIT_S = 10.0


def linking_columns(lp: RecourseLP, column_hour: np.ndarray) -> np.ndarray:
    """(n_y,) bool: the columns that share some row (inequality or equality) with a column of another hour."""
    hour = np.asarray(column_hour, dtype=int)
    if hour.shape != (lp.n_y,):
        raise ValueError(f"column_hour has shape {hour.shape}; give one hour per recourse column ({lp.n_y})")
    rows = sp.vstack([lp.a_ub, lp.a_eq], format="coo")
    lo = np.full(rows.shape[0], np.iinfo(np.int64).max)
    hi = np.full(rows.shape[0], -1)
    np.minimum.at(lo, rows.row, hour[rows.col])
    np.maximum.at(hi, rows.row, hour[rows.col])
    link = np.zeros(lp.n_y, dtype=bool)
    link[rows.col[(lo < hi)[rows.row]]] = True
    return link


def rule_bound(
    lp: RecourseLP,
    column_hour: np.ndarray,
    r_ub: np.ndarray,
    r_eq0: np.ndarray,
    up_mw: np.ndarray,
    dn_mw: np.ndarray,
    budget_h: int,
    moved: tuple = (),
    time_limit_s: float = RULE_TIME_LIMIT_S,
) -> float | None:
    """U, the cost bound of the best pattern-additive rule (module docstring), or None where the LP
    found none in ``time_limit_s`` (or has none: some single-hour pattern leaves the recourse
    infeasible, which the MILP then names).

    ``column_hour``: (n_y,) the hour of each recourse column; ``moved``: ``(side, t, columns)`` per
    hour and direction, the columns the free single-hour response moved (widen the supports)."""
    T, n = lp.horizon_h, lp.n_y
    up, dn = _active_band(T, up_mw, dn_mw, "rule_bound")
    budget = max(int(budget_h), 0)
    hour = np.asarray(column_hour, dtype=int)
    link = linking_columns(lp, hour)
    extra = {(side, t): np.asarray(cols, dtype=int) for side, t, cols in moved}
    ks = [(0, t, up[t]) for t in np.flatnonzero(up)] + [(1, t, -dn[t]) for t in np.flatnonzero(dn)]
    if budget == 0:
        ks = []
    supports = [np.union1d(np.flatnonzero((hour == t) | link), extra.get((side, t), ())).astype(int)
                for side, t, _ in ks]
    K = len(ks)
    hours = sorted({t for _, t, _ in ks})
    H = len(hours)
    k_hour = np.array([hours.index(t) for _, t, _ in ks], dtype=int)

    # the rows g y <= h: inequality rows, then the signs -y_j <= 0
    nonneg = np.flatnonzero(lp.nonneg)
    g = sp.vstack([lp.a_ub, -sp.eye(n, format="csr")[nonneg]], format="csc")
    h = np.r_[np.asarray(r_ub, dtype=float), np.zeros(nonneg.size)]
    m = g.shape[0]
    on_k = [g[:, s].tocsr() for s in supports]  # g restricted to D_k's support
    touched = np.zeros((m, H), dtype=bool)
    for k in range(K):
        touched[:, k_hour[k]] |= np.diff(on_k[k].indptr) > 0
    dual = np.flatnonzero(touched.sum(axis=1) > 1)  # rows more than one hour moves: pi, rho
    is_dual = np.zeros(m, dtype=bool)
    is_dual[dual] = True

    # variables: y0 (n) | D_k on its support | pi_0, rho_0 (H) | pi_i (nd) | rho_i (nd x H)
    start = np.cumsum([n] + [s.size for s in supports])
    nd = dual.size
    i_pi0 = start[-1]
    i_rho0 = i_pi0 + 1
    i_pi = i_rho0 + H
    i_rho = i_pi + nd
    n_var = i_rho + nd * H

    def place(block: sp.csr_matrix, col0: int) -> sp.csr_matrix:
        block = block.tocsr()
        return sp.csr_matrix((block.data, block.indices + col0, block.indptr), shape=(block.shape[0], n_var))

    g_rows = g.tocsr()
    ub_blocks, ub_rhs = [place(g_rows, 0)], [h]  # g y0 <= h (dual rows get pi, rho below)
    d_pos = np.full(m, -1)
    d_pos[dual] = np.arange(nd)
    if nd:
        r = np.arange(nd)
        ub_blocks[0] = ub_blocks[0] + sp.csr_matrix(
            (np.r_[np.full(nd, float(budget)), np.ones(nd * H)],
             (np.r_[dual, np.repeat(dual, H)], np.r_[i_pi + r, i_rho + np.arange(nd * H)])), shape=(m, n_var))
    for k in range(K):
        rows = np.flatnonzero(np.diff(on_k[k].indptr) > 0)
        local, shared = rows[~is_dual[rows]], rows[is_dual[rows]]
        if local.size:  # g (y0 + D_k) <= h
            ub_blocks.append(place(g_rows[local], 0) + place(on_k[k][local], start[k]))
            ub_rhs.append(h[local])
        if shared.size:  # g D_k - pi_i - rho_i,t <= 0
            pos = d_pos[shared]
            e = np.arange(shared.size)
            ub_blocks.append(place(on_k[k][shared], start[k]) + sp.csr_matrix(
                (-np.ones(2 * shared.size), (np.r_[e, e], np.r_[i_pi + pos, i_rho + pos * H + k_hour[k]])),
                shape=(shared.size, n_var)))
            ub_rhs.append(np.zeros(shared.size))
    cost = np.asarray(lp.cost, dtype=float)
    for k in range(K):  # cost D_k - pi_0 - rho_0,t <= 0
        row = sp.csr_matrix((np.r_[cost[supports[k]], -1.0, -1.0],
                             (np.zeros(supports[k].size + 2, dtype=int),
                              np.r_[start[k] + np.arange(supports[k].size), i_pi0, i_rho0 + k_hour[k]])),
                            shape=(1, n_var))
        ub_blocks.append(row)
        ub_rhs.append(np.zeros(1))

    eq_blocks, eq_rhs = [place(lp.a_eq, 0)], [np.asarray(r_eq0, dtype=float)]  # a_eq y0 = r_eq0
    a_eq = lp.a_eq.tocsc()
    for k, (_, t, f_t) in enumerate(ks):  # a_eq D_k = coef f_k on hour t's requirement row
        sub = a_eq[:, supports[k]].tocsr()
        rows = np.flatnonzero(np.diff(sub.indptr) > 0)
        at = rows == lp.requirement_rows[t]
        if not at.any():  # no column of the support meets hour t's requirement (a wrong hour map): no bound
            return None
        rhs = np.zeros(rows.size)
        rhs[at] = lp.requirement_coef * f_t
        eq_blocks.append(place(sub[rows], start[k]))
        eq_rhs.append(rhs)

    c = np.zeros(n_var)
    c[:n] = cost
    c[i_pi0] = budget
    c[i_rho0:i_rho0 + H] = 1.0
    lower = np.zeros(n_var)
    lower[:n] = np.where(lp.nonneg, 0.0, -np.inf)
    lower[n:i_pi0] = -np.inf
    res = linprog(c, A_ub=sp.vstack(ub_blocks, format="csr"), b_ub=np.concatenate(ub_rhs),
                  A_eq=sp.vstack(eq_blocks, format="csr"), b_eq=np.concatenate(eq_rhs),
                  bounds=np.c_[lower, np.full(n_var, np.inf)], method="highs-ipm",
                  options={"time_limit": float(time_limit_s)})
    return float(res.fun) if res.status == 0 else None
