"""An upper bound on the worst TSO requirement from superposed single-hour responses.

The requirement MILP (:mod:`agents.requirement_milp`) proves "no pattern beats the bar" only
as far as its branch and bound gets within ``MIP_TIME_LIMIT_S``: its McCormick relaxation
(big-M = the violation penalty) is weak, and on T118D10 feeders, whose bands are a few tens
of kW, the dual bound stayed 56-115 $ above the incumbent after 1,400-1,600 nodes while the
bar was about 0.9 $ above it (docs/tso_dso_evcs.md, twenty-first-session status). This module gives an
upper bound that, where its check holds, proves the answer (up to the LP solver's tolerances), from 2 warm
LPs plus 2 per hour with a band (up to twice that where the second pass runs).

**The bound.** Let ``y0`` solve the recourse LP at ``f = 0`` (value ``Q(0)``), and for each
hour t with a band let ``y_t^up`` solve it at ``f = up_t e_t`` and ``y_t^dn`` at
``f = -dn_t e_t``, both started from ``y0``'s basis so that they change what that hour needs.
(a* below is chosen by these free responses' costs, the bound by those of the last pass.)
With ``D_t = y_t - y0``, every budgeted pattern ``a`` gets the superposed recourse

    y(a) = y0 + sum_t (a_up_t D_t^up + a_dn_t D_t^dn).

It meets every equality row (they are linear, and each ``y_t`` meets its own requirement),
and it meets the inequality rows ``a_ub y <= r_ub`` and the signs ``y >= 0`` for every pattern
of the set exactly when, row by row, the ``budget_h`` largest positive entries of
``max(a_ub D_t^up, a_ub D_t^dn)`` over t fit into the row's slack at ``y0`` (the budgeted set's
largest sum is a sort). If they do, ``y(a)`` is feasible, so

    Q(f(a)) <= cost @ y(a) = Q(0) + sum_t a_t dQ_t
             <= U = Q(0) + (sum of the budget_h largest positive max(dQ_t^up, dQ_t^dn)),

``dQ_t = Q(f_t e_t) - Q(0)``: an upper bound over the whole set, without the MILP. The pattern
``a*`` that attains ``U``'s sum is a member of the set; its true value ``Q(f(a*))`` is solved
too, and where it equals ``U`` it is the worst pattern, proven.

Where some rows overflow (two hours' responses lean on the same slack: a station's
cumulative energy, a branch), one more pass re-solves the responses with those rows held to a
share ``1 / min(budget_h, hours with a band)`` of their slack each (``a_ub y <= a_ub y0 +
share * slack``), which makes those rows fit by construction; if no other row or sign
overflows then, the bound is valid again but higher. Otherwise (or where a held row leaves a
response with no solution) the bound is not valid (``valid`` False) and the caller goes to the
MILP. ``FEASIBILITY_TOL`` is HiGHS's own primal feasibility tolerance.

Glossary: ``upper_usd`` -> U (an upper bound on max_a Q(f(a)) less the scenario's constant),
``pattern`` -> a* with its LP value and duals, ``budget_h`` -> Gamma, ``up_mw``/``dn_mw`` ->
R^up_t / R^dn_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.requirement_milp import (
    RecourseInfeasibleError,
    RecourseLP,
    RecourseSolver,
    WorstRequirement,
    _active_band,
    _best_pattern,
    requirement_from_pattern,
)

#: Row overflow (MW, MWh or pu^2, the rows' own units) tolerated when checking the superposed
#: recourse: HiGHS's primal feasibility tolerance, which its own LP solutions meet.
FEASIBILITY_TOL = 1e-7
#: ``Q(f(a*))`` within this ($, plus 1e-9 relative) of ``U``: a* is the worst pattern, proven.
EXACT_TOL_USD = 1e-6
#: A response entry that differs from y0 by more than this counts as moved (``SuperpositionBound.moved``).
MOVED_TOL = 1e-9
#: Passes over the responses: free, then with the overflowing rows held to a share of their slack.
PASSES = 2


@dataclass(frozen=True)
class SuperpositionBound:
    """The outcome of :func:`superposition_bound`."""

    upper_usd: float  #: U; an upper bound on every pattern's recourse value when ``valid``
    valid: bool  #: the superposed responses met every row for every pattern of the set
    pattern: WorstRequirement  #: a*, with its true LP value and the LP duals there (a valid cut)
    lp_solves: int  #: recourse LPs solved
    passes: int = 1  #: passes over the single-hour responses (2: rows were held after the first)
    #: per hour with a band and direction, ``(side, t, columns)``: side 0 up / 1 down, and the recourse
    #: columns the free single-hour response moved from y0 (:mod:`agents.requirement_rule` widens its
    #: rule's supports by them)
    moved: tuple = ()

    @property
    def exact(self) -> bool:
        """``valid`` and a* attains U: a* is the worst pattern of the set."""
        return self.valid and self.pattern.value_usd >= self.upper_usd - EXACT_TOL_USD - 1e-9 * abs(self.upper_usd)


def superposition_bound(
    lp: RecourseLP,
    r_ub: np.ndarray,
    r_eq0: np.ndarray,
    up_mw: np.ndarray,
    dn_mw: np.ndarray,
    budget_h: int,
    solver: RecourseSolver,
) -> SuperpositionBound:
    """U and a* at these right-hand sides (module docstring). ``solver``: a
    :class:`RecourseSolver` of ``lp`` (its warm basis is used and left at the last solve)."""
    if solver.lp is not lp:
        raise ValueError("superposition_bound: the RecourseSolver holds another RecourseLP")
    T = lp.horizon_h
    up, dn = _active_band(T, up_mw, dn_mw, "superposition_bound")
    budget = max(int(budget_h), 0)
    r_ub = np.asarray(r_ub, dtype=float)
    zero = np.zeros(T)
    sol0 = solver.solve(r_ub, lp.r_eq(r_eq0, zero))
    basis0, y0, q0 = solver.basis(), sol0.y, sol0.value_usd
    slack = np.maximum(r_ub - lp.a_ub @ y0, 0.0)
    floor = np.where(lp.nonneg, y0, np.inf)  # how far each entry may fall (free ones: any)
    hours = [(0, t, up[t]) for t in np.flatnonzero(up)] + [(1, t, -dn[t]) for t in np.flatnonzero(dn)]
    held = np.zeros(r_ub.size, dtype=bool)
    # a held row's share of its slack per hour: at most min(budget, hours with a band) hours act at once
    share = 1.0 / max(min(budget, len({t for _, t, _ in hours})), 1)
    solves, valid, dq_free, passes = 1, False, None, 0
    for passes in range(1, PASSES + 1):
        with np.errstate(invalid="ignore"):  # inf - inf * 0 on rows without a limit, not held anyway
            rows_ub = np.where(held, r_ub - slack * (1.0 - share), r_ub)
        dq = np.zeros((2, T))
        grow = np.zeros((2, r_ub.size, T))  # a_ub D_t per direction
        fall = np.zeros((2, lp.n_y, T))  # -D_t per direction
        try:
            responses = []
            for side, t, f_t in hours:
                f = zero.copy()
                f[t] = f_t
                responses.append((side, t, solver.solve(rows_ub, lp.r_eq(r_eq0, f), basis=basis0)))
                solves += 1
        except RecourseInfeasibleError:
            if dq_free is None:
                raise  # a single-hour pattern is a member of the set: its recourse has no solution
            break  # the held rows left no response: the bound stays not valid
        for side, t, sol in responses:
            d = sol.y - y0
            dq[side, t] = sol.value_usd - q0
            grow[side, :, t] = lp.a_ub @ d
            fall[side, :, t] = -d
        if dq_free is None:
            dq_free = dq  # the free responses: the true single-hour costs
            moved = tuple((side, t, np.flatnonzero(np.abs(sol.y - y0) > MOVED_TOL)) for side, t, sol in responses)
        dq_last = dq  # the costs of the last pass that solved every response: U's
        over = _budgeted_sum(np.maximum(grow[0], grow[1]), budget) > slack + FEASIBILITY_TOL
        sinks = _budgeted_sum(np.maximum(fall[0], fall[1]), budget) > floor + FEASIBILITY_TOL
        if not over.any() and not sinks.any():
            valid = True
            break
        if sinks.any() or (held & over).any():
            break  # a sign or an already-held row overflows: holding more rows will not do
        held |= over
    upper = q0 + float(_budgeted_sum(np.maximum(dq_last[0], dq_last[1])[None, :], budget)[0])
    a_up, a_dn = _best_pattern(dq_free[0], dq_free[1], budget)  # the free single-hour costs choose a*
    f_star = requirement_from_pattern(a_up, a_dn, up, dn)
    chosen = bool(a_up.any() or a_dn.any())
    sol = solver.solve(r_ub, lp.r_eq(r_eq0, f_star), basis=basis0) if chosen else sol0
    solves += int(chosen)
    pattern = WorstRequirement(sol.value_usd, a_up, a_dn, f_star, True, sol.dual_ub, sol.dual_eq, lp_solves=solves,
                               complete=False)
    return SuperpositionBound(upper, valid, pattern, solves, passes, moved)


def _budgeted_sum(per_hour: np.ndarray, budget: int) -> np.ndarray:
    """Row-wise sum of the ``budget`` largest positive entries of ``per_hour`` (rows x T)."""
    if budget <= 0 or per_hour.shape[1] == 0:
        return np.zeros(per_hour.shape[0])
    k = min(budget, per_hour.shape[1])
    return (-np.partition(-np.maximum(per_hour, 0.0), k - 1, axis=1)[:, :k]).sum(axis=1)
